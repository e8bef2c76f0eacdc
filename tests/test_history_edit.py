"""`/kpi history` lines' Edit and Delete end to end: signed overflow clicks and form submissions
through the real app, the fake Slack's views.open, response_url and chat.postEphemeral, and
what the store holds after. Own entries only, admins anyone's; Undo once."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from bot.render.kit import FOLD_LINES, rendered_lines
from kpis.periods import Period
from storage import Store
from storage.repository import Write
from tests.conftest import SLACK_ADMIN, SLACK_MEMBER, SlackBot, SlackReply, texts
from tests.test_slack import elements, message_of, opened_view, stored, wait_response

TODAY = date(2026, 3, 11)
MARKETING = "C0MARKET"
MENU = "history_entry"


def menus(body: dict[str, Any]) -> dict[str, int]:
    """Each history line that carries a menu -> the id its Edit and Delete name."""
    found: dict[str, int] = {}
    for block in body["blocks"]:
        menu = block.get("accessory") or {}
        if menu.get("action_id") != MENU:
            continue
        assert menu["type"] == "overflow"
        assert [o["text"]["text"] for o in menu["options"]] == ["Edit", "Delete"]
        edit, delete = (o["value"] for o in menu["options"])
        number = int(edit.removeprefix("edit:"))
        assert delete == f"delete:{number}"
        found[block["text"]["text"]] = number
    return found


def line_of(body: dict[str, Any], needle: str) -> int:
    [number] = [n for line, n in menus(body).items() if needle in line]
    return number


def history(bot: SlackBot, user: str = SLACK_ADMIN, channel: str = "C0001") -> dict[str, Any]:
    reply = bot.command("history", user_id=user, channel_id=channel)
    assert reply.status == 200
    return reply.json


def pick(bot: SlackBot, value: str, user: str = SLACK_ADMIN, channel: str = "C0001") -> SlackReply:
    """A click on one option of a history line's menu, as Slack sends an overflow's."""
    return bot.action(MENU, None, action_type="overflow", user_id=user, channel_id=channel,
                      is_ephemeral=True, action={"selected_option": {
                          "text": {"type": "plain_text", "text": value.split(":")[0].title()},
                          "value": value}})


def edit_form(bot: SlackBot, number: int, user: str = SLACK_ADMIN,
              channel: str = "C0001") -> tuple[dict[str, Any], dict[str, Any]]:
    click = pick(bot, f"edit:{number}", user, channel)
    assert click.status == 200 and click.body == b""
    return opened_view(bot)


def test_own_lines_carry_edit_and_delete_and_an_admins_every_line(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=12 spend=300")
    slack_bot.command("log leads=15")  # the earlier leads line is no longer what the entry holds
    slack_bot.command("log leads=4", user_id=SLACK_MEMBER)

    members = menus(history(slack_bot, SLACK_MEMBER))
    admins = menus(history(slack_bot))

    assert [line for line in members] == [
        f"`2026-03-11` *leads*: — → 4 by <@{SLACK_MEMBER}> via slack"]
    assert sorted(admins) == sorted([
        f"`2026-03-11` *leads*: — → 4 by <@{SLACK_MEMBER}> via slack",
        f"`2026-03-11` *leads*: 12 → 15 by <@{SLACK_ADMIN}> via slack",
        f"`2026-03-11` *spend*: — → $300.00 by <@{SLACK_ADMIN}> via slack",
    ])


def test_edit_opens_the_entry_filled_in_and_saving_corrects_it_like_a_log(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=10 spend=300 source=Facebook")
    number = line_of(history(slack_bot), "*leads* source=facebook")

    sent, view = edit_form(slack_bot, number)

    assert sent["callback_id"] == "entry_form"
    [field] = [b for b in sent["blocks"] if b["type"] == "input"]
    assert field["block_id"] == "m:leads" and field["element"]["initial_value"] == "10"
    assert "for Wed 11 Mar 2026 · source=facebook" in texts(sent)

    done = slack_bot.submit(view, {"m:leads": {"value": "20"}})

    assert done.status == 200 and done.body == b""
    call = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))[0]
    assert call.params["channel"] == "C0001" and call.params["user"] == SLACK_ADMIN
    reply = message_of(call.params)
    assert "Stored for Wed 11 Mar 2026: *leads* 20 (was 10) (source=facebook)" in texts(reply)
    assert "Cost per lead: $30.00 → *$15.00*" in texts(reply)
    assert "undo_last" in elements(reply)
    assert stored(slack_bot) == {
        ("leads", TODAY, 20.0, SLACK_ADMIN, (("source", "facebook"),), "edit"),
        ("spend", TODAY, 300.0, SLACK_ADMIN, (("source", "facebook"),), "slack"),
    }
    assert f"*leads* source=facebook: 10 → 20 by <@{SLACK_ADMIN}> via edit" in texts(
        history(slack_bot))


def test_a_bad_number_is_answered_on_the_field_and_nothing_is_stored(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=10")
    number = line_of(history(slack_bot), "*leads*")
    before = (stored(slack_bot), slack_bot.store.history("T0001", None, 100))

    for typed, needle in (("-3", "cannot be negative"), ("lots", "not a number"),
                          ("1.5", "whole number"), ("10", "already has"),
                          ("", "Enter a number")):
        _, view = edit_form(slack_bot, number)
        done = slack_bot.submit(view, {"m:leads": {"value": typed}})

        assert done.status == 200 and done.json["response_action"] == "errors", typed
        assert list(done.json["errors"]) == ["m:leads"]
        assert needle in done.json["errors"]["m:leads"], (typed, done.json)

    assert (stored(slack_bot), slack_bot.store.history("T0001", None, 100)) == before
    assert slack_bot.fake.calls_to("chat.postEphemeral") == []


def test_a_member_cannot_edit_or_delete_someone_elses_entry(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=10")
    number = line_of(history(slack_bot), "*leads*")
    _, view = edit_form(slack_bot, number)  # the admin's form, submitted by a member below
    opened = len(slack_bot.fake.calls_to("views.open"))
    before = (stored(slack_bot), slack_bot.store.history("T0001", None, 100))

    for verb in ("edit", "delete"):
        click = pick(slack_bot, f"{verb}:{number}", SLACK_MEMBER)
        answer = wait_response(slack_bot, click)
        assert answer["text"].startswith(":warning:"), answer
        assert f"That `leads` entry is <@{SLACK_ADMIN}>'s: only they or an admin" in answer["text"]
        assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    forged = slack_bot.submit(view, {"m:leads": {"value": "99"}}, user_id=SLACK_MEMBER)

    assert "only they or an admin" in forged.json["errors"]["m:leads"]
    assert len(slack_bot.fake.calls_to("views.open")) == opened
    assert (stored(slack_bot), slack_bot.store.history("T0001", None, 100)) == before


def test_an_admin_corrects_a_members_entry_which_stays_the_members(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=4", user_id=SLACK_MEMBER)
    _, view = edit_form(slack_bot, line_of(history(slack_bot), "*leads*"))

    slack_bot.submit(view, {"m:leads": {"value": "6"}})

    slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))
    assert stored(slack_bot) == {("leads", TODAY, 6.0, SLACK_MEMBER, (), "edit")}
    [latest, *_] = slack_bot.store.history("T0001")
    assert (latest.actor, latest.author, latest.old, latest.new) == (SLACK_ADMIN, SLACK_MEMBER, 4, 6)


def test_delete_removes_the_entry_and_its_undo_works_once(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=10 spend=300")
    number = line_of(history(slack_bot), "*leads*")

    click = pick(slack_bot, f"delete:{number}")

    answer = wait_response(slack_bot, click)
    assert answer["replace_original"] is False and answer["response_type"] == "ephemeral"
    assert "Deleted for Wed 11 Mar 2026: *leads* 10" in texts(answer)
    assert "Cost per lead: $30.00 → *n/a*" in texts(answer)
    assert stored(slack_bot) == {("spend", TODAY, 300.0, SLACK_ADMIN, (), "slack")}
    shown = history(slack_bot)
    assert f"*leads*: 10 → removed by <@{SLACK_ADMIN}> via delete" in texts(shown)
    assert not [line for line in menus(shown) if "*leads*" in line]  # nothing left to change

    undo = elements(answer)["undo_last"]
    clicked = {"type": "message", "ts": "1700000000.000200", "text": answer["text"],
               "blocks": answer["blocks"]}
    undone = wait_response(slack_bot, slack_bot.action("undo_last", undo["value"],
                                                       is_ephemeral=True, message=clicked))

    # the reply stays as it was, its Undo button replaced by what it undid
    assert undone["replace_original"] is True and "undo_last" not in elements(undone)
    assert "leads for 2026-03-11 back to 10" in undone["text"]
    assert "Deleted for Wed 11 Mar 2026: *leads* 10" in texts(undone)
    assert [b["type"] for b in undone["blocks"]][-1] == "context"
    assert rendered_lines(undone["blocks"]) <= FOLD_LINES
    assert {e[:4] for e in stored(slack_bot)} == {("leads", TODAY, 10.0, SLACK_ADMIN),
                                                 ("spend", TODAY, 300.0, SLACK_ADMIN)}

    stale = wait_response(slack_bot, slack_bot.action("undo_last", undo["value"], is_ephemeral=True))
    after = (stored(slack_bot), slack_bot.store.history("T0001", None, 100))

    assert stale["text"].startswith(":warning:") and "already undone" in stale["text"]
    assert stale["replace_original"] is False
    assert (stored(slack_bot), slack_bot.store.history("T0001", None, 100)) == after
    assert {e[:4] for e in stored(slack_bot)} == {("leads", TODAY, 10.0, SLACK_ADMIN),
                                                 ("spend", TODAY, 300.0, SLACK_ADMIN)}


def test_a_deleted_entry_cannot_be_deleted_or_edited_again(slack_bot: SlackBot) -> None:
    slack_bot.command("log leads=10")
    number = line_of(history(slack_bot), "*leads*")
    wait_response(slack_bot, pick(slack_bot, f"delete:{number}"))

    for verb in ("delete", "edit"):
        answer = wait_response(slack_bot, pick(slack_bot, f"{verb}:{number}"))
        assert "no longer there" in answer["text"], answer
    stale = wait_response(slack_bot, pick(slack_bot, "rename:1"))

    assert "That menu no longer works" in stale["text"]
    assert stored(slack_bot) == set()


def test_editing_a_number_looks_at_the_alerts_again_as_a_log_does(slack_bot: SlackBot) -> None:
    slack_bot.fake.add_channel(MARKETING, "marketing")
    slack_bot.command("alert cpl > 15", channel_id=MARKETING)
    slack_bot.command("log spend=300 leads=10", user_id=SLACK_MEMBER, channel_id=MARKETING)
    alerting = slack_bot.services.alerting
    assert alerting is not None
    alerting.debouncer.flush()
    [firing] = slack_bot.fake.messages_in(MARKETING)
    number = line_of(history(slack_bot, SLACK_MEMBER, MARKETING), "*spend*")
    _, view = edit_form(slack_bot, number, SLACK_MEMBER, MARKETING)

    slack_bot.submit(view, {"m:spend": {"value": "100"}}, user_id=SLACK_MEMBER)

    slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))
    alerting.debouncer.flush()
    thread = [m for m in slack_bot.fake.messages_in(MARKETING, top_level=False)
              if m.get("thread_ts") == firing["ts"]]
    [resolved] = thread
    assert resolved["text"].startswith("Resolved: Cost per lead is $10.00")


def test_fifteen_own_lines_with_their_menus_fit_a_phone(slack_bot: SlackBot) -> None:
    for n in range(15):
        slack_bot.command(f"log leads={n + 1} date=2026-02-{n + 1:02d} source=facebook")

    body = history(slack_bot)

    assert rendered_lines(body["blocks"]) <= FOLD_LINES
    assert len(menus(body)) >= 3
    assert json.dumps(body).count('"type": "overflow"') == len(menus(body))


def test_a_deleted_entry_comes_back_whole_with_undo_on_each_backend(any_store: Store) -> None:
    """Delete and its undo keep the day's totals and a gauge's latest value in step."""
    any_store.ensure_workspace("T1")
    catalogue = any_store.catalogue("T1")
    day = date(2026, 3, 10)
    mine = Write("leads", day, 10.0, "U1", (("source", "facebook"),))
    any_store.record("T1", [mine, Write("leads", day, 5.0, "U2")], actor="U1", origin="cli")
    period = Period.day(day)
    [line] = [h for h in any_store.history("T1") if h.author == "U1"]

    entry = any_store.entry_changed_by("T1", line.id)
    gone = any_store.delete_entry("T1", mine, actor="U1", origin="delete", period=period,
                                  catalogue=catalogue)

    assert entry == mine
    assert gone is not None and gone.before is not None and gone.after is not None
    assert gone.before.totals["leads"][0] == 15.0 and gone.after.totals["leads"][0] == 5.0
    assert any_store.entry_changed_by("T1", line.id) is None
    assert any_store.entry_changed_by("T2", line.id) is None
    assert any_store.delete_entry("T1", mine, actor="U1", origin="delete", period=period,
                                  catalogue=catalogue) is None
    assert any_store.period_data("T1", period, catalogue).totals["leads"][0] == 5.0

    any_store.undo_last("T1", "U1", gone.batch.id)

    assert any_store.period_data("T1", period, catalogue).totals["leads"][0] == 15.0
    assert any_store.entry_changed_by("T1", line.id) == mine
