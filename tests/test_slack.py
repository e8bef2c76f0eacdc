"""End to end: the real WSGI app under waitress, a real SQLite file, a fake Slack Web API.

Every request is built and signed as Slack sends it (tests/slackreq.py), so Bolt's signature
check, body parsing and ack handling are exercised for real. Each test checks what the user
sees (the ack body, response_url posts, chat.*/views.* calls) and what is stored. The fixture
`slack_bot` (tests/conftest.py) fails any test that breaks a Block Kit limit. The clock is
fixed at Wednesday 2026-03-11 15:00 UTC (11:00 in New York, the workspace's time zone).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.app import entries, reports
from bot.app.context import open_context
from bot.render.kit import FOLD_LINES, rendered_lines
from kpis.periods import Period
from tests import slackreq
from tests.conftest import (
    SLACK_ADMIN,
    SLACK_MEMBER,
    SLACK_NOW,
    SLACK_OTHER_TEAM_USER,
    SlackBot,
    SlackReply,
    in_full,
    row_of,
    table_rows,
    texts,
)

TODAY = date(2026, 3, 11)
YESTERDAY = date(2026, 3, 10)
T1, T2 = "T0001", "T0002"


# -- helpers ------------------------------------------------------------------------------




def elements(obj: Any) -> dict[str, dict[str, Any]]:
    """Interactive elements (buttons etc.) of a message or view, by action_id."""
    found: dict[str, dict[str, Any]] = {}
    for block in obj.get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "action_id" in element:
                found[element["action_id"]] = element
    return found


def as_dict(value: Any) -> dict[str, Any]:
    """A view or blocks argument as the bot sent it (JSON body or form-encoded JSON string)."""
    return value if isinstance(value, dict) else json.loads(value)


def message_of(params: dict[str, Any]) -> dict[str, Any]:
    """text and blocks of a chat.* call, whether sent as JSON or form-encoded."""
    blocks = params.get("blocks") or []
    return {
        "text": params.get("text", ""),
        "blocks": blocks if isinstance(blocks, list) else json.loads(blocks),
    }


def csv_rows(content: bytes) -> list[tuple[Any, ...]]:
    """The rows of an exported CSV after its header, values read back as numbers."""
    header, *rows = csv.reader(io.StringIO(content.decode()))
    assert header == ["date", "metric", "value", "author", "source", "rep", "campaign", "product"]
    return [(d, m, float(v), *rest) for d, m, v, *rest in rows]


def stored(bot: SlackBot, team: str = T1) -> set[tuple[Any, ...]]:
    return {
        (e.metric, e.day, e.value, e.author, e.dims, e.origin)
        for e in bot.store.entries_between(team)
    }


def assert_nothing_stored(bot: SlackBot, team: str = T1) -> None:
    assert bot.store.entries_between(team) == []
    assert bot.store.history(team) == []


def seed(
    bot: SlackBot,
    day: date,
    team: str = T1,
    user: str = SLACK_ADMIN,
    tz: str = "America/New_York",
    **values: str,
) -> None:
    """Numbers stored straight through the use case (the workspace is created with `tz`)."""
    ctx = open_context(bot.store, team, user, SLACK_NOW, timezone=tz)
    entries.log_numbers(ctx, list(values.items()), day=day.isoformat(), origin="cli")


def wait_response(bot: SlackBot, reply: SlackReply, timeout: float = 5.0) -> dict[str, Any]:
    return bot.fake.wait_for(lambda: bot.responses(reply), timeout=timeout)[-1]


def opened_view(bot: SlackBot, index: int = -1, *, opens: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the bot sent to views.open, the view the fake returned) of the last open, once
    `opens` forms were opened (on a busy machine the ack may come before the open)."""
    def answered(fake: Any) -> list[Any] | None:
        calls = [c for c in fake.calls_to("views.open") if c.status]
        return calls if len(calls) >= opens else None

    call = bot.fake.wait_for(answered)[index]
    assert call.ok, call.response
    return as_dict(call.params["view"]), call.response["view"]


def assert_warning(reply: SlackReply, *needles: str) -> str:
    """A polite, ephemeral refusal on the ack itself, naming the problem (and the fix)."""
    assert reply.status == 200
    body = reply.json
    assert body.get("response_type", "ephemeral") == "ephemeral"
    assert body["text"].startswith(":warning:")
    shown = texts(body)
    for needle in needles:
        assert needle in shown, shown
    assert "Traceback" not in shown
    return shown


# -- every grammar row ------------------------------------------------------------------------


def test_help_shows_usage_with_examples(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("help")

    assert reply.status == 200
    body = reply.json
    assert body["text"]
    assert "/kpi report last-month" in texts(body)
    shown = texts(in_full(slack_bot, body))  # every command, behind Show all
    for example in (
        "/kpi log leads=12 spend=340",
        "/kpi report last-month",
        "/kpi undo",
        "/kpi export 90d",
        "/kpi tz America/Bogota",
        "1.5k",
    ):
        assert example in shown
    assert_nothing_stored(slack_bot)


def test_log_stores_values_and_replies_with_moved_kpis_and_undo(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("log leads=12 spend=$1,234 date=yesterday source=Facebook")

    assert reply.status == 200
    body = reply.json
    assert body.get("response_type", "ephemeral") == "ephemeral"
    shown = texts(body)
    assert "Stored for Tue 10 Mar 2026" in shown
    assert "*leads* 12" in shown and "*spend* $1,234.00" in shown
    assert "source=facebook" in shown
    assert "Cost per lead: n/a → *$102.83*" in shown
    undo = elements(body)["undo_last"]
    assert undo["text"]["text"] == "Undo"
    assert stored(slack_bot) == {
        ("leads", YESTERDAY, 12.0, SLACK_ADMIN, (("source", "facebook"),), "slack"),
        ("spend", YESTERDAY, 1234.0, SLACK_ADMIN, (("source", "facebook"),), "slack"),
    }
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.timezone == "America/New_York"


def test_logging_again_replaces_your_value_and_says_what_it_was(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=12")
    reply = slack_bot.command("log leads=1.5k")

    assert "*leads* 1,500 (was 12)" in texts(reply.json)
    assert stored(slack_bot) == {("leads", TODAY, 1500.0, SLACK_ADMIN, (), "slack")}


def test_a_sales_metric_logged_in_slack_is_the_loggers_own_unless_a_rep_is_named(
    slack_bot: SlackBot,
) -> None:
    reply = slack_bot.command("log shows=5 sales=2 leads=10", user_id=SLACK_MEMBER)

    shown = texts(reply.json)
    assert "(shows, sales for you as rep)" in shown, shown
    slack_bot.command("log shows=3 rep=<@U0003|ana>")
    slack_bot.command("log sales=1")
    assert stored(slack_bot) == {
        ("shows", TODAY, 5.0, SLACK_MEMBER, (("rep", SLACK_MEMBER),), "slack"),
        ("sales", TODAY, 2.0, SLACK_MEMBER, (("rep", SLACK_MEMBER),), "slack"),
        ("leads", TODAY, 10.0, SLACK_MEMBER, (), "slack"),
        ("shows", TODAY, 3.0, SLACK_ADMIN, (("rep", "U0003"),), "slack"),
        ("sales", TODAY, 1.0, SLACK_ADMIN, (("rep", SLACK_ADMIN),), "slack"),
    }
    again = slack_bot.command("log shows=6", user_id=SLACK_MEMBER)  # your own value, replaced
    assert "*shows* 6 (was 5)" in texts(again.json) and "for you as rep" in texts(again.json)
    ctx = open_context(slack_bot.store, T1, SLACK_ADMIN, SLACK_NOW, timezone="America/New_York")
    board = reports.report(ctx, Period.day(TODAY), ["close_rate"], by="rep")
    close = {g.value: (g.kpis["close_rate"].value if "close_rate" in g.kpis else None)
             for g in board.groups}
    assert close == {SLACK_MEMBER: 2 / 6, SLACK_ADMIN: None, "U0003": None}


@pytest.mark.parametrize("text", ["", "log", "  LOG  "])
def test_empty_text_or_log_alone_opens_the_form_for_today(slack_bot: SlackBot, text: str) -> None:
    trigger = slackreq.new_trigger_id()
    reply = slack_bot.command(text, trigger_id=trigger)

    assert reply.status == 200
    assert reply.body == b""
    sent, _ = opened_view(slack_bot)
    call = slack_bot.fake.calls_to("views.open")[-1]
    assert call.params["trigger_id"] == trigger
    assert sent["callback_id"] == "log_form"
    assert sent["title"]["text"] == "Log today's numbers"
    by_id = {b["block_id"]: b for b in sent["blocks"]}
    assert by_id["day"]["element"]["initial_date"] == "2026-03-11"
    assert {"m:leads", "m:spend", "m:bookings", "d:source", "d:rep", "d:campaign"} <= set(by_id)
    assert json.loads(sent["private_metadata"]) == {"channel": "C0001", "user": SLACK_ADMIN}
    assert slack_bot.responses(reply) == []
    assert_nothing_stored(slack_bot)


def _seed_report_data(bot: SlackBot) -> None:
    seed(bot, date(2026, 3, 10), leads="10", spend="500", new_customers="2", revenue="2000")
    seed(bot, date(2026, 3, 3), leads="5", spend="400", new_customers="1")
    seed(bot, date(2026, 2, 15), leads="20", spend="1000", new_customers="4")
    seed(bot, date(2026, 1, 20), leads="8", spend="600")


@pytest.mark.parametrize(
    ("text", "title", "present", "absent"),
    [
        (
            "report",
            "KPIs 2026-03-09..2026-03-11 so far vs 2026-03-02..2026-03-04",
            {"Cost per lead": ("$50.00", "$80.00", "−37.5%"), "Return on ad spend": ("4.00x", "n/a", "n/a")},
            [],
        ),
        (
            "report last-month",
            "KPIs 2026-02-01..2026-02-28 vs 2026-01-01..2026-01-31",
            {"Cost per lead": ("$50.00", "$75.00", "−33.3%")},
            [],
        ),
        (
            "report 30d cpl cac",
            "KPIs 2026-02-10..2026-03-11 so far vs 2026-01-11..2026-02-09",
            {"Cost per lead": ("$54.29", "$75.00", "−27.6%"),
             "Paid customer acquisition cost": ("$271.43", "n/a", "n/a")},
            ["Return on ad spend", "Lead-to-booking rate"],
        ),
        (
            "report 2026-03-01..2026-03-07",
            "KPIs 2026-03-01..2026-03-07 vs 2026-02-22..2026-02-28",
            {"Cost per lead": ("$80.00", "n/a", "n/a")},
            [],
        ),
    ],
)
def test_report_compares_with_the_previous_period_and_offers_share(
    slack_bot: SlackBot, text: str, title: str, present: dict[str, tuple[str, ...]], absent: list[str]
) -> None:
    _seed_report_data(slack_bot)
    before = stored(slack_bot)

    reply = slack_bot.command(text)

    assert reply.status == 200
    body = reply.json
    assert body["text"] == title
    assert body.get("response_type", "ephemeral") == "ephemeral"
    shown = texts(body)
    for label, figures in present.items():
        assert row_of(body, label) == figures
    for needle in absent:
        assert needle not in shown
    assert table_rows(body)[0] == ("KPI", "Value", "Was", "Change")
    # a phone shows it without "see more": the rest of the rows are behind Show all
    assert rendered_lines(body["blocks"]) <= FOLD_LINES
    share = elements(body)["share_report"]
    assert share["text"]["text"] == "Share in channel"
    # the button carries the range asked for, so a share later is compared like for like then
    assert json.loads(share["value"])["range"].startswith(title.split()[1][:10])
    assert stored(slack_bot) == before
    assert slack_bot.fake.calls_to("chat.postMessage") == []


def test_report_without_numbers_says_how_to_log(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("report")

    assert "No numbers logged for 2026-03-09..2026-03-11 yet" in texts(reply.json)
    assert_nothing_stored(slack_bot)


def _share_value(bot: SlackBot, text: str = "report 30d cpl") -> str:
    reply = bot.command(text)
    return str(elements(reply.json)["share_report"]["value"])


def test_share_posts_the_report_to_the_channel(slack_bot: SlackBot) -> None:
    _seed_report_data(slack_bot)
    before = stored(slack_bot)
    value = _share_value(slack_bot)

    click = slack_bot.action("share_report", value, is_ephemeral=True)

    assert click.status == 200
    posted = slack_bot.fake.wait_for(lambda f: f.posted_messages("C0001"))
    assert len(posted) == 1
    message = posted[0]
    assert message["text"] == (
        f"<@{SLACK_ADMIN}> shared: KPIs 2026-02-10..2026-03-11 so far vs 2026-01-11..2026-02-09"
    )
    blocks = message_of(message)
    assert row_of(blocks, "Cost per lead")[0] == "$54.29"
    assert "Paid customer acquisition cost" not in texts(blocks)
    assert f"Shared by <@{SLACK_ADMIN}>" in texts(blocks)
    assert "share_report" not in elements(blocks)
    # the clicker's private copy is replaced: "Shared" where its Share button was
    private = wait_response(slack_bot, click)
    assert private.get("replace_original") is True
    assert "share_report" not in elements(private)
    assert "Shared in <#C0001>" in texts(private)
    assert row_of(private, "Cost per lead")[0] == "$54.29"
    assert stored(slack_bot) == before


@pytest.mark.parametrize("asked", ["report today", "report yesterday", "report 2026-03-10",
                                   "report week", "report 2026-03-01..2026-03-07"])
def test_share_works_for_every_period_one_day_included(slack_bot: SlackBot, asked: str) -> None:
    _seed_report_data(slack_bot)
    slack_bot.command("log leads=4 spend=100")
    reply = slack_bot.command(asked)
    value = elements(reply.json)["share_report"]["value"]

    click = slack_bot.action("share_report", value, is_ephemeral=True)

    posted = slack_bot.fake.wait_for(lambda f: f.posted_messages("C0001"))
    assert len(posted) == 1
    assert posted[0]["text"] == f"<@{SLACK_ADMIN}> shared: {reply.json['text']}"
    channel_rows, private_rows = table_rows(message_of(posted[0])), table_rows(reply.json)
    # the same report; the channel's copy gives a line to who shared it
    common = min(len(channel_rows), len(private_rows))
    assert common >= 3 and channel_rows[:common] == private_rows[:common]
    assert wait_response(slack_bot, click).get("replace_original") is True


def test_show_all_answers_every_row_only_to_the_clicker(slack_bot: SlackBot) -> None:
    _seed_report_data(slack_bot)
    reply = slack_bot.command("report")
    show_all = elements(reply.json)["show_all"]
    shown_rows = len(table_rows(reply.json)) - 1

    click = slack_bot.action("show_all", show_all["value"], is_ephemeral=True)

    full = wait_response(slack_bot, click)
    assert full.get("response_type") == "ephemeral"
    rows = table_rows(full)[1:]
    assert show_all["text"]["text"] == f"Show all {len(rows)} rows"
    assert len(rows) > shown_rows
    assert {"Cost per lead", "Leads", "New customers"} <= {r[0] for r in rows}
    assert "unlikely to be noise" in texts(full)  # the legend, where there is room
    assert slack_bot.fake.calls_to("chat.postMessage") == []


def test_report_by_source_ranks_each_source_and_shares_the_same_breakdown(slack_bot: SlackBot) -> None:
    slack_bot.command("log spend=300 leads=30 source=facebook")
    slack_bot.command("log spend=100 leads=5 source=google")
    slack_bot.command("log leads=12 source=seo")
    slack_bot.command("log leads=2")
    before = stored(slack_bot)

    reply = slack_bot.command("report today cpl leads by source")

    shown = texts(reply.json)
    assert "By source, best Cost per lead first" in shown
    rows = table_rows(reply.json)
    assert rows[0] == ("Source", "Cost per lead", "Change", "Leads")
    assert [r[0] for r in rows[1:]] == ["facebook", "google", "seo", "no source (untagged)"]
    assert rows[1] == ("facebook", "$10.00", "n/a", "30")
    assert sum(int(r[3]) for r in rows[1:]) == 49  # the groups add up to the team's total
    assert stored(slack_bot) == before
    value = json.loads(elements(reply.json)["share_report"]["value"])
    assert value["by"] == "source"
    slack_bot.action("share_report", json.dumps(value), is_ephemeral=True)
    posted = slack_bot.fake.wait_for(lambda f: f.posted_messages("C0001"))
    assert table_rows(message_of(posted[0])) == rows


def test_report_of_a_raw_metric_and_of_one_source(slack_bot: SlackBot) -> None:
    slack_bot.command("log spend=300 leads=30 source=facebook")
    slack_bot.command("log leads=12 source=seo")

    leads = slack_bot.command("report today leads").json
    assert row_of(leads, "Leads")[0] == "42" and "Cost per lead" not in texts(leads)
    filtered = slack_bot.command("report today source=facebook")
    assert filtered.json["text"].endswith("· source=facebook")
    assert row_of(filtered.json, "Leads")[0] == "30"
    refused = texts(slack_bot.command("report today lead").json)
    assert "I don't know a KPI or metric called `lead`" in refused and "leads" in refused


def test_share_joins_a_public_channel_it_is_not_in(slack_bot: SlackBot) -> None:
    _seed_report_data(slack_bot)
    slack_bot.fake.add_channel("C0001", name="general", is_member=False)
    value = _share_value(slack_bot, "report")
    slack_bot.fake.error("chat.postMessage", "not_in_channel")

    click = slack_bot.action("share_report", value)

    assert click.status == 200
    slack_bot.fake.wait_for(lambda f: f.posted_messages("C0001"))
    methods = [
        c.method
        for c in slack_bot.fake.calls
        if c.method in ("chat.postMessage", "conversations.join")
    ]
    assert methods == ["chat.postMessage", "conversations.join", "chat.postMessage"]
    assert slack_bot.fake.calls_to("conversations.join")[0].params["channel"] == "C0001"
    assert slack_bot.fake.channels["C0001"]["is_member"] is True
    assert "Shared in <#C0001>" in texts(wait_response(slack_bot, click))


def test_share_in_a_private_channel_it_cannot_post_in_says_to_invite_it(
    slack_bot: SlackBot,
) -> None:
    _seed_report_data(slack_bot)
    value = _share_value(slack_bot, "report")
    slack_bot.fake.error("chat.postMessage", "channel_not_found")

    click = slack_bot.action("share_report", value)

    answer = wait_response(slack_bot, click)
    assert "/invite @KPI Bot" in answer["text"]
    assert slack_bot.fake.posted_messages() == []


def test_metrics_lists_tracked_metrics_and_kpis(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("metrics")

    assert "*Tracked metrics* (packs: marketing, sales" in texts(reply.json)
    assert "`leads`, " in texts(reply.json) and "`cpl`" in texts(reply.json)
    shown = texts(in_full(slack_bot, reply.json))  # labels and formulas behind Show all
    assert "`leads` " in shown and "`spend` " in shown
    assert "`cpl` Cost per lead = `spend / leads`" in shown
    assert_nothing_stored(slack_bot)


def test_define_by_an_admin_adds_a_kpi_that_reports_use(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("define lead_value = revenue / leads")

    assert "Defined `lead_value` = `revenue / leads`" in texts(reply.json)
    catalogue = slack_bot.store.catalogue(T1)
    assert catalogue.kpis["lead_value"].custom
    assert "`lead_value`" in texts(in_full(slack_bot, slack_bot.command("metrics").json))
    slack_bot.command("log leads=10 revenue=2500")
    report = texts(slack_bot.command("report today lead_value").json)
    assert "250.00" in report


def test_define_by_a_member_is_refused_naming_who_can(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("define lead_value = revenue / leads", user_id=SLACK_MEMBER)

    shown = assert_warning(
        reply, "Only admins can define KPIs", "Workspace admins and owners", "<@UOPS1>"
    )
    assert "KPIBOT_ADMINS" in shown
    assert "lead_value" not in slack_bot.store.catalogue(T1).kpis


def test_define_by_an_operator_listed_in_kpibot_admins_works(slack_bot: SlackBot) -> None:
    slack_bot.fake.add_user("UOPS1", tz="America/New_York")
    reply = slack_bot.command("define lead_value = revenue / leads", user_id="UOPS1")

    assert "Defined `lead_value`" in texts(reply.json)
    assert "lead_value" in slack_bot.store.catalogue(T1).kpis


def test_define_with_a_bad_formula_points_at_it_and_stores_nothing(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("define lead_value = revenue / leeds")

    shown = assert_warning(reply, "unknown name `leeds` at position 11", "`leads`")
    assert "revenue / leeds\n          ^" in shown
    assert "lead_value" not in slack_bot.store.catalogue(T1).kpis
    assert_nothing_stored(slack_bot)


def test_history_lists_recent_changes_with_their_authors(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=12 spend=300")
    slack_bot.command("log leads=14", user_id=SLACK_MEMBER)
    before = stored(slack_bot)

    everything = texts(slack_bot.command("history").json)
    leads_only = texts(slack_bot.command("history leads").json)

    assert "Recent entries" in everything
    assert f"`2026-03-11` *leads*: — → 14 by <@{SLACK_MEMBER}> via slack" in everything
    assert f"`2026-03-11` *spend*: — → $300.00 by <@{SLACK_ADMIN}> via slack" in everything
    assert "*spend*" not in leads_only and leads_only.count("*leads*") == 2
    assert stored(slack_bot) == before
    assert_warning(slack_bot.command("history leeds"), "Did you mean `leads`?")


def test_undo_command_takes_back_your_last_change_step_by_step(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=12")
    slack_bot.command("log leads=15")

    first = texts(slack_bot.command("undo").json)
    assert "Undone: leads for 2026-03-11 back to 12" in first
    assert {e[:4] for e in stored(slack_bot)} == {("leads", TODAY, 12.0, SLACK_ADMIN)}

    second = texts(slack_bot.command("undo").json)
    assert "back to nothing" in second
    assert stored(slack_bot) == set()
    assert_warning(slack_bot.command("undo"), "nothing of yours to undo")
    assert "_(undone)_" in texts(slack_bot.command("history").json)


def test_undo_only_touches_your_own_changes(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=12")
    assert_warning(slack_bot.command("undo", user_id=SLACK_MEMBER), "nothing of yours to undo")
    assert stored(slack_bot) == {("leads", TODAY, 12.0, SLACK_ADMIN, (), "slack")}


def test_undo_button_takes_back_the_log(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("log leads=12 spend=300")
    undo = elements(reply.json)["undo_last"]

    click = slack_bot.action("undo_last", undo.get("value"), is_ephemeral=True)

    assert click.status == 200
    answer = wait_response(slack_bot, click)
    assert "Undone:" in answer["text"] and "leads for 2026-03-11 back to nothing" in answer["text"]
    # the result takes the log reply's place: its Undo cannot be clicked twice
    assert answer.get("replace_original") is True and "undo_last" not in elements(answer)
    assert stored(slack_bot) == set()


def test_undo_button_on_an_older_reply_takes_back_that_log(slack_bot: SlackBot) -> None:
    first = slack_bot.command("log leads=12")
    slack_bot.command("log spend=300")
    undo = elements(first.json)["undo_last"]

    click = slack_bot.action("undo_last", undo.get("value"), is_ephemeral=True)

    assert "leads for 2026-03-11 back to nothing" in wait_response(slack_bot, click)["text"]
    assert stored(slack_bot) == {("spend", TODAY, 300.0, SLACK_ADMIN, (), "slack")}

    again = slack_bot.action("undo_last", undo.get("value"), is_ephemeral=True)

    stale = wait_response(slack_bot, again)
    assert "already undone" in stale["text"] and stale.get("replace_original") is False
    assert stored(slack_bot) == {("spend", TODAY, 300.0, SLACK_ADMIN, (), "slack")}


def test_export_uploads_the_csv_through_the_external_upload_flow(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=12 spend=$300 source=facebook date=yesterday")
    slack_bot.command("log leads=3", user_id=SLACK_MEMBER)
    seed(slack_bot, date(2025, 11, 1), leads="99")  # older than the default 90 days

    reply = slack_bot.command("export")

    text = texts(reply.json)
    assert "Sent you `kpi-export-2025-12-12-2026-03-11.csv` (3 entries) in a direct message" in text
    assert reply.json.get("response_type", "ephemeral") == "ephemeral"
    methods = [c.method for c in slack_bot.fake.calls if c.method.startswith(("files.", "upload"))]
    assert methods == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    assert slack_bot.fake.calls_to("files.upload") == []
    # everyone's entries never go to the channel: only to the asker's direct conversation
    assert slack_bot.fake.uploaded_files("C0001") == []
    (opened,) = slack_bot.fake.calls_to("conversations.open")
    assert opened.params["users"] == SLACK_ADMIN
    (shared,) = slack_bot.fake.uploaded_files(opened.response["channel"]["id"])
    assert shared["name"] == "kpi-export-2025-12-12-2026-03-11.csv"
    assert csv_rows(slack_bot.fake.uploads[shared["id"]]) == [
        ("2026-03-10", "leads", 12.0, SLACK_ADMIN, "facebook", "", "", ""),
        ("2026-03-10", "spend", 300.0, SLACK_ADMIN, "facebook", "", "", ""),
        ("2026-03-11", "leads", 3.0, SLACK_MEMBER, "", "", "", ""),
    ]
    assert len(stored(slack_bot)) == 4


def _dm_of(bot: SlackBot, user: str) -> str:
    """The direct conversation the bot opened with `user`."""
    (opened,) = [c for c in bot.fake.calls_to("conversations.open") if c.params.get("users") == user]
    return str(opened.response["channel"]["id"])


def test_export_of_a_range_only_has_that_range(slack_bot: SlackBot) -> None:
    seed(slack_bot, date(2026, 3, 1), leads="1")
    seed(slack_bot, date(2026, 3, 5), leads="2")

    reply = slack_bot.command("export 2026-03-04..2026-03-06")

    assert "(1 entries)" in texts(reply.json)
    (shared,) = slack_bot.fake.uploaded_files(_dm_of(slack_bot, SLACK_ADMIN))
    assert csv_rows(slack_bot.fake.uploads[shared["id"]]) == [
        ("2026-03-05", "leads", 2.0, SLACK_ADMIN, "", "", "", "")
    ]


def test_tz_sets_the_workspace_time_zone(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("tz Pacific/Auckland")

    assert "Time zone set to `Pacific/Auckland`" in texts(reply.json)
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.timezone == "Pacific/Auckland"
    slack_bot.command("log leads=2")
    assert stored(slack_bot) == {("leads", date(2026, 3, 12), 2.0, SLACK_ADMIN, (), "slack")}


def test_tz_with_a_typo_suggests_the_real_zone(slack_bot: SlackBot) -> None:
    assert_warning(
        slack_bot.command("tz America/Bogata"),
        "`America/Bogata` is not a time zone",
        "Did you mean `America/Bogota`?",
    )
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.timezone == "America/New_York"


def test_tz_by_a_member_is_refused(slack_bot: SlackBot) -> None:
    assert_warning(
        slack_bot.command("tz Europe/Madrid", user_id=SLACK_MEMBER),
        "Only admins can change the time zone",
        "<@UOPS1>",
    )
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.timezone == "America/New_York"


def test_settings_opens_the_settings_form_for_admins_and_saves_it(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("settings")

    assert reply.status == 200 and reply.body == b""
    sent, view = opened_view(slack_bot)
    assert sent["callback_id"] == "settings_form"
    by_id = {b["block_id"]: b for b in sent["blocks"]}
    assert by_id["timezone"]["element"]["initial_value"] == "America/New_York"
    assert [o["value"] for o in by_id["packs"]["element"]["initial_options"]] == [
        "marketing",
        "sales",
    ]

    done = slack_bot.submit(
        view,
        {
            "packs": {"value": ["marketing", "finance"]},
            "currency": {"value": "EUR"},
            "timezone": {"value": "Europe/Madrid"},
        },
    )

    assert done.status == 200 and done.body == b""
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None
    assert (workspace.packs, workspace.currency, workspace.timezone) == (
        ("marketing", "finance"),
        "EUR",
        "Europe/Madrid",
    )


def test_settings_form_refuses_a_bad_time_zone_on_the_field(slack_bot: SlackBot) -> None:
    slack_bot.command("settings")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(
        view,
        {
            "packs": {"value": ["sales"]},
            "currency": {"value": "USD"},
            "timezone": {"value": "Europe/Madird"},
        },
    )

    assert done.status == 200
    body = done.json
    assert body["response_action"] == "errors"
    assert "Did you mean `Europe/Madrid`?" in body["errors"]["timezone"]
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.packs == ("marketing", "sales")


def test_settings_for_a_member_explains_who_can(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("settings", user_id=SLACK_MEMBER)

    assert reply.status == 200
    answer = wait_response(slack_bot, reply)
    assert "Only admins can change settings" in answer["text"] and "<@UOPS1>" in answer["text"]
    assert slack_bot.fake.calls_to("views.open") == []


# -- error paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("reprot", ["I don't know `reprot`", "Did you mean `report`?"]),
        ("leads=12", ["start with `log`"]),
        ("log leeds=3", ["`leeds`", "Did you mean `leads`?"]),
        ("log leads=abc", ["`abc` is not a number"]),
        ("log leads=3 spend=lots", ["`lots` is not a number"]),
        ("log leads=-3", ["leads cannot be negative"]),
        ("log leads=2.5", ["leads is a count"]),
        ("log leads=3 date=2026-02-30", ["2026-02-30 is not a date", "February 2026 has 28 days"]),
        ("log leads=3 date=2026-03-12", ["2026-03-12 is in the future", "today is 2026-03-11"]),
        ("log cpl=30", ["`cpl` is a KPI", "spend"]),
        ("log leads=3 sorce=facebook", ["Did you mean `source`?"]),
        ("report 30d cpll", ["Did you mean `cpl`?"]),
        ("report 400d", ["`400d` is not a period I can use", "1 to 366 days"]),
        ("report last-mnth", ["Did you mean `last-month`?"]),
        ("tz", ["Which time zone?"]),
    ],
)
def test_bad_input_is_answered_with_the_fix_and_stores_nothing(
    slack_bot: SlackBot, text: str, needles: list[str]
) -> None:
    reply = slack_bot.command(text)

    assert_warning(reply, *needles)
    assert_nothing_stored(slack_bot)
    assert slack_bot.responses(reply) == []


def test_a_40_kb_command_is_refused_politely(slack_bot: SlackBot) -> None:
    text = "log " + " ".join(f"leads={i}" for i in range(5000))
    assert len(text) > 40_000

    reply = slack_bot.command(text)

    assert reply.seconds < 3
    shown = assert_warning(reply, "That command is too long", "Split it")
    assert len(shown) < 1000
    assert_nothing_stored(slack_bot)


# -- the log form -----------------------------------------------------------------------------


def test_log_form_round_trip_stores_and_confirms_with_undo(slack_bot: SlackBot) -> None:
    slack_bot.command("log")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(
        view,
        {
            "m:leads": {"value": "12"},
            "m:spend": {"value": "340.5"},
            "d:source": {"value": " Google "},
            "d:rep": {"value": SLACK_MEMBER},
        },
    )

    assert done.status == 200 and done.body == b""
    call = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))[0]
    assert call.ok
    assert call.params["channel"] == "C0001" and call.params["user"] == SLACK_ADMIN
    message = message_of(call.params)
    assert "Stored for Wed 11 Mar 2026" in message["text"]
    assert "Cost per lead: n/a → *$28.38*" in texts(message)
    assert "undo_last" in elements(message)
    dims = (("rep", SLACK_MEMBER), ("source", "google"))
    assert stored(slack_bot) == {
        ("leads", TODAY, 12.0, SLACK_ADMIN, dims, "form"),
        ("spend", TODAY, 340.5, SLACK_ADMIN, dims, "form"),
    }


def test_log_form_for_an_earlier_day(slack_bot: SlackBot) -> None:
    slack_bot.command("")
    _, view = opened_view(slack_bot)

    slack_bot.submit(view, {"day": {"value": "2026-03-02"}, "m:bookings": {"value": "4"}})

    slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))
    assert stored(slack_bot) == {("bookings", date(2026, 3, 2), 4.0, SLACK_ADMIN, (("rep", SLACK_ADMIN),), "form")}


def test_log_form_opened_in_a_dm_confirms_in_the_app_dm(slack_bot: SlackBot) -> None:
    slack_bot.command("log", channel_id="D0001")
    _, view = opened_view(slack_bot)

    slack_bot.submit(view, {"m:leads": {"value": "1"}})

    posted = slack_bot.fake.wait_for(lambda f: f.posted_messages(SLACK_ADMIN))
    assert "Stored for" in posted[0]["text"]
    assert slack_bot.fake.calls_to("chat.postEphemeral") == []


@pytest.mark.parametrize(
    ("values", "block_id", "needle"),
    [
        (
            {"m:leads": {"value": "-3"}, "m:spend": {"value": "100"}},
            "m:leads",
            "cannot be negative",
        ),
        ({"m:spend": {"value": "abc"}, "m:leads": {"value": "4"}}, "m:spend", "not a number"),
        ({"m:leads": {"value": "1.5"}}, "m:leads", "whole number"),
        ({"day": {"value": "2026-03-20"}, "m:leads": {"value": "4"}}, "day", "in the future"),
        ({}, "m:spend", "Enter at least one number"),
    ],
)
def test_log_form_errors_point_at_the_field_and_store_nothing(
    slack_bot: SlackBot, values: dict[str, Any], block_id: str, needle: str
) -> None:
    slack_bot.command("log")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(view, values)

    assert done.status == 200
    body = done.json
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == [block_id]
    assert needle in body["errors"][block_id]
    assert_nothing_stored(slack_bot)
    assert slack_bot.fake.calls_to("chat.postEphemeral") == []


# -- App Home ---------------------------------------------------------------------------------


def _home_opened(bot: SlackBot, user: str = SLACK_ADMIN, team: str = T1) -> dict[str, Any]:
    before = len(bot.fake.calls_to("views.publish"))
    reply = bot.event(
        {"type": "app_home_opened", "user": user, "channel": "D0001", "tab": "home"}, team_id=team
    )
    assert reply.status == 200
    # a call is recorded when it arrives; wait for the fake's answer too
    call = bot.fake.wait_for(lambda f: [c for c in f.calls_to("views.publish")[before:] if c.status])[0]
    assert call.ok and call.params["user_id"] == user
    return as_dict(call.params["view"])


def test_app_home_shows_this_week_and_what_is_missing_today(slack_bot: SlackBot) -> None:
    seed(slack_bot, TODAY, leads="10", spend="500")
    seed(slack_bot, date(2026, 3, 4), leads="5", spend="500")

    view = _home_opened(slack_bot)

    shown = texts(view)
    assert view["type"] == "home"
    assert "This week" in shown
    assert "*Cost per lead*: $50.00  _(was $100.00, −50.0%)_" in shown
    assert "2026-03-09..2026-03-11 so far against 2026-03-02..2026-03-04" in shown
    missing = next(line for line in shown.splitlines() if "Still missing today" in line)
    assert "`bookings`" in missing and "`leads`" not in missing and "`spend`" not in missing
    buttons = elements(view)
    assert buttons["open_log_form"]["text"]["text"] == "Log today's numbers"
    assert "open_settings" in buttons
    assert len(stored(slack_bot)) == 4


def test_app_home_for_a_member_has_no_settings_and_its_button_opens_the_form(
    slack_bot: SlackBot,
) -> None:
    view = _home_opened(slack_bot, user=SLACK_MEMBER)

    assert "open_settings" not in elements(view)
    assert "Workspace admins and owners" in texts(view)
    assert "No KPIs this week yet" in texts(view)

    published = slack_bot.fake.home_views[SLACK_MEMBER]
    click = slack_bot.action("open_log_form", block_id="home", view=published, user_id=SLACK_MEMBER)
    assert click.status == 200
    sent, _ = opened_view(slack_bot)
    assert sent["callback_id"] == "log_form"
    assert_nothing_stored(slack_bot)


def test_app_home_settings_button_opens_the_settings_form(slack_bot: SlackBot) -> None:
    _home_opened(slack_bot)
    published = slack_bot.fake.home_views[SLACK_ADMIN]

    slack_bot.action("open_settings", block_id="admin", view=published)

    sent, _ = opened_view(slack_bot)
    assert sent["callback_id"] == "settings_form"


# -- new workspaces and time zones -------------------------------------------------------------


def test_a_new_workspace_takes_the_first_users_time_zone(slack_bot: SlackBot) -> None:
    slack_bot.fake.add_user(SLACK_ADMIN, tz="Pacific/Auckland", is_admin=True)

    slack_bot.command("log")

    sent, _ = opened_view(slack_bot)
    day = next(b for b in sent["blocks"] if b["block_id"] == "day")
    assert day["element"]["initial_date"] == "2026-03-12"  # already Thursday in Auckland
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.timezone == "Pacific/Auckland"
    reply = slack_bot.command("log leads=4")
    assert "Stored for Thu 12 Mar 2026" in reply.json["text"]
    assert stored(slack_bot) == {("leads", date(2026, 3, 12), 4.0, SLACK_ADMIN, (), "slack")}
    # Later users don't move it.
    slack_bot.command("log spend=1", user_id=SLACK_MEMBER)
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.timezone == "Pacific/Auckland"


def test_a_new_workspace_falls_back_to_utc_when_users_info_fails(slack_bot: SlackBot) -> None:
    slack_bot.fake.error("users.info", "user_not_found")

    reply = slack_bot.command("log leads=4")

    assert "Stored for Wed 11 Mar 2026" in reply.json["text"]
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and workspace.timezone == "UTC"


# -- security ---------------------------------------------------------------------------------


def _log_body() -> bytes:
    return slackreq.slash_command_body("log leads=5")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: slackreq.sign("not-the-secret", body), id="forged"),
        pytest.param(lambda body: {"Content-Type": slackreq.FORM_TYPE}, id="missing-headers"),
        pytest.param(
            lambda body: {
                **slackreq.sign("e2e-signing-secret", body),
                "X-Slack-Signature": "v0=" + "0" * 64,
            },
            id="bad-digest",
        ),
        pytest.param(
            lambda body: slackreq.sign(
                "e2e-signing-secret", body, timestamp=int(time.time()) - 301
            ),
            id="stale",
        ),
        pytest.param(
            lambda body: slackreq.sign("e2e-signing-secret", body + b"&x=1"), id="body-tampered"
        ),
    ],
)
def test_unsigned_or_forged_requests_get_401_and_change_nothing(
    slack_bot: SlackBot, headers: Any
) -> None:
    body = _log_body()

    reply = slack_bot.post(body, headers(body))

    assert reply.status == 401
    assert reply.json == {"error": "invalid request"}
    assert_nothing_stored(slack_bot)
    assert slack_bot.store.workspace(T1) is None
    assert slack_bot.fake.calls == []


def test_a_request_signed_4_minutes_ago_is_still_accepted(slack_bot: SlackBot) -> None:
    body = _log_body()

    reply = slack_bot.post(
        body, slackreq.sign("e2e-signing-secret", body, timestamp=int(time.time()) - 240)
    )

    assert reply.status == 200
    assert len(stored(slack_bot)) == 1


def test_url_verification_echoes_the_challenge(slack_bot: SlackBot) -> None:
    reply = slack_bot.post(
        slackreq.url_verification_body("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    )

    assert reply.status == 200
    assert reply.json == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    forged = slackreq.url_verification_body("x")
    assert slack_bot.post(forged, slackreq.sign("wrong", forged)).status == 401


# -- two workspaces on one bot ----------------------------------------------------------------


def test_two_workspaces_never_see_each_others_numbers(slack_bot: SlackBot) -> None:
    other = {"team_id": T2, "user_id": SLACK_OTHER_TEAM_USER, "channel_id": "C0100"}
    slack_bot.command("log leads=12 spend=600 source=secret-campaign")
    slack_bot.command("log leads=3 spend=90", **other)

    body_1, body_2 = slack_bot.command("report").json, slack_bot.command("report", **other).json
    report_1, report_2 = texts(body_1), texts(body_2)
    assert row_of(body_1, "Cost per lead")[0] == "$50.00" and "$30.00" not in report_1
    assert row_of(body_2, "Cost per lead")[0] == "$30.00" and "$50.00" not in report_2

    history_2 = texts(slack_bot.command("history", **other).json)
    assert f"<@{SLACK_OTHER_TEAM_USER}>" in history_2
    assert (
        SLACK_ADMIN not in history_2
        and "secret-campaign" not in history_2
        and "600" not in history_2
    )

    slack_bot.command("export", **other)
    (csv_file,) = slack_bot.fake.uploaded_files(_dm_of(slack_bot, SLACK_OTHER_TEAM_USER))
    assert csv_rows(slack_bot.fake.uploads[csv_file["id"]]) == [
        ("2026-03-11", "leads", 3.0, SLACK_OTHER_TEAM_USER, "", "", "", ""),
        ("2026-03-11", "spend", 90.0, SLACK_OTHER_TEAM_USER, "", "", "", ""),
    ]

    home = texts(_home_opened(slack_bot, user=SLACK_OTHER_TEAM_USER, team=T2))
    assert "*Cost per lead*: $30.00" in home and "$50.00" not in home

    # The second workspace took its own first user's time zone; nothing leaked either way.
    workspace_2 = slack_bot.store.workspace(T2)
    assert workspace_2 is not None and workspace_2.timezone == "Europe/Madrid"
    assert {e.author for e in slack_bot.store.entries_between(T1)} == {SLACK_ADMIN}
    assert {e.author for e in slack_bot.store.entries_between(T2)} == {SLACK_OTHER_TEAM_USER}
    # Undo in one workspace does not touch the other.
    slack_bot.command("undo", **other)
    assert slack_bot.store.entries_between(T2) == []
    assert len(slack_bot.store.entries_between(T1)) == 2


# -- slowness and failures ----------------------------------------------------------------------


def test_slow_users_info_for_a_new_workspace_still_acks_in_time(slack_bot: SlackBot) -> None:
    slack_bot.fake.delay("users.info", 4)

    reply = slack_bot.command("log leads=7")

    assert reply.status == 200
    assert reply.seconds < 3
    assert "Working on it" in reply.json["text"]
    late = wait_response(slack_bot, reply, timeout=10)
    assert "Stored for Wed 11 Mar 2026" in late["text"]
    assert "undo_last" in elements(late)
    assert stored(slack_bot) == {("leads", TODAY, 7.0, SLACK_ADMIN, (), "slack")}


def test_a_slow_database_still_acks_in_time(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack_bot.command("help")
    record = slack_bot.store.record_in_period  # what a log stores through

    def slow_record(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3)
        return record(*args, **kwargs)

    monkeypatch.setattr(slack_bot.store, "record_in_period", slow_record)

    reply = slack_bot.command("log spend=250")

    assert reply.seconds < 3
    assert "Working on it" in reply.json["text"]
    late = wait_response(slack_bot, reply, timeout=10)
    assert "*spend* $250.00" in texts(late)
    assert stored(slack_bot) == {("spend", TODAY, 250.0, SLACK_ADMIN, (), "slack")}


def test_a_database_outage_gets_a_busy_answer(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    slack_bot.command("help")

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(slack_bot.store, "record_in_period", down)

    reply = slack_bot.command("log leads=2")

    assert reply.status == 200
    assert "database is not answering" in reply.json["text"]
    assert "disk I/O" not in reply.body.decode()


def test_a_listener_bug_gets_an_apology_with_an_error_id(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail xoxb-1234")

    monkeypatch.setattr(reports, "report", boom)

    reply = slack_bot.command("report")

    assert reply.status == 200
    raw = reply.body.decode()
    assert "Sorry, something went wrong on our side" in reply.json["text"]
    assert re.search(r"error id: `[0-9a-f]{8}`", reply.json["text"])
    for leak in ("Traceback", "RuntimeError", "secret internal detail", "xoxb"):
        assert leak not in raw


def test_a_bug_behind_a_button_gets_an_apology_too(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed_report_data(slack_bot)
    value = _share_value(slack_bot, "report")
    monkeypatch.setattr(reports, "report", lambda *a, **k: 1 / 0)

    click = slack_bot.action("share_report", value)

    answer = wait_response(slack_bot, click)
    assert "Sorry, something went wrong" in answer["text"]
    assert "ZeroDivisionError" not in json.dumps(answer)
    assert slack_bot.fake.posted_messages() == []


def test_a_failed_views_open_still_answers_the_user(slack_bot: SlackBot) -> None:
    slack_bot.fake.error("views.open", "expired_trigger_id")

    reply = slack_bot.command("log")

    assert reply.status == 200
    answer = wait_response(slack_bot, reply)
    assert answer["text"]
    assert "Traceback" not in json.dumps(answer)


# -- operations -------------------------------------------------------------------------------


def test_healthz_answers_ok(slack_bot: SlackBot) -> None:
    status, headers, body = slack_bot.get("/healthz")

    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"status": "ok"}


def test_metrics_are_prometheus_text(slack_bot: SlackBot) -> None:
    slack_bot.command("help")
    slack_bot.command("log leads=1")

    status, headers, body = slack_bot.get("/metrics")

    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert 'kpibot_requests_total{kind="command"} 2.0' in text
    assert "kpibot_ack_seconds_count 2.0" in text
    assert "kpibot_ack_seconds_bucket" in text
    assert 'kpibot_entries_logged_total{origin="slack"} 1.0' in text


def slow_down_catalogue(bot: SlackBot, monkeypatch: pytest.MonkeyPatch, seconds: float = 3) -> None:
    """Every read of the catalogue (alone, or with the workspace as a request opens it) takes
    `seconds`: a database slower than Slack's window."""
    for name in ("catalogue", "workspace_and_catalogue"):
        read = getattr(bot.store, name)

        def slow(*args: Any, _read: Any = read, **kwargs: Any) -> Any:
            time.sleep(seconds)
            return _read(*args, **kwargs)

        monkeypatch.setattr(bot.store, name, slow)


def test_a_slow_database_still_acks_the_log_form_in_time(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack_bot.command("log")
    _, view = opened_view(slack_bot)
    slow_down_catalogue(slack_bot, monkeypatch)

    done = slack_bot.submit(view, {"m:leads": {"value": "6"}})

    assert done.status == 200
    assert done.seconds < 3
    call = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"), timeout=15)[0]
    assert "Stored for Wed 11 Mar 2026" in call.params["text"]
    assert stored(slack_bot) == {("leads", TODAY, 6.0, SLACK_ADMIN, (), "form")}


def test_a_slow_upload_still_acks_the_export_in_time(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=5")
    slack_bot.fake.delay("files.completeUploadExternal", 3)

    reply = slack_bot.command("export")

    assert reply.seconds < 3
    assert "Working on it" in reply.json["text"]
    late = wait_response(slack_bot, reply, timeout=10)
    assert "Sent you `kpi-export-2025-12-12-2026-03-11.csv` (1 entries)" in late["text"]
    (shared,) = slack_bot.fake.uploaded_files(_dm_of(slack_bot, SLACK_ADMIN))
    assert csv_rows(slack_bot.fake.uploads[shared["id"]]) == [
        ("2026-03-11", "leads", 5.0, SLACK_ADMIN, "", "", "", "")
    ]


def test_a_slow_log_form_with_a_bad_value_says_so_by_message(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack_bot.command("log")
    _, view = opened_view(slack_bot)
    slow_down_catalogue(slack_bot, monkeypatch)

    done = slack_bot.submit(view, {"m:leads": {"value": "-2"}})

    assert done.status == 200 and done.seconds < 3
    call = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"), timeout=15)[0]
    assert "Nothing was logged: leads cannot be negative" in call.params["text"]
    assert_nothing_stored(slack_bot)


def test_a_spanish_speaking_team_reads_kpi_names_in_spanish(slack_bot: SlackBot) -> None:
    """The first user's Slack language (es-LA) sets a new workspace's locale: labels in Spanish,
    numbers as Latin America writes them; keys and commands stay the same."""
    slack_bot.fake.add_user("U0ES", team_id="T0ES", tz="America/Bogota", locale="es-LA")

    logged = slack_bot.command("log spend=1500 leads=100", team_id="T0ES", user_id="U0ES")
    report = slack_bot.command("report today cpl", team_id="T0ES", user_id="U0ES")

    workspace = slack_bot.store.workspace("T0ES")
    assert workspace is not None and workspace.locale == "es_419"
    assert "Costo por lead" in texts(logged.json)
    shown = texts(report.json)
    assert "Costo por lead" in shown and "Inversión en anuncios" in shown and "15.00" in shown


def test_the_settings_form_changes_the_language_and_number_format(slack_bot: SlackBot) -> None:
    seed(slack_bot, SLACK_NOW.date(), spend="1234.5", leads="1")
    slack_bot.command("settings")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(view, {"packs": {"value": ["marketing", "sales"]},
                                   "currency": {"value": "EUR"}, "locale": {"value": "de_DE"},
                                   "timezone": {"value": "Europe/Berlin"}})

    assert done.status == 200 and done.body == b""
    workspace = slack_bot.store.workspace(T1)
    assert workspace is not None and (workspace.locale, workspace.currency) == ("de_DE", "EUR")
    report = slack_bot.command("report today cpl")
    assert "1.234,50\xa0€" in texts(report.json)  # German: a no-break space before the symbol


def test_app_home_shows_admins_the_numbers_a_webhook_refused(slack_bot: SlackBot) -> None:
    message = "Stripe charge ch_eur is in EUR, but this workspace counts USD: not stored."
    slack_bot.store.ensure_workspace(T1)
    slack_bot.store.record_event(T1, "stripe", "evt_1", "charge.succeeded", (), actor="stripe",
                                 origin="stripe", outcome=message, now=datetime(2026, 3, 15, 14, 5,
                                                                                tzinfo=UTC),
                                 notice=("stripe_currency", message))

    admin_view, member_view = _home_opened(slack_bot), _home_opened(slack_bot, user=SLACK_MEMBER)

    assert "Numbers I refused" in texts(admin_view)
    assert f"• 2026-03-15 14:05 UTC: {message}" in texts(admin_view)
    assert "Numbers I refused" not in texts(member_view)
