"""APScheduler jobs: each digest subscription is a cron job in its workspace's time zone.

Jobs only say "look now"; what is due comes from the database (`due_digests`), and every
post goes through the Courier's claim, so a job that fires in two processes, a restart, or
the minute sweep that catches up missed and failed deliveries can never post twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.digest import DAILY, compute_digest, digest_period
from bot.render.digest import digest_charts, digest_message
from bot.slack.courier import Attachment, Courier, Outgoing
from bot.usecases import Context, open_context
from kpis.periods import Period, PeriodError, local_date
from kpis.schedule import last_due, parse_time
from storage import Store
from storage.repository import Subscription

log = logging.getLogger("kpibot.scheduler")
GRACE = timedelta(hours=6)
SWEEP_SECONDS = 60
SCHEDULER_ACTOR = "kpibot"


@dataclass(frozen=True)
class Due:
    subscription: Subscription
    due_at: datetime
    period: Period

    @property
    def key(self) -> str:
        s = self.subscription
        return digest_key(s.workspace_id, s.channel_id, s.kind, self.period)


def digest_key(workspace_id: str, channel_id: str, kind: str, period: Period) -> str:
    """What a digest's delivery is claimed under: one post per channel, kind and period,
    whoever sends it (the scheduler, or `kpibot digest --post`)."""
    return f"digest:{workspace_id}:{channel_id}:{kind}:{period.start.isoformat()}"


Scheduled = list[tuple[Subscription, str]]


def scheduled(store: Store) -> Scheduled:
    """Every subscription with its workspace's time zone (one read of each workspace)."""
    zones: dict[str, str | None] = {}
    found = []
    for sub in store.subscriptions():
        if sub.workspace_id not in zones:
            workspace = store.workspace(sub.workspace_id)
            zones[sub.workspace_id] = workspace.timezone if workspace else None
        timezone = zones[sub.workspace_id]
        if timezone is not None:
            found.append((sub, timezone))
    return found


def due_digests(
    store: Store, now: datetime, grace: timedelta = GRACE, subs: Scheduled | None = None
) -> list[Due]:
    """Each subscription's latest scheduled time within the grace window, with its period."""
    found = []
    for sub, timezone in scheduled(store) if subs is None else subs:
        try:
            due_at = last_due(parse_time(sub.at_time), sub.weekday, timezone, now)
        except (ValueError, PeriodError):
            log.warning("subscription %d has an unusable schedule", sub.id)
            continue
        if now - due_at <= grace:
            found.append(Due(sub, due_at, digest_period(sub.kind, local_date(due_at, timezone))))
    return found


def digest_outgoing(ctx: Context, kind: str, period: Period) -> Outgoing:
    """The digest message and its charts, as the Courier posts them."""
    digest = compute_digest(ctx, kind, on=period.start)
    message = digest_message(digest)
    files = [Attachment(c.filename, c.title, c.png) for c in digest_charts(digest)]
    return Outgoing(message["text"], message["blocks"], files)


class DigestScheduler:
    """Owns the APScheduler instance of one `kpibot serve` process."""

    def __init__(self, store: Store, courier: Courier, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.courier = courier
        self.clock = clock
        self._aps: Any = None
        self._lock = threading.Lock()
        #: more work for every sweep (alerts at the close of a period, nudges): now -> outcomes
        self.extra_sweeps: list[Callable[[datetime], list[str]]] = []

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
        sub = due.subscription

        def build() -> Outgoing:
            ctx = open_context(self.store, sub.workspace_id, SCHEDULER_ACTOR, self.clock())
            return digest_outgoing(ctx, sub.kind, due.period)

        return self.courier.deliver(sub.workspace_id, due.key, kind=f"digest-{sub.kind}",
                                    channel=sub.channel_id, due_at=due.due_at, build=build)


def cron_trigger(sub: Subscription, timezone: str) -> Any:
    """09:00 in the workspace's zone, every day or on the subscription's weekday."""
    from apscheduler.triggers.cron import CronTrigger

    at = parse_time(sub.at_time)
    day_of_week = "*" if sub.kind == DAILY or sub.weekday is None else str(sub.weekday)
    return CronTrigger(day_of_week=day_of_week, hour=at.hour, minute=at.minute, timezone=timezone)
