"""Pacing: Slack's limits are kept per channel and per workspace, and waiting never holds a
worker, so one workspace's 429 never delays another workspace's digest (issue 16 part 2,
issue 15 part 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.observability import Metrics
from bot.render.posts import Attachment, Outgoing
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack.app import courier_client
from bot.slack.courier import Courier
from bot.slack.pacing import Pacer
from storage import Store
from storage.timers import DIGEST_TIMER
from tests.conftest import Clock
from tests.fakeslack import FakeSlack

NOW = datetime(2026, 3, 11, 14, 0, 30, tzinfo=UTC)  # 09:00:30 in New York
NY = "America/New_York"


def test_a_channel_takes_a_burst_of_three_then_one_message_a_second() -> None:
    clock = Clock(NOW)
    pacer = Pacer(clock)
    waits = [pacer.wait_to_post("T1", "C1") for _ in range(4)]
    assert waits == [timedelta(0)] * 3 + [timedelta(seconds=1)]
    assert pacer.wait_to_post("T1", "C2") == timedelta(0)  # another channel has its own
    assert pacer.wait_to_post("T2", "C1") == timedelta(0)  # and another workspace
    clock.now += timedelta(seconds=1)
    assert pacer.wait_to_post("T1", "C1") == timedelta(0)
    assert pacer.wait_to_post("T1", "C1") == timedelta(seconds=1)


def test_the_history_is_read_once_a_minute_per_workspace_and_method() -> None:
    clock = Clock(NOW)
    pacer = Pacer(clock)
    assert pacer.wait_to_read("T1", "conversations.history") == timedelta(0)
    assert pacer.wait_to_read("T1", "conversations.history") == timedelta(minutes=1)
    assert pacer.wait_to_read("T1", "conversations.replies") == timedelta(0)
    assert pacer.wait_to_read("T2", "conversations.history") == timedelta(0)
    clock.now += timedelta(seconds=45)
    assert pacer.wait_to_read("T1", "conversations.history") == timedelta(seconds=15)
    clock.now += timedelta(seconds=15)
    assert pacer.wait_to_read("T1", "conversations.history") == timedelta(0)


def test_a_429_holds_that_workspace_only() -> None:
    clock = Clock(NOW)
    pacer = Pacer(clock)
    pacer.rate_limited("T1", timedelta(seconds=30))
    assert pacer.wait_to_post("T1", "C1") == timedelta(seconds=30)
    assert pacer.wait_to_read("T1", "conversations.history") == timedelta(seconds=30)
    assert pacer.wait_to_post("T2", "C1") == timedelta(0)
    clock.now += timedelta(seconds=30)
    assert pacer.wait_to_post("T1", "C1") == timedelta(0)


def test_a_passed_429_is_forgotten_once_many_workspaces_were_held() -> None:
    """Memory follows the workspaces held now, not every one Slack ever rate-limited."""
    clock = Clock(NOW)
    pacer = Pacer(clock)
    for n in range(50_001):
        pacer.rate_limited(f"T{n}", timedelta(seconds=1))
    clock.now += timedelta(seconds=2)
    pacer.rate_limited("T-now", timedelta(seconds=30))
    assert pacer.wait_to_post("T1", "C1") == timedelta(0)
    assert pacer.wait_to_post("T-now", "C1") == timedelta(seconds=30)
    assert len(pacer._blocked_until) == 1


@pytest.fixture
def two_teams(store: Store, fake_slack: FakeSlack) -> tuple[Store, FakeSlack, Scheduler, Clock]:
    """Two workspaces with a daily digest at 09:00, one worker, the clock just after 09:00."""
    for team, channel in (("T0001", "C0001"), ("T0002", "C0002")):
        store.ensure_workspace(team, timezone=NY)
        store.subscribe(team, channel, "daily", "09:00")
        fake_slack.add_channel(channel)
    clock = Clock(NOW)
    settings = Settings(slack_api_url=fake_slack.api_url, _env_file=None)  # type: ignore[call-arg]
    client = courier_client(settings, "xoxb-test")
    courier = Courier(store, lambda _ws: client, Metrics(), clock, backoff=0.01)
    return store, fake_slack, Scheduler(store, courier, clock), clock


def test_one_workspaces_429_does_not_delay_the_other_workspaces_digest(
    two_teams: tuple[Store, FakeSlack, Scheduler, Clock],
) -> None:
    store, fake, scheduler, clock = two_teams
    fake.fail("chat.postMessage", status=429, retry_after=30)

    # the first post is refused; the worker does not sleep 30 s: it gives the delivery back
    # and posts the other workspace's digest in the same sweep
    assert sorted(scheduler.sweep()) == ["posted", "retry"]
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]
    [refused] = [c for c in fake.calls_to("chat.postMessage") if c.status == 429]
    held = "T0001" if refused.params.get("channel") == "C0001" else "T0002"
    [sub] = store.subscriptions(held)
    assert store.timers(held)[(DIGEST_TIMER, str(sub.id))] == NOW + timedelta(seconds=30)

    clock.now += timedelta(seconds=29)
    assert scheduler.sweep() == []
    clock.now += timedelta(seconds=1)
    assert scheduler.sweep() == ["posted"]
    assert [len(fake.messages_in(c)) for c in ("C0001", "C0002")] == [1, 1]
    delivery = store.delivery(fake.messages_in(sub.channel_id)[0]["metadata"]["event_payload"]["key"])
    assert delivery is not None and delivery.attempts == 1  # Slack's 429 was not an attempt


def test_a_post_answered_429_makes_no_files_and_they_are_made_once_it_is_out(
    store: Store, fake_slack: FakeSlack,
) -> None:
    """A digest's charts are most of its CPU: a post Slack refuses for now must not pay them."""
    store.ensure_workspace("T0001", timezone=NY)
    fake_slack.add_channel("C0001")
    clock = Clock(NOW)
    settings = Settings(slack_api_url=fake_slack.api_url, _env_file=None)  # type: ignore[call-arg]
    courier = Courier(store, lambda _ws: courier_client(settings, "xoxb-test"), Metrics(), clock,
                      backoff=0.01)
    made_after_posts: list[int] = []

    def files() -> list[Attachment]:
        made_after_posts.append(len(fake_slack.calls_to("chat.postMessage")))
        return [Attachment("trend.png", "Trend", b"\x89PNG\r\n\x1a\n")]

    def deliver() -> str:
        return courier.deliver("T0001", "digest:T0001:C0001:daily:2026-03-10", kind="digest-daily",
                               channel="C0001", due_at=NOW,
                               build=lambda: Outgoing("Daily KPIs", [], files))

    fake_slack.fail("chat.postMessage", status=429, retry_after=30)
    assert deliver() == "retry"
    assert made_after_posts == []
    clock.now += timedelta(seconds=30)
    assert deliver() == "posted"
    assert made_after_posts == [2]  # after the refused post and the one that went out
    assert [f["name"] for f in fake_slack.uploaded_files("C0001")] == ["trend.png"]
