"""On a phone, Slack folds a message after about a dozen lines ("see more"). Every answer the
bot gives by default fits above that fold (kit.rendered_lines counts them: text wrapped at a
phone's width, a table row a line); longer lists are one click away (Show all, the thread)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.app import entries
from bot.app.context import open_context
from bot.render.kit import FOLD_LINES, cell_text, rendered_lines
from tests.conftest import SLACK_ADMIN, SLACK_NOW, SlackBot

TODAY = date(2026, 3, 11)


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


COMMANDS = [
    "report", "report today", "report last-month", "report 30d", "report 30d cpl cac leads",
    "report 30d by source", "report 30d cpl by source", "report 30d source=facebook",
    "alerts", "goals", "sources", "alert cpl > 15 daily", "goal leads 500 monthly",
    "digest daily 09:00", "undo", "track", "track " + " ".join(f"m{i}" for i in range(3)),
    "track spend leads revenue sales bookings shows clicks impressions reach page_views mqls sqls "
    "new_customers cash_collected", "goal remove leads",
]


@pytest.mark.parametrize("text", COMMANDS)
def test_every_default_answer_fits_above_the_fold(slack_bot: SlackBot, text: str) -> None:
    _busy_month(slack_bot)
    reply = slack_bot.command(text)
    body = reply.json if reply.json.get("blocks") or "Working" not in reply.json.get("text", "") \
        else slack_bot.told(reply)
    assert "blocks" in body, body
    assert rendered_lines(body["blocks"]) <= FOLD_LINES, (text, rendered_lines(body["blocks"]))


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
    [show_all] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]
                  if e["action_id"] == "alerts_show_all"]
    assert show_all["text"]["text"] == "Show all 15 rules"

    click = slack_bot.action("alerts_show_all", show_all["value"], is_ephemeral=True)

    full = slack_bot.fake.wait_for(lambda: slack_bot.responses(click))[-1]
    [table] = [b for b in full["blocks"] if b["type"] == "table"]
    assert [cell_text(row[0]).split()[0] for row in table["rows"][1:]] == [f"#{n}" for n in range(1, 16)]
    assert not [b for b in full["blocks"] if b["type"] == "actions"]
