"""Reminders: who to nudge to log, when, and what is still missing for them."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.app.context import Context, UserError
from bot.app.ports import Directory, Outcome, Poster
from bot.app.timers import PENDING, Woken, retry_at
from bot.app.tracking import asked_for
from kpis.periods import PeriodError, local_date
from kpis.schedule import ScheduleError, last_due, local_instant, next_due, parse_time
from storage.repository import Store, Workspace
from storage.timers import Timer

log = logging.getLogger("kpibot.reminders")
#: people who logged within this many days before today are nudged
ACTIVE_DAYS = 14
#: a nudge goes out at the reminder time or within this long after it, never later
NUDGE_WINDOW = timedelta(hours=2)
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def set_reminders(ctx: Context, user_id: str, enabled: bool) -> None:
    """`/kpi remind on|off`: this person's own choice, kept across days."""
    ctx.store.remember_person(ctx.workspace.id, user_id, reminders=enabled)


def set_reminder_time(ctx: Context, text: str) -> Workspace:
    """`/kpi remind HH:MM`: the workspace's reminder time, read in each person's own zone."""
    try:
        at = parse_time(text)
    except ScheduleError as error:
        raise UserError(str(error)) from None
    return ctx.store.update_workspace(ctx.workspace.id, reminder_time=f"{at:%H:%M}")


@dataclass(frozen=True)
class Nudge:
    """One reminder to log, due at the reminder time on the person's own calendar day."""

    workspace_id: str
    user_id: str
    day: date
    due_at: datetime
    timezone: str

    @property
    def key(self) -> str:
        return f"nudge:{self.workspace_id}:{self.user_id}:{self.day.isoformat()}"


def due_nudges(store: Store, workspace: Workspace, now: datetime,
               directory: Directory) -> tuple[list[Nudge], set[str]]:
    """Who to remind now in the workspace, and the time zones its reminders are read in.

    A person is due when they logged within ACTIVE_DAYS, have not turned reminders off, have
    not logged for their today, and their local reminder time passed less than NUDGE_WINDOW
    ago. "Their today" is the earlier of their own date and the workspace's, so a person
    west of the workspace who logged during their day is not reminded after its midnight.
    """
    at = parse_time(workspace.reminder_time)
    today = local_date(now, workspace.timezone)
    workspace_id = workspace.id
    due: list[Nudge] = []
    zones = {workspace.timezone}
    loggers = store.loggers_since(workspace_id, today - timedelta(days=ACTIVE_DAYS))
    if not loggers:
        return due, zones
    logged_at = store.last_logged_at(workspace_id, now - timedelta(days=2), now)
    people = store.people(workspace_id)
    for user_id, last in sorted(loggers.items()):
        timezone, wanted = people.get(user_id, (None, True))
        if not _SLACK_USER.match(user_id) or not wanted:
            continue
        if last >= today:  # not due today: their zone only if known, no lookup
            zones.update([timezone] if timezone else [])
            continue
        timezone = timezone or directory.zone_of(workspace_id, user_id)
        if timezone is None:
            continue
        try:
            due_at = last_due(at, None, timezone, now)
        except PeriodError:
            log.warning("person %s has an unknown time zone", user_id)
            continue
        zones.add(timezone)
        day = local_date(due_at, timezone)
        # logging anything during their own today counts, even yesterday's numbers
        midnight = local_instant(day, time(0, 0), timezone)
        logged_today = logged_at.get(user_id, midnight - timedelta(seconds=1)) >= midnight
        if now - due_at <= NUDGE_WINDOW and last < min(day, today) and not logged_today:
            due.append(Nudge(workspace_id, user_id, day, due_at, timezone))
    return due, zones


@dataclass(frozen=True)
class Missing:
    """What the nudge says is still missing for the workspace's today."""

    day: date
    missing: tuple[str, ...]
    logged: int
    reminder_time: str


def missing_today(store: Store, workspace_id: str, now: datetime) -> Missing:
    workspace = store.workspace(workspace_id)
    if workspace is None:
        raise UserError(f"Workspace {workspace_id} is gone.")
    day = local_date(now, workspace.timezone)
    logged = store.metrics_logged_on(workspace_id, day)
    tracked = asked_for(store.catalogue(workspace_id), workspace)
    missing = tuple(m.key for m in tracked if m.key not in logged)
    return Missing(day, missing, len(logged), workspace.reminder_time)


@dataclass(frozen=True)
class NudgePost:
    """A reminder to log, for the Poster to render and post to the person."""

    missing: Missing
    active_days: int


def wake_nudges(store: Store, poster: Poster, directory: Directory, timer: Timer,
                now: datetime) -> Woken:
    """The workspace's reminder timer: each due nudge once (the Courier's claim decides), then
    the next reminder time in any of the zones its people live in."""
    workspace = store.workspace(timer.workspace_id)
    if workspace is None or not workspace.installed:
        return Woken(None)
    try:
        nudges, zones = due_nudges(store, workspace, now, directory)
        at = parse_time(workspace.reminder_time)
    except (ScheduleError, PeriodError):
        log.warning("workspace %s has an unusable reminder time or zone", workspace.id)
        return Woken(now + timedelta(days=1))
    outcomes: list[Outcome] = []
    pending: list[str] = []
    for nudge in nudges:
        done = store.delivery(nudge.key)
        if done is not None and (done.delivered_at or done.failed_at):
            continue

        def build(nudge: Nudge = nudge) -> NudgePost:
            return NudgePost(missing_today(store, nudge.workspace_id, now), ACTIVE_DAYS)

        outcome = poster.deliver(nudge.workspace_id, nudge.key, kind="nudge",
                                 channel=nudge.user_id, due_at=nudge.due_at, build=build)
        outcomes.append(outcome)
        if outcome in PENDING:
            pending.append(nudge.key)
    if pending:
        return Woken(retry_at(store, pending, now), tuple(outcomes))
    return Woken(min(next_due(at, None, z, now) for z in zones), tuple(outcomes))
