"""Alerts and goals end to end: rules typed in Slack, numbers logged, posts counted in the fake
Slack channel. The clock is frozen at SLACK_NOW (Wed 11 March 2026, New York)."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from bot.app import alerts as use
from bot.app.context import Context, open_context
from bot.observability import Metrics
from bot.render.alerts import rules_message
from bot.render.kit import FOLD_LINES, cell_text, rendered_lines
from bot.render.numbers import format_day
from bot.settings import Settings
from bot.slack.app import courier_client
from bot.slack.courier import Courier, Outgoing
from kpis.alerts import Notification, Status
from kpis.periods import Period
from kpis.unusual import MIN_HISTORY_DAYS, expect
from storage import Store, open_store
from storage.repository import Write
from storage.timers import ALERTS_TIMER
from tests.conftest import (
    SLACK_ADMIN,
    SLACK_MEMBER,
    SLACK_NOW,
    Clock,
    SlackBot,
    at_once,
    insert_old_workspace,
    migrate_to,
    serve_bot,
    table_rows,
)
from tests.fakeslack import FakeSlack

MARKETING = "C0MARKET"


@pytest.fixture
def bot(slack_bot: SlackBot) -> SlackBot:
    slack_bot.fake.add_channel(MARKETING, "marketing")
    slack_bot.store.ensure_workspace("T0001", timezone="America/New_York")
    assert slack_bot.services.courier is not None
    slack_bot.services.courier.backoff = 0.01
    return slack_bot


def log(bot: SlackBot, text: str) -> None:
    reply = bot.command(f"log {text}", user_id=SLACK_MEMBER, channel_id=MARKETING)
    assert reply.status == 200 and "Stored" in reply.json["text"], reply.json
    assert bot.services.alerting is not None
    bot.services.alerting.debouncer.flush()


def fire_rule_one(bot: SlackBot) -> dict[str, Any]:
    """Alert #1, `cpl > 15` in #marketing, fired by a log of CPL 30: its top-level message."""
    bot.command("alert cpl > 15", user_id=SLACK_ADMIN, channel_id=MARKETING)
    log(bot, "spend=300 leads=10")
    [firing] = posts(bot)
    return firing


def posts(bot: SlackBot) -> list[dict[str, Any]]:
    """The channel's top-level messages as they read now (updates applied)."""
    return bot.fake.messages_in(MARKETING)


def replies(bot: SlackBot, top: dict[str, Any]) -> list[dict[str, Any]]:
    """The replies in the thread of `top`, oldest first."""
    return [m for m in bot.fake.messages_in(MARKETING, top_level=False)
            if m.get("thread_ts") == top["ts"]]


def now_reads(bot: SlackBot, top: dict[str, Any]) -> dict[str, Any]:
    """`top` as the channel shows it now."""
    [message] = [m for m in posts(bot) if m["ts"] == top["ts"]]
    return message


def buttons_of(message: dict[str, Any]) -> dict[str, str]:
    return {e["action_id"]: e.get("value", "") for b in message["blocks"] if b["type"] == "actions"
            for e in b["elements"]}


def test_cpl_above_15_for_two_days_fires_once_and_resolves_once(bot: SlackBot) -> None:
    added = bot.command("alert cpl > 15 daily for 2", user_id=SLACK_ADMIN, channel_id=MARKETING)
    assert "Alert #1 added: Cost per lead > $15.00 daily for 2" in added.json["text"], added.json

    log(bot, "spend=200 leads=10 date=2026-03-09")  # CPL 20: one day above
    assert posts(bot) == []
    log(bot, "spend=300 leads=10 date=yesterday")  # CPL 30: two days in a row
    [firing] = posts(bot)
    assert "Cost per lead" in firing["text"] and "$30.00" in json.dumps(firing["blocks"])
    assert "threshold $15.00" in json.dumps(firing["blocks"])
    assert f"<@{SLACK_MEMBER}>" in json.dumps(firing["blocks"])  # who logged the inputs
    log(bot, "spend=250 leads=10")  # today, still above: nothing new
    log(bot, "spend=260")
    assert len(posts(bot)) == 1
    log(bot, "spend=100")  # today's CPL corrected to 10: back to normal, in the thread
    assert len(posts(bot)) == 1
    [resolved] = replies(bot, firing)
    assert resolved["text"].startswith("Resolved: Cost per lead is $10.00")
    log(bot, "leads=11")  # still fine: quiet
    assert len(posts(bot)) == 1 and len(replies(bot, firing)) == 1

    listing = bot.command("alerts", user_id=SLACK_MEMBER)
    assert "#1" in listing.json["text"] or "#1" in json.dumps(listing.json["blocks"])


def test_only_admins_add_or_remove_rules_and_anyone_may_snooze(bot: SlackBot) -> None:
    refused = bot.command("alert cpl > 15", user_id=SLACK_MEMBER, channel_id=MARKETING)
    assert "Only admins can add alert rules" in refused.json["text"]
    assert bot.store.rules("T0001") == []

    bot.command("alert cpl > 15", user_id=SLACK_ADMIN, channel_id=MARKETING)
    snoozed = bot.command("alert snooze 1 1d", user_id=SLACK_MEMBER)
    assert "snoozed until Thu 12 Mar" in snoozed.json["text"]
    log(bot, "spend=300 leads=10")
    assert posts(bot) == []  # firing, but snoozed: nothing posted
    [rule] = use.rules(bot.store, "T0001")
    assert rule.state.status.value == "firing"

    not_removed = bot.command("alert remove 1", user_id=SLACK_MEMBER)
    assert "Only admins" in not_removed.json["text"]
    removed = bot.command("alert remove 1", user_id=SLACK_ADMIN)
    assert "removed" in removed.json["text"] and bot.store.rules("T0001") == []
    missing = bot.command("alert remove 7", user_id=SLACK_ADMIN)
    assert "no alert #7" in missing.json["text"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("alert cpll > 15", "cpl"),
        ("alert cpl > fifteen", "number to compare"),
        ("alert cpl up -5%", "positive"),
        ("alert cpl > 15 daily source=tiktokk campaign=", "campaign"),
        ("alert snooze 1 3 fortnights", "snooze 3 1d"),
    ],
)
def test_bad_rules_are_refused_with_the_fix_and_nothing_stored(bot: SlackBot, text: str, needle: str) -> None:
    reply = bot.command(text, user_id=SLACK_ADMIN, channel_id=MARKETING)

    assert reply.status == 200
    body = reply.json.get("text", "")
    answer = body or bot.fake.wait_for(lambda f: [c.params for c in f.calls_to("response_url")])[-1]["text"]
    assert needle in answer
    assert bot.store.rules("T0001") == []


def test_a_change_rule_fires_when_leads_drop_by_a_fifth(bot: SlackBot) -> None:
    bot.command("alert leads down 20% daily", user_id=SLACK_ADMIN, channel_id=MARKETING)
    log(bot, "leads=50 date=yesterday")
    log(bot, "leads=45")
    assert posts(bot) == []
    log(bot, "leads=30")  # -40% against yesterday
    [message] = posts(bot)
    assert "previous period" in json.dumps(message["blocks"])


def test_goals_show_progress_and_pace(bot: SlackBot) -> None:
    bot.command("log revenue=1000 date=2026-03-01", user_id=SLACK_MEMBER)
    bot.command("log revenue=2000 date=2026-03-10", user_id=SLACK_MEMBER)

    reply = bot.command("goal revenue 10000 monthly", user_id=SLACK_ADMIN)

    # today is 11 March: 10 whole days with 3,000 project to 3,000 / 10 * 31 = 9,300
    assert "Month to date $3,000.00 = 30.0%" in reply.json["text"], reply.json
    assert "projected $9,300.00 = 93.0%" in reply.json["text"] and "behind" in reply.json["text"]
    report = bot.command("report month", user_id=SLACK_MEMBER)
    assert "Goals" in json.dumps(report.json["blocks"])


def test_a_lower_is_better_goal_is_met_below_it(bot: SlackBot) -> None:
    bot.command("log spend=90 leads=10 date=2026-03-02", user_id=SLACK_MEMBER)

    reply = bot.command("goal cpl 10 monthly", user_id=SLACK_ADMIN)

    assert "currently" in reply.json["text"] and "on track" in reply.json["text"]


def test_two_processes_evaluating_one_rule_post_one_alert(db_url: str, fake_slack: FakeSlack) -> None:
    """Each 'process' has its own engine; both see CPL above 15 at the same moment."""
    now = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
    stores = [open_store(db_url), open_store(db_url)]
    first = stores[0]
    first.ensure_workspace("T0001", timezone="America/New_York")
    ctx = open_context(first, "T0001", SLACK_ADMIN, now)
    use.add_rule(ctx, "C0001", "cpl", ">", "15")
    first.record("T0001", [Write("spend", date(2026, 3, 11), 300.0, "ana"),
                           Write("leads", date(2026, 3, 11), 10.0, "ana")], actor="ana", origin="test")
    settings = Settings(slack_api_url=fake_slack.api_url, _env_file=None)

    def process(store: Store) -> Callable[[], list[str]]:
        client = courier_client(settings, "xoxb-test")
        courier = Courier(store, lambda _ws: client, Metrics(), lambda: now, backoff=0.01)

        def post(rule: use.AlertRule, note: Notification, values: use.Values) -> str:
            return courier.deliver("T0001", f"alert:{rule.id}:{note.seq}", kind="alert-firing",
                                   channel=rule.channel_id, due_at=now,
                                   build=lambda: Outgoing("CPL alert", []))

        return lambda: use.evaluate_workspace(store, "T0001", date(2026, 3, 11), now, post)

    outcomes = at_once(*(process(s) for s in stores))
    for s in stores:
        s.engine.dispose()

    assert outcomes.count("posted") == 1
    assert len(fake_slack.messages_in("C0001")) == 1


def opened_alert_form(bot: SlackBot) -> tuple[dict[str, Any], dict[str, Any]]:
    call = bot.fake.wait_for(lambda f: [c for c in f.calls_to("views.open") if c.status])[-1]
    assert call.ok, call.response
    sent = call.params["view"]
    sent = json.loads(sent) if isinstance(sent, str) else sent
    assert sent["callback_id"] == "alert_form"
    return sent, call.response["view"]


def test_the_alert_form_opens_from_app_home_and_adds_a_rule(bot: SlackBot) -> None:
    bot.event({"type": "app_home_opened", "user": SLACK_ADMIN, "tab": "home"})
    home = bot.fake.wait_for(lambda f: list(f.home_views.values()))[-1]
    assert "open_alert_form" in json.dumps(home)

    bot.action("open_alert_form", user_id=SLACK_ADMIN)
    _, view = opened_alert_form(bot)
    refused = bot.submit(view, {"kpi": {"value": "cpl"}, "op": {"value": ">"},
                                "threshold": {"value": "lots"}, "period": {"value": "daily"},
                                "for": {"value": "2"}, "channel": {"value": MARKETING}},
                         user_id=SLACK_ADMIN)
    assert refused.json["response_action"] == "errors" and "threshold" in refused.json["errors"]
    assert bot.store.rules("T0001") == []

    done = bot.submit(view, {"kpi": {"value": "cpl"}, "op": {"value": ">"},
                             "threshold": {"value": "$15"}, "period": {"value": "daily"},
                             "for": {"value": "2"}, "channel": {"value": MARKETING}},
                      user_id=SLACK_ADMIN)
    assert done.status == 200 and done.body == b""
    [rule] = use.rules(bot.store, "T0001")
    assert (rule.rule.kpi, rule.rule.threshold, rule.rule.for_periods, rule.channel_id) == (
        "cpl", 15.0, 2, MARKETING)


def test_the_alert_form_adds_an_unusual_rule_like_the_typed_command(bot: SlackBot) -> None:
    bot.command("alert", user_id=SLACK_ADMIN, channel_id=MARKETING)
    sent, view = opened_alert_form(bot)
    [op] = [b for b in sent["blocks"] if b["block_id"] == "op"]
    assert "unusual" in [o["value"] for o in op["element"]["options"]]
    [threshold] = [b for b in sent["blocks"] if b["block_id"] == "threshold"]
    assert threshold["optional"] is True

    def unusual(period: str, sensitivity: str) -> dict[str, Any]:
        return {"kpi": {"value": "leads"}, "op": {"value": "unusual"}, "threshold": {"value": ""},
                "period": {"value": period}, "sensitivity": {"value": sensitivity},
                "for": {"value": "2"}, "channel": {"value": MARKETING}}

    refused = bot.submit(view, unusual("monthly", "high"), user_id=SLACK_ADMIN)
    assert refused.json["response_action"] == "errors"
    assert "`unusual` compares a day with the same weekday" in refused.json["errors"]["period"]
    assert bot.store.rules("T0001") == []

    done = bot.submit(view, unusual("weekly", "high"), user_id=SLACK_ADMIN)
    assert done.status == 200 and done.body == b""
    typed = bot.command("alert leads unusual weekly high for 2", user_id=SLACK_ADMIN,
                        channel_id=MARKETING)
    assert "Alert #2 added" in typed.json["text"], typed.json
    formed, written = use.rules(bot.store, "T0001")
    assert formed.rule == written.rule and formed.rule.sensitivity == "high"
    assert (formed.rule.op, formed.rule.period, formed.rule.for_periods) == ("unusual", "weekly", 2)
    assert formed.channel_id == written.channel_id == MARKETING


def test_a_threshold_rule_from_the_form_still_needs_its_threshold(bot: SlackBot) -> None:
    bot.command("alert", user_id=SLACK_ADMIN, channel_id=MARKETING)
    _, view = opened_alert_form(bot)
    refused = bot.submit(view, {"kpi": {"value": "cpl"}, "op": {"value": ">"},
                                "period": {"value": "daily"}, "sensitivity": {"value": "medium"},
                                "for": {"value": "1"}, "channel": {"value": MARKETING}},
                         user_id=SLACK_ADMIN)
    assert refused.json["response_action"] == "errors"
    assert refused.json["errors"]["threshold"].startswith("`>` needs a threshold, like 15")
    assert bot.store.rules("T0001") == []


def test_members_do_not_get_the_alert_form(bot: SlackBot) -> None:
    reply = bot.command("alert", user_id=SLACK_MEMBER)

    assert "Only admins can add alert rules" in json.dumps(bot.told(reply))
    assert bot.fake.calls_to("views.open") == []


def test_the_alert_buttons_snooze_and_open_the_report(bot: SlackBot) -> None:
    bot.command("alert cpl > 15", user_id=SLACK_ADMIN, channel_id=MARKETING)
    log(bot, "spend=300 leads=10")
    [alert] = posts(bot)
    buttons = {e["action_id"]: e["value"] for b in alert["blocks"] if b["type"] == "actions"
               for e in b["elements"]}

    snoozed = bot.action("alert_snooze", buttons["alert_snooze"], user_id=SLACK_MEMBER)
    report = bot.action("open_report", buttons["open_report"], user_id=SLACK_MEMBER)

    assert snoozed.status == 200 and report.status == 200
    def answered(f: FakeSlack) -> str:
        shown = json.dumps([c.params for c in f.calls_to("response_url")])
        return shown if "snoozed alert" in shown and '"Was"' in shown else ""

    shown = bot.fake.wait_for(answered)
    assert "snoozed alert #1 until Wed 18 Mar 11:00 EDT" in shown  # the 7-day button
    [rule] = use.rules(bot.store, "T0001")
    assert rule.state.snoozed_until is not None


def test_goals_lists_every_goal_with_its_progress(bot: SlackBot) -> None:
    bot.command("goal leads 500 monthly", user_id=SLACK_ADMIN)
    log(bot, "spend=300 leads=10")

    shown = json.dumps(bot.command("goals", user_id=SLACK_MEMBER).json)

    assert "Goals" in shown and "Leads" in shown and "500" in shown


def test_a_weekly_change_rule_compares_the_week_so_far_like_for_like(bot: SlackBot) -> None:
    """Issue 12: on a Wednesday `leads down 20% weekly` compared Monday-Wednesday with all of
    last week and fired every week. Like for like, the same 30 leads a day are no change."""
    bot.command("alert leads down 20% weekly", user_id=SLACK_ADMIN, channel_id=MARKETING)
    # all of last week (Monday 2 to Sunday 8 March) and this Monday and Tuesday, 30 a day
    bot.store.record("T0001", [Write("leads", date(2026, 3, day), 30.0, SLACK_MEMBER)
                               for day in range(2, 11)], actor=SLACK_MEMBER, origin="test")
    log(bot, "leads=30")  # Wednesday 11 March: 90 so far against 90 last Monday-Wednesday
    assert posts(bot) == []
    log(bot, "leads=5 date=yesterday")  # 65 against 90: down 28% like for like
    [firing] = posts(bot)
    assert "2026-03-09..2026-03-11" in json.dumps(firing["blocks"]), firing


def test_a_weekly_lower_threshold_on_a_total_waits_for_the_week_to_end(bot: SlackBot) -> None:
    bot.command("alert leads < 100 weekly", user_id=SLACK_ADMIN, channel_id=MARKETING)
    log(bot, "leads=30")  # 30 by Wednesday is no news: the week is not over
    assert posts(bot) == []


# -- `/kpi alerts`: each rule's value so far, what fires it, its state and next check ------------

NEW_YORK = ZoneInfo("America/New_York")
TODAY = date(2026, 3, 11)  # SLACK_NOW's day in New York, a Wednesday


def _ctx(store: Store) -> Context:
    return open_context(store, "T0001", SLACK_ADMIN, SLACK_NOW, timezone="America/New_York")


def _record(store: Store, metric: str, values: dict[date, float]) -> None:
    _ctx(store)  # the workspace, in New York
    store.record("T0001", [Write(metric, day, value, SLACK_MEMBER) for day, value in values.items()],
                 actor=SLACK_MEMBER, origin="test")


def _evaluate(store: Store, day: date) -> list[Notification]:
    notes: list[Notification] = []

    def post(rule: use.AlertRule, note: Notification, values: use.Values) -> str:
        notes.append(note)
        return "posted"

    use.evaluate_workspace(store, "T0001", day, SLACK_NOW, post)
    return notes


def _row(store: Store, rule_id: int) -> tuple[use.Watched, list[str]]:
    """The rule as listed, and its table row as a reader sees it."""
    listed = {w.rule.id: w for w in use.listed(_ctx(store))}
    message = rules_message(list(listed.values()), "USD", "en_US", "America/New_York", SLACK_NOW,
                            full=True)
    [table] = [b for b in message["blocks"] if b["type"] == "table"]
    [row] = [r for r in table["rows"] if cell_text(r[0]).startswith(f"#{rule_id} ")]
    return listed[rule_id], [re.sub(r"^:[a-z_]+:", "", cell_text(c)).strip() for c in row]


def test_a_threshold_rule_shows_todays_value_its_threshold_and_midnight(store: Store) -> None:
    ctx = _ctx(store)
    _record(store, "spend", {TODAY - timedelta(days=1): 300.0, TODAY: 100.0})
    _record(store, "leads", {TODAY - timedelta(days=1): 10.0, TODAY: 5.0})
    rule = use.add_rule(ctx, MARKETING, "cpl", ">", "15", for_periods=2)
    _evaluate(store, TODAY - timedelta(days=1))
    [fired] = _evaluate(store, TODAY)

    shown, row = _row(store, rule.id)

    assert shown.value == pytest.approx(100.0 / 5.0) and shown.period == Period.day(TODAY)
    assert shown.rule.state.fired_at == fired.at == SLACK_NOW
    assert shown.next_check == datetime.combine(TODAY + timedelta(days=1), time(0), NEW_YORK)
    assert not shown.fires_then
    assert row[1:] == ["$20.00 today so far", "above $15.00", "firing since Wed 11 Mar",
                       "checked at midnight"]

    use.snooze_rule(ctx, rule.id, "1d")
    # a day from 15:00 UTC is 11:00 the next morning in New York (daylight time since 8 March)
    assert _row(store, rule.id)[1][3] == "firing, snoozed until Thu 12 Mar 11:00 EDT"


def test_a_pending_rule_counts_its_streak_and_a_weekly_total_waits_for_sunday(store: Store) -> None:
    ctx = _ctx(store)
    monday = TODAY - timedelta(days=2)
    _record(store, "spend", {monday: 300.0})
    _record(store, "leads", {monday: 30.0, monday + timedelta(days=1): 30.0})
    streak = use.add_rule(ctx, MARKETING, "cpl", ">", "5", for_periods=3)
    weekly = use.add_rule(ctx, MARKETING, "leads", "<", "100", period="weekly")
    _evaluate(store, monday)

    pending, row = _row(store, streak.id)
    assert pending.value is None  # nothing logged today
    assert row[1:] == ["no numbers today", "above $5.00", "pending 1 of 3", "fires after 2 more days above"]

    waiting, row = _row(store, weekly.id)
    assert waiting.value == 30.0 + 30.0 and waiting.period == Period(monday, TODAY)
    assert waiting.waits and waiting.fires_then and waiting.rule.state.status is Status.OK
    sunday = monday + timedelta(days=6)
    assert waiting.next_check == datetime.combine(sunday + timedelta(days=1), time(0), NEW_YORK)
    assert row[1:] == ["60 this week so far", "below 100", "ok",
                       "fires if still below at the close of Sun 15 Mar"]


def test_an_unusual_rule_shows_the_band_its_evaluation_judges_by(store: Store) -> None:
    """Five weeks of leads, 40 on Wednesdays and 20 on other days: today's band is the one
    kpis.unusual draws from those days, and 5 leads today fire the rule against that band."""
    ctx = _ctx(store)
    history = {TODAY - timedelta(days=back): 40.0 if back % 7 == 0 else 20.0 for back in range(1, 36)}
    _record(store, "leads", history)
    rule = use.add_rule(ctx, MARKETING, "leads", "unusual", "0")
    assert use.AlertRule.load(store.rule("T0001", rule.id)).rule.sensitivity == "medium"
    band = expect(history, TODAY, "daily", "medium", value=0.0, count=True)
    assert band is not None and band.expected == 40.0

    before, row = _row(store, rule.id)
    assert before.value is None and before.expectation is not None
    assert (before.expectation.low, before.expectation.high) == (band.low, band.high)
    assert row[2] == f"outside {math.ceil(band.low)}–{math.floor(band.high)}"
    assert row[4] == "checked at midnight"

    _record(store, "leads", {TODAY: 5.0})
    [fired] = _evaluate(store, TODAY)
    after, row = _row(store, rule.id)
    assert fired.expectation is not None and fired.expectation.unusual
    assert (fired.expectation.low, fired.expectation.high) == (band.low, band.high)
    assert after.value == 5.0 and after.rule.state.status is Status.FIRING
    assert row[1] == "5 today so far" and row[3] == "firing since Wed 11 Mar"


def test_an_unusual_rule_without_28_days_of_history_says_when_it_starts(store: Store) -> None:
    first = TODAY - timedelta(days=9)
    _record(store, "leads", {first + timedelta(days=i): 20.0 for i in range(10)})
    rule = use.add_rule(_ctx(store), MARKETING, "leads", "unusual", "0")

    shown, row = _row(store, rule.id)

    assert shown.value == 20.0 and shown.expectation is None
    assert shown.watching_from == first + timedelta(days=MIN_HISTORY_DAYS)
    assert row[2] == f"watching from {format_day(first + timedelta(days=MIN_HISTORY_DAYS))}"
    assert _evaluate(store, TODAY) == []  # and its evaluation agrees: nothing to judge yet


def test_an_unusual_rule_is_accepted_and_says_from_when_it_can_judge(bot: SlackBot) -> None:
    added = bot.command("alert leads unusual", user_id=SLACK_ADMIN, channel_id=MARKETING)
    text = added.json["text"]
    assert "Alert #1 added: Leads unusual daily medium" in text, added.json
    assert f"no numbers for Leads yet: it starts watching {MIN_HISTORY_DAYS} days after" in text

    log(bot, "leads=30 date=2026-03-09")
    added = bot.command("alert leads unusual high", user_id=SLACK_ADMIN, channel_id=MARKETING)
    assert "Alert #2 added: Leads unusual daily high" in added.json["text"]
    assert "it starts watching on Mon 6 Apr" in added.json["text"]  # 28 days after 9 March
    assert [r.rule.sensitivity for r in use.rules(bot.store, "T0001")] == ["medium", "high"]


def test_an_unknown_sensitivity_names_the_three_and_stores_nothing(bot: SlackBot) -> None:
    refused = bot.command("alert leads unusual extreme", user_id=SLACK_ADMIN, channel_id=MARKETING)
    assert "`low`, `medium` (the default) or `high`" in refused.json["text"], refused.json
    assert bot.store.rules("T0001") == []


def test_the_debouncer_evaluates_a_burst_once_with_every_metric_it_logged() -> None:
    runs: list[tuple[str, date, frozenset[str]]] = []
    both = threading.Event()

    def run(workspace_id: str, day: date, metrics: frozenset[str]) -> None:
        runs.append((workspace_id, day, metrics))
        if len(runs) == 2:
            both.set()

    debouncer = use.Debouncer(run, delay=1.0)
    for metric in ("leads", "spend", "leads"):
        debouncer.poke("T1", date(2026, 3, 9), [metric])
    debouncer.poke("T1", date(2026, 3, 8), ["sales"])
    assert both.wait(30)
    assert sorted(runs) == [("T1", date(2026, 3, 8), frozenset({"sales"})),
                            ("T1", date(2026, 3, 9), frozenset({"leads", "spend"}))]


def test_flushing_the_debouncer_runs_what_is_pending_once_in_day_order() -> None:
    runs: list[tuple[str, date, frozenset[str]]] = []
    debouncer = use.Debouncer(lambda w, d, m: runs.append((w, d, m)), delay=600.0)
    debouncer.poke("T1", date(2026, 3, 9), ["leads"])
    debouncer.poke("T1", date(2026, 3, 8), ["spend"])
    debouncer.poke("T1", date(2026, 3, 9), ["spend"])
    debouncer.flush()
    debouncer.flush()
    assert runs == [("T1", date(2026, 3, 8), frozenset({"spend"})),
                    ("T1", date(2026, 3, 9), frozenset({"leads", "spend"}))]


def test_a_stopping_process_leaves_its_pending_evaluations_to_the_alert_timers(bot: SlackBot) -> None:
    """Bot.close: a burst still being waited out is made due on the workspace's alert timer
    (whichever process runs next evaluates it), and nothing is evaluated after the close."""
    bot.command("alert leads < 5 daily", user_id=SLACK_ADMIN, channel_id=MARKETING)
    alerting = bot.services.alerting
    assert alerting is not None
    alerting.debouncer.flush()
    later = alerting.clock() + timedelta(days=1)
    bot.store.wake("T0001", ALERTS_TIMER, at=later)
    alerting.debouncer.delay = 600.0
    reply = bot.command("log leads=2", user_id=SLACK_MEMBER, channel_id=MARKETING)
    assert "Stored" in reply.json["text"], reply.json
    alerting.close()
    assert bot.store.timers("T0001")[(ALERTS_TIMER, "")] <= alerting.clock()
    alerting.logged("T0001", alerting.clock().date(), ["leads"])
    assert alerting.debouncer.close() == set()  # the poke after closing was not taken


# -- the alert's whole story in one place: its thread, and its message updated ------------------


@pytest.fixture
def timed(fake_slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[SlackBot, Clock]]:
    """The whole bot with a clock the test moves (days pass between firing and resolving)."""
    clock = Clock()
    store = open_store(f"sqlite:///{tmp_path / 'threads.db'}")
    try:
        with serve_bot(fake_slack, store, clock=clock) as served:
            fake_slack.add_channel(MARKETING, "marketing")
            store.ensure_workspace("T0001", timezone="America/New_York")
            assert served.services.courier is not None
            served.services.courier.backoff = 0.01
            yield served, clock
    finally:
        store.engine.dispose()
        assert fake_slack.violations == [] and fake_slack.server_errors == []


def action_ids(message: dict[str, Any]) -> set[str]:
    return set(buttons_of(message))


def fire_then_resolve(bot: SlackBot, clock: Clock) -> dict[str, Any]:
    """CPL 30 on Wednesday fires `cpl > 15`; Saturday's 10 is back to normal three days later."""
    firing = fire_rule_one(bot)
    assert "Firing since Wed 11 Mar" in json.dumps(firing["blocks"])
    assert {"alert_snooze", "open_report"} <= action_ids(firing)
    clock.now += timedelta(days=3)
    log(bot, "spend=100 leads=10")
    return firing


def test_back_to_normal_is_a_reply_in_the_thread_and_the_message_says_resolved(
    timed: tuple[SlackBot, Clock],
) -> None:
    bot, clock = timed

    firing = fire_then_resolve(bot, clock)

    [top] = posts(bot)  # one message at the top of the channel, updated in place
    [reply] = replies(bot, firing)
    assert top["ts"] == firing["ts"]
    assert reply["text"].startswith("Resolved: Cost per lead is $10.00 after 3 days")
    shown = json.dumps(top["blocks"])
    assert "Resolved after 3 days (Sat 14 Mar)" in shown and "Firing since" not in shown
    assert "resolved after 3 days" in top["text"]
    assert action_ids(top) == {"open_report"}  # no Snooze once resolved
    assert "$30.00" in shown  # still what fired
    assert len(bot.fake.calls_to("chat.update")) == 1
    # and quiet afterwards: a later evaluation sends nothing more
    log(bot, "leads=11")
    assert len(posts(bot)) == 1 and len(replies(bot, firing)) == 1
    assert len(bot.fake.calls_to("chat.update")) == 1


def test_a_lost_reply_on_the_thread_reply_and_on_the_update_still_tells_it_once(
    timed: tuple[SlackBot, Clock],
) -> None:
    """Slack carries out the reply and the update but answers 500: the Courier finds the reply
    in the thread instead of posting it again, and sends the update (the whole message) again."""
    bot, clock = timed
    firing = fire_rule_one(bot)
    bot.fake.lose_reply("chat.postMessage", 500)
    bot.fake.lose_reply("chat.update", 500)
    clock.now += timedelta(days=3)

    log(bot, "spend=100 leads=10")

    assert [c.fault for c in bot.fake.calls_to("chat.update")] == ["lost:500", None]
    assert [c.fault for c in bot.fake.calls_to("chat.postMessage")][-1] == "lost:500"
    assert bot.fake.calls_to("conversations.replies")  # looked in the thread, found it
    [top] = posts(bot)
    [reply] = replies(bot, firing)
    assert reply["text"].startswith("Resolved:")
    assert "Resolved after 3 days" in json.dumps(top["blocks"]) and action_ids(top) == {"open_report"}
    [rule] = use.rules(bot.store, "T0001")
    assert not rule.thread.owes


def test_an_update_that_does_not_go_through_is_sent_by_the_alerts_timer(
    timed: tuple[SlackBot, Clock],
) -> None:
    bot, clock = timed
    firing = fire_rule_one(bot)
    bot.fake.fail("chat.update", 500, times=3)  # Slack down for the update's three tries
    clock.now += timedelta(days=3)
    log(bot, "spend=100 leads=10")
    assert "Firing since" in json.dumps(now_reads(bot, firing)["blocks"])
    [rule] = use.rules(bot.store, "T0001")
    assert rule.thread.owes  # kept in the rule's state until it is out

    clock.now += timedelta(minutes=5)  # past the delivery's retry and the timer's RETRY
    assert bot.services.scheduler is not None
    bot.services.scheduler.sweep()

    top = now_reads(bot, firing)
    assert "Resolved after 3 days" in json.dumps(top["blocks"]) and action_ids(top) == {"open_report"}
    assert len(replies(bot, firing)) == 1 and len(posts(bot)) == 1
    [rule] = use.rules(bot.store, "T0001")
    assert not rule.thread.owes


def test_a_snooze_click_is_said_in_the_thread_and_shown_on_the_message(bot: SlackBot) -> None:
    firing = fire_rule_one(bot)

    [one_day] = [e["value"] for b in firing["blocks"] if b["type"] == "actions"
                 for e in b["elements"] if e["text"]["text"] == "Snooze 1 day"]
    click = bot.action("alert_snooze", one_day, user_id=SLACK_MEMBER)

    # 15:00 UTC + 1 day is 11:00 on Thursday in New York (daylight time since 8 March)
    assert click.status == 200
    [note] = bot.fake.wait_for(lambda f: replies(bot, firing))
    assert note["text"] == f":zzz: <@{SLACK_MEMBER}> snoozed this until Thu 12 Mar 11:00 EDT."
    confirmed = json.dumps(bot.told(click))
    assert f"<@{SLACK_MEMBER}> snoozed alert #1 until Thu 12 Mar 11:00 EDT" in confirmed
    top = now_reads(bot, firing)
    assert (f"Firing since Wed 11 Mar, snoozed by <@{SLACK_MEMBER}> until Thu 12 Mar 11:00 EDT"
            in json.dumps(top["blocks"]))
    assert "alert_snooze" in action_ids(top)  # still firing: it may be snoozed longer
    assert len(posts(bot)) == 1

    typed = bot.command("alert snooze 1 7d", user_id=SLACK_ADMIN)  # typed: the thread hears it too
    assert "is snoozed until Wed 18 Mar 11:00 EDT" in typed.json["text"]
    assert [r["text"] for r in replies(bot, firing)][-1] == (
        f":zzz: <@{SLACK_ADMIN}> snoozed this until Wed 18 Mar 11:00 EDT.")
    assert f"snoozed by <@{SLACK_ADMIN}> until Wed 18 Mar" in json.dumps(now_reads(bot, firing)["blocks"])


def test_resolving_while_snoozed_updates_the_message_without_a_reply(
    timed: tuple[SlackBot, Clock],
) -> None:
    bot, clock = timed
    firing = fire_rule_one(bot)
    bot.command("alert snooze 1 7d", user_id=SLACK_MEMBER)
    clock.now += timedelta(days=2)

    log(bot, "spend=100 leads=10")

    assert [r["text"] for r in replies(bot, firing)] == [
        f":zzz: <@{SLACK_MEMBER}> snoozed this until Wed 18 Mar 11:00 EDT."]  # snoozed: no reply
    top = now_reads(bot, firing)
    assert "Resolved after 2 days" in json.dumps(top["blocks"]) and action_ids(top) == {"open_report"}


def test_a_weekly_rule_trends_its_own_weeks_like_for_like_and_opens_the_week_so_far(
    bot: SlackBot,
) -> None:
    """On Wednesday 11 March `leads > 100 weekly` fires on 130 leads since Monday. Its trend
    is Monday to Wednesday of each of the six weeks before (10, 30, ... 110; the 1,000 logged
    on each Thursday are not in a week so far) and then this week's 130, marked as the one
    that fired; Open report opens this week as it stood on Wednesday."""
    bot.command("alert leads > 100 weekly", user_id=SLACK_ADMIN, channel_id=MARKETING)
    monday = date(2026, 3, 9)
    history = {monday: 50.0, monday + timedelta(days=1): 40.0}
    for back in range(1, 7):
        week = monday - timedelta(weeks=back)
        history[week] = 130.0 - 20.0 * back
        history[week + timedelta(days=3)] = 1000.0
    bot.store.record("T0001", [Write("leads", day, value, SLACK_MEMBER) for day, value in history.items()],
                     actor=SLACK_MEMBER, origin="test")

    log(bot, "leads=40")

    [firing] = posts(bot)
    shown = json.dumps(firing["blocks"], ensure_ascii=False)
    assert "Last 7 weeks, Mon–Wed of each: `▁▂▃▄▅▆█` ◀ fired at 130" in shown
    assert "n/a" not in shown
    spec = json.loads(buttons_of(firing)["open_report"])
    assert spec == {"range": "2026-03-09..2026-03-15", "kpis": ["leads"], "as_of": "2026-03-11"}

    opened = bot.action("open_report", buttons_of(firing)["open_report"], user_id=SLACK_MEMBER)
    report = bot.told(opened)
    # the week so far against the same days of the week before, as the rule judged it
    assert report["text"] == "KPIs 2026-03-09..2026-03-11 so far vs 2026-03-02..2026-03-04"
    assert table_rows(report)[1] == ("Leads", "130", "110", "+18.2%")


def test_a_daily_rule_trends_its_days_and_opens_the_day_that_fired(bot: SlackBot) -> None:
    bot.command("alert leads > 25 daily", user_id=SLACK_ADMIN, channel_id=MARKETING)
    bot.store.record("T0001", [Write("leads", TODAY - timedelta(days=back), 5.0 * back, SLACK_MEMBER)
                               for back in range(2, 5)], actor=SLACK_MEMBER, origin="test")

    log(bot, "leads=30 date=yesterday")  # 20, 15, 10 the days before: 30 fires for Tuesday

    [firing] = posts(bot)
    shown = json.dumps(firing["blocks"], ensure_ascii=False)
    # 20, 15, 10, then 30 that fired; the three days before the first one logged have no
    # numbers at all, so the line starts at Saturday instead of with blanks
    assert "Last 4 days: `▄▂▁█` ◀ fired at 30" in shown
    assert json.loads(buttons_of(firing)["open_report"]) == {"range": "2026-03-10", "kpis": ["leads"]}


def test_back_to_normal_of_a_firing_never_posted_goes_to_the_channel(
    timed: tuple[SlackBot, Clock],
) -> None:
    """Snoozed before it fired, the alert posted no firing message: when it is back to normal
    after the snooze, there is no thread to reply in, so the channel hears it."""
    bot, clock = timed
    bot.command("alert cpl > 15", user_id=SLACK_ADMIN, channel_id=MARKETING)
    bot.command("alert snooze 1 1d", user_id=SLACK_MEMBER)
    log(bot, "spend=300 leads=10")
    assert posts(bot) == []
    clock.now += timedelta(days=2)

    log(bot, "spend=100 leads=10")

    [resolved] = posts(bot)
    assert resolved["text"].startswith("Resolved: Cost per lead is $10.00 after 2 days")
    assert "thread_ts" not in resolved and bot.fake.calls_to("chat.update") == []


def test_a_snooze_that_ends_while_firing_updates_the_message_once(
    timed: tuple[SlackBot, Clock],
) -> None:
    """The snooze runs out while the alert still fires: the alerts timer is due at its end,
    and the firing message no longer says snoozed, once, with its Snooze buttons."""
    bot, clock = timed
    firing = fire_rule_one(bot)
    bot.command("alert snooze 1 1d", user_id=SLACK_MEMBER)
    until = SLACK_NOW + timedelta(days=1)
    assert bot.store.timers("T0001")[("alerts", "")] <= until
    assert "snoozed by" in json.dumps(now_reads(bot, firing)["blocks"])
    updates = len(bot.fake.calls_to("chat.update"))
    assert bot.services.scheduler is not None

    clock.now = until - timedelta(minutes=1)
    bot.services.scheduler.sweep()  # not over yet: the message still says snoozed
    assert len(bot.fake.calls_to("chat.update")) == updates
    assert bot.store.timers("T0001")[("alerts", "")] == until

    clock.now = until + timedelta(seconds=5)
    bot.services.scheduler.sweep()
    top = now_reads(bot, firing)
    shown = json.dumps(top["blocks"])
    assert "Firing since Wed 11 Mar, again since its snooze ended Thu 12 Mar 11:00 EDT" in shown
    assert "snoozed by" not in shown and "snoozed by" not in top["text"]
    assert {"alert_snooze", "open_report"} <= action_ids(top)
    assert rendered_lines(top["blocks"]) <= FOLD_LINES
    assert len(bot.fake.calls_to("chat.update")) == updates + 1
    assert len(posts(bot)) == 1 and len(replies(bot, firing)) == 1  # the snooze note only

    clock.now += timedelta(minutes=5)  # later looks and logs say nothing more
    bot.services.scheduler.sweep()
    log(bot, "spend=310")
    assert len(bot.fake.calls_to("chat.update")) == updates + 1
    [rule] = use.rules(bot.store, "T0001")
    assert rule.thread.snooze_ended and not rule.thread.owes

    bot.command("alert snooze 1 7d", user_id=SLACK_ADMIN)  # a new snooze shows again
    assert f"snoozed by <@{SLACK_ADMIN}> until" in json.dumps(now_reads(bot, firing)["blocks"])


def test_removing_a_firing_rule_updates_its_message_once_without_buttons(
    timed: tuple[SlackBot, Clock],
) -> None:
    bot, clock = timed
    firing = fire_rule_one(bot)
    clock.now += timedelta(days=1)

    removed = bot.command("alert remove 1", user_id=SLACK_ADMIN)

    assert "Alert #1 on `cpl` removed" in removed.json["text"]
    top = now_reads(bot, firing)
    shown = json.dumps(top["blocks"])
    assert (f"Firing since Wed 11 Mar; rule removed by <@{SLACK_ADMIN}> Thu 12 Mar 11:00 EDT"
            in shown)
    assert "$30.00" in shown and action_ids(top) == set()
    assert rendered_lines(top["blocks"]) <= FOLD_LINES
    assert "rule removed by" in top["text"]
    assert len(bot.fake.calls_to("chat.update")) == 1 and len(posts(bot)) == 1
    again = bot.command("alert remove 1", user_id=SLACK_ADMIN)
    assert "There is no alert #1" in again.json["text"]
    assert bot.services.scheduler is not None
    bot.services.scheduler.sweep()
    assert len(bot.fake.calls_to("chat.update")) == 1


def test_removing_a_resolved_rule_leaves_its_message_as_it_reads(
    timed: tuple[SlackBot, Clock],
) -> None:
    bot, clock = timed
    firing = fire_then_resolve(bot, clock)

    bot.command("alert remove 1", user_id=SLACK_ADMIN)

    assert "Resolved after 3 days" in json.dumps(now_reads(bot, firing)["blocks"])
    assert len(bot.fake.calls_to("chat.update")) == 1  # the resolve's, nothing more


def _rule_one_firing(bot: SlackBot) -> dict[str, Any]:
    """`fire_rule_one` on a bot of its own (not the `bot` fixture): #marketing set up first."""
    bot.fake.add_channel(MARKETING, "marketing")
    bot.store.ensure_workspace("T0001", timezone="America/New_York")
    assert bot.services.courier is not None
    bot.services.courier.backoff = 0.01
    return fire_rule_one(bot)


@pytest.mark.parametrize("cause", ["Slack 500 on the update's three tries",
                                   "ratelimited for ten minutes",
                                   "process killed between the removal and the update"])
def test_a_removal_update_not_out_is_sent_once_by_the_alerts_timer_after_a_restart(
    cause: str, db_url: str, fake_slack: FakeSlack,
) -> None:
    """The removed rule is hidden at once, but kept until its firing message says it was
    removed: a new process over the same database sends that update, once, then forgets the
    rule; the next rule still gets a new id."""
    clock = Clock()
    store = open_store(db_url)
    try:
        with serve_bot(fake_slack, store, clock=clock) as bot:
            firing = _rule_one_firing(bot)
            clock.now += timedelta(days=1)
            if cause.startswith("process killed"):
                # what the command stores before it sends the update, and then the process dies
                assert store.remove_rule("T0001", 1, SLACK_ADMIN, clock.now,
                                         look_again_at=clock.now + timedelta(minutes=1))
            else:
                if cause.startswith("Slack 500"):
                    fake_slack.fail("chat.update", 500, times=3)
                else:
                    fake_slack.fail("chat.update", 429, retry_after=600)
                removed = bot.command("alert remove 1", user_id=SLACK_ADMIN)
                assert "Alert #1 on `cpl` removed" in removed.json["text"], removed.json
            assert "rule removed by" not in now_reads(bot, firing)["text"]
            assert store.rules("T0001") == [] and [r.id for r in store.removed_rules("T0001")] == [1]
            assert "There is no alert #1" in bot.command(
                "alert remove 1", user_id=SLACK_ADMIN).json["text"]
            assert "#1" not in json.dumps(bot.command("alerts", user_id=SLACK_ADMIN).json)
        store.engine.dispose()

        store = open_store(db_url)  # a new process over the same database
        with serve_bot(fake_slack, store, clock=clock) as again:
            assert again.services.scheduler is not None
            clock.now += timedelta(minutes=11)  # past the update's retry and Retry-After
            again.services.scheduler.sweep()
            top = now_reads(again, firing)
            assert (f"Firing since Wed 11 Mar; rule removed by <@{SLACK_ADMIN}> Thu 12 Mar "
                    "11:00 EDT") in json.dumps(top["blocks"])
            assert action_ids(top) == set() and len(posts(again)) == 1
            assert store.removed_rules("T0001") == []
            clock.now += timedelta(hours=2)
            again.services.scheduler.sweep()
            done = [c for c in fake_slack.calls_to("chat.update") if c.fault is None]
            assert len(done) == 1, [(c.status, c.fault) for c in fake_slack.calls_to("chat.update")]
            added = again.command("alert cpl > 20", user_id=SLACK_ADMIN, channel_id=MARKETING)
            assert "Alert #2 added" in added.json["text"], added.json
    finally:
        store.engine.dispose()
        assert fake_slack.violations == [] and fake_slack.server_errors == []


def test_two_processes_finishing_one_removal_update_its_message_once(
    db_url: str, fake_slack: FakeSlack,
) -> None:
    """Both alerts timers find the removed rule pending at the same moment: one update."""
    clock = Clock()
    store = open_store(db_url)
    try:
        with serve_bot(fake_slack, store, clock=clock) as bot:
            firing = _rule_one_firing(bot)
            clock.now += timedelta(days=1)
            fake_slack.fail("chat.update", 500, times=3)
            bot.command("alert remove 1", user_id=SLACK_ADMIN)
        clock.now += timedelta(minutes=5)
        stores = [open_store(db_url), open_store(db_url)]
        settings = Settings(slack_api_url=fake_slack.api_url, _env_file=None)

        def process(each: Store) -> Callable[[], list[str]]:
            client = courier_client(settings, "xoxb-test")
            courier = Courier(each, lambda _ws: client, Metrics(), clock, backoff=0.01)
            [removed] = [use.AlertRule.load(r) for r in each.removed_rules("T0001")]
            return lambda: [str(use.finish_removal(each, courier, removed, clock))]

        outcomes = at_once(*(process(s) for s in stores))
        for each in stores:
            each.engine.dispose()

        assert sorted(outcomes) in (["held", "posted"], ["posted", "skipped"]), outcomes
        assert len([c for c in fake_slack.calls_to("chat.update") if c.fault is None]) == 1
        [top] = fake_slack.messages_in(MARKETING)
        assert top["ts"] == firing["ts"] and "rule removed by" in top["text"]
        assert store.removed_rules("T0001") == []  # the process that posted forgot the rule
    finally:
        store.engine.dispose()


@pytest.mark.parametrize("today", [date(2026, 3, 11), date(2026, 3, 15)], ids=["wednesday", "sunday"])
def test_on_the_demo_data_the_unusual_leads_rule_fires_less_than_the_fixed_one(
    tmp_path: Path, today: date,
) -> None:
    """The demo's 30 days through `leads down 30% daily` and `leads unusual daily medium`:
    the fixed rule fires on every weekend dip, the unusual one only on a day its weekday's
    band does not hold, and says so in the band's own words; and `cpl unusual daily medium`
    catches the bad days the generator injects."""
    from bot.demo import BROKEN_ADS_DAYS_AGO, alerts_markdown, fill, replay_demo_alerts

    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        store.ensure_workspace("demo", timezone="UTC")
        fill(store, "demo", today)
        now = datetime.combine(today, time(9), tzinfo=UTC)
        replayed, messages = replay_demo_alerts(store, today, now)
        by_rule = {r.typed: r for r in replayed}
        fixed, unusual = by_rule["leads down 30% daily"], by_rule["leads unusual daily medium"]
        assert 1 <= unusual.fired < fixed.fired
        assert len(unusual.said) == unusual.fired
        assert all(re.fullmatch(r"\S+: Leads \d+ on a \w+day; \w+days are usually \d+–\d+", s)
                   for s in unusual.said), unusual.said
        assert sum(r.fired + r.resolved for r in replayed) == len(messages)
    finally:
        store.engine.dispose()

    # the ad account's bad days: leads fall within their weekday's noise, cost per lead does not
    cpl = by_rule["cpl unusual daily medium"]
    broken = [str(today - timedelta(days=n)) for n in BROKEN_ADS_DAYS_AGO]
    assert any(said.startswith(f"{day}: Cost per lead ") for said in cpl.said for day in broken), cpl.said

    written = alerts_markdown(replayed, messages, [])
    assert f"| `leads down 30% daily` | {fixed.fired} | {fixed.resolved} |" in written
    assert f"| `leads unusual daily medium` | {unusual.fired} | {unusual.resolved} |" in written
    assert f"- {unusual.said[0]}" in written


def test_a_rule_added_after_a_removed_one_posts_its_own_first_alert(
    timed: tuple[SlackBot, Clock],
) -> None:
    """A new rule never inherits a removed rule's delivery keys, even where the database
    would give it the same id."""
    bot, clock = timed
    bot.command("alert cpl > 15", user_id=SLACK_ADMIN, channel_id=MARKETING)
    log(bot, "spend=300 leads=10")
    assert len(posts(bot)) == 1
    bot.command("alert remove 1", user_id=SLACK_ADMIN)
    clock.now += timedelta(days=1)

    added = bot.command("alert cpl > 20", user_id=SLACK_ADMIN, channel_id=MARKETING)
    log(bot, "spend=400 leads=10")

    assert "removed" not in added.json["text"]
    assert len(posts(bot)) == 2, [p.get("text") for p in posts(bot)]


def test_the_alert_ids_migration_starts_past_every_rule_a_delivery_key_names(
        sqlite_url: str) -> None:
    """Rule 2 was removed but its alert was delivered; after 0010 a new rule is #3 (SQLite:
    PostgreSQL's sequence never hands an id out twice)."""
    db_url = sqlite_url
    migrate_to(db_url, "upgrade", "0009_dimensions")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            insert_old_workspace(conn, "W1")
            conn.execute(text(
                "INSERT INTO alert_rules (id, workspace_id, channel_id, kpi, rule, state, version, "
                "created_by, created_at) VALUES (1, 'W1', 'C1', 'cpl', '{}', '{}', 0, 'U1', "
                "'2026-03-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO deliveries (workspace_id, key, kind, channel_id, due_at, claimed_by, "
                "claimed_at, expires_at, attempts, error) VALUES ('W1', 'alert:2:1', 'alert', 'C1', "
                "'2026-03-01 00:00:00', 'p', '2026-03-01 00:00:00', '2026-03-01 00:00:00', 1, '')"))
    finally:
        engine.dispose()

    migrate_to(db_url, "upgrade", "head")

    store = open_store(db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO alert_rules (workspace_id, channel_id, kpi, rule, state, version, "
                "created_by, created_at) VALUES ('W1', 'C1', 'cac', '{}', '{}', 0, 'U1', "
                "'2026-03-02 00:00:00')"))
            ids = sorted(conn.execute(text("SELECT id FROM alert_rules")).scalars())
        assert ids[0] == 1 and ids[1] >= 3, ids
    finally:
        store.engine.dispose()
    migrate_to(db_url, "downgrade", "0009_dimensions")


def test_the_removals_migration_keeps_rules_and_never_reuses_subscription_ids(db_url: str) -> None:
    """0012: rules get their removal columns (in place: alert ids still never come back);
    on SQLite new subscriptions start past every id a failure DM key names. Down again, a
    removed rule waiting to say so goes, the others stay."""
    migrate_to(db_url, "upgrade", "0010_alert_ids")
    engine = create_engine(db_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as conn:
            insert_old_workspace(conn, "W1")
            conn.execute(text(
                "INSERT INTO subscriptions (workspace_id, channel_id, kind, at_time, created_by, "
                "created_at) VALUES ('W1', 'C1', 'daily', '09:00', 'U1', '2026-03-01 00:00:00')"))
            if sqlite:  # subscription 3 was removed after its failure was told
                conn.execute(text(
                    "INSERT INTO deliveries (workspace_id, key, kind, channel_id, due_at, "
                    "claimed_by, claimed_at, expires_at, attempts, error) VALUES ('W1', "
                    "'failure-dm:digest:3:0', 'failure-dm', 'U1', '2026-03-01 00:00:00', 'p', "
                    "'2026-03-01 00:00:00', '2026-03-01 00:00:00', 1, '')"))
            for kpi in ("cpl", "cac"):
                conn.execute(text(
                    "INSERT INTO alert_rules (workspace_id, channel_id, kpi, rule, state, version, "
                    "created_by, created_at) VALUES ('W1', 'C1', :kpi, '{}', '{}', 0, 'U1', "
                    "'2026-03-01 00:00:00')"), {"kpi": kpi})
    finally:
        engine.dispose()

    migrate_to(db_url, "upgrade", "head")

    store = open_store(db_url)
    try:
        assert [r.kpi for r in store.rules("W1")] == ["cpl", "cac"]
        second = store.subscribe("W1", "C2", "daily", "09:00", actor="U1")
        assert second.id >= (4 if sqlite else 2), second
        [cac] = [r for r in store.rules("W1") if r.kpi == "cac"]
        now = datetime(2026, 3, 2, tzinfo=UTC)
        assert store.remove_rule("W1", cac.id, "U1", now, look_again_at=now) is not None
        assert [r.kpi for r in store.rules("W1")] == ["cpl"]
        assert [r.removed_by for r in store.removed_rules("W1")] == ["U1"]
    finally:
        store.engine.dispose()

    migrate_to(db_url, "downgrade", "0010_alert_ids")

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            assert list(conn.execute(text("SELECT kpi FROM alert_rules")).scalars()) == ["cpl"]
            conn.execute(text(
                "INSERT INTO alert_rules (workspace_id, channel_id, kpi, rule, state, version, "
                "created_by, created_at) VALUES ('W1', 'C1', 'roas', '{}', '{}', 0, 'U1', "
                "'2026-03-03 00:00:00')"))
            new = conn.execute(text("SELECT id FROM alert_rules WHERE kpi = 'roas'")).scalar_one()
            assert new > cac.id  # the purged rule's id is not handed out again
            assert len(list(conn.execute(text("SELECT id FROM subscriptions")))) == 2
    finally:
        engine.dispose()
    migrate_to(db_url, "upgrade", "head")
