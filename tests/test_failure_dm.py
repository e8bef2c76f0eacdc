"""A digest or an alert that fails for good reaches the admin who set it up: one DM (through
the Courier, via conversations.open) naming what failed, where, and the fix; once per
episode of the subscription or rule, not per attempt."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app.digests import due_now, tell_creator
from bot.render.blocks import FIXES
from bot.render.kit import FOLD_LINES, rendered_lines
from bot.slack.app import courier_client
from bot.slack.courier import Courier, Outgoing
from storage import open_store
from storage.timers import FAILURE_DM_TIMER
from tests.conftest import SLACK_ADMIN, SLACK_MEMBER, SLACK_NOW, SlackBot
from tests.fakeslack import FakeSlack
from tests.test_digest import Clock, make_scheduler

GONE = "C0GONE"


def dms_to(fake: FakeSlack, user: str) -> list[dict[str, Any]]:
    """What the bot said in its DM with `user` (opened with conversations.open)."""
    opened = [c for c in fake.calls_to("conversations.open") if c.params.get("users") == user]
    if not opened:
        return []
    dm = fake._dm_channel(user)
    return fake.messages_in(dm)


def test_a_vanished_digest_channel_dms_its_creator_once_with_the_fix(
        slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    fake.add_channel(GONE, "gone")
    reply = slack_bot.command("digest daily 09:00", user_id=SLACK_ADMIN, channel_id=GONE)
    assert reply.status == 200 and "09:00" in reply.json["text"], reply.json
    fake.delete_channel(GONE)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))  # 09:01 in New York
    scheduler = make_scheduler(slack_bot, clock)

    assert scheduler.sweep() == ["failed"]
    [dm] = dms_to(fake, SLACK_ADMIN)
    said = json.dumps(dm)
    assert f"<#{GONE}>" in dm["text"] and "daily digest" in dm["text"]
    assert "channel_not_found" in dm["text"] and FIXES["channel_not_found"] in dm["text"]
    assert rendered_lines(dm["blocks"]) <= FOLD_LINES, said
    assert dm["metadata"]["event_payload"]["key"].startswith("failure-dm:digest:")

    clock.now += timedelta(days=1)  # the next day's digest fails too: no second DM
    assert scheduler.sweep() == ["failed"]
    assert len(dms_to(fake, SLACK_ADMIN)) == 1
    assert dms_to(fake, SLACK_MEMBER) == []

    # the admin fixes it (the channel is back), a digest goes out; a later failure DMs again
    fake._deleted.discard(GONE)
    fake.add_channel(GONE, "gone")
    clock.now += timedelta(days=1)
    assert scheduler.sweep() == ["posted"]
    fake.delete_channel(GONE)
    clock.now += timedelta(days=1)
    assert scheduler.sweep() == ["failed"]
    first, second = dms_to(fake, SLACK_ADMIN)
    assert first["metadata"]["event_payload"]["key"] != second["metadata"]["event_payload"]["key"]


def test_a_failed_digest_without_a_known_creator_dms_nobody_and_home_shows_it(
        slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    fake.delete_channel(GONE)
    slack_bot.store.ensure_workspace("T0001", timezone="America/New_York")
    slack_bot.store.subscribe("T0001", GONE, "daily", "09:00")  # no actor recorded
    scheduler = make_scheduler(slack_bot, Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC)))

    assert scheduler.sweep() == ["failed"]
    assert fake.calls_to("conversations.open") == []
    slack_bot.event({"type": "app_home_opened", "user": SLACK_ADMIN, "tab": "home"})
    home = fake.wait_for(lambda f: list(f.home_views.values()))[-1]
    assert "channel_not_found" in json.dumps(home) and GONE in json.dumps(home)


def test_a_failing_alert_dms_the_admin_who_made_the_rule_once(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    fake.add_channel(GONE, "gone")
    slack_bot.store.ensure_workspace("T0001", timezone="America/New_York")
    assert slack_bot.services.courier is not None and slack_bot.services.alerting is not None
    slack_bot.services.courier.backoff = 0.01
    added = slack_bot.command("alert cpl > 15 daily", user_id=SLACK_ADMIN, channel_id=GONE)
    assert "Alert #1 added" in added.json["text"], added.json
    fake.delete_channel(GONE)

    def log(text: str) -> None:
        reply = slack_bot.command(f"log {text}", user_id=SLACK_MEMBER)
        assert reply.status == 200 and "Stored" in reply.json["text"], reply.json
        assert slack_bot.services.alerting is not None
        slack_bot.services.alerting.debouncer.flush()

    log("spend=300 leads=10 date=yesterday")  # CPL 30: fires, the channel is gone
    [dm] = dms_to(fake, SLACK_ADMIN)
    assert "alert #1" in dm["text"] and f"<#{GONE}>" in dm["text"]
    assert "channel_not_found" in dm["text"] and FIXES["channel_not_found"] in dm["text"]
    assert rendered_lines(dm["blocks"]) <= FOLD_LINES
    log("spend=100 leads=10")  # back to normal today: that message fails too, no second DM
    log("spend=400 leads=10")  # fires again: still the same broken rule
    assert len(dms_to(fake, SLACK_ADMIN)) == 1
    assert [d for d in slack_bot.store.deliveries("T0001", failed_only=True)
            if d.kind.startswith("alert")]


def test_no_dm_is_attempted_for_a_workspace_whose_tokens_were_revoked(slack_bot: SlackBot) -> None:
    """A digest that failed just before the app was uninstalled: its notice waits, Slack is
    not called (the tokens are revoked)."""
    fake = slack_bot.fake
    store = slack_bot.store
    store.ensure_workspace("T0001", timezone="America/New_York")
    fake.delete_channel(GONE)
    sub = store.subscribe("T0001", GONE, "daily", "09:00", actor=SLACK_ADMIN)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    client = courier_client(slack_bot.services.settings, "xoxb-test")
    courier = Courier(store, lambda _ws: client, slack_bot.services.metrics, clock, backoff=0.01)
    due = due_now(sub, "America/New_York", clock.now)
    assert due is not None
    assert courier.deliver("T0001", due.key, kind="digest-daily", channel=GONE, due_at=clock.now,
                           build=lambda: Outgoing("x", [])) == "failed"
    store.mark_uninstalled("T0001", clock.now)

    told = tell_creator(store, courier, due, clock)
    assert told is not None and told.outcome == "stopped"
    assert fake.calls_to("conversations.open") == []


@pytest.mark.parametrize("fault", ["Slack 500", "ratelimited for ten minutes"])
def test_a_digest_failure_dm_not_out_is_sent_once_by_its_timer_after_a_restart(
        fault: str, slack_bot: SlackBot) -> None:
    """The DM could not be sent with the failure; a new process sends it hours later, after
    the digest's own grace window (its timer no longer looks at that digest), and only once."""
    fake = slack_bot.fake
    fake.add_channel(GONE, "gone")
    slack_bot.command("digest daily 09:00", user_id=SLACK_ADMIN, channel_id=GONE)
    fake.delete_channel(GONE)
    if fault == "Slack 500":
        fake.fail("conversations.open", 500)
    else:
        fake.fail("conversations.open", 429, retry_after=600)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))  # 09:01 in New York
    assert make_scheduler(slack_bot, clock).sweep() == ["failed"]  # and the DM not out
    assert dms_to(fake, SLACK_ADMIN) == []

    restarted = open_store(f"sqlite:///{slack_bot.store.engine.url.database}")
    try:
        scheduler = make_scheduler(slack_bot, clock, store=restarted)
        clock.now += timedelta(hours=7)  # past the digest's grace: only the DM's timer is due
        assert scheduler.sweep() == ["posted"]
        [dm] = dms_to(fake, SLACK_ADMIN)
        assert "daily digest" in dm["text"] and "channel_not_found" in dm["text"]
        clock.now += timedelta(hours=1)
        assert scheduler.sweep() == []
        clock.now = datetime(2026, 3, 12, 13, 1, tzinfo=UTC)  # the next digest fails too:
        assert scheduler.sweep() == ["failed"]  # the same episode, no DM
        assert len(dms_to(fake, SLACK_ADMIN)) == 1
        assert not [t for t in restarted.timers("T0001") if t[0] == FAILURE_DM_TIMER]
    finally:
        restarted.engine.dispose()


def test_an_alert_failure_dm_not_out_is_sent_once_by_its_timer(slack_bot: SlackBot) -> None:
    """Before, only the rule's next failure tried the DM again."""
    fake = slack_bot.fake
    fake.add_channel(GONE, "gone")
    slack_bot.store.ensure_workspace("T0001", timezone="America/New_York")
    assert slack_bot.services.courier is not None and slack_bot.services.alerting is not None
    slack_bot.services.courier.backoff = 0.01
    slack_bot.command("alert cpl > 15 daily", user_id=SLACK_ADMIN, channel_id=GONE)
    fake.delete_channel(GONE)
    fake.fail("conversations.open", 500)  # the DM's, after the alert failed for good
    reply = slack_bot.command("log spend=300 leads=10 date=yesterday", user_id=SLACK_MEMBER)
    assert "Stored" in reply.json["text"], reply.json
    slack_bot.services.alerting.debouncer.flush()
    assert dms_to(fake, SLACK_ADMIN) == []

    clock = Clock(SLACK_NOW + timedelta(minutes=5))  # past the DM's retry
    scheduler = make_scheduler(slack_bot, clock)
    outcomes = scheduler.sweep()
    [dm] = dms_to(fake, SLACK_ADMIN)
    assert "alert #1" in dm["text"] and "channel_not_found" in dm["text"], outcomes
    clock.now += timedelta(hours=1)
    scheduler.sweep()
    assert len(dms_to(fake, SLACK_ADMIN)) == 1


def test_a_subscription_after_a_removed_one_gets_its_own_failure_dm(
        slack_bot: SlackBot) -> None:
    """Its id is never the removed one's (SQLite would hand out the highest id + 1 again),
    so its first failure is not taken for the old one, already told."""
    fake = slack_bot.fake
    store = slack_bot.store
    store.ensure_workspace("T0001", timezone="America/New_York")
    fake.delete_channel(GONE)
    first = store.subscribe("T0001", GONE, "daily", "09:00", actor=SLACK_ADMIN)
    clock = Clock(datetime(2026, 3, 11, 13, 1, tzinfo=UTC))
    scheduler = make_scheduler(slack_bot, clock)
    assert scheduler.sweep() == ["failed"]
    assert len(dms_to(fake, SLACK_ADMIN)) == 1
    store.unsubscribe("T0001", GONE)

    fake.delete_channel("C0GONE2")
    second = store.subscribe("T0001", "C0GONE2", "daily", "09:00", actor=SLACK_ADMIN)
    clock.now += timedelta(days=1)
    assert scheduler.sweep() == ["failed"]

    assert second.id > first.id
    assert len(dms_to(fake, SLACK_ADMIN)) == 2
