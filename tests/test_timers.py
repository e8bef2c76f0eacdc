"""Timers: the sweep's cost follows what is due, not how many workspaces exist (issue 16).

Each digest subscription, each workspace's alert closes and its reminders have a timer; a sweep
with nothing due is one read of the `due_at` index, a subscribe writes only its own timer, and
processes sharing a database split what is due instead of racing for it. Costs are counted in
SQL statements here (exact, on any machine); their milliseconds are in `make bench`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.app.context import open_context
from bot.app.digests import subscribe
from bot.scheduler import Scheduler
from storage import Store, open_store
from storage.models import TimerRow
from storage.timers import ALERTS_TIMER, ASAP, DIGEST_TIMER, NUDGES_TIMER
from tests.conftest import at_once, sql_statements

NOW = datetime(2026, 3, 11, 13, 0, tzinfo=UTC)
NY = "America/New_York"


class NoPosts:
    """A Poster for sweeps that must find nothing to deliver."""

    def deliver(self, workspace_id: str, key: str, **_: Any) -> str:
        pytest.fail(f"nothing is due, yet {key} was delivered")


def workspaces_with_nothing_due(store: Store, first: int, count: int) -> None:
    """`count` workspaces, each with a daily digest, rules and reminders, all due tomorrow."""
    for n in range(first, first + count):
        workspace_id = f"T{n:05d}"
        store.ensure_workspace(workspace_id, timezone=NY)
        store.subscribe(workspace_id, "C0001", "daily", "09:00")
        store.wake(workspace_id, ALERTS_TIMER)
    with store.engine.begin() as conn:
        conn.execute(update(TimerRow).values(due_at=NOW + timedelta(days=1), claim=None))


def scheduler(store: Store, now: datetime = NOW) -> Scheduler:
    return Scheduler(store, NoPosts(), lambda: now, {
        ALERTS_TIMER: lambda timer, at: pytest.fail("no alert timer is due"),
        NUDGES_TIMER: lambda timer, at: pytest.fail("no reminder timer is due"),
    })


def test_an_idle_sweep_costs_the_same_one_read_at_ten_and_at_a_thousand_workspaces(store: Store) -> None:
    counts = []
    for first, added in ((0, 10), (10, 990)):
        workspaces_with_nothing_due(store, first, added)
        sweeper = scheduler(store)
        with sql_statements(store.engine) as seen:
            assert sweeper.sweep() == []
        counts.append(len([s for s in seen if s.lstrip().upper().startswith("SELECT")]))
        assert len(seen) <= 2, seen  # BEGIN and the index read: nothing is claimed or written

    assert counts == [1, 1]
    assert len(store.workspace_ids()) == 1000


def test_a_subscribe_writes_its_own_timer_and_no_other(store: Store) -> None:
    costs = []
    for first, added in ((0, 10), (10, 990)):
        workspaces_with_nothing_due(store, first, added)
        before = {ws: store.timers(ws) for ws in ("T00000", "T00009")}
        ctx = open_context(store, "T00005", "U0ADMIN", NOW, channel=f"C{first:04d}")
        with sql_statements(store.engine) as seen:
            subscribe(ctx, "daily", None, "08:30")
        costs.append(len(seen))
        assert {ws: store.timers(ws) for ws in ("T00000", "T00009")} == before
        [new] = [s for s in store.subscriptions("T00005") if s.channel_id == f"C{first:04d}"]
        assert store.timers("T00005")[(DIGEST_TIMER, str(new.id))] == ASAP

    assert costs[0] == costs[1], costs


def test_a_sweep_after_a_subscribe_posts_only_when_the_digest_is_due(store: Store) -> None:
    """A new timer is due at once; its handler finds the digest not due yet and sets the next
    09:00 in the workspace's zone, which is exactly when the next sweep claims it."""
    store.ensure_workspace("T0001", timezone=NY)
    sub = store.subscribe("T0001", "C0001", "daily", "09:00")
    early = NOW - timedelta(hours=1)  # 08:00 in New York, the day after yesterday's grace ended

    assert Scheduler(store, NoPosts(), lambda: early).sweep() == []
    assert store.timers("T0001")[(DIGEST_TIMER, str(sub.id))] == NOW


def test_a_crashed_claimer_s_timers_are_due_again_when_its_lease_ends(any_store: Store) -> None:
    any_store.ensure_workspace("T0001", timezone=NY)
    lease = timedelta(minutes=5)
    [claimed] = any_store.claim_timers([NUDGES_TIMER], NOW, "crashed", lease, 10)

    assert any_store.claim_timers([NUDGES_TIMER], NOW + lease - timedelta(seconds=1), "other", lease, 10) == []
    [again] = any_store.claim_timers([NUDGES_TIMER], NOW + lease, "other", lease, 10)
    assert again.id == claimed.id and again.claim != claimed.claim
    assert not any_store.reschedule_timer(claimed, NOW + timedelta(days=1))  # not its claim now
    assert any_store.reschedule_timer(again, NOW + timedelta(days=1))
    assert any_store.timers("T0001")[(NUDGES_TIMER, "")] == NOW + timedelta(days=1)


def test_a_change_during_a_claim_wins_over_the_claimer_s_next_time(any_store: Store) -> None:
    """The zone changed while a handler ran on the old one: the timer looks again at once."""
    any_store.ensure_workspace("T0001", timezone=NY)
    [claimed] = any_store.claim_timers([NUDGES_TIMER], NOW, "worker", timedelta(minutes=5), 10)
    any_store.update_workspace("T0001", timezone="Europe/Madrid")

    assert not any_store.reschedule_timer(claimed, NOW + timedelta(days=1))
    assert any_store.timers("T0001")[(NUDGES_TIMER, "")] == ASAP


def test_two_processes_claiming_at_once_split_the_due_timers(db_url: str) -> None:
    """Each process claims batches until nothing is left; no timer is claimed twice, none is
    left over (on PostgreSQL the picks skip rows another claim has locked)."""
    stores = [open_store(db_url), open_store(db_url)]
    try:
        for n in range(60):
            stores[0].ensure_workspace(f"T{n:04d}", timezone=NY)

        def drain(store: Store, owner: str) -> Any:
            def run() -> list[int]:
                got: list[int] = []
                while batch := store.claim_timers([NUDGES_TIMER], NOW, owner, timedelta(minutes=5), 4):
                    got += [t.id for t in batch]
                return got
            return run

        ids = at_once(drain(stores[0], "a"), drain(stores[1], "b"))
    finally:
        for store in stores:
            store.engine.dispose()

    assert len(ids) == 60 and len(set(ids)) == 60


def test_an_uninstalled_workspace_has_no_timers_and_a_reinstall_brings_them_back(store: Store) -> None:
    store.ensure_workspace("T0001", timezone=NY)
    sub = store.subscribe("T0001", "C0001", "daily", "09:00")
    store.add_rule("T0001", "C0001", "leads", "{}", "{}", "U0ADMIN")

    assert store.mark_uninstalled("T0001", NOW)
    assert store.timers("T0001") == {}
    assert store.mark_installed("T0001")
    assert set(store.timers("T0001")) == {(NUDGES_TIMER, ""), (ALERTS_TIMER, ""), (DIGEST_TIMER, str(sub.id))}
    assert store.unsubscribe("T0001", "C0001") == 1
    assert set(store.timers("T0001")) == {(NUDGES_TIMER, ""), (ALERTS_TIMER, "")}
