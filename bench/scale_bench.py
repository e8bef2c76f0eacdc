"""Scheduling at scale: what an idle sweep and one subscribe cost as workspaces are added.

A database of N workspaces, each with a daily digest subscription and the timers the Store
keeps for it (the digest's, the alert closes', the reminders'), all due tomorrow, is written
in bulk (the same rows `ensure_workspace`, `subscribe` and `add_rule` write, without going
through 10,000 transactions). Then, at 100 and at 10,000 workspaces:

* idle sweep: `Scheduler.sweep()` of `kpibot serve`'s tasks with nothing due, median of
  `--runs`. Target <= 50 ms at 10,000 workspaces; the ratio to 100 workspaces shows the cost
  does not follow the workspaces that exist.
* subscribe: the `/kpi digest daily HH:MM` use case (`bot.app.digests.subscribe`, the context
  opened beforehand as the listener does) in a new channel of an existing workspace, median
  of `--runs`, each in a channel of its own. Target <= 20 ms at 10,000 subscriptions.

On a SQLite file and, when KPIBOT_BENCH_POSTGRES_URL or KPIBOT_TEST_POSTGRES_URL answers, on
PostgreSQL (a schema of its own, dropped after). Before timers (release 2 before issue 16),
the same sweep read every subscription: 0.64 s at 1,000 workspaces and 2.8 s at 4,000 on
SQLite, and each subscribe re-synced every cron job of the process.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import Options, Row, ms, register

NOW = datetime(2026, 3, 11, 13, 0, tzinfo=UTC)
ZONE = "America/New_York"
SIZES = (100, 10_000)
SWEEP_TARGET_S = 0.050
SUBSCRIBE_TARGET_S = 0.020


def fill(store: Any, count: int) -> None:
    """`count` workspaces, each with a daily digest at 09:00 and alert and reminder timers."""
    from sqlalchemy import insert

    from storage.models import SubscriptionRow, TimerRow, WorkspaceRow
    from storage.timers import ALERTS_TIMER, DIGEST_TIMER, NUDGES_TIMER

    ids = [f"TS{n:06d}" for n in range(count)]
    tomorrow = NOW + timedelta(days=1)
    with store.engine.begin() as conn:
        conn.execute(insert(WorkspaceRow), [
            {"id": ws, "name": "", "timezone": ZONE, "currency": "USD", "locale": "en_US",
             "packs": "marketing,sales", "created_at": NOW} for ws in ids])
        subs = conn.execute(insert(SubscriptionRow).returning(
            SubscriptionRow.id, SubscriptionRow.workspace_id, sort_by_parameter_order=True), [
            {"workspace_id": ws, "channel_id": "C0001", "kind": "daily", "weekday": None,
             "at_time": "09:00", "created_by": "U0ADMIN", "created_at": NOW} for ws in ids]).all()
        timers = [{"workspace_id": ws, "task": task, "subject": "", "due_at": tomorrow,
                   "claim": None} for ws in ids for task in (ALERTS_TIMER, NUDGES_TIMER)]
        timers += [{"workspace_id": ws, "task": DIGEST_TIMER, "subject": str(sub_id),
                    "due_at": tomorrow, "claim": None} for sub_id, ws in subs]
        conn.execute(insert(TimerRow), timers)


def scheduler_of(store: Any) -> Any:
    """The scheduler with `kpibot serve`'s tasks, none of which may run: nothing is due."""
    from bot.scheduler import Scheduler
    from storage.timers import ALERTS_TIMER, NUDGES_TIMER

    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("nothing is due in this benchmark")

    class NoPosts:
        deliver = never

    return Scheduler(store, NoPosts(), lambda: NOW, {ALERTS_TIMER: never, NUDGES_TIMER: never})


def median_of(work: Callable[[int], None], options: Options) -> float:
    for n in range(options.warmups):
        work(-1 - n)
    seconds = []
    for n in range(options.runs):
        started = time.perf_counter()
        work(n)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def costs(store: Any, size: int, options: Options) -> tuple[float, float]:
    """The median idle sweep and the median subscribe on this store."""
    from bot.app.context import open_context
    from bot.app.digests import subscribe

    sweeper = scheduler_of(store)

    def sweep(_: int) -> None:
        assert sweeper.sweep() == []

    contexts = {n: open_context(store, f"TS{size // 2:06d}", "U0ADMIN", NOW,
                                channel=f"CNEW{n + 100:05d}")
                for n in range(-options.warmups, options.runs)}

    def subscribe_once(n: int) -> None:
        subscribe(contexts[n], "daily", None, "09:00")

    return median_of(sweep, options), median_of(subscribe_once, options)


def measure(label: str, url_for: Callable[[int], str], options: Options) -> list[Row]:
    from storage import open_store

    sweeps: dict[int, float] = {}
    subscribes: dict[int, float] = {}
    for size in SIZES:
        store = open_store(url_for(size))
        try:
            started = time.perf_counter()
            fill(store, size)
            print(f"   [{label}] {size} workspaces written in {time.perf_counter() - started:.1f} s",
                  flush=True)
            sweeps[size], subscribes[size] = costs(store, size, options)
            print(f"   [{label}] {size}: idle sweep {ms(sweeps[size])}, "
                  f"subscribe {ms(subscribes[size])}", flush=True)
        finally:
            store.engine.dispose()
    small, big = SIZES
    return [
        Row(f"[{label}] idle sweep, {big:,} workspaces", ms(sweeps[big]), f"<= {ms(SWEEP_TARGET_S)}",
            f"{small} workspaces {ms(sweeps[small])} (ratio {sweeps[big] / sweeps[small]:.2f}); "
            "before timers 0.64 s at 1,000 and 2.8 s at 4,000 (SQLite)",
            sweeps[big] <= SWEEP_TARGET_S),
        Row(f"[{label}] one digest subscribe, {big:,} subscriptions", ms(subscribes[big]),
            f"<= {ms(SUBSCRIBE_TARGET_S)}",
            f"{small} subscriptions {ms(subscribes[small])} "
            f"(ratio {subscribes[big] / subscribes[small]:.2f}); before: a re-sync of every job",
            subscribes[big] <= SUBSCRIBE_TARGET_S),
    ]


@register("scale")
def scale_sqlite(options: Options) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="kpibot-scale-") as directory:
        return measure("SQLite", lambda size: f"sqlite:///{Path(directory) / f'scale-{size}.db'}",
                       options)


@register("scale-pg")
def scale_postgres(options: Options) -> list[Row]:
    from bench.load_bench import PG_ENVS, on_postgres

    def on(first_url: str) -> list[Row]:
        from tests.faultkit import pg_schema

        base = next(os.environ[e] for e in PG_ENVS if os.environ.get(e))
        with ExitStack() as schemas:  # 100 workspaces in the first schema, 10,000 in another

            def url_for(size: int) -> str:
                return first_url if size == SIZES[0] else schemas.enter_context(
                    pg_schema(base, prefix="kpibot_scale"))

            return measure("PostgreSQL", url_for, options)

    return on_postgres("[PostgreSQL] scheduling at scale", on)
