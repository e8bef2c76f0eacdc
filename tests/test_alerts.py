"""Alerts and goals end to end: rules typed in Slack, numbers logged, posts counted in the fake
Slack channel. The clock is frozen at SLACK_NOW (Wed 11 March 2026, New York)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.app import alerts as use
from bot.app.context import open_context
from bot.observability import Metrics
from bot.settings import Settings
from bot.slack.app import courier_client
from bot.slack.courier import Courier, Outgoing
from kpis.alerts import Notification
from storage import Store, open_store
from storage.repository import Write
from tests.conftest import SLACK_ADMIN, SLACK_MEMBER, SlackBot, at_once
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


def posts(bot: SlackBot) -> list[dict[str, Any]]:
    return bot.fake.messages_in(MARKETING)


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
    log(bot, "spend=100")  # today's CPL corrected to 10: back to normal
    assert len(posts(bot)) == 2
    resolved = posts(bot)[-1]
    assert resolved["text"].startswith("Resolved: Cost per lead is $10.00")
    log(bot, "leads=11")  # still fine: quiet
    assert len(posts(bot)) == 2

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
    assert "snoozed alert #1 until Wed 18 Mar" in shown  # the 7-day button
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
