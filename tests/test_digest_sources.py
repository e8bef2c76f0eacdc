"""The digest's "by source" section: turned on per subscription (`/kpi digest daily 09:00 by
source`), the biggest mover of each source in a line, only news coloured, untagged entries a
line of their own; and migration 0011 that gives subscriptions the column."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from bot.app.context import Context, open_context
from bot.app.digests import DAILY, compute_digest
from bot.app.tracking import track
from bot.render.digest import (
    SOURCE_LINES,
    digest_details,
    digest_markdown,
    digest_message,
    fallback_blocks,
)
from bot.render.kit import FOLD_LINES, rendered_lines
from bot.scheduler import Scheduler
from bot.slack.app import courier_client
from bot.slack.courier import Courier
from storage import Store, open_store
from storage.repository import Write
from tests.conftest import (
    SLACK_ADMIN,
    SLACK_MEMBER,
    Clock,
    SlackBot,
    insert_old_workspace,
    migrate_to,
    sql_statements,
    texts,
)
from tests.test_slack import opened_view

NOW = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)
DAY, BEFORE = date(2026, 3, 10), date(2026, 3, 9)  # the daily digest's day, and the day before


def _log(store: Store, day: date, metric: str, value: float, source: str = "") -> None:
    dims = (("source", source),) if source else ()
    store.record("T0001", [Write(metric, day, value, "ana", dims=dims)], actor="ana", origin="test")


def sources_ctx(store: Store) -> Context:
    """Leads (the one tracked metric) and spend from four sources and untagged entries:
    facebook's cost per lead five times what it was (news, worse), seo's leads within noise,
    tiktok new, and the untagged leads doubled (beyond noise, but leads have no better way)."""
    store.ensure_workspace("T0001", timezone="America/New_York")
    for day, facebook_leads, facebook_spend, seo, untagged in ((BEFORE, 60, 200, 9, 50),
                                                                (DAY, 20, 400, 10, 100)):
        _log(store, day, "leads", facebook_leads, "facebook")
        _log(store, day, "spend", facebook_spend, "facebook")
        _log(store, day, "leads", seo, "seo")
        _log(store, day, "leads", untagged)
    _log(store, DAY, "leads", 5, "tiktok")
    ctx = open_context(store, "T0001", "ana", NOW)
    track(ctx, ["leads"])
    return open_context(store, "T0001", "ana", NOW)


def test_the_breakdown_migration_keeps_every_schedule_up_and_down(db_url: str) -> None:
    migrate_to(db_url, "upgrade", "0010_alert_ids")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            insert_old_workspace(conn, "W1")
            for channel, kind, weekday in (("C1", "daily", None), ("C2", "weekly", 0)):
                conn.execute(text(
                    "INSERT INTO subscriptions (workspace_id, channel_id, kind, weekday, at_time, "
                    "created_by, created_at) VALUES ('W1', :channel, :kind, :weekday, '09:00', "
                    "'U1', '2026-03-01 00:00:00')"), {"channel": channel, "kind": kind,
                                                      "weekday": weekday})
    finally:
        engine.dispose()

    store = open_store(db_url)  # upgrades to the head
    try:
        before = store.subscriptions("W1")
        assert [(s.channel_id, s.kind, s.weekday, s.breakdown) for s in before] == [
            ("C1", "daily", None, None), ("C2", "weekly", 0, None)]
        moved = store.subscribe("W1", "C1", "daily", "08:30", None, "U1", breakdown="source")
        assert (moved.id, moved.at_time, moved.breakdown) == (before[0].id, "08:30", "source")
        again = store.subscribe("W1", "C1", "daily", "08:30", None, "U1")
        assert again.breakdown is None  # a schedule set again without `by source` has none
        store.subscribe("W1", "C1", "daily", "08:30", None, "U1", breakdown="source")
    finally:
        store.engine.dispose()

    migrate_to(db_url, "downgrade", "0010_alert_ids")
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT channel_id, kind, at_time FROM subscriptions ORDER BY channel_id")).all()
        assert [tuple(r) for r in rows] == [("C1", "daily", "08:30"), ("C2", "weekly", "09:00")]
    finally:
        engine.dispose()
    migrate_to(db_url, "upgrade", "head")


def test_each_source_has_its_biggest_move_only_news_coloured_untagged_kept(any_store: Store) -> None:
    digest = compute_digest(sources_ctx(any_store), DAILY, by="source")

    moves = {m.source: m for m in digest.sources}
    assert [m.source for m in digest.sources] == ["facebook", "seo", "tiktok", None]
    facebook = moves["facebook"]
    assert facebook.moved and facebook.line is not None and facebook.line.key == "cpl"
    assert facebook.line.change.value == 20.0 and facebook.line.change.previous == 200 / 60
    untagged = moves[None]
    assert untagged.moved and untagged.line is not None and untagged.line.key == "leads"
    assert not moves["seo"].moved  # 10 leads against 9 is noise

    [section] = [b for b in digest_message(digest)["blocks"]
                 if b["type"] == "section" and "By source" in b["text"]["text"]]
    lines = section["text"]["text"].split("\n")
    assert lines == [
        f"*By source*: {SOURCE_LINES} of 4, all in the thread",
        ":red_circle: *facebook* Cost per lead $20.00 +500.0%",
        "*seo*: nothing moved beyond noise",
        "*no source (untagged)* Leads 100 +100.0%",  # beyond noise, but no colour: no better way
    ]
    details = digest_details(digest)
    assert ":red_circle: *facebook* Cost per lead $20.00 (+500.0%, was $3.33)" in details
    assert "*seo*: nothing moved beyond noise (biggest: Leads 10, +11.1%)" in details
    assert "*tiktok*: first numbers, Leads 5" in details
    assert "*no source (untagged)* Leads 100 (+100.0%, was 50)" in details
    markdown = digest_markdown(digest)
    assert "## By source" in markdown and "- **facebook** Cost per lead $20.00 (+500.0%, was $3.33) worse" in markdown


def test_the_digest_with_its_sources_fits_twelve_lines_on_a_phone(store: Store) -> None:
    ctx = sources_ctx(store)
    for extra in range(6):  # more sources than the message names
        _log(store, DAY, "leads", 3 + extra, f"partner{extra}")
    digest = compute_digest(ctx, DAILY, by="source")
    message = digest_message(digest)

    assert rendered_lines(message["blocks"]) <= FOLD_LINES, texts(message)
    assert rendered_lines(fallback_blocks(digest)) <= FOLD_LINES
    shown = texts(message)
    assert "*no source (untagged)*" in shown and "of 10, all in the thread" in shown
    assert all(f"partner{n}" in digest_details(digest) for n in range(6))


def test_without_the_option_or_without_source_tags_there_is_no_section(store: Store) -> None:
    ctx = sources_ctx(store)
    assert compute_digest(ctx, DAILY).sources == ()
    assert "By source" not in texts(digest_message(compute_digest(ctx, DAILY)))

    store.ensure_workspace("T0002", timezone="America/New_York")
    store.record("T0002", [Write("leads", DAY, 4.0, "ana")], actor="ana", origin="test")
    untagged_only = compute_digest(open_context(store, "T0002", "ana", NOW), DAILY, by="source")
    assert untagged_only.sources == ()  # the team total already says it


def test_the_sources_cost_the_same_statements_however_many_there_are(store: Store) -> None:
    """What the section adds to a digest (the rest, e.g. a mover's why, is not its own)."""
    ctx = sources_ctx(store)

    def added() -> int:
        with sql_statements(store.engine) as plain:
            compute_digest(ctx, DAILY)
        with sql_statements(store.engine) as broken_down:
            compute_digest(ctx, DAILY, by="source")
        return len(broken_down) - len(plain)

    few = added()
    for extra in range(20):
        _log(store, DAY, "leads", 3 + extra, f"partner{extra}")
        _log(store, BEFORE, "leads", 2 + extra, f"partner{extra}")
    many = added()
    assert len(compute_digest(ctx, DAILY, by="source").sources) == 24
    assert few == many <= 3, (few, many)


# -- through Slack ---------------------------------------------------------------------------

CHANNEL = "C0001"


def _thread_of(bot: SlackBot, top: dict[str, Any]) -> str:
    replies = bot.fake.wait_for(lambda f: [m for m in f.messages_in(CHANNEL, top_level=False)
                                           if m.get("thread_ts") == top["ts"] and m.get("text")])
    return "\n".join(m["text"] for m in replies)


def _home(bot: SlackBot) -> str:
    before = len(bot.fake.calls_to("views.publish"))
    bot.event({"type": "app_home_opened", "user": SLACK_ADMIN, "channel": "D0001", "tab": "home"})
    call = bot.fake.wait_for(lambda f: [c for c in f.calls_to("views.publish")[before:] if c.status])[0]
    return texts(call.params["view"])


def test_a_schedule_by_source_posts_the_sources_once_and_says_so_everywhere(slack_bot: SlackBot) -> None:
    sources_ctx(slack_bot.store)
    refused = slack_bot.command("digest daily 09:00 by rep", user_id=SLACK_ADMIN)
    assert "A digest breaks down by source only" in refused.json["text"]
    assert slack_bot.store.subscriptions() == []
    member = slack_bot.command("digest daily 09:00 by source", user_id=SLACK_MEMBER)
    assert "Only admins can schedule digests" in member.json["text"]

    done = slack_bot.command("digest daily 09:00 by source", user_id=SLACK_ADMIN)
    assert "with the biggest move of each source" in done.json["text"], done.json
    [sub] = slack_bot.store.subscriptions()
    assert sub.breakdown == "source"
    assert "daily at 09:00 by source in" in _home(slack_bot)

    clock = Clock(datetime(2026, 3, 11, 13, 0, 5, tzinfo=UTC))  # 09:00 in New York
    client = courier_client(slack_bot.services.settings, "xoxb-test")
    courier = Courier(slack_bot.store, lambda _ws: client, slack_bot.services.metrics, clock,
                      backoff=0.01)
    scheduler = Scheduler(slack_bot.store, courier, clock)
    assert scheduler.sweep() == ["posted"]
    clock.now += timedelta(minutes=1)
    assert scheduler.sweep() == []

    [top] = slack_bot.fake.messages_in(CHANNEL)
    shown = texts(top)
    assert "*By source*: 3 of 4, all in the thread" in shown
    assert ":red_circle: *facebook* Cost per lead $20.00 +500.0%" in shown
    assert "*no source (untagged)* Leads 100 +100.0%" in shown
    assert rendered_lines(top["blocks"]) <= FOLD_LINES, rendered_lines(top["blocks"])
    assert "*tiktok*: first numbers, Leads 5" in _thread_of(slack_bot, top)

    # `digest now` in the channel shows what its schedule posts
    slack_bot.command("digest now daily", user_id=SLACK_MEMBER)
    later = slack_bot.fake.wait_for(lambda f: f.messages_in(CHANNEL)[1:])
    assert "*By source*" in texts(later[-1])

    again = slack_bot.command("digest daily 09:00", user_id=SLACK_ADMIN)
    assert "biggest move" not in again.json["text"]
    assert [s.breakdown for s in slack_bot.store.subscriptions()] == [None]
    assert "daily at 09:00 in" in _home(slack_bot)
    slack_bot.command("digest now daily", user_id=SLACK_MEMBER)
    plain = slack_bot.fake.wait_for(lambda f: f.messages_in(CHANNEL)[2:])[-1]
    assert "By source" not in texts(plain)
    slack_bot.command("digest now daily by source", user_id=SLACK_MEMBER)  # asked for at once
    asked = slack_bot.fake.wait_for(lambda f: f.messages_in(CHANNEL)[3:])[-1]
    assert "*By source*" in texts(asked)


def test_the_setup_form_moves_the_daily_digest_and_keeps_its_sources(slack_bot: SlackBot) -> None:
    """The form has no `by source` field: saving it must not drop the option."""
    slack_bot.command("digest daily 09:00 by source", user_id=SLACK_ADMIN, channel_id="C0002")
    slack_bot.command("setup")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(view, {"metrics": {"value": ["leads", "spend"]},
                                   "digest_channel": {"value": "C0002"},
                                   "digest_time": {"value": "08:30"}})

    assert done.status == 200
    told = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))[-1]
    assert "every day at 08:30 (America/New_York), with the biggest move of each source" in (
        told.params["text"])
    [daily] = slack_bot.store.subscriptions()
    assert (daily.channel_id, daily.at_time, daily.breakdown) == ("C0002", "08:30", "source")
