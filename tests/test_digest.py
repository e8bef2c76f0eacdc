"""Digests: what they say, when they go out, and that each goes out exactly once.

The content tests run on the demo's 90 days of numbers; the delivery tests post through the
fake Slack Web API (a real HTTP server) with a frozen, movable clock.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app.alerts import add_rule
from bot.app.context import Context, UserError, open_context
from bot.app.digests import (
    DAILY,
    UNUSUAL_LINES,
    WEEKLY,
    Digest,
    Unusual,
    chart_trend,
    compute_digest,
    digest_period,
    due_now,
)
from bot.app.goals import goal_progress, set_goal
from bot.demo import fill
from bot.observability import Metrics
from bot.render.digest import (
    FOLD_LINES,
    MIN_TABLE_ROWS,
    digest_charts,
    digest_details,
    digest_markdown,
    digest_message,
    unusual_text,
    write_digest_files,
)
from bot.render.kit import (
    CHART_AXIS_LABEL_LIMIT,
    CHART_LABEL_LIMIT,
    CHART_MAX_PER_MESSAGE,
    CHART_MAX_POINTS,
    CHART_MAX_SERIES,
    CHART_SERIES_NAME_LIMIT,
    CHART_TITLE_LIMIT,
    MAX_BLOCKS,
    SECTION_LIMIT,
    TABLE_CELL_LIMIT,
    TABLE_MAX_CELLS,
    TABLE_MAX_COLUMN_SETTINGS,
    TABLE_MAX_ROWS,
    cell_text,
    native_problems,
    rendered_lines,
)
from bot.render.posts import outgoing_of
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack.app import courier_client
from bot.slack.courier import Courier
from kpis.alerts import Status
from kpis.catalogue import Unit
from kpis.compare import Verdict
from kpis.periods import Period
from kpis.schedule import last_due, next_due
from kpis.unusual import Expectation
from storage import Store, open_store
from storage.repository import Write
from storage.timers import DIGEST_TIMER
from tests.conftest import SLACK_ADMIN, SLACK_MEMBER, SLACK_NOW, Clock, SlackBot, at_once
from tests.fakeslack import FakeSlack, block_kit_problems

NY = "America/New_York"
TODAY = date(2026, 3, 11)
CHANNEL = "C0001"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file with 40 days of demo numbers in T0001 (New York), filled once per module."""
    path = tmp_path_factory.mktemp("demo") / "template.db"
    store = open_store(f"sqlite:///{path}")
    store.ensure_workspace("T0001", timezone=NY)
    fill(store, "T0001", TODAY, days=40)
    store.engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def demo_ctx(demo_template: Path, tmp_path: Path) -> Iterator[Context]:
    copy = tmp_path / "demo.db"
    shutil.copyfile(demo_template, copy)
    store = open_store(f"sqlite:///{copy}")
    yield open_context(store, "T0001", "tester", datetime(2026, 3, 11, 14, 0, tzinfo=UTC))
    store.engine.dispose()


# -- what a digest says --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "today", "period"),
    [
        (DAILY, date(2026, 3, 11), Period.day(date(2026, 3, 10))),
        (DAILY, date(2026, 3, 1), Period.day(date(2026, 2, 28))),
        (WEEKLY, date(2026, 3, 9), Period(date(2026, 3, 2), date(2026, 3, 8))),
        (WEEKLY, date(2026, 3, 15), Period(date(2026, 3, 2), date(2026, 3, 8))),
    ],
)
def test_a_digest_covers_yesterday_or_the_last_whole_iso_week(kind: str, today: date, period: Period) -> None:
    assert digest_period(kind, today) == period


def test_the_daily_digest_shows_headline_kpis_funnel_movers_and_gaps(demo_ctx: Context) -> None:
    digest = compute_digest(demo_ctx, DAILY)

    assert digest.period == Period.day(date(2026, 3, 10))
    assert [line.key for line in digest.headline][:4] == ["cpl", "booking_rate", "show_rate", "close_rate"]
    cpl = digest.headline[0].change
    report = demo_ctx.store.period_data("T0001", digest.period, demo_ctx.catalogue)
    assert cpl.value == pytest.approx(report.totals["spend"][0] / report.totals["leads"][0])
    steps = {step.key: step for step in digest.funnel}
    assert list(steps) == ["impressions", "clicks", "leads", "bookings", "shows", "sales"]
    assert steps["clicks"].conversion == pytest.approx(steps["clicks"].value / steps["impressions"].value)
    assert steps["impressions"].conversion is None
    assert len(digest.movers) <= 5
    assert all(m.key not in {h.key for h in digest.headline} for m in digest.movers)
    assert abs(digest.movers[0].change.change_pct or 0) >= abs(digest.movers[-1].change.change_pct or 0)
    assert "Open pipeline value (weighted)" in digest.missing
    assert len(digest.trends[0].points) == 30 and len(digest.trends[0].previous) == 30
    assert digest.trends[0].points[-1] == (date(2026, 3, 10), pytest.approx(cpl.value))


def test_the_weekly_digest_trends_twelve_weeks(demo_ctx: Context) -> None:
    digest = compute_digest(demo_ctx, WEEKLY)

    assert digest.period == Period(date(2026, 3, 2), date(2026, 3, 8))
    trend = digest.trends[0]
    assert [d for d, _ in trend.points][-2:] == [date(2026, 2, 23), date(2026, 3, 2)]
    assert len(trend.points) == 12
    week = demo_ctx.store.period_data("T0001", digest.period, demo_ctx.catalogue)
    assert trend.points[-1][1] == pytest.approx(week.totals["spend"][0] / week.totals["leads"][0])


def test_a_kpi_with_an_empty_denominator_says_n_a_instead_of_failing(store: Store) -> None:
    store.ensure_workspace("T0001", timezone=NY)
    day = date(2026, 3, 10)
    store.record("T0001", [Write("spend", day, 120.0, "ana"), Write("leads", day, 0.0, "ana")],
                 actor="ana", origin="test")
    ctx = open_context(store, "T0001", "tester", datetime(2026, 3, 11, 14, 0, tzinfo=UTC))

    digest = compute_digest(ctx, DAILY)

    assert digest.headline[0].key == "cpl" and digest.headline[0].change.value is None
    assert "n/a" in digest_markdown(digest)
    assert "n/a" in json.dumps(digest_message(digest))


def test_a_digest_of_an_empty_period_says_so(store: Store) -> None:
    ctx = open_context(store, "T0001", "tester", datetime(2026, 3, 11, 14, 0, tzinfo=UTC))

    digest = compute_digest(ctx, DAILY)
    message = digest_message(digest)

    assert not digest.has_data and digest.trends == ()
    assert "no numbers were logged" in message["text"].lower()
    assert digest_charts(digest) == []


def test_a_future_digest_date_is_refused(demo_ctx: Context) -> None:
    with pytest.raises(UserError, match="future"):
        compute_digest(demo_ctx, DAILY, on=date(2026, 3, 12))


def test_the_message_stays_within_block_kit_limits_and_has_a_text_fallback(demo_ctx: Context) -> None:
    for kind in (DAILY, WEEKLY):
        message = digest_message(compute_digest(demo_ctx, kind))

        assert message["text"].startswith("Daily KPIs" if kind == DAILY else "Weekly KPIs")
        assert "Cost per lead" in message["text"]
        assert 0 < len(message["blocks"]) <= MAX_BLOCKS
        for block in message["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= SECTION_LIMIT


def test_charts_are_phone_sized_pngs_one_per_headline_kpi_and_the_funnel(demo_ctx: Context) -> None:
    digest = compute_digest(demo_ctx, DAILY)

    charts = digest_charts(digest)

    assert [c.filename for c in charts][-1] == "daily-2026-03-10-funnel.png"
    assert len(charts) == len(digest.trends) + 1
    for chart in charts:
        width, height = png_size(chart.png)
        assert width >= 1200 and height >= 675


def test_digest_files_hold_markdown_block_kit_json_and_the_charts(demo_ctx: Context, tmp_path: Path) -> None:
    digest = compute_digest(demo_ctx, WEEKLY)

    written = write_digest_files(digest, tmp_path)

    markdown = (tmp_path / "weekly-digest.md").read_text()
    assert markdown.startswith("# Weekly KPIs: 2026-03-02..2026-03-08")
    assert "| Cost per lead |" in markdown
    assert json.loads((tmp_path / "weekly-digest.json").read_text()) == digest_message(digest)
    pngs = [p for p in written if p.suffix == ".png"]
    assert pngs and all(f"]({p.name})" in markdown for p in pngs)


# -- when digests are due ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "due"),
    [
        # New York moved to daylight time on Sun 8 March 2026: 09:00 local moves in UTC
        (datetime(2026, 3, 7, 15, 0, tzinfo=UTC), datetime(2026, 3, 7, 14, 0, tzinfo=UTC)),
        (datetime(2026, 3, 8, 13, 30, tzinfo=UTC), datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),
        (datetime(2026, 3, 8, 12, 59, tzinfo=UTC), datetime(2026, 3, 7, 14, 0, tzinfo=UTC)),
        # and back to standard time on Sun 1 November 2026
        (datetime(2026, 11, 1, 14, 0, tzinfo=UTC), datetime(2026, 11, 1, 14, 0, tzinfo=UTC)),
        (datetime(2026, 11, 1, 13, 59, tzinfo=UTC), datetime(2026, 10, 31, 13, 0, tzinfo=UTC)),
    ],
)
def test_nine_o_clock_stays_nine_o_clock_local_across_daylight_saving(now: datetime, due: datetime) -> None:
    assert last_due(time(9, 0), None, NY, now) == due
    assert due.astimezone(ZoneInfo(NY)).time() == time(9, 0)


def test_a_weekly_schedule_is_due_on_its_weekday_only() -> None:
    monday = 0
    now = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)  # a Wednesday

    assert last_due(time(9, 0), monday, NY, now) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert next_due(time(9, 0), monday, NY, now) == datetime(2026, 3, 16, 13, 0, tzinfo=UTC)


def test_the_timer_comes_back_at_the_same_local_minute_across_a_daylight_saving_change() -> None:
    """A subscription's timer is set to `next_due` after each look: 09:00 stays 09:00 in New
    York when its clocks spring forward (8 March 2026), so the UTC instant moves."""
    looked_at = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)
    local_times = []
    for _ in range(6):
        looked_at = next_due(time(9, 0), None, NY, looked_at)
        local_times.append(looked_at.astimezone(ZoneInfo(NY)))

    assert [t.date() for t in local_times] == [date(2026, 3, d) for d in range(5, 11)]
    assert {t.strftime("%H:%M") for t in local_times} == {"09:00"}
    assert {t.utcoffset() for t in local_times} == {timedelta(hours=-5), timedelta(hours=-4)}


def test_only_deliveries_of_the_last_six_hours_are_due(store: Store) -> None:
    store.ensure_workspace("T0001", timezone=NY)
    sub = store.subscribe("T0001", CHANNEL, DAILY, "09:00")

    nine_local = datetime(2026, 3, 11, 13, 0, tzinfo=UTC)
    due = due_now(sub, NY, nine_local + timedelta(hours=5))
    assert due is not None and due.period == Period.day(date(2026, 3, 10))
    assert due_now(sub, NY, nine_local + timedelta(hours=7)) is None


# -- posting exactly once --------------------------------------------------------------------


def make_scheduler(bot: SlackBot, clock: Clock, store: Store | None = None) -> Scheduler:
    client = courier_client(bot.services.settings, "xoxb-test")
    courier = Courier(store or bot.store, lambda _ws: client, bot.services.metrics, clock, backoff=0.01)
    return Scheduler(store or bot.store, courier, clock)


@pytest.fixture
def demo_numbers(demo_template: Path, tmp_path: Path) -> None:
    """The demo numbers where the slack_bot fixture opens its database (so list it first)."""
    shutil.copyfile(demo_template, tmp_path / "slack-e2e.db")


@pytest.fixture
def subscribed(demo_numbers: None, slack_bot: SlackBot) -> SlackBot:
    """The demo numbers in T0001, and the daily digest scheduled at 09:00 in #general."""
    assert slack_bot.store.entries_between("T0001", TODAY - timedelta(days=2), TODAY)
    reply = slack_bot.command("digest daily 09:00", user_id=SLACK_ADMIN)
    assert reply.status == 200 and "09:00" in reply.json["text"], reply.json
    return slack_bot


def top_level(fake: FakeSlack, channel: str = CHANNEL) -> list[dict[str, Any]]:
    return fake.messages_in(channel)


def test_the_scheduled_digest_posts_once_with_its_charts_in_the_thread(subscribed: SlackBot) -> None:
    fake = subscribed.fake
    clock = Clock(datetime(2026, 3, 11, 12, 59, tzinfo=UTC))  # 08:59 in New York
    scheduler = make_scheduler(subscribed, clock)

    assert scheduler.sweep() == []
    clock.now = datetime(2026, 3, 11, 13, 0, 5, tzinfo=UTC)
    assert scheduler.sweep() == ["posted"]
    clock.now += timedelta(minutes=1)
    assert scheduler.sweep() == []  # its timer moved on: a delivered key is not claimed again

    [message] = top_level(fake)
    assert message["text"].startswith("Daily KPIs: Tue 10 Mar 2026")
    assert message["metadata"]["event_payload"]["key"] == "digest:T0001:C0001:daily:2026-03-10"
    files = fake.uploaded_files(CHANNEL)
    assert {f["thread_ts"] for f in files} == {message["ts"]}
    assert len(files) == len(compute_digest(open_context(subscribed.store, "T0001", "x", clock.now), DAILY).trends) + 1
    assert all(png_size(fake.uploads[f["id"]]) >= (1200, 675) for f in files)
    assert fake.calls_to("files.upload") == []
    assert subscribed.store.delivery("digest:T0001:C0001:daily:2026-03-10").delivered_at is not None


def test_a_process_killed_after_claiming_leaves_a_claim_that_expires_and_is_retried_once(
    subscribed: SlackBot,
) -> None:
    clock = Clock(datetime(2026, 3, 11, 13, 0, 5, tzinfo=UTC))
    [sub] = subscribed.store.subscriptions("T0001")
    due = due_now(sub, NY, clock.now)
    assert due is not None
    crashed = subscribed.store.claim_delivery(
        "T0001", due.key, kind="digest-daily", channel_id=CHANNEL, due_at=due.due_at,
        owner="crashed-process", now=clock.now, lease=timedelta(minutes=5),
    )
    assert crashed is not None
    scheduler = make_scheduler(subscribed, clock)

    clock.now += timedelta(minutes=2)
    assert scheduler.sweep() == ["held"]  # the dead process's claim has not expired yet
    assert top_level(subscribed.fake) == []
    clock.now += timedelta(minutes=4)
    assert scheduler.sweep() == ["posted"]
    clock.now += timedelta(minutes=1)
    assert scheduler.sweep() == []  # its timer moved on: a delivered key is not claimed again
    assert len(top_level(subscribed.fake)) == 1
    assert subscribed.store.delivery(due.key).attempts == 2


def test_429_then_500_then_success_posts_one_copy(subscribed: SlackBot) -> None:
    """A 429 gives the delivery back until Retry-After (no worker sleeps through it)."""
    fake = subscribed.fake
    fake.fail("chat.postMessage", status=429, retry_after=2)
    fake.fail("chat.postMessage", status=500)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    scheduler = make_scheduler(subscribed, clock)

    assert scheduler.sweep() == ["retry"]
    [sub] = subscribed.store.subscriptions("T0001")
    timer_due = subscribed.store.timers("T0001")[(DIGEST_TIMER, str(sub.id))]
    assert timer_due == clock.now + timedelta(seconds=2)  # Retry-After, not RETRY's minute
    clock.now += timedelta(seconds=1)
    assert scheduler.sweep() == []
    clock.now += timedelta(seconds=1)
    assert scheduler.sweep() == ["posted"]

    assert len(top_level(fake)) == 1
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 500, 200]
    delivery = subscribed.store.delivery("digest:T0001:C0001:daily:2026-03-10")
    assert delivery is not None and delivery.attempts == 1  # the 429 was not an attempt


def test_a_lost_reply_is_not_posted_again(subscribed: SlackBot) -> None:
    """Slack posted but answered 500: the channel's history shows the copy, so no second one."""
    fake = subscribed.fake
    fake.lose_reply("chat.postMessage", status=500)
    scheduler = make_scheduler(subscribed, Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC)))

    assert scheduler.sweep() == ["posted"]

    assert len(top_level(fake)) == 1
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert fake.calls_to("conversations.history")
    assert fake.uploaded_files(CHANNEL)


def test_a_failed_chart_upload_is_retried_without_reposting_the_message(subscribed: SlackBot) -> None:
    fake = subscribed.fake
    fake.fail("files.completeUploadExternal", status=500)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    scheduler = make_scheduler(subscribed, clock)

    assert scheduler.sweep() == ["retry"]
    clock.now += timedelta(minutes=3)
    assert scheduler.sweep() == ["posted"]

    [message] = top_level(fake)
    assert {f["thread_ts"] for f in fake.uploaded_files(CHANNEL)} == {message["ts"]}


def test_not_in_channel_joins_the_public_channel_and_posts(subscribed: SlackBot) -> None:
    subscribed.fake.add_channel("C0PUBLIC", "marketing", is_member=False)
    subscribed.store.subscribe("T0001", "C0PUBLIC", DAILY, "09:00")
    scheduler = make_scheduler(subscribed, Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC)))

    assert sorted(scheduler.sweep()) == ["posted", "posted"]

    assert len(top_level(subscribed.fake, "C0PUBLIC")) == 1
    assert subscribed.fake.calls_to("conversations.join")


def test_a_vanished_channel_is_recorded_for_admins_and_not_retried(subscribed: SlackBot) -> None:
    fake = subscribed.fake
    fake.delete_channel("C0GONE")
    subscribed.store.subscribe("T0001", "C0GONE", DAILY, "09:00")
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    scheduler = make_scheduler(subscribed, clock)

    assert sorted(scheduler.sweep()) == ["failed", "posted"]
    clock.now += timedelta(hours=1)
    assert scheduler.sweep() == []  # both timers moved on to tomorrow, the failed one too
    assert len([c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == "C0GONE"]) == 1

    subscribed.event({"type": "app_home_opened", "user": SLACK_ADMIN, "tab": "home"})
    home = fake.wait_for(lambda f: list(f.home_views.values()))[-1]
    assert "channel_not_found" in json.dumps(home) and "C0GONE" in json.dumps(home)


def test_two_schedulers_sharing_one_database_post_once(subscribed: SlackBot) -> None:
    clock = Clock(datetime(2026, 3, 11, 13, 0, 1, tzinfo=UTC))
    other_store = open_store(str(subscribed.store.engine.url))
    schedulers = [make_scheduler(subscribed, clock), make_scheduler(subscribed, clock, other_store)]

    outcomes = at_once(*(scheduler.sweep for scheduler in schedulers))
    other_store.engine.dispose()

    assert outcomes.count("posted") == 1 and set(outcomes) <= {"posted", "held", "skipped"}
    assert len(top_level(subscribed.fake)) == 1


# -- the commands ------------------------------------------------------------------------------


def test_digest_now_posts_the_digest_to_the_channel(subscribed: SlackBot) -> None:
    reply = subscribed.command("digest now weekly", user_id=SLACK_MEMBER)

    assert reply.status == 200 and "Posting the weekly digest" in reply.json["text"]
    answer = subscribed.fake.wait_for(
        lambda f: [c.params for c in f.calls_to("response_url") if "Posted" in str(c.params)]
    )[-1]
    assert "2026-03-02..2026-03-08" in str(answer)
    [message] = top_level(subscribed.fake)
    assert message["text"].startswith("Weekly KPIs")


def test_scheduling_is_for_admins_and_off_stops_it(slack_bot: SlackBot) -> None:
    refused = slack_bot.command("digest weekly monday 09:00", user_id=SLACK_MEMBER)
    assert "Only admins can schedule digests" in refused.json["text"]
    assert slack_bot.store.subscriptions() == []

    done = slack_bot.command("digest weekly monday 09:00", user_id=SLACK_ADMIN)
    assert "every Monday at 09:00 (America/New_York)" in done.json["text"]
    assert "Next: Mon 16 Mar 09:00" in done.json["text"]
    [sub] = slack_bot.store.subscriptions()
    assert (sub.channel_id, sub.kind, sub.weekday, sub.at_time) == (CHANNEL, WEEKLY, 0, "09:00")

    moved = slack_bot.command("digest weekly friday 16:30", user_id=SLACK_ADMIN)
    assert "every Friday at 16:30" in moved.json["text"]
    assert len(slack_bot.store.subscriptions()) == 1

    stopped = slack_bot.command("digest off", user_id=SLACK_ADMIN)
    assert "Stopped" in stopped.json["text"]
    assert slack_bot.store.subscriptions() == []
    again = slack_bot.command("digest off", user_id=SLACK_ADMIN)
    assert "nothing changed" in again.json["text"]


def test_chart_uploads_a_png_of_the_kpi_to_the_channel(subscribed: SlackBot) -> None:
    reply = subscribed.command("chart cpl 30d", user_id=SLACK_MEMBER)

    assert reply.status == 200 and "Drawing the chart" in reply.json["text"]
    [upload] = subscribed.fake.wait_for(lambda f: f.uploaded_files(CHANNEL))
    assert upload["title"].startswith("Cost per lead")
    assert png_size(subscribed.fake.uploads[upload["id"]]) >= (1200, 675)


def test_chart_of_an_unknown_kpi_names_the_nearest(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("chart cppl")

    assert reply.status == 200
    answer = slack_bot.fake.wait_for(lambda f: [c.params for c in f.calls_to("response_url")])[-1]
    assert "cpl" in str(answer) and "Did you mean" in str(answer)
    assert slack_bot.fake.uploaded_files() == []


def test_slack_now_is_after_the_daylight_saving_change() -> None:
    """The e2e clock sits in the week New York moved its clocks; the tests above rely on it."""
    assert SLACK_NOW.astimezone(ZoneInfo(NY)).utcoffset() == timedelta(hours=-4)


def test_two_processes_on_one_database_post_each_period_once(db_url: str, fake_slack: FakeSlack) -> None:
    """Each scheduler has its own engine, as two `kpibot serve` processes would (PostgreSQL too)."""
    first = open_store(db_url)
    first.ensure_workspace("T0001", timezone=NY)
    first.record("T0001", [Write("spend", date(2026, 3, 10), 300.0, "ana"),
                           Write("leads", date(2026, 3, 10), 20.0, "ana")], actor="ana", origin="test")
    for channel in ("C0001", "C0002", "C0003"):
        fake_slack.add_channel(channel)
        first.subscribe("T0001", channel, DAILY, "09:00")
    clock = Clock(datetime(2026, 3, 11, 13, 0, 1, tzinfo=UTC))
    settings = Settings(slack_api_url=fake_slack.api_url, _env_file=None)
    stores = [first, open_store(db_url)]

    def process(store: Store) -> Scheduler:
        client = courier_client(settings, "xoxb-test")
        return Scheduler(store, Courier(store, lambda _ws: client, Metrics(), clock, backoff=0.01), clock)

    outcomes = at_once(*(process(s).sweep for s in stores))
    for s in stores:
        s.engine.dispose()

    assert outcomes.count("posted") == 3 and set(outcomes) <= {"posted", "held", "skipped"}
    assert [len(fake_slack.messages_in(c)) for c in ("C0001", "C0002", "C0003")] == [1, 1, 1]


def test_charts_shared_before_a_lost_reply_are_not_shared_again(subscribed: SlackBot) -> None:
    """Slack shared the charts but the reply was lost (or the process died right after): the
    retry finds them in the thread and only marks the digest delivered."""
    fake = subscribed.fake
    fake.lose_reply("files.completeUploadExternal", status=500)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    scheduler = make_scheduler(subscribed, clock)

    assert scheduler.sweep() == ["retry"]
    clock.now += timedelta(minutes=3)
    assert scheduler.sweep() == ["posted"]

    [message] = top_level(fake)
    names = [f["name"] for f in fake.uploaded_files(CHANNEL)]
    assert names and len(names) == len(set(names))
    assert {f["thread_ts"] for f in fake.uploaded_files(CHANNEL)} == {message["ts"]}
    assert fake.calls_to("conversations.replies")


# -- charts that do not plot noise --------------------------------------------------------


def test_a_daily_ratio_chart_carries_its_7_day_ratio_of_sums(store: Store) -> None:
    store.ensure_workspace("T0001", timezone=NY)
    writes = []
    for i in range(14):  # shows every day; sales only on even days: a daily close rate of 0 or 1/2
        day = TODAY - timedelta(days=13 - i)
        writes += [Write("shows", day, 2.0, "ana"), Write("sales", day, float(i % 2 == 0), "ana")]
    store.record("T0001", writes, actor="ana", origin="test")
    ctx = open_context(store, "T0001", "tester", datetime(2026, 3, 11, 14, 0, tzinfo=UTC))

    trend = chart_trend(ctx, "close_rate", Period(TODAY - timedelta(days=6), TODAY))

    assert [v for _, v in trend.points] == [0.5 * (i % 2 == 0) for i in range(7, 14)]
    last_week = [(i % 2 == 0) for i in range(7, 14)]
    assert trend.smoothed[-1] == pytest.approx(sum(last_week) / 14)  # sales / shows of 7 days
    assert trend.unfinished  # the range ends today, in New York


def test_a_chart_draws_the_threshold_of_its_kpis_alert_rule(store: Store) -> None:
    store.ensure_workspace("T0001", timezone=NY)
    store.record("T0001", [Write("spend", TODAY - timedelta(days=1), 100.0, "ana"),
                           Write("leads", TODAY - timedelta(days=1), 5.0, "ana")],
                 actor="ana", origin="test")
    ctx = open_context(store, "T0001", SLACK_ADMIN, datetime(2026, 3, 11, 14, 0, tzinfo=UTC),
                       channel=CHANNEL)
    add_rule(ctx, CHANNEL, "cpl", ">", "15", period="daily")

    trend = chart_trend(ctx, "cpl", Period(TODAY - timedelta(days=29), TODAY - timedelta(days=1)))

    assert trend.threshold == (">", 15.0) and not trend.unfinished


# -- the native message: a table, a line chart, unusual lines, 12 lines on a phone ------------


def native_blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b["type"] == kind]


def test_a_real_digest_keeps_every_documented_limit_of_its_native_blocks(demo_ctx: Context) -> None:
    for kind in (DAILY, WEEKLY):
        digest = compute_digest(demo_ctx, kind)
        message = digest_message(digest)

        assert native_problems(message["blocks"]) == []
        assert block_kit_problems(message, "message") == []
        [headline] = native_blocks(message, "table")  # one table per message
        charts = native_blocks(message, "data_visualization")
        assert 1 <= len(charts) <= CHART_MAX_PER_MESSAGE
        rows = headline["rows"]
        assert len(rows) <= TABLE_MAX_ROWS and all(len(r) <= TABLE_MAX_CELLS for r in rows)
        assert [cell_text(c) for c in rows[0]][:2] == ["KPI", "Value"]
        assert all(len(cell_text(c)) <= TABLE_CELL_LIMIT for r in rows for c in r)
        assert len(headline.get("column_settings", [])) <= TABLE_MAX_COLUMN_SETTINGS
        for chart in charts:
            assert 0 < len(chart["title"]) <= CHART_TITLE_LIMIT
            axis = chart["chart"]["axis_config"]
            assert chart["chart"]["type"] == "line"
            assert all(len(c) <= CHART_LABEL_LIMIT for c in axis["categories"])
            assert len(axis.get("x_label", "")) <= CHART_AXIS_LABEL_LIMIT
            assert len(axis.get("y_label", "")) <= CHART_AXIS_LABEL_LIMIT
            series = chart["chart"]["series"]
            assert 1 <= len(series) <= CHART_MAX_SERIES
            assert len({s["name"] for s in series}) == len(series)
            for s in series:
                assert 0 < len(s["name"]) <= CHART_SERIES_NAME_LIMIT
                assert 1 <= len(s["data"]) <= CHART_MAX_POINTS
                assert [p["label"] for p in s["data"]] == axis["categories"]
                assert all(isinstance(p["value"], float) for p in s["data"])
        assert charts[0]["chart"]["series"][0]["name"] == digest.trends[0].label
        last = charts[0]["chart"]["series"][0]["data"][-1]["value"]
        assert last == pytest.approx(digest.trends[0].points[-1][1], abs=0.01)
        assert message["text"].startswith(digest.title) and "Cost per lead" in message["text"]


def test_only_news_is_coloured_in_the_table(demo_ctx: Context) -> None:
    digest = compute_digest(demo_ctx, DAILY)
    [headline] = native_blocks(digest_message(digest), "table")

    by_label = {cell_text(row[0]): row[2] for row in headline["rows"][1:]}
    assert len(by_label) >= 3
    for line in digest.headline:
        if line.label not in by_label:
            continue
        cell = by_label[line.label]
        marked = cell["type"] == "rich_text"
        assert marked == (line.change.signal in (Verdict.BETTER, Verdict.WORSE)), line
        if marked:
            colour = ":large_green_circle:" if line.change.signal is Verdict.BETTER else ":red_circle:"
            assert cell_text(cell).startswith(colour)
    assert any(c["type"] == "raw_text" for c in by_label.values())  # some change is noise


def with_everything(ctx: Context, digest: Digest) -> Digest:
    """The digest with three goals, three firing alerts and three long unusual lines."""
    for kpi, value in (("revenue", "90000"), ("leads", "2000"), ("cpl", "8")):
        set_goal(ctx, kpi, value, "monthly")
    firing = []
    for kpi in ("cpl", "cac", "roas"):
        rule = add_rule(ctx, CHANNEL, kpi, ">", "1")
        firing.append(replace(rule, state=replace(rule.state, status=Status.FIRING)))
    goals = tuple(goal_progress(ctx, digest.period.end, day_over=True))
    expectation = Expectation(day=digest.period.start, period="daily", value=3000.0, expected=1.0,
                              low=1234.5, high=98765.4, spread=1.0, score=9.0, material=True,
                              unusual=True, basis="Tuesdays", n_points=8, sensitivity="medium")
    unusual = tuple(Unusual(f"k{i}", "Paid customer acquisition cost", Unit.CURRENCY, expectation)
                    for i in range(3))
    return replace(digest, goals=goals, firing=tuple(firing), unusual=unusual)


def test_every_digest_fits_twelve_lines_on_a_phone(demo_ctx: Context, store: Store) -> None:
    """What the count is: kit.rendered_lines. Header, section and context text wrapped at a
    phone's 44 characters (an emoji is 2, a link its label, mrkdwn marks nothing); every table
    row one line, its header row included; the line chart is a picture, not lines."""
    empty = compute_digest(open_context(store, "T0001", "x", datetime(2026, 3, 11, 14, tzinfo=UTC)), DAILY)
    digests = [compute_digest(demo_ctx, kind) for kind in (DAILY, WEEKLY)]
    digests += [with_everything(demo_ctx, d) for d in digests] + [empty]
    for digest in digests:
        message = digest_message(digest)
        fallback = outgoing_of(digest).fallback_blocks or []
        assert rendered_lines(message["blocks"]) <= FOLD_LINES, json.dumps(message["blocks"])[:2000]
        assert rendered_lines(fallback) <= FOLD_LINES, json.dumps(fallback)[:2000]
        if digest.has_data:  # the title and at least three headline KPIs always make it
            [headline] = native_blocks(message, "table")
            assert len(headline["rows"]) >= 1 + MIN_TABLE_ROWS
    crowded = digest_message(digests[2])
    assert ":red_circle: 3 alerts firing" in json.dumps(crowded)
    plain_digest = digest_message(digests[0])
    assert rendered_lines(plain_digest["blocks"]) > 8  # the room is used, not wasted


def test_what_does_not_fit_is_in_the_threads_details(demo_ctx: Context) -> None:
    digest = with_everything(demo_ctx, compute_digest(demo_ctx, DAILY))
    details = digest_details(digest)

    for line in digest.headline:
        assert line.label in details
    assert "*Funnel*" in details and "*Biggest movers*" in details and "*Goals*" in details
    assert "*Alerts firing*" in details and details.count("Paid customer acquisition cost") >= 3
    assert outgoing_of(digest).comment == details


def leads_history(store: Store, last_tuesday: float, bookings_last: float = 10.0) -> Context:
    store.ensure_workspace("T0001", timezone=NY)
    day, writes = date(2026, 1, 6), []  # a Tuesday, 9 weeks before 2026-03-10
    while day <= date(2026, 3, 10):
        tuesday = day.weekday() == 1
        wiggle = (day.toordinal() % 5) - 2
        leads = last_tuesday if day == date(2026, 3, 10) else (40 if tuesday else 20) + wiggle
        bookings = bookings_last if day == date(2026, 3, 10) else 10 + wiggle % 2
        writes += [Write("leads", day, float(leads), "ana"), Write("bookings", day, float(bookings), "ana")]
        day += timedelta(days=1)
    store.record("T0001", writes, actor="ana", origin="test")
    return open_context(store, "T0001", "tester", datetime(2026, 3, 11, 14, 0, tzinfo=UTC))


def test_a_day_outside_its_weekdays_band_is_an_unusual_line_most_unusual_first(store: Store) -> None:
    ctx = leads_history(store, last_tuesday=3, bookings_last=30)

    digest = compute_digest(ctx, DAILY)

    # leads, bookings and the booking rate (30 of 3) are all out of their Tuesday bands
    assert {u.key for u in digest.unusual} == {"leads", "bookings", "booking_rate"}
    assert digest.unusual[0].key == "booking_rate"
    scores = [abs(u.expectation.score) for u in digest.unusual]
    assert scores == sorted(scores, reverse=True) and len(digest.unusual) <= UNUSUAL_LINES
    leads = next(u for u in digest.unusual if u.key == "leads")
    text = unusual_text(digest, leads)
    assert text.startswith("Leads 3 on a Tuesday; Tuesdays are usually ")
    low, high = text.rsplit(" ", 1)[1].split("–")
    assert int(low) <= 40 <= int(high) and int(low) > 3
    message = json.dumps(digest_message(digest))
    assert ":eyes: Leads 3 on a Tuesday" in message
    assert "Leads 3 on a Tuesday" in digest_markdown(digest)


def test_a_usual_day_has_no_unusual_lines(store: Store) -> None:
    assert compute_digest(leads_history(store, last_tuesday=40), DAILY).unusual == ()


# -- when the workspace's Slack refuses native blocks -----------------------------------------


def test_refused_native_blocks_fall_back_to_text_and_images_once(subscribed: SlackBot) -> None:
    fake = subscribed.fake
    fake.native_blocks = False
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    scheduler = make_scheduler(subscribed, clock)

    assert scheduler.sweep() == ["posted"]
    clock.now += timedelta(minutes=5)
    assert scheduler.sweep() == []  # its timer moved on: a delivered key is not claimed again

    [message] = top_level(fake)
    assert len(fake.refused_native) == 1 and fake.violations == []
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [200, 200]
    kinds = {b["type"] for b in message["blocks"]}
    assert not kinds & {"table", "data_visualization"} and "header" in kinds
    assert "Cost per lead" in json.dumps(message["blocks"]) and message["text"].startswith("Daily KPIs")
    assert message["metadata"]["event_payload"]["key"] == "digest:T0001:C0001:daily:2026-03-10"
    files = fake.uploaded_files(CHANNEL)
    assert files and {f["thread_ts"] for f in files} == {message["ts"]}
    thread = fake.messages_in(CHANNEL, top_level=False)
    assert any("*Funnel*" in m.get("text", "") for m in thread)
    assert rendered_lines(message["blocks"]) <= FOLD_LINES


def test_a_lost_reply_to_the_fallback_is_found_not_posted_twice(subscribed: SlackBot) -> None:
    """Slack refuses the blocks, then posts the fallback but its answer is lost (500): the
    channel's history has the copy under the delivery key, so nothing is posted again."""
    fake = subscribed.fake
    fake.error("chat.postMessage", "invalid_blocks")
    fake.lose_reply("chat.postMessage", status=500)
    scheduler = make_scheduler(subscribed, Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC)))

    assert scheduler.sweep() == ["posted"]

    [message] = top_level(fake)
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [200, 500]
    assert not {b["type"] for b in message["blocks"]} & {"table", "data_visualization"}
    assert fake.calls_to("conversations.history")
    assert {f["thread_ts"] for f in fake.uploaded_files(CHANNEL)} == {message["ts"]}


def test_unclear_refusals_then_the_fallback_post_once(subscribed: SlackBot) -> None:
    fake = subscribed.fake
    fake.native_blocks = False
    fake.lose_reply("chat.postMessage", status=500, times=2)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    scheduler = make_scheduler(subscribed, clock)

    # the second "did it go out?" look would be the minute's second history call: it waits
    assert scheduler.sweep() == ["retry"]
    assert len(fake.calls_to("conversations.history")) == 1
    clock.now += timedelta(seconds=59)
    assert scheduler.sweep() == []
    clock.now += timedelta(seconds=1)
    assert scheduler.sweep() == ["posted"]

    assert len(fake.calls_to("conversations.history")) == 2
    assert len(top_level(fake)) == 1 and len(fake.refused_native) == 3
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [500, 500, 200, 200]


def test_native_blocks_are_posted_where_slack_takes_them(subscribed: SlackBot) -> None:
    scheduler = make_scheduler(subscribed, Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC)))

    assert scheduler.sweep() == ["posted"]

    [message] = top_level(subscribed.fake)
    assert [b["type"] for b in message["blocks"]].count("table") == 1
    assert "data_visualization" in {b["type"] for b in message["blocks"]}
    assert subscribed.fake.refused_native == [] and subscribed.fake.violations == []
    assert len(subscribed.fake.calls_to("chat.postMessage")) == 1
