"""APScheduler jobs: each digest subscription is a cron job in its workspace's time zone.

Jobs only say "look now"; what is due comes from the database (`due_digests`), and every
post goes through the Poster's claim (the Courier), so a job that fires in two processes, a restart, or
the minute sweep that catches up missed and failed deliveries can never post twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.app.digests import DAILY, Due, Scheduled, due_digests, scheduled, send_due
from bot.app.ports import Poster
from kpis.schedule import parse_time
from storage import Store
from storage.repository import Subscription

log = logging.getLogger("kpibot.scheduler")
SWEEP_SECONDS = 60
#: more work for every sweep (alerts at the close of a period, nudges): now -> outcomes
Sweep = Callable[[datetime], list[str]]


class DigestScheduler:
    """Owns the APScheduler instance of one `kpibot serve` process."""

    def __init__(self, store: Store, poster: Poster, clock: Callable[[], datetime],
                 extra_sweeps: Sequence[Sweep] = ()) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock
        self._aps: Any = None
        self._lock = threading.Lock()
        self.extra_sweeps = tuple(extra_sweeps)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self._aps = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
            timezone="UTC",
        )
        self._aps.add_job(self.sweep, "interval", seconds=SWEEP_SECONDS, id="sweep",
                          next_run_time=datetime.now().astimezone())
        self._aps.start()
        self.sync()
        log.info("scheduler started (%d digest jobs)", len(self.jobs()))

    def shutdown(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)

    def jobs(self) -> dict[str, Any]:
        return {} if self._aps is None else {j.id: j for j in self._aps.get_jobs() if j.id != "sweep"}

    # -- jobs ------------------------------------------------------------------------------

    def sync(self, subs: Scheduled | None = None) -> None:
        """Makes the cron jobs match the subscriptions (after a change, and on every sweep)."""
        if self._aps is None:
            return
        with self._lock:
            wanted = {f"digest:{sub.id}": (sub, tz)
                      for sub, tz in (scheduled(self.store) if subs is None else subs)}
            current = self.jobs()
            for job_id in set(current) - set(wanted):
                self._aps.remove_job(job_id)
            for job_id, (sub, tz) in wanted.items():
                trigger = cron_trigger(sub, tz)
                job = current.get(job_id)
                if job is not None and str(job.trigger) == str(trigger):
                    continue
                self._aps.add_job(self.fire, trigger, id=job_id, replace_existing=True,
                                  args=[sub.id], name=f"{sub.kind} digest to {sub.channel_id}")

    def fire(self, subscription_id: int) -> None:
        """A cron job's moment: deliver whatever is due (this subscription's digest included)."""
        self.sweep()

    def sweep(self) -> list[str]:
        """Delivers every digest due within the grace window that nobody has delivered yet."""
        outcomes = []
        try:
            subs = scheduled(self.store)
            self.sync(subs)
            for due in due_digests(self.store, self.clock(), subs=subs):
                outcomes.append(self.send(due))
        except Exception:
            log.exception("digest sweep failed; the next sweep tries again")
        for extra in self.extra_sweeps:
            try:
                outcomes.extend(extra(self.clock()))
            except Exception:
                log.exception("sweep of %s failed; the next sweep tries again",
                              getattr(extra, "__name__", "a task"))
        return outcomes

    def send(self, due: Due) -> str:
        return send_due(self.store, self.poster, due, self.clock)


def cron_trigger(sub: Subscription, timezone: str) -> Any:
    """09:00 in the workspace's zone, every day or on the subscription's weekday."""
    from apscheduler.triggers.cron import CronTrigger

    at = parse_time(sub.at_time)
    day_of_week = "*" if sub.kind == DAILY or sub.weekday is None else str(sub.weekday)
    return CronTrigger(day_of_week=day_of_week, hour=at.hour, minute=at.minute, timezone=timezone)
