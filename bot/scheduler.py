"""The sweep: what is due on a clock, looked at when it is due, whoever runs it.

Every digest subscription, every workspace's alert closes and its reminders have a timer row
with the next instant to look (storage/timers.py). A sweep costs one index read when nothing is
due; otherwise it claims the due timers in batches (one statement each, `SKIP LOCKED` on
PostgreSQL, so processes split a busy minute instead of racing for it), runs their handlers in
parallel, and stores each one's next time. There are no per-subscription cron jobs: one thread
per process sleeps until the earliest timer (or MAX_SLEEP, for timers other processes add) and
is woken at once by a change in this process. Every post still goes through the Courier's
claim, so a timer looked at twice, a restart or a crashed claimer can never post twice.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from bot.app.alerts import rule_subject
from bot.app.digests import subscription_subject, wake_digest
from bot.app.failures import wake_failure_dm
from bot.app.ports import Poster
from bot.app.timers import RETRY, Woken
from storage import Store
from storage.timers import DIGEST_TIMER, FAILURE_DM_TIMER, Timer

log = logging.getLogger("kpibot.scheduler")
#: the longest the loop sleeps: timers added by another process are seen within this
MAX_SLEEP = timedelta(seconds=30)
#: a claimed timer whose handler has not finished by then is due again (its claimer died);
#: `kpibot serve` uses the Courier's claim lease (KPIBOT_CLAIM_LEASE_SECONDS)
LEASE = timedelta(minutes=5)
#: a task's handler: the claimed timer and now -> what it did and when it is next due
Handler = Callable[[Timer, datetime], Woken]


def default_workers() -> int:
    """Handlers mostly wait on Slack, so a few per core; rendering charts keeps a core busy."""
    return max(2, 2 * (os.cpu_count() or 1))


class Scheduler:
    """Runs the timers of one `kpibot serve` process."""

    def __init__(self, store: Store, poster: Poster, clock: Callable[[], datetime],
                 tasks: Mapping[str, Handler] | None = None, *, workers: int = 1,
                 lease: timedelta = LEASE, owner: str | None = None) -> None:
        self.store = store
        self.lease = lease
        self.clock = clock
        self.owner = owner or f"sweep-{os.getpid()}-{id(self):x}"
        self.workers = max(1, workers)

        def digest(timer: Timer, now: datetime) -> Woken:
            return wake_digest(store, poster, timer, now, clock)

        subjects = {"digest": subscription_subject, "alert": rule_subject}

        def failure_dm(timer: Timer, now: datetime) -> Woken:
            return wake_failure_dm(store, poster, timer, now, clock, subjects)

        self.tasks: dict[str, Handler] = {DIGEST_TIMER: digest, FAILURE_DM_TIMER: failure_dm,
                                          **(tasks or {})}
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kpibot-sweep")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kpibot-scheduler", daemon=True)
        self._thread.start()
        log.info("scheduler started (%s; %d workers)", ", ".join(sorted(self.tasks)), self.workers)

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake_up(self) -> None:
        """Something this process changed may be due sooner than the loop planned."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sweep()
            self._wake.wait(self.sleep_for().total_seconds())
            self._wake.clear()

    def sleep_for(self) -> timedelta:
        """Until the earliest timer, at most MAX_SLEEP (and no busy loop on a failing store)."""
        try:
            earliest = self.store.next_timer_at(self.tasks)
        except Exception:
            log.exception("could not read the timers; looking again later")
            return MAX_SLEEP
        if earliest is None:
            return MAX_SLEEP
        return min(max(earliest - self.clock(), timedelta(milliseconds=50)), MAX_SLEEP)

    # -- the sweep ---------------------------------------------------------------------------

    def sweep(self) -> list[str]:
        """Runs every timer due now, in batches of a few per worker; returns what was delivered."""
        outcomes: list[str] = []
        try:
            now = self.clock()
            earliest = self.store.next_timer_at(self.tasks)
            if earliest is None or earliest > now:
                return outcomes
            batch = 2 * self.workers
            while True:
                timers = self.store.claim_timers(self.tasks, now, self.owner, self.lease, batch)
                for done in self._pool.map(self._run, timers) if self.workers > 1 else map(self._run, timers):
                    outcomes.extend(done)
                if len(timers) < batch:
                    return outcomes
                now = self.clock()
        except Exception:
            log.exception("sweep failed; the next one tries again")
            return outcomes

    def _run(self, timer: Timer) -> tuple[str, ...]:
        now = self.clock()
        try:
            woken = self.tasks[timer.task](timer, now)
        except Exception:
            log.exception("%s timer of %s (%s) failed; it is looked at again in %s",
                          timer.task, timer.workspace_id, timer.subject or "-", RETRY)
            woken = Woken(now + RETRY)
        try:
            self.store.reschedule_timer(timer, woken.next_at)
        except Exception:
            log.exception("could not store the next time of timer %d; its lease runs out", timer.id)
        return woken.outcomes
