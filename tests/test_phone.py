"""On a phone, Slack folds a message after about a dozen lines ("see more"). Every answer the
bot gives by default fits above that fold (kit.rendered_lines counts them: text wrapped at a
phone's width, a table row a line); longer lists are one click away (Show all, the thread).
App Home is not a message, and forms are views: neither folds."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from bot.app import entries
from bot.app.context import open_context
from bot.render.blocks import HELP_LINES
from bot.render.kit import FOLD_LINES, SHOW_ALL, Block, cell_text, rendered_lines
from tests.conftest import SLACK_ADMIN, SLACK_MEMBER, SLACK_NOW, SlackBot, texts

TODAY = date(2026, 3, 11)
MARKETING = "C0MARKET"
BIG_LOG = ("log spend=200 leads=20 bookings=6 shows=4 sales=3 revenue=1500 impressions=9000 "
           "clicks=150 new_customers=2 source=google")


def _busy_month(bot: SlackBot) -> None:
    """Thirty days of every pack's numbers, from three sources and two reps."""
    ctx = open_context(bot.store, "T0001", SLACK_ADMIN, SLACK_NOW, timezone="America/New_York")
    for back in range(30):
        day = (TODAY - timedelta(days=back)).isoformat()
        for source, share in (("facebook", 3), ("google", 2), ("seo", 1)):
            entries.log_numbers(ctx, [("spend", str(40 * share + back)), ("leads", str(4 * share)),
                                      ("bookings", str(share)), ("shows", "1"), ("sales", "1"),
                                      ("revenue", str(500 + 10 * back)), ("new_customers", "1"),
                                      ("impressions", str(2000 * share)), ("clicks", str(40 * share))],
                                day=day, origin="cli", dims=(("source", source),))


def _answer(bot: SlackBot, reply: Any) -> dict[str, Any]:
    """The message a command answered with: its ack, or (slow work, forms) its response."""
    body: dict[str, Any] = reply.json
    if body.get("blocks") and "Working on it" not in body.get("text", ""):
        return body
    return bot.told(reply)


def _show_all(body: dict[str, Any]) -> dict[str, Any] | None:
    found = [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]
             if e["action_id"] == SHOW_ALL]
    assert len(found) <= 1, found
    return found[0] if found else None


def _click_show_all(bot: SlackBot, body: dict[str, Any]) -> dict[str, Any]:
    button = _show_all(body)
    assert button is not None, texts(body)
    click = bot.action(SHOW_ALL, button.get("value"), is_ephemeral=True)
    return bot.fake.wait_for(lambda: bot.responses(click))[-1]


def _lines(blocks: list[Block]) -> list[str]:
    """Each line of text the blocks say (tables: a row a line), buttons left out."""
    out: list[str] = []
    for block in blocks:
        if block["type"] in ("section", "header"):
            out += block["text"]["text"].split("\n")
        elif block["type"] == "context":
            out += [e["text"] for e in block["elements"]]
        elif block["type"] == "table":
            out += [" | ".join(cell_text(c) for c in row) for row in block["rows"]]
    return out


COMMANDS = [
    "report", "report today", "report last-month", "report 30d", "report 30d cpl cac leads",
    "report 30d by source", "report 30d cpl by source", "report 30d source=facebook",
    "alerts", "goals", "sources", "alert cpl > 15 daily", "goal leads 500 monthly",
    "digest daily 09:00", "undo", "track", "track " + " ".join(f"m{i}" for i in range(3)),
    "track spend leads revenue sales bookings shows clicks impressions reach page_views mqls sqls "
    "new_customers cash_collected", "goal remove leads",
    BIG_LOG, "log leads=12 spend=340", "history", "history leads", "why cpl", "why revenue",
    "why leads last-week", "whatif ctr=+10% close_rate=+5% aov=+25%", "whatif ctr=+10%",
    "help", "metrics", "export 30d", "remind off", "remind on", "token list",
    "define lead_value = revenue / leads",
    # what is wrong and how to fix it
    "frobnicate", "log leeds=12", "log leads=lots", "why nothing", "whatif ctr=lots",
]


@pytest.mark.parametrize("text", COMMANDS)
def test_every_default_answer_fits_above_the_fold(slack_bot: SlackBot, text: str) -> None:
    _busy_month(slack_bot)
    if text == "token list":
        for name in ("zapier", "sheets", "stripe"):
            slack_bot.command(f"token create {name}")
    reply = slack_bot.command(text)
    body = _answer(slack_bot, reply)
    assert "blocks" in body, body
    assert rendered_lines(body["blocks"]) <= FOLD_LINES, (text, rendered_lines(body["blocks"]),
                                                          texts(body))


def test_a_members_refusal_fits_above_the_fold(slack_bot: SlackBot) -> None:
    _busy_month(slack_bot)
    for text in ("settings", "define lead_value = revenue / leads", "digest daily 09:00"):
        body = _answer(slack_bot, slack_bot.command(text, user_id=SLACK_MEMBER))
        assert "Only admins can" in texts(body), body
        assert rendered_lines(body["blocks"]) <= FOLD_LINES, (text, texts(body))


#: what each folded answer keeps above the fold, and what only its Show all has
KEPT_AND_BELOW = {
    BIG_LOG: (["Stored for Wed 11 Mar 2026: *spend* $200.00", "source=google"],
              []),
    "history": (["*Recent entries*"], []),
    "why cpl": (["Why CPL moved"], ["Another range: `/kpi why cpl last-month`"]),
    "whatif ctr=+10% close_rate=+5% aov=+25%": (
        ["*Leads*"], ["Baseline: the last 30 days"]),
    "help": (["`/kpi log leads=12 spend=340`"], list(HELP_LINES)),
    "metrics": (["*Tracked metrics* (packs: marketing, sales", "`spend`"],
                ["`cpl` Cost per lead = `spend / leads`"]),
}


@pytest.mark.parametrize("text", KEPT_AND_BELOW)
def test_show_all_answers_everything_the_fold_left_out(slack_bot: SlackBot, text: str) -> None:
    _busy_month(slack_bot)
    if text == "history":
        for n in range(15):
            slack_bot.command(f"log leads={n + 1} date=2026-03-{n + 1:02d}")
    body = _answer(slack_bot, slack_bot.command(text))
    kept, below = KEPT_AND_BELOW[text]
    shown = texts(body)
    assert rendered_lines(body["blocks"]) <= FOLD_LINES
    assert all(needle in shown for needle in kept), shown
    assert not [needle for needle in below if needle in shown], shown

    full = _click_show_all(slack_bot, body)

    everything = texts(full)
    assert full.get("response_type") == "ephemeral"
    assert _show_all(full) is None
    assert all(needle in everything for needle in (*kept, *below)), everything
    assert rendered_lines(full["blocks"]) > rendered_lines(body["blocks"])
    assert slack_bot.fake.calls_to("chat.postMessage") == []


def test_a_busy_log_keeps_what_was_stored_and_the_kpis_that_moved_most(slack_bot: SlackBot) -> None:
    _busy_month(slack_bot)
    body = _answer(slack_bot, slack_bot.command(BIG_LOG))
    before = slack_bot.store.history("T0001", None, 100)

    shown = [line for line in _lines(body["blocks"]) if line.startswith("• ")]
    button = _show_all(body)
    assert button is not None and shown
    moved = int(button["text"]["text"].split()[2])  # "Show all 14 KPIs"
    assert len(shown) < moved

    full = _click_show_all(slack_bot, body)

    every = [line for line in _lines(full["blocks"]) if line.startswith("• ")]
    assert len(every) == moved and every[:len(shown)] == shown
    first = _lines(full["blocks"])[0]
    for logged in ("*spend* $200.00", "*leads* 20", "*bookings* 6", "*revenue* $1,500.00",
                   "*new_customers* 2", "source=google"):
        assert logged in first, first
    # the full view can still undo the log, and showing it stored nothing more
    assert "undo_last" in json.dumps(full["blocks"])
    assert slack_bot.store.history("T0001", None, 100) == before


def test_history_shows_the_newest_entries_and_all_fifteen_behind_show_all(slack_bot: SlackBot) -> None:
    for n in range(15):
        slack_bot.command(f"log leads={n + 1} date=2026-02-{n + 1:02d} source=facebook")

    body = _answer(slack_bot, slack_bot.command("history"))

    rows = [line for line in _lines(body["blocks"]) if line.startswith("`2026-")]
    assert 3 <= len(rows) < 15 and rows[0].startswith("`2026-02-15` *leads*")
    button = _show_all(body)
    assert button is not None and button["text"]["text"] == "Show all 15 entries"
    full = _click_show_all(slack_bot, body)
    every = [line for line in _lines(full["blocks"]) if line.startswith("`2026-")]
    assert every[:len(rows)] == rows and len(every) == 15


def test_why_keeps_its_main_driver_above_the_fold(slack_bot: SlackBot) -> None:
    _busy_month(slack_bot)
    body = _answer(slack_bot, slack_bot.command("why cpl"))

    lines = _lines(body["blocks"])
    assert lines[0] == "Why CPL moved" and lines[1].startswith("*CPL ")
    full = _click_show_all(slack_bot, body)
    assert _lines(full["blocks"])[:len(lines) - 1] == lines[:-1] or \
        _lines(full["blocks"])[:2] == lines[:2]
    assert "*What moved it*, biggest effect first:" in texts(full)
    assert "by source*" in texts(full)


def test_whatif_keeps_its_answer_above_the_fold(slack_bot: SlackBot) -> None:
    _busy_month(slack_bot)
    body = _answer(slack_bot, slack_bot.command("whatif ctr=+10% close_rate=+5% aov=+25%"))

    shown = texts(body)
    assert "*Revenue*" in shown and "What if CTR +10.0%" in shown
    full = _click_show_all(slack_bot, body)
    for outcome in ("*Leads*", "*Sales*", "*Revenue*", "*CAC*", "*ROAS*",
                    "*Profit after ads and delivery*", "*Compounding*"):
        assert outcome in texts(full)


def test_a_stale_or_made_up_show_all_is_refused_with_the_fix(slack_bot: SlackBot) -> None:
    for value in ('{"command": "alert_remove", "rule_id": 1}', '{"command": "why", "kpi": 3}',
                  "not json", '{"log": {"day": "yesterday"}}'):
        click = slack_bot.action(SHOW_ALL, value, is_ephemeral=True)
        answer = slack_bot.fake.wait_for(lambda: slack_bot.responses(click))[-1]  # noqa: B023
        assert "That button no longer works" in answer["text"], (value, answer)


def _replies(fake: Any, top: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in fake.messages_in(MARKETING, top_level=False) if m.get("thread_ts") == top["ts"]]


def test_an_alert_firing_and_back_to_normal_fit_above_the_fold(slack_bot: SlackBot) -> None:
    slack_bot.fake.add_channel(MARKETING, "marketing")
    _busy_month(slack_bot)
    added = slack_bot.command("alert cpl > 20 daily", channel_id=MARKETING)
    assert "added" in added.json["text"], added.json
    assert slack_bot.services.alerting is not None

    slack_bot.command("log spend=1000", user_id=SLACK_MEMBER, channel_id=MARKETING)
    slack_bot.services.alerting.debouncer.flush()
    [firing] = slack_bot.fake.wait_for(lambda f: f.messages_in(MARKETING))
    assert firing["text"].startswith("Alert: Cost per lead")
    assert rendered_lines(firing["blocks"]) <= FOLD_LINES, texts(firing)

    slack_bot.command("log spend=0", user_id=SLACK_MEMBER, channel_id=MARKETING)
    slack_bot.services.alerting.debouncer.flush()
    [reply] = slack_bot.fake.wait_for(lambda f: _replies(f, firing))
    assert reply["text"].startswith("Resolved: Cost per lead")
    [top] = slack_bot.fake.messages_in(MARKETING)
    for message in (reply, top):
        assert rendered_lines(message["blocks"]) <= FOLD_LINES, texts(message)


def test_the_digest_post_fits_above_the_fold_and_its_details_are_in_the_thread(
    slack_bot: SlackBot,
) -> None:
    slack_bot.fake.add_channel(MARKETING, "marketing")
    _busy_month(slack_bot)

    slack_bot.command("digest now daily", channel_id=MARKETING)

    [top] = slack_bot.fake.wait_for(lambda f: f.messages_in(MARKETING))
    assert rendered_lines(top["blocks"]) <= FOLD_LINES, texts(top)
    assert slack_bot.fake.wait_for(lambda f: _replies(f, top))  # the details, next to the charts


def test_many_alert_rules_show_the_first_above_the_fold_and_all_behind_show_all(
    slack_bot: SlackBot,
) -> None:
    _busy_month(slack_bot)
    for n in range(15):
        added = slack_bot.command(f"alert cpl > {10 + n} daily", user_id=SLACK_ADMIN)
        assert "added" in added.json["text"], added.json

    reply = slack_bot.command("alerts")

    blocks = reply.json["blocks"]
    assert rendered_lines(blocks) <= FOLD_LINES, rendered_lines(blocks)
    [table] = [b for b in blocks if b["type"] == "table"]
    shown = [cell_text(row[0]) for row in table["rows"][1:]]
    assert 5 <= len(shown) < 15 and shown[0].startswith("#1 Cost per lead > $10.00 daily")
    show_all = _show_all(reply.json)
    assert show_all is not None and show_all["text"]["text"] == "Show all 15 rules"

    full = _click_show_all(slack_bot, reply.json)

    [table] = [b for b in full["blocks"] if b["type"] == "table"]
    assert [cell_text(row[0]).split()[0] for row in table["rows"][1:]] == [f"#{n}" for n in range(1, 16)]
    assert not [b for b in full["blocks"] if b["type"] == "actions"]


@pytest.mark.parametrize(("setup", "text", "noun", "last"), [
    ([f"token create tool{n}" for n in range(14)], "token list", "tokens", "`tool13`"),
    ([f"log leads=1 source=src{n:02d}" for n in range(16)], "sources", "sources", "`src15`"),
])
def test_long_token_and_source_lists_fold_and_show_all_has_every_one(
        slack_bot: SlackBot, setup: list[str], text: str, noun: str, last: str) -> None:
    for command in setup:
        slack_bot.command(command)
    body = _answer(slack_bot, slack_bot.command(text))
    assert rendered_lines(body["blocks"]) <= FOLD_LINES, texts(body)
    button = _show_all(body)
    assert button is not None and f" {noun}" in button["text"]["text"], body
    assert last not in texts(body)

    full = _click_show_all(slack_bot, body)

    assert _show_all(full) is None
    assert last in texts(full), texts(full)
