"""Storage of timers: when to look next at each digest, alert close and reminder round.

A mixin of `Store` (storage/repository.py). The sweep asks `next_timer_at` (one index read)
and, when something is due, `claim_timers` takes a batch in one statement: on PostgreSQL the
rows are picked with `FOR UPDATE SKIP LOCKED`, so processes split the work instead of racing
for it; on SQLite writers are serialised anyway. A claim moves `due_at` to the end of its lease,
so the rows of a process that died become due again without anyone cleaning up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage.models import TimerRow

T = TypeVar("T")
#: "look at the next sweep": a timer's handler works out what is really due, so an early
#: look is always safe, and this instant sorts before every real one
ASAP = datetime(2000, 1, 1, tzinfo=UTC)
_TIMERS: Table = TimerRow.__table__  # type: ignore[assignment]
#: what a timer looks at: a digest subscription (subject: its id), a workspace's alert rules at
#: the close of its day, and its reminders to log (subject: ""); and a failure DM not sent yet
#: (subject: what failed, `digest:{id}` or `alert:{id}`: bot/app/failures.py)
DIGEST_TIMER, ALERTS_TIMER, NUDGES_TIMER = "digest", "alerts", "nudges"
FAILURE_DM_TIMER = "failure-dm"


@dataclass(frozen=True)
class Timer:
    id: int
    workspace_id: str
    task: str
    subject: str
    #: who holds it until its lease ends: `reschedule_timer` succeeds only for this claim
    claim: str


class TimerRepository:
    """The `timers` table: one row per thing on a clock, `due_at` indexed."""

    if TYPE_CHECKING:
        clock: Callable[[], datetime]

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _retrying(self, work: Callable[[], T], attempts: int = 5) -> T: ...

    def next_timer_at(self, tasks: Collection[str]) -> datetime | None:
        """The earliest due time of these tasks (claimed rows count at their lease's end)."""
        t = _TIMERS
        with self._read() as conn:
            # the first row in index order, not min() over a filter: the read stops at once
            found = conn.execute(select(t.c.due_at).where(t.c.task.in_(tasks))
                                 .order_by(t.c.due_at).limit(1)).scalar()
        return None if found is None else _utc(found)

    def claim_timers(self, tasks: Collection[str], now: datetime, owner: str,
                     lease: timedelta, limit: int) -> list[Timer]:
        """Up to `limit` timers due at `now`, earliest first, held by this claim until the lease
        ends. Rows another process is claiming at this moment are skipped, not waited for."""
        t = _TIMERS
        claim = f"{owner}:{uuid.uuid4().hex[:12]}"
        picked = (select(t.c.id).where(t.c.due_at <= now, t.c.task.in_(tasks))
                  .order_by(t.c.due_at).limit(limit).with_for_update(skip_locked=True))
        statement = (update(t).where(t.c.id.in_(picked.scalar_subquery()))
                     .values(due_at=now + lease, claim=claim)
                     .returning(t.c.id, t.c.workspace_id, t.c.task, t.c.subject))

        def work() -> list[Timer]:
            with self._write() as conn:
                return [Timer(r.id, r.workspace_id, r.task, r.subject, claim)
                        for r in conn.execute(statement)]

        return self._retrying(work)

    def reschedule_timer(self, timer: Timer, due_at: datetime | None) -> bool:
        """The claimed timer's next look (None: nothing more to look at, the row goes). False
        when someone woke it meanwhile (a changed schedule): their `due_at` stands."""
        t = _TIMERS
        mine = (t.c.id == timer.id) & (t.c.claim == timer.claim)
        statement = (delete(t).where(mine) if due_at is None
                     else update(t).where(mine).values(due_at=due_at, claim=None))
        with self._write() as conn:
            return bool(conn.execute(statement).rowcount)

    def wake(self, workspace_id: str, task: str, subject: str = "", at: datetime = ASAP) -> None:
        """Look at this thing by `at` at the latest (the timer is created when missing); a
        claim in progress is cut loose, so the change it may have missed is looked at again."""

        def work() -> None:
            with self._write() as conn:
                self._wake(conn, workspace_id, task, subject, at)

        try:
            self._retrying(work)
        except IntegrityError:
            self._retrying(work)  # a concurrent first wake (PostgreSQL): now an update

    def _wake(self, conn: Connection, workspace_id: str, task: str, subject: str,
              at: datetime) -> None:
        t = _TIMERS
        row = conn.execute(select(t.c.id, t.c.due_at, t.c.claim).where(
            t.c.workspace_id == workspace_id, t.c.task == task, t.c.subject == subject,
        ).with_for_update()).first()
        if row is None:
            conn.execute(insert(t).values(workspace_id=workspace_id, task=task, subject=subject,
                                          due_at=at, claim=None))
        elif row.claim is not None or at < _utc(row.due_at):
            due_at = at if row.claim is not None else min(at, _utc(row.due_at))
            conn.execute(update(t).where(t.c.id == row.id).values(due_at=due_at, claim=None))

    def _ensure_timer(self, conn: Connection, workspace_id: str, task: str, subject: str = "") -> None:
        """A timer due at once when there is none; an existing one keeps its time."""
        t = _TIMERS
        if conn.execute(select(t.c.id).where(t.c.workspace_id == workspace_id, t.c.task == task,
                                             t.c.subject == subject)).first() is None:
            conn.execute(insert(t).values(workspace_id=workspace_id, task=task, subject=subject,
                                          due_at=ASAP, claim=None))

    def wake_workspace(self, workspace_id: str, at: datetime = ASAP) -> int:
        """Every timer of the workspace looks again by `at` (its zone or times changed)."""
        t = _TIMERS
        with self._write() as conn:
            return int(conn.execute(update(t).where(t.c.workspace_id == workspace_id)
                                    .values(due_at=at, claim=None)).rowcount or 0)

    def drop_timers(self, workspace_id: str, task: str | None = None,
                    subjects: Collection[str] | None = None) -> int:
        t = _TIMERS
        query = delete(t).where(t.c.workspace_id == workspace_id)
        if task is not None:
            query = query.where(t.c.task == task)
        if subjects is not None:
            query = query.where(t.c.subject.in_(list(subjects)))
        with self._write() as conn:
            return int(conn.execute(query).rowcount or 0)

    def timers(self, workspace_id: str) -> dict[tuple[str, str], datetime]:
        """(task, subject) -> due time, for App Home and tests."""
        t = _TIMERS
        with self._read() as conn:
            return {(r.task, r.subject): _utc(r.due_at) for r in conn.execute(
                select(t.c.task, t.c.subject, t.c.due_at).where(t.c.workspace_id == workspace_id))}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
