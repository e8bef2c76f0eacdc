"""`/kpi why`, `/kpi whatif` and the daily nudges, end to end through the real HTTP bot.

The worked examples use round numbers seeded straight into the store; the funnel and what-if
tests use two weeks of the demo's funnel numbers; the nudge tests sweep with a frozen, movable
clock and post through the fake Slack Web API. The clock of the `slack_bot` fixture is
Wednesday 2026-03-11 15:00 UTC (11:00 in New York, the workspace's time zone).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import insights
from bot.app.context import Context, open_context
from bot.app.names import period_for
from bot.app.reminders import wake_nudges
from bot.app.reports import report
from bot.app.timers import Woken
from bot.demo import sample_writes
from bot.render.insights import why_sentence
from bot.render.numbers import format_value
from bot.scheduler import Scheduler
from bot.slack.app import courier_client
from bot.slack.courier import Courier
from bot.slack.directory import SlackDirectory
from kpis.catalogue import Unit
from kpis.explain import FUNNEL, Method
from kpis.periods import Period
from kpis.whatif import STEP_KEYS
from storage import Store, open_store
from storage.repository import Write
from storage.timers import NUDGES_TIMER, Timer
from tests.conftest import (
    SLACK_ADMIN,
    SLACK_MEMBER,
    SLACK_NOW,
    Clock,
    SlackBot,
    SlackReply,
    in_full,
    sql_statements,
    texts,
)
from tests.test_slack import opened_view

T1 = "T0001"
NY = "America/New_York"
TODAY = date(2026, 3, 11)
FUNNEL_METRICS = {"spend", "impressions", "clicks", "page_views", "leads", "bookings", "shows",
                  "sales", "new_customers", "revenue", "cogs"}
TOKYO_USER, LAPSED_USER, QUIET_USER = "U0003", "U0004", "U0005"


# -- helpers ------------------------------------------------------------------------------------




def blocks_of(params: dict[str, Any]) -> list[dict[str, Any]]:
    raw = params.get("blocks") or []
    return raw if isinstance(raw, list) else json.loads(raw)


def warning(reply: SlackReply) -> str:
    assert reply.status == 200
    assert reply.json["text"].startswith(":warning:"), reply.json
    return texts(reply.json)


def record(store: Store, day: date, actor: str, origin: str = "slack", **values: float) -> None:
    store.record(T1, [Write(m, day, v, actor) for m, v in values.items()], actor=actor, origin=origin)


def ctx_of(store: Store) -> Context:
    return open_context(store, T1, SLACK_ADMIN, SLACK_NOW)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def funnel_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two weeks of the demo's funnel numbers (by source where the demo has one), filled once."""
    path = tmp_path_factory.mktemp("funnel") / "template.db"
    store = open_store(f"sqlite:///{path}")
    store.ensure_workspace(T1, timezone=NY)
    writes = [w for day in sample_writes(TODAY, days=14) for w in day if w.metric in FUNNEL_METRICS]
    store.record(T1, writes, actor="demo", origin="demo")
    store.engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def demo_numbers(funnel_template: Path, tmp_path: Path) -> None:
    """The demo numbers where `slack_bot` opens its database (so list it before slack_bot)."""
    shutil.copyfile(funnel_template, tmp_path / "slack-e2e.db")


@pytest.fixture
def demo_bot(demo_numbers: None, slack_bot: SlackBot) -> SlackBot:
    return slack_bot


# -- why ----------------------------------------------------------------------------------------


def seed_cpl_week(store: Store) -> None:
    """CPL 10 -> 12.36: spend 1,000 -> 1,100 (+10%), leads 100 -> 89 (-11%), mostly facebook."""
    store.ensure_workspace(T1, timezone=NY)
    for day, spend, leads in ((date(2026, 3, 2), (600, 400), (60, 40)),
                              (date(2026, 3, 9), (660, 440), (45, 44))):
        store.record(T1, [
            Write("spend", day, spend[0], "ads", (("source", "facebook"),)),
            Write("spend", day, spend[1], "ads", (("source", "google"),)),
            Write("leads", day, leads[0], "ads", (("source", "facebook"),)),
            Write("leads", day, leads[1], "ads", (("source", "google"),)),
        ], actor="ads", origin="cli")


def test_why_cpl_ranks_leads_then_spend_and_names_the_source_that_moved(slack_bot: SlackBot) -> None:
    seed_cpl_week(slack_bot.store)

    reply = slack_bot.command("why cpl")

    assert reply.status == 200
    body = reply.json
    assert body["text"] == "CPL +23.6%: leads −11.0%, spend +10.0%; leads fell mostly from facebook"
    shown = texts(in_full(slack_bot, body))  # the sources are below the fold
    # ln(1.1) and ln(100/89) scaled to the total +23.6% give 10.6 and 13.0 points
    assert "1. *leads*: 100 → 89 (−11.0%), +13.0 pts of CPL's +23.6%" in shown
    assert "2. *spend*: $1,000.00 → $1,100.00 (+10.0%), +10.6 pts of CPL's +23.6%" in shown
    assert "2026-03-04..2026-03-10, against 2026-02-25..2026-03-03" in shown
    assert "• facebook: 60 → 45 (−15)" in shown and "• google: 40 → 44 (+4)" in shown
    assert slack_bot.fake.posted_messages() == []


def test_the_parts_of_a_why_add_up_to_the_total(slack_bot: SlackBot) -> None:
    seed_cpl_week(slack_bot.store)

    result = insights.why(ctx_of(slack_bot.store), "cpl")

    e = result.explanation
    assert e.method is Method.LOG
    assert e.total_pct == pytest.approx((1100 / 89 / 10 - 1) * 100)
    assert math.fsum(c.points for c in e.contributions) == pytest.approx(e.total_pct)
    [leads] = [b for b in result.breakdowns if b.metric == "leads"]
    assert [(d.value, d.change) for d in leads.drivers] == [("facebook", -15.0), ("google", 4.0)]
    assert leads.drivers[0].share == pytest.approx(15 / 11)


def why_line(ctx: Context, key: str, period: Period) -> str:
    """The digest's one line on a mover, as its renderer says it."""
    brief = insights.why_brief(ctx, key, period)
    return "" if brief is None else why_sentence(brief, ctx.workspace.locale)


def test_why_line_is_one_line_for_the_digest_and_empty_without_data(slack_bot: SlackBot) -> None:
    seed_cpl_week(slack_bot.store)
    ctx = ctx_of(slack_bot.store)
    week = insights.why_period(ctx, None)

    assert why_line(ctx, "cpl", week) == (
        "CPL +23.6%: leads −11.0%, spend +10.0%; leads fell mostly from facebook")
    assert why_line(ctx, "close_rate", week) == ""
    assert why_line(ctx, "no_such_kpi", week) == ""


def test_the_whys_of_a_digests_movers_cost_the_reads_of_one(slack_bot: SlackBot) -> None:
    seed_cpl_week(slack_bot.store)
    ctx = ctx_of(slack_bot.store)
    week = insights.why_period(ctx, None)
    keys = ["cpl", "leads", "spend", "close_rate", "no_such_kpi"]
    with sql_statements(slack_bot.store.engine) as seen:
        insights.why_briefs(ctx, ["cpl"], week)
        one = len(seen)
        seen.clear()
        whys = insights.why_briefs(ctx, keys, week)
        five = len(seen)

    assert five == one
    said = {k: why_sentence(w, ctx.workspace.locale) if w else "" for k, w in whys.items()}
    assert said == {k: why_line(ctx, k, week) for k in keys}
    assert said["cpl"] == "CPL +23.6%: leads −11.0%, spend +10.0%; leads fell mostly from facebook"
    assert said["leads"].endswith("facebook") and said["spend"].endswith("facebook")
    assert said["close_rate"] == said["no_such_kpi"] == ""


def test_untagged_entries_are_the_rest_of_a_breakdown_not_a_source(slack_bot: SlackBot) -> None:
    seed_cpl_week(slack_bot.store)
    record(slack_bot.store, date(2026, 3, 9), "ads", origin="cli", leads=30)

    result = insights.why(ctx_of(slack_bot.store), "leads")

    [leads] = result.breakdowns
    assert {d.value: d.change for d in leads.drivers} == {"facebook": -15.0, "google": 4.0, "": 30.0}
    assert why_line(ctx_of(slack_bot.store), "leads", insights.why_period(
        ctx_of(slack_bot.store), None)).endswith("+19.0%")


def test_why_breaks_a_count_down_by_the_teams_own_dimension_by_its_name(slack_bot: SlackBot) -> None:
    slack_bot.store.ensure_workspace(T1, timezone=NY)
    assert "temperature" in slack_bot.command("dimension add temperature warm cold").json["text"]
    for day, warm, cold in (("2026-03-02", 60, 40), ("2026-03-09", 30, 44)):
        for value, leads in (("warm", warm), ("cold", cold)):
            stored = slack_bot.command(f"log leads={leads} temperature={value} date={day}")
            assert "Stored" in stored.json["text"], stored.json

    result = insights.why(ctx_of(slack_bot.store), "leads")

    [leads] = result.breakdowns
    assert leads.dimension == "temperature"
    assert {d.value: d.change for d in leads.drivers} == {"warm": -30.0, "cold": 4.0}
    assert "leads fell mostly from warm" in slack_bot.command("why leads").json["text"]


def test_why_sales_on_the_demo_funnel_splits_into_every_step_exactly(demo_bot: SlackBot) -> None:
    ctx = ctx_of(demo_bot.store)
    result = insights.why(ctx, "sales")
    week, before = result.period, result.previous
    sales = [demo_bot.store.period_data(T1, p, ctx.catalogue).totals["sales"][0] for p in (before, week)]

    e = result.explanation
    assert (e.old, e.new) == (sales[0], sales[1])
    assert {c.name for c in e.contributions} == {"impressions", *(rate for rate, _ in FUNNEL)}
    assert math.prod(c.new / c.old for c in e.contributions) == pytest.approx(sales[1] / sales[0])
    assert math.fsum(c.points for c in e.contributions) == pytest.approx(e.total_pct)

    shown = texts(in_full(demo_bot, demo_bot.command("why sales").json))
    for name in ("*impressions*", "*CTR*", "*view rate*", "*landing CVR*", "*booking rate*",
                 "*show rate*", "*close rate*"):
        assert name in shown


# -- what if ------------------------------------------------------------------------------------


def test_whatif_with_every_step_at_zero_is_the_baseline(demo_bot: SlackBot) -> None:
    ctx = ctx_of(demo_bot.store)

    result = insights.what_if(ctx, [(k, "0%") for k in STEP_KEYS])

    baseline = report(ctx, period_for(ctx, "30d"))
    p = result.projection
    assert result.period == baseline.period and p.compounding == 1.0
    for o in p.outcomes:
        assert o.after == pytest.approx(o.before)
    for key in ("leads", "sales", "revenue"):
        assert p.outcome(key).before == baseline.metrics[key].value
    for key in ("cac", "roas"):
        assert p.outcome(key).before == pytest.approx(baseline.kpis[key].value)
    revenue, spend = baseline.metrics["revenue"].value, baseline.metrics["spend"].value
    assert revenue is not None and spend is not None
    cogs = baseline.metrics["cogs"].value or 0.0
    assert p.outcome("profit").before == pytest.approx(revenue - spend - cogs)


def test_whatif_command_compounds_the_funnel_steps(demo_bot: SlackBot) -> None:
    ctx = ctx_of(demo_bot.store)
    baseline = report(ctx, period_for(ctx, "30d")).metrics
    entries = demo_bot.store.entries_between(T1)

    reply = demo_bot.command("whatif ctr=+10% close_rate=+5% aov=+25%")

    shown = texts(in_full(demo_bot, reply.json))  # the compounding is below the fold
    assert "What if CTR +10.0%, close rate +5.0%, AOV +25.0%" in shown
    leads, revenue = baseline["leads"].value, baseline["revenue"].value
    assert leads is not None and revenue is not None
    assert f"*Leads*: {format_value(leads, Unit.COUNT)} → *{format_value(leads * 1.1, Unit.COUNT)}* (+10.0%)" in shown
    after = format_value(revenue * 1.1 * 1.05 * 1.25, Unit.CURRENCY)
    assert f"*Revenue*: {format_value(revenue, Unit.CURRENCY)} → *{after}* (+44.4%)" in shown
    assert "1.10x (CTR) × 1.05x (close rate) = *1.16x*" in shown
    assert "*CAC*" in shown and "*ROAS*" in shown and "*Profit after ads and delivery*" in shown
    assert demo_bot.store.entries_between(T1) == entries


def test_whatif_alone_opens_the_form_and_its_answer_matches_the_command(demo_bot: SlackBot) -> None:
    opened = demo_bot.command("whatif")

    assert opened.status == 200 and opened.json == {}
    _, view = opened_view(demo_bot)  # once Slack answered the open, not only once it was asked
    pickers = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert list(pickers) == [f"step:{k}" for k in STEP_KEYS]
    assert all(e["type"] == "static_select" and e["initial_option"]["value"] == "0"
               for e in pickers.values())
    assert {o["value"] for o in pickers["step:ctr"]["options"]} >= {"-20", "0", "+10", "+50"}

    done = demo_bot.submit(view, {"step:ctr": {"value": "+10"}, "step:aov": {"value": "-5"}})

    assert done.status == 200 and done.body == b""
    posted = demo_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))[0]
    assert posted.ok and posted.params["channel"] == "C0001" and posted.params["user"] == SLACK_ADMIN
    command = demo_bot.command("whatif ctr=+10% aov=-5%").json
    assert posted.params["text"] == command["text"]
    assert blocks_of(posted.params) == command["blocks"]


def test_a_tampered_form_value_is_refused_on_its_picker(demo_bot: SlackBot) -> None:
    demo_bot.command("whatif")
    _, view = opened_view(demo_bot)
    bad = {"type": "static_select", "selected_option": {"value": "lots", "text": {
        "type": "plain_text", "text": "lots"}}}

    done = demo_bot.submit(view, {"step:show_rate": {"value": bad}})

    assert done.json["response_action"] == "errors"
    assert list(done.json["errors"]) == ["step:show_rate"]
    assert "not a number" in done.json["errors"]["step:show_rate"]
    assert demo_bot.fake.calls_to("chat.postEphemeral") == []


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("whatif ctrr=+10%", ["Unknown step `ctrr`", "Did you mean `ctr`?", "close_rate"]),
        ("whatif ctr=lots", ["is not a change", "ctr=+10%"]),
        ("whatif ctr=-150%", ["-150%", "-100% or more"]),
        ("whatif ctr=+5% ctr=+10%", ["`ctr` is given twice"]),
        ("why cpll", ["`cpll`", "Did you mean `cpl`?"]),
        ("why cpl", ["no value", "`/kpi why cpl 30d`"]),
        ("remind sometimes", ["`/kpi remind off`"]),
    ],
)
def test_bad_input_gets_the_fix_and_stores_nothing(
    slack_bot: SlackBot, text: str, needles: list[str]
) -> None:
    shown = warning(slack_bot.command(text))

    for needle in needles:
        assert needle in shown, shown
    assert slack_bot.store.history(T1) == []
    assert slack_bot.store.people(T1) == {}


def test_whatif_without_numbers_says_what_to_log(slack_bot: SlackBot) -> None:
    shown = warning(slack_bot.command("whatif ctr=+10%"))

    assert "no funnel numbers" in shown and "`leads`" in shown


# -- reminders ----------------------------------------------------------------------------------


def test_remind_off_and_on_is_each_persons_own_choice(slack_bot: SlackBot) -> None:
    off = slack_bot.command("remind off", user_id=SLACK_MEMBER)

    assert "No more reminders" in off.json["text"]
    assert slack_bot.store.people(T1) == {SLACK_MEMBER: (None, False)}
    on = slack_bot.command("remind on", user_id=SLACK_MEMBER)
    assert "17:00 your time" in on.json["text"]
    assert slack_bot.store.people(T1) == {SLACK_MEMBER: (None, True)}


def test_only_admins_change_the_reminder_time(slack_bot: SlackBot) -> None:
    shown = warning(slack_bot.command("remind 18:30", user_id=SLACK_MEMBER))

    assert "Only admins can change the reminder time" in shown
    assert slack_bot.store.workspace(T1).reminder_time == "17:00"  # type: ignore[union-attr]
    done = slack_bot.command("remind 18:30", user_id=SLACK_ADMIN)
    assert "18:30" in done.json["text"]
    assert slack_bot.store.workspace(T1).reminder_time == "18:30"  # type: ignore[union-attr]


# -- nudges -------------------------------------------------------------------------------------


def nudging(bot: SlackBot, clock: Clock) -> Scheduler:
    """A scheduler like `kpibot serve` runs, with reminders as the only task besides digests."""
    client = courier_client(bot.services.settings, "xoxb-test")
    courier = Courier(bot.store, lambda _ws: client, bot.services.metrics, clock, backoff=0.01)
    directory = SlackDirectory(bot.store, courier.client_for)

    def nudges(timer: Timer, now: datetime) -> Woken:
        return wake_nudges(bot.store, courier, directory, timer, now)

    return Scheduler(bot.store, courier, clock, {NUDGES_TIMER: nudges})


@pytest.fixture
def team(slack_bot: SlackBot) -> SlackBot:
    """Who logged what: the admin yesterday, the member today, a Tokyo teammate two days ago,
    someone last month, someone who turned reminders off, and a CLI user."""
    fake, store = slack_bot.fake, slack_bot.store
    fake.add_user(TOKYO_USER, tz="Asia/Tokyo")
    fake.add_user(LAPSED_USER)
    fake.add_user(QUIET_USER)
    store.ensure_workspace(T1, timezone=NY)
    record(store, date(2026, 3, 10), SLACK_ADMIN, leads=3)
    record(store, date(2026, 3, 11), SLACK_MEMBER, leads=2)
    record(store, date(2026, 3, 9), TOKYO_USER, spend=100)
    record(store, date(2026, 2, 20), LAPSED_USER, leads=1)
    record(store, date(2026, 3, 10), QUIET_USER, leads=1)
    record(store, date(2026, 3, 10), "marketing.lead", origin="cli", leads=5)
    assert "No more reminders" in slack_bot.command("remind off", user_id=QUIET_USER).json["text"]
    return slack_bot


def dms(bot: SlackBot, user: str) -> list[dict[str, Any]]:
    return bot.fake.posted_messages(user)


def test_nudges_go_once_to_recent_loggers_at_their_own_local_reminder_time(team: SlackBot) -> None:
    clock = Clock(datetime(2026, 3, 11, 7, 59, tzinfo=UTC))  # 16:59 in Tokyo, 03:59 in New York
    scheduler = nudging(team, clock)

    assert scheduler.sweep() == []
    clock.now = datetime(2026, 3, 11, 8, 0, 30, tzinfo=UTC)  # 17:00 in Tokyo
    assert scheduler.sweep() == ["posted"]
    clock.now += timedelta(minutes=1)
    assert scheduler.sweep() == []
    [tokyo] = dms(team, TOKYO_USER)
    assert tokyo["metadata"]["event_payload"]["key"] == f"nudge:{T1}:{TOKYO_USER}:2026-03-11"
    assert tokyo["text"].startswith("Time to log today's numbers")
    [button] = [e for b in blocks_of(tokyo) if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == "open_log_form"
    assert team.store.people(T1)[TOKYO_USER] == ("Asia/Tokyo", True)

    clock.now = datetime(2026, 3, 11, 20, 59, tzinfo=UTC)  # 16:59 in New York
    assert scheduler.sweep() == []
    clock.now = datetime(2026, 3, 11, 21, 0, 30, tzinfo=UTC)
    assert scheduler.sweep() == ["posted"]
    clock.now += timedelta(minutes=30)
    assert scheduler.sweep() == []

    nudged = {c.params["channel"] for c in team.fake.calls_to("chat.postMessage") if c.ok}
    assert nudged == {TOKYO_USER, SLACK_ADMIN}
    looked_up = [str(c.params.get("user")) for c in team.fake.calls_to("users.info")]
    assert sorted(looked_up) == [SLACK_ADMIN, TOKYO_USER]


def test_no_nudge_long_after_the_reminder_time_but_the_next_day_it_comes(team: SlackBot) -> None:
    clock = Clock(datetime(2026, 3, 11, 23, 30, tzinfo=UTC))  # 19:30 in New York, 08:30 in Tokyo
    scheduler = nudging(team, clock)

    assert scheduler.sweep() == []
    clock.now = datetime(2026, 3, 12, 21, 1, tzinfo=UTC)  # Thursday 17:01 in New York
    assert scheduler.sweep() == ["posted", "posted"]
    assert [m["metadata"]["event_payload"]["key"] for m in dms(team, SLACK_ADMIN)] == [
        f"nudge:{T1}:{SLACK_ADMIN}:2026-03-12"]
    # the member logged on Wednesday, so on Thursday they are due too
    assert [m["metadata"]["event_payload"]["key"] for m in dms(team, SLACK_MEMBER)] == [
        f"nudge:{T1}:{SLACK_MEMBER}:2026-03-12"]


def test_logging_before_the_reminder_time_means_no_nudge(team: SlackBot) -> None:
    record(team.store, date(2026, 3, 11), SLACK_ADMIN, spend=50)
    clock = Clock(datetime(2026, 3, 11, 21, 1, tzinfo=UTC))
    scheduler = nudging(team, clock)

    assert scheduler.sweep() == []
    assert dms(team, SLACK_ADMIN) == []


def test_logging_yesterdays_numbers_today_also_means_no_nudge(team: SlackBot) -> None:
    team.store.clock = lambda: datetime(2026, 3, 11, 14, 0, tzinfo=UTC)  # 10:00 in New York
    record(team.store, date(2026, 3, 10), SLACK_ADMIN, spend=50)
    clock = Clock(datetime(2026, 3, 11, 21, 1, tzinfo=UTC))

    assert nudging(team, clock).sweep() == []
    assert dms(team, SLACK_ADMIN) == []


def test_the_bot_registers_the_nudge_sweep_and_the_button_opens_the_log_form(team: SlackBot) -> None:
    assert team.services.scheduler is not None
    assert {"digest", "alerts", "nudges"} <= set(team.services.scheduler.tasks)
    assert team.store.timers(T1)[("nudges", "")]  # a workspace gets its reminder timer when created

    team.action("open_log_form", user_id=SLACK_ADMIN, channel_id="D0001")

    _, view = opened_view(team)
    assert view["callback_id"] == "log_form"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("(revenue - spend)", "revenue minus spend"),
        ("(nps_promoters + nps_passives + nps_detractors)",
         "nps promoters plus nps passives plus nps detractors"),
        ("first(customers_lost, sum(opening(active_customers), new_customers) - active_customers)",
         "customers lost"),
        ("opening:active_customers", "active customers at the start"),
        ("paid:new_customers", "new customers from paid sources"),
        ("cpl", "CPL"),
    ],
)
def test_a_formula_part_is_named_in_words_never_as_formula_text(name: str, words: str) -> None:
    from bot.render.insights import short_name

    assert short_name(name) == words
