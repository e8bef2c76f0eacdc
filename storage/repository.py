"""The repository: every read and write of the product, in domain terms.

Each public method is one transaction. Writes keep `daily_totals` in step with `entries` so
that period reports read pre-aggregated days (cost grows with the period, not the history).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Engine,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter

from kpis.catalogue import (
    DEFAULT,
    DEFAULT_PACKS,
    DIMENSION_SLOTS,
    ORGANIC_SOURCES,
    Aggregation,
    Catalogue,
    Dimension,
    custom_kpi,
    custom_metric,
    organic_sources,
)
from kpis.catalogue import DIMENSIONS as BUILT_IN_DIMENSIONS
from kpis.periods import Period
from kpis.rollup import Dims, PeriodData, year_of
from storage.models import (
    AlertRuleRow,
    ChangeRow,
    DailyTotalRow,
    DefinitionRow,
    DeliveryRow,
    EntryRow,
    GoalRow,
    MonthTotalRow,
    PersonRow,
    SourceClassRow,
    SubscriptionRow,
    TimerRow,
    WorkspaceRow,
)
from storage.records import ChangeBatch as ChangeBatch
from storage.records import Changed as Changed
from storage.records import Write as Write
from storage.timers import ALERTS_TIMER, ASAP, DIGEST_TIMER, NUDGES_TIMER, TimerRepository
from storage.tokens import ApiRepository

T = TypeVar("T")
Clock = Callable[[], datetime]

#: mean metric -> the count that weighs it when logged in the same entry, and the reverse
_WEIGHT_OF = {k: m.weight for k, m in DEFAULT.metrics.items() if m.weight}
_WEIGHED_BY: dict[str, list[str]] = {}
for _mean, _weight in _WEIGHT_OF.items():
    _WEIGHED_BY.setdefault(_weight, []).append(_mean)

#: every dimension column of an entry: the built-ins, then the slots of a workspace's own
#: dimensions (callers name a workspace's own dimension by its slot: Catalogue.column_of)
DIMENSIONS = (*BUILT_IN_DIMENSIONS, *DIMENSION_SLOTS)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Workspace:
    id: str
    timezone: str
    currency: str
    locale: str
    packs: tuple[str, ...]
    name: str = ""
    enterprise_id: str | None = None
    reminder_time: str = "17:00"
    #: when the app was uninstalled (or its bot token revoked); None while installed
    uninstalled_at: datetime | None = None
    #: the metrics `/kpi track` chose, in its order; empty: the packs' metrics are asked for
    tracked: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        return self.uninstalled_at is None


class UndoConflict(Exception):
    """The batch's values were changed again since: undoing it would overwrite the later ones."""

    def __init__(self, changed: tuple[tuple[str, date], ...]) -> None:
        super().__init__(", ".join(f"{m} on {d}" for m, d in changed))
        self.changed = changed


@dataclass(frozen=True)
class Subscription:
    """A channel's scheduled digest; `weekday` (0 = Monday) only for weekly ones."""

    id: int
    workspace_id: str
    channel_id: str
    kind: str
    at_time: str
    weekday: int | None = None
    created_by: str = ""
    #: the dimension the digest also breaks down by (`source`), None for none
    breakdown: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A claimed message; `message_ts` is set once its main message is out."""

    key: str
    workspace_id: str
    kind: str
    channel_id: str
    due_at: datetime
    claimed_by: str
    attempts: int
    message_ts: str | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    error: str = ""
    #: when the claim (or a Retry-After) ends and another attempt may take it over
    expires_at: datetime | None = None


@dataclass(frozen=True)
class StoredRule:
    """An alert rule as stored: the rule and its state are JSON the bot's alert code reads."""

    id: int
    workspace_id: str
    channel_id: str
    kpi: str
    rule: str
    state: str
    version: int
    created_by: str = ""
    #: set while a removed rule's firing message has yet to say so (`Store.removed_rules`)
    removed_at: datetime | None = None
    removed_by: str | None = None


@dataclass(frozen=True)
class StoredGoal:
    key: str
    period: str
    value: float
    created_by: str = ""


@dataclass(frozen=True)
class StoredEntry:
    metric: str
    day: date
    value: float
    author: str
    dims: Dims
    origin: str
    written_at: datetime


@dataclass(frozen=True)
class Recorded:
    """A stored batch, and the period's data just before and just after it (when asked)."""

    batch: ChangeBatch
    before: PeriodData | None = None
    after: PeriodData | None = None


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    actor: str
    metric: str
    day: date
    author: str
    dims: Dims
    old: float | None
    new: float | None
    origin: str
    undone: bool
    #: the audit row's id: what a history line's Edit and Delete name
    id: int = 0


@dataclass(frozen=True)
class GroupSeries:
    """One dimension value's entries over a chart's days, in the shapes the team's own series
    come in: `daily` as `daily_series` (metric -> day -> (total, count, latest stock)),
    `paid` as `paid_series`, and `opening`: each gauge's stock before the first day."""

    daily: dict[str, dict[date, tuple[float, int, float | None]]] = field(default_factory=dict)
    paid: dict[str, dict[date, float]] = field(default_factory=dict)
    opening: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DataBy:
    """One period's data broken down by a dimension: `groups` maps each value ('' for the
    entries without one) to the data `period_data` gives filtered by it; `team` is all of
    them together, the same numbers `period_data` gives unsplit."""

    team: PeriodData
    groups: dict[str, PeriodData]


class _GroupParts:
    """The rows of one value and period of the grouped read (_grouped_period_statement),
    gathered; `together` adds several values' parts up to the team's."""

    __slots__ = ("totals", "weighted", "closing", "opening", "paid", "year")

    def __init__(self) -> None:
        self.totals: dict[str, tuple[float, float]] = {}  # (sum, count)
        # weighted means' (sum, weight), kept apart so that they replace the plain sums of
        # the same metrics whatever order the UNION ALL's rows come in
        self.weighted: dict[str, tuple[float, float]] = {}
        self.closing: dict[str, float] = {}
        self.opening: dict[str, float] = {}
        self.paid: dict[str, tuple[float, bool]] = {}  # (paid sum, some entry has a source)
        self.year: dict[str, float] = {}

    def add(self, kind: str, metric: str, number: Any, second: Any) -> None:
        if kind == "total":  # a span's edge days or its whole months (most rows: first)
            total, count = self.totals.get(metric, (0.0, 0.0))
            self.totals[metric] = (total + float(number), count + float(second))
        elif kind == "stocks":  # (closing, opening), None where nothing was logged by then
            if number is not None:
                self.closing[metric] = float(number)
            if second is not None:
                self.opening[metric] = float(second)
        elif kind == "weighted":
            self.weighted[metric] = (float(number), float(second))
        elif kind == "paid":  # a span's edge days or its whole months
            total, tagged = self.paid.get(metric, (0.0, False))
            self.paid[metric] = (total + float(number), tagged or bool(second))
        else:  # "year", "year_weighted": one stretch of the year's days
            self.year[metric] = self.year.get(metric, 0.0) + float(number)

    def data(self, period: Period) -> PeriodData:
        totals = {k: (total, round(count))
                  for k, (total, count) in {**self.totals, **self.weighted}.items()}
        return PeriodData(period, totals, self.closing, self.opening,
                          {k: paid for k, (paid, tagged) in self.paid.items()
                           if tagged and k in totals}, self.year)

    @classmethod
    def together(cls, period: Period, groups: Iterable[_GroupParts]) -> PeriodData:
        """Sums of sums: every entry and every partition belongs to exactly one value. A
        paid sum counts where some entry of any value has a source."""
        team = cls()
        listed = list(groups)

        def added(part: str) -> dict[str, list[Any]]:
            """Each key of the groups' `part`, with every group's item for it."""
            found: dict[str, list[Any]] = {}
            for group in listed:
                for key, item in getattr(group, part).items():
                    found.setdefault(key, []).append(item)
            return found

        for part in ("totals", "weighted"):
            getattr(team, part).update(
                (key, (math.fsum(t for t, _ in items), math.fsum(c for _, c in items)))
                for key, items in added(part).items())
        for part in ("closing", "opening", "year"):
            getattr(team, part).update((key, math.fsum(items)) for key, items in added(part).items())
        for key, items in added("paid").items():
            team.paid[key] = (math.fsum(p for p, _ in items), any(t for _, t in items))
        return team.data(period)


def _dims_columns(dims: Dims) -> dict[str, str]:
    values = dict(dims)
    return {name: values.get(name, "") for name in DIMENSIONS}


def _tagged_slots(conn: Connection, workspace_id: str) -> set[int]:
    """The slots (1-based) some entry of the workspace carries a value in."""
    e = EntryRow
    tagged = conn.execute(select(*(func.max(getattr(e, name)) for name in DIMENSION_SLOTS))
                          .where(e.workspace_id == workspace_id)).one()
    return {n for n, used in enumerate(tagged, start=1) if used}


def _dims_of(row: Any) -> Dims:
    """Set dimensions sorted by name: the same canonical order as `Changed.dims` and clean_dims."""
    return tuple(sorted((name, getattr(row, name)) for name in DIMENSIONS if getattr(row, name)))


class Store(ApiRepository, TimerRepository):
    """All persistence of the bot. Pass a clock to make time-dependent tests exact."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        # SQLite has one writer at a time, and a writer that finds the lock taken polls for it
        # in sleeps of up to 100 ms; threads of this process queue on a lock of ours instead,
        # so a write waits only as long as the writes ahead of it take.
        self._writer: threading.RLock | None = (
            threading.RLock() if engine.dialect.name == "sqlite" else None)
        #: the connection this thread's reads share inside `reading()`
        self._reading = threading.local()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._writer is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._writer, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[None]:
        """This thread's reads inside the block share one connection and one transaction:
        one pool checkout (a ping on PostgreSQL), BEGIN and COMMIT instead of one per read,
        for a use case of many reads such as a digest. Writes keep their own connections."""
        if getattr(self._reading, "conn", None) is not None:
            yield
            return
        with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
            self._reading.conn = conn
            try:
                yield
            finally:
                self._reading.conn = None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        shared: Connection | None = getattr(self._reading, "conn", None)
        if shared is not None:
            yield shared
            return
        with self.engine.connect().execution_options(readonly=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read_one(self) -> Iterator[Connection]:
        """A read of one statement, which is consistent by itself: no BEGIN on SQLite."""
        shared: Connection | None = getattr(self._reading, "conn", None)
        if shared is not None:
            yield shared
            return
        with self.engine.connect().execution_options(readonly=True, single=True) as conn, \
                conn.begin():
            yield conn

    def _retrying(self, work: Callable[[], T], attempts: int = 5) -> T:
        """Retries transient lock errors (SQLite's 'database is locked', a PostgreSQL deadlock)
        so they never reach a user."""
        for attempt in range(attempts):
            try:
                return work()
            except OperationalError as error:
                message = str(error).lower()
                transient = "locked" in message or "deadlock detected" in message
                if not transient or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        with self._read() as conn:
            conn.execute(select(1))
        return True

    # -- workspaces -----------------------------------------------------------------------

    def workspace(self, workspace_id: str) -> Workspace | None:
        with self._read_one() as conn:
            row = conn.execute(_WORKSPACE, {"ws": workspace_id}).first()
        return None if row is None else _workspace(row)

    def workspace_ids(self) -> list[str]:
        with self._read() as conn:
            return list(conn.scalars(select(WorkspaceRow.id).order_by(WorkspaceRow.id)))

    def ensure_workspace(
        self, workspace_id: str, *, timezone: str = "UTC", enterprise_id: str | None = None,
        name: str = "", locale: str = "en_US",
    ) -> tuple[Workspace, bool]:
        """The workspace, created with the default packs if new; the flag says it was created."""
        existing = self.workspace(workspace_id)
        if existing is not None:
            return existing, False

        def create() -> bool:
            try:
                with self._write() as conn:
                    if conn.execute(
                        select(WorkspaceRow.id).where(WorkspaceRow.id == workspace_id)
                    ).first():
                        return False
                    conn.execute(insert(WorkspaceRow).values(
                        id=workspace_id, enterprise_id=enterprise_id, name=name,
                        timezone=timezone, currency="USD", locale=locale,
                        packs=",".join(DEFAULT_PACKS), created_at=self.clock(),
                    ))
                    self._wake(conn, workspace_id, NUDGES_TIMER, "", ASAP)
                return True
            except IntegrityError:
                # another process created it between our check and our insert (PostgreSQL)
                if self.workspace(workspace_id) is None:
                    raise
                return False

        was_created = self._retrying(create)
        created = self.workspace(workspace_id)
        assert created is not None
        return created, was_created

    def update_workspace(self, workspace_id: str, **fields: Any) -> Workspace:
        if "packs" in fields:
            fields["packs"] = ",".join(fields["packs"])
        if "tracked" in fields:
            fields["tracked"] = ",".join(fields["tracked"]) or None
        with self._write() as conn:
            conn.execute(update(WorkspaceRow).where(WorkspaceRow.id == workspace_id).values(**fields))
            if {"timezone", "reminder_time"} & fields.keys():
                # every due time of the workspace is read in its zone: each looks again
                conn.execute(update(TimerRow).where(TimerRow.workspace_id == workspace_id)
                             .values(due_at=ASAP, claim=None))
        result = self.workspace(workspace_id)
        assert result is not None
        return result

    def mark_uninstalled(self, workspace_id: str, at: datetime) -> bool:
        """The app left the workspace: True when it was installed until now. Its timers go, so
        no sweep looks at it again."""
        w = WorkspaceRow
        with self._write() as conn:
            conn.execute(delete(TimerRow).where(TimerRow.workspace_id == workspace_id))
            return bool(conn.execute(update(w).where(
                w.id == workspace_id, w.uninstalled_at.is_(None)).values(uninstalled_at=at)).rowcount)

    def mark_installed(self, workspace_id: str) -> bool:
        """The app is back in the workspace: True when it had been uninstalled. Its reminders,
        alert closes and digests get their timers back, due at once (each works out what is due)."""
        w = WorkspaceRow
        with self._write() as conn:
            resumed = bool(conn.execute(update(w).where(
                w.id == workspace_id, w.uninstalled_at.is_not(None)).values(uninstalled_at=None)).rowcount)
            if resumed:
                self._wake(conn, workspace_id, NUDGES_TIMER, "", ASAP)
                if conn.execute(select(AlertRuleRow.id).where(
                        AlertRuleRow.workspace_id == workspace_id).limit(1)).first():
                    self._wake(conn, workspace_id, ALERTS_TIMER, "", ASAP)
                for sub_id in conn.scalars(select(SubscriptionRow.id).where(
                        SubscriptionRow.workspace_id == workspace_id)):
                    self._wake(conn, workspace_id, DIGEST_TIMER, str(sub_id), ASAP)
            return resumed

    def delete_workspace(self, workspace_id: str) -> dict[str, int] | None:
        """Deletes every row of the workspace from every table of the database, in one
        transaction: rows removed per table, or None when there is no such workspace.

        The tables are read from the database itself, not only from the models, so tables
        created beside them (the OAuth installations, keyed by `team_id`) go too.
        """

        def work() -> dict[str, int] | None:
            with self._write() as conn:
                if conn.execute(select(WorkspaceRow.id)
                                .where(WorkspaceRow.id == workspace_id)).first() is None:
                    return None
                present = MetaData()
                present.reflect(conn)
                removed: dict[str, int] = {}
                for table in reversed(present.sorted_tables):
                    column = workspace_column(table)
                    if column is not None:
                        done = conn.execute(delete(table).where(column == workspace_id))
                        removed[table.name] = int(done.rowcount or 0)
                return removed

        return self._retrying(work)

    # -- definitions ----------------------------------------------------------------------

    def catalogue(self, workspace_id: str) -> Catalogue:
        """The built-in catalogue plus this workspace's own metrics and KPIs."""
        with self._read_one() as conn:
            rows = conn.execute(_DEFINITIONS, {"ws": workspace_id}).all()
        return _built_catalogue(tuple(tuple(r) for r in rows))

    def workspace_and_catalogue(self, workspace_id: str) -> tuple[Workspace, Catalogue] | None:
        """The workspace and its catalogue in one statement (a request needs both)."""
        with self._read_one() as conn:
            rows = conn.execute(_WORKSPACE_AND_DEFINITIONS, {"ws": workspace_id}).all()
        if not rows:
            return None
        definitions = tuple(tuple(r)[-_DEFINITION_WIDTH:] for r in rows if r.d_key is not None)
        return _workspace(rows[0]), _built_catalogue(definitions)

    def define(
        self, workspace_id: str, key: str, *, formula: str | None, unit: str, actor: str,
        label: str = "", aggregation: str = "sum", better: str = "neutral",
    ) -> None:
        """Adds or replaces a custom metric (formula None) or KPI; callers validate first
        (a removed dimension's name it takes is forgotten as a dimension)."""
        values = dict(
            label=label or key, formula=formula, unit=unit, aggregation=aggregation,
            better=better, created_by=actor, created_at=self.clock(), slot=None, choices=None,
        )
        with self._write() as conn:
            found = conn.execute(
                update(DefinitionRow)
                .where(DefinitionRow.workspace_id == workspace_id, DefinitionRow.key == key)
                .values(**values)
            ).rowcount
            if not found:
                conn.execute(insert(DefinitionRow).values(workspace_id=workspace_id, key=key, **values))

    def add_dimension(self, workspace_id: str, key: str, choices: Sequence[str], *,
                      actor: str) -> Dimension | None:
        """A workspace's own dimension; adding one it has replaces its values. One removed
        earlier gets its own slot back, and with it its tags. Any other takes the first slot
        no dimension holds and no entry of the workspace is tagged in (a removed dimension's
        tags are never read as another's values). None when every slot is taken."""
        d = DefinitionRow
        values = dict(label=key, formula=None, unit="count", aggregation="sum", better="neutral",
                      choices=",".join(choices) or None, created_by=actor,
                      created_at=self.clock())
        with self._write() as conn:
            rows = {r.key: r.slot for r in conn.execute(
                select(d.key, d.slot).where(d.workspace_id == workspace_id, d.slot.is_not(None)))}
            live = {k: n for k, n in rows.items() if n > 0}
            slot = live.get(key) or -rows.get(key, 0)
            if slot <= 0 or slot in {n for k, n in live.items() if k != key}:
                free = [n for n in range(1, len(DIMENSION_SLOTS) + 1)
                        if n not in live.values() and n not in _tagged_slots(conn, workspace_id)]
                if not free:
                    return None
                slot = free[0]
                # a removed dimension remembered in that slot has no tags left there
                conn.execute(delete(d).where(d.workspace_id == workspace_id, d.slot == -slot,
                                             d.key != key))
            if key in rows:
                conn.execute(update(d).where(d.workspace_id == workspace_id, d.key == key)
                             .values(slot=slot, **values))
            else:
                conn.execute(insert(d).values(workspace_id=workspace_id, key=key, slot=slot,
                                              **values))
        return Dimension(key, DIMENSION_SLOTS[slot - 1], tuple(choices))

    def remove_dimension(self, workspace_id: str, key: str) -> bool:
        """A workspace's own dimension removed. While entries carry its tags, its row stays
        with its slot negated: the slot is not given to another dimension, the tags keep its
        name, and adding it again brings them back. Without tags it is forgotten."""
        d = DefinitionRow
        with self._write() as conn:
            slot = conn.scalar(select(d.slot).where(d.workspace_id == workspace_id, d.key == key,
                                                    d.slot > 0))
            if slot is None:
                return False
            mine = (d.workspace_id == workspace_id, d.key == key)
            if slot in _tagged_slots(conn, workspace_id):
                conn.execute(update(d).where(*mine).values(slot=-slot))
            else:
                conn.execute(delete(d).where(*mine))
            return True

    def remove_definition(self, workspace_id: str, key: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(
                delete(DefinitionRow)
                .where(DefinitionRow.workspace_id == workspace_id, DefinitionRow.key == key)
            ).rowcount)

    # -- entries --------------------------------------------------------------------------

    def record(
        self, workspace_id: str, writes: Sequence[Write], *, actor: str, origin: str
    ) -> ChangeBatch:
        """Stores all `writes` in one transaction (all or nothing) with an audit row each."""
        return self._record(workspace_id, writes, actor, origin).batch

    def record_in_period(
        self, workspace_id: str, writes: Sequence[Write], *, actor: str, origin: str,
        period: Period, catalogue: Catalogue,
    ) -> Recorded:
        """`record`, with the period's data as it was before the writes and as it is after,
        read once in the same transaction (the writes' own totals come back from their update)."""
        return self._record(workspace_id, writes, actor, origin, (period, catalogue))

    def _record(
        self, workspace_id: str, writes: Sequence[Write], actor: str, origin: str,
        reading: tuple[Period, Catalogue] | None = None,
    ) -> Recorded:
        batch = str(uuid.uuid4())

        def work() -> Recorded:
            keys = [(w.metric, w.day) for w in writes]
            before = after = None
            with self._write() as conn:
                if reading is None:
                    self._lock_days(conn, workspace_id, keys)
                else:  # on PostgreSQL the read takes the locks
                    before = self._period_read(conn, workspace_id, *reading, locks=keys)
                if len({_entry_key(w) for w in writes}) == len(writes):
                    changes, totals = self._write_batch(conn, workspace_id, writes, batch, actor,
                                                        origin)
                else:  # a key written twice: each write replaces the one before it
                    changes = [self._apply(conn, workspace_id, w, batch, actor, origin)
                               for w in writes]
                    totals = None
                if reading is not None and before is not None:
                    after = _after_writes(before, reading[1], writes, totals)
                    if after is None:
                        after = self._period_read(conn, workspace_id, *reading)
            return Recorded(ChangeBatch(batch, actor, origin, tuple(changes)), before, after)

        return self._retrying(work)

    def _write_batch(
        self, conn: Connection, workspace_id: str, writes: Sequence[Write], batch: str,
        actor: str, origin: str,
    ) -> tuple[list[Changed], dict[tuple[str, date], tuple[float, int]]]:
        """Writes of distinct keys in four statements: the audit rows (each reading the value
        it replaces), the entries, their month_totals, and each day's totals of the plain
        metrics (the returned totals; weighted means are refreshed one by one)."""
        now = self.clock()
        params = []
        for w in writes:
            key = {"workspace_id": workspace_id, "metric": w.metric, "day": w.day,
                   "author": w.author, **_dims_columns(w.dims)}
            params.append({**key, **{f"k_{name}": v for name, v in key.items()}, "batch": batch,
                           "actor": actor, "at": now, "new_value": w.value, "origin": origin})
        audited = {(r.metric, r.day, r.author, *(getattr(r, n) for n in DIMENSIONS)): r
                   for r in conn.execute(_INSERT_CHANGES, params)}
        entries = []
        changes = []
        for w, p in zip(writes, params, strict=True):
            row = audited[(w.metric, w.day, w.author, *(p[n] for n in DIMENSIONS))]
            entries.append({"workspace_id": workspace_id, "metric": w.metric, "day": w.day,
                            "author": w.author, "value": w.value, "origin": origin,
                            "written_at": now, "write_seq": row.id,
                            **{n: p[n] for n in DIMENSIONS}})
            changes.append(Changed(w.metric, w.day, w.author, tuple(sorted(w.dims)),
                                   row.old_value, w.value))
        conn.execute(_UPSERT_ENTRIES[conn.dialect.name], entries).all()
        _refresh_months(conn, workspace_id, writes)
        by_day: dict[date, set[str]] = {}
        for w in writes:
            by_day.setdefault(w.day, set()).add(w.metric)
        totals: dict[tuple[str, date], tuple[float, int]] = {}
        for day, metrics in sorted(by_day.items()):
            plain = sorted(m for m in metrics if m not in _WEIGHT_OF)
            if plain:
                for metric, total, count in conn.execute(
                        _REFRESH_TOTALS[conn.dialect.name],
                        {"ws": workspace_id, "day": day, "metrics": plain}):
                    totals[(metric, day)] = (float(total), int(count))
            means = {m for m in metrics if m in _WEIGHT_OF}
            means |= {mean for m in metrics for mean in _WEIGHED_BY.get(m, ())}
            for mean in sorted(means):
                self._refresh_day(conn, workspace_id, mean, day)
        return changes, totals

    def _apply(
        self, conn: Connection, workspace_id: str, w: Write, batch: str, actor: str, origin: str,
        *, value: float | None = None, delete_entry: bool = False,
        restored: tuple[datetime, int, str] | None = None,
    ) -> Changed:
        """One write with its audit row. `restored` (an undo) gives the entry back the
        (written_at, write_seq, origin) of the value it restores, so a gauge's latest write
        of the day is what it was before the undone change. The caller holds the day's lock."""
        dims = _dims_columns(w.dims)
        key = and_(
            EntryRow.workspace_id == workspace_id, EntryRow.metric == w.metric,
            EntryRow.day == w.day, EntryRow.author == w.author,
            *(getattr(EntryRow, name) == v for name, v in dims.items()),
        )
        old = conn.execute(select(EntryRow.id, EntryRow.value).where(key)).first()
        new_value = None if delete_entry else (w.value if value is None else value)
        now = self.clock()
        inserted = conn.execute(insert(ChangeRow).values(
            workspace_id=workspace_id, batch=batch, actor=actor, at=now, metric=w.metric,
            day=w.day, author=w.author, old_value=None if old is None else old.value,
            new_value=new_value, origin=origin, **dims,
        )).inserted_primary_key
        assert inserted is not None
        written_at, seq, entry_origin = restored or (now, inserted[0], origin)
        if new_value is None:
            conn.execute(delete(EntryRow).where(key))
        elif old is None:
            conn.execute(insert(EntryRow).values(
                workspace_id=workspace_id, metric=w.metric, day=w.day, author=w.author,
                value=new_value, origin=entry_origin, written_at=written_at, write_seq=seq,
                **dims,
            ))
        else:
            conn.execute(update(EntryRow).where(EntryRow.id == old.id).values(
                value=new_value, origin=entry_origin, written_at=written_at, write_seq=seq,
            ))
        self._refresh_day(conn, workspace_id, w.metric, w.day)
        for mean in _WEIGHED_BY.get(w.metric, ()):
            self._refresh_day(conn, workspace_id, mean, w.day)
        _refresh_months(conn, workspace_id, (w,), emptied=new_value is None)
        return Changed(w.metric, w.day, w.author, tuple(sorted(w.dims)),
                       None if old is None else old.value, new_value)

    def _written_before(self, conn: Connection, change: Any) -> tuple[datetime, int, str] | None:
        """(at, id, origin) of the write whose value `change` replaced: the entry's written_at,
        write_seq and origin just before `change`.

        Every write of an entry is a change row, and an undo puts back exactly the state before
        the undone write, so that state comes from the latest earlier write of the same key that
        is neither an undo nor undone (rows of `change`'s own batch count: it is being undone).
        """
        c = ChangeRow
        same_key = (
            c.workspace_id == change.workspace_id, c.metric == change.metric,
            c.day == change.day, c.author == change.author, c.id < change.id,
            *(getattr(c, name) == getattr(change, name) for name in DIMENSIONS),
        )
        found: Any = conn.execute(
            select(c.at, c.id, c.origin, c.new_value).where(
                *same_key, c.origin != "undo",
                or_(c.undone_at.is_(None), c.batch == change.batch),
            ).order_by(c.id.desc()).limit(1)
        ).first()
        if found is None or found.new_value != change.old_value:
            # history that undo cannot retrace (an older batch undone out of order): the
            # latest earlier write of the key, whatever it was
            found = conn.execute(
                select(c.at, c.id, c.origin).where(*same_key).order_by(c.id.desc()).limit(1)
            ).first()
        return None if found is None else (found.at, found.id, found.origin)

    def _lock_days(
        self, conn: Connection, workspace_id: str, keys: Iterable[tuple[str, date]]
    ) -> None:
        """Serialises writers of each (metric, day) so its daily total is never stale: every
        lock of a transaction up front, in one global order, so two batches touching the same
        days in different orders cannot deadlock. On PostgreSQL, transaction-scoped advisory
        locks; SQLite's BEGIN IMMEDIATE already serialises writers."""
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCK_DAYS, {"locks": _lock_keys(workspace_id, keys)}).all()

    def _refresh_day(self, conn: Connection, workspace_id: str, metric: str, day: date) -> None:
        where = (EntryRow.workspace_id == workspace_id, EntryRow.metric == metric, EntryRow.day == day)
        if metric in _WEIGHT_OF:
            total, count = _weighted(conn, metric, EntryRow.workspace_id == workspace_id,
                                     EntryRow.day == day)
        else:
            total, count = conn.execute(
                select(func.coalesce(func.sum(EntryRow.value), 0.0), func.count()).where(*where)
            ).one()
        latest = conn.scalar(
            select(EntryRow.value).where(*where).order_by(EntryRow.write_seq.desc()).limit(1)
        )
        day_key = (
            DailyTotalRow.workspace_id == workspace_id, DailyTotalRow.metric == metric,
            DailyTotalRow.day == day,
        )
        if not count and conn.dialect.name != "postgresql":
            conn.execute(delete(DailyTotalRow).where(*day_key))
            return
        # Updated in place, never deleted and re-inserted; on PostgreSQL an emptied day keeps a
        # row with count 0 (every read skips those).
        values = dict(total=float(total), count=int(count), latest=latest)
        if not conn.execute(update(DailyTotalRow).where(*day_key).values(**values)).rowcount:
            conn.execute(insert(DailyTotalRow).values(
                workspace_id=workspace_id, metric=metric, day=day, **values,
            ))

    def undo_last(
        self, workspace_id: str, actor: str, batch_id: str | None = None
    ) -> ChangeBatch | None:
        """Reverts `actor`'s batch `batch_id` (default: the most recent) if it is not undone yet.

        None when there is nothing of the actor's left to undo.
        """

        def work() -> ChangeBatch | None:
            with self._write() as conn:
                query = select(ChangeRow.batch).where(
                    ChangeRow.workspace_id == workspace_id, ChangeRow.actor == actor,
                    ChangeRow.undone_at.is_(None), ChangeRow.origin != "undo",
                )
                if batch_id is not None:
                    query = query.where(ChangeRow.batch == batch_id)
                batch = conn.scalar(query.order_by(ChangeRow.id.desc()).limit(1))
                if batch is None:
                    return None
                # Claim the batch first: of two concurrent undos (a double click) only one
                # reverts it, and the other finds nothing left to undo.
                claimed = conn.execute(
                    update(ChangeRow)
                    .where(ChangeRow.batch == batch, ChangeRow.undone_at.is_(None))
                    .values(undone_at=self.clock())
                ).rowcount
                if not claimed:
                    return None
                rows = conn.execute(
                    select(ChangeRow).where(ChangeRow.batch == batch).order_by(ChangeRow.id.desc())
                ).all()
                self._lock_days(conn, workspace_id, ((r.metric, r.day) for r in rows))
                latest: dict[tuple[Any, ...], Any] = {}
                for r in rows:  # newest first: a key written twice in one batch counts once
                    latest.setdefault((r.metric, r.day, r.author, *_dims_of(r)), r)
                changed_since = [r for r in latest.values()
                                 if self._current_value(conn, workspace_id, r) != r.new_value]
                if changed_since:
                    # a later log replaced these values: reverting would overwrite it
                    raise UndoConflict(tuple((r.metric, r.day) for r in changed_since))
                undo_batch = str(uuid.uuid4())
                changes = []
                for row in rows:
                    w = Write(row.metric, row.day, row.old_value or 0.0, row.author, _dims_of(row))
                    changes.append(self._apply(
                        conn, workspace_id, w, undo_batch, actor, "undo",
                        value=row.old_value, delete_entry=row.old_value is None,
                        restored=None if row.old_value is None else self._written_before(conn, row),
                    ))
                return ChangeBatch(undo_batch, actor, "undo", tuple(changes))

        return self._retrying(work)

    def entry_changed_by(self, workspace_id: str, change_id: int) -> Write | None:
        """The entry an audit row wrote, as it is now (its key, its current value); None when
        the row is not this workspace's or the entry is gone (deleted, undone)."""
        with self._read() as conn:
            row = conn.execute(select(ChangeRow).where(
                ChangeRow.workspace_id == workspace_id, ChangeRow.id == change_id)).first()
            value = None if row is None else self._current_value(conn, workspace_id, row)
        if row is None or value is None:
            return None
        return Write(row.metric, row.day, float(value), row.author, _dims_of(row))

    def delete_entry(
        self, workspace_id: str, entry: Write, *, actor: str, origin: str, period: Period,
        catalogue: Catalogue,
    ) -> Recorded | None:
        """Removes one entry with its audit row (a batch that undo can take back), with the
        period's data before and after; None when the entry is already gone."""
        batch = str(uuid.uuid4())

        def work() -> Recorded | None:
            with self._write() as conn:
                before = self._period_read(conn, workspace_id, period, catalogue,
                                           locks=[(entry.metric, entry.day)])
                dims = _dims_columns(entry.dims)
                if conn.scalar(select(EntryRow.id).where(
                        EntryRow.workspace_id == workspace_id, EntryRow.metric == entry.metric,
                        EntryRow.day == entry.day, EntryRow.author == entry.author,
                        *(getattr(EntryRow, name) == v for name, v in dims.items()))) is None:
                    return None
                change = self._apply(conn, workspace_id, entry, batch, actor, origin,
                                     delete_entry=True)
                after = self._period_read(conn, workspace_id, period, catalogue)
            return Recorded(ChangeBatch(batch, actor, origin, (change,)), before, after)

        return self._retrying(work)

    def _current_value(self, conn: Connection, workspace_id: str, change: Any) -> float | None:
        e = EntryRow
        return conn.scalar(select(e.value).where(
            e.workspace_id == workspace_id, e.metric == change.metric, e.day == change.day,
            e.author == change.author,
            *(getattr(e, name) == getattr(change, name) for name in DIMENSIONS),
        ))

    # -- reads ----------------------------------------------------------------------------

    def period_data(
        self, workspace_id: str, period: Period, catalogue: Catalogue, dims: Dims = ()
    ) -> PeriodData:
        """The period's aggregated inputs, computed in SQL (pre-aggregated days when unfiltered,
        in one statement)."""
        if not dims:
            with self._read_one() as conn:
                return self._period_read(conn, workspace_id, period, catalogue)
        e = EntryRow
        columns = [(catalogue.column_of(name), value) for name, value in dims]
        filters = [getattr(e, column) == value for column, value in columns]
        with self._read() as conn:
            totals = self._totals(conn, workspace_id, period, filters)
            closing, opening = self._stocks(conn, workspace_id, _readings(catalogue).gauges,
                                            period, columns)
            paid_keys = sorted(catalogue.read_as("paid") & totals.keys())
            paid = self._paid_sums(conn, workspace_id, paid_keys, period, filters) if paid_keys else {}
            year_keys = sorted(catalogue.read_as("year"))
            year = {k: v for k, (v, _) in self._totals(
                conn, workspace_id, year_of(period), filters, year_keys).items()} if year_keys else {}
        return PeriodData(period, totals, closing, opening, paid, year)

    def _period_read(
        self, conn: Connection, workspace_id: str, period: Period, catalogue: Catalogue,
        locks: Iterable[tuple[str, date]] | None = None,
    ) -> PeriodData:
        """The unfiltered period data in one statement (_period_statement). With `locks` on
        PostgreSQL the same statement first takes those days' locks (_lock_days)."""
        readings = _readings(catalogue)
        year = year_of(period)
        params: dict[str, Any] = {
            "ws": workspace_id, "start": period.start, "end": period.end,
            "year_start": year.start, "year_end": year.end,
        }
        locking = locks is not None and conn.dialect.name == "postgresql"
        if locking:
            params["locks"] = _lock_keys(workspace_id, locks or ())
        statement = _period_statement(readings, locking)
        found: dict[str, dict[str, Any]] = {kind: {} for kind in _PERIOD_KINDS}
        for kind, metric, value, count in conn.execute(statement, params):
            if value is not None:
                found[kind][metric] = (float(value), int(count)) if kind == "total" else float(value)
        totals = found["total"]
        return PeriodData(period, totals, found["closing"], found["opening"],
                          {k: v for k, v in found["paid"].items() if k in totals}, found["year"])

    def _totals(
        self, conn: Connection, workspace_id: str, period: Period, filters: list[Any],
        metrics: list[str] | None = None,
    ) -> dict[str, tuple[float, int]]:
        """metric -> (sum, count) within the period: from daily totals, or from the entries
        when filtered by dimension values (weighted means weighed the same way)."""
        if not filters:
            d = DailyTotalRow
            only = [d.metric.in_(metrics)] if metrics is not None else []
            return {
                metric: (float(total), int(count))
                for metric, total, count in conn.execute(
                    select(d.metric, func.sum(d.total), func.sum(d.count))
                    .where(d.workspace_id == workspace_id, d.day >= period.start,
                           d.day <= period.end, d.count > 0, *only)
                    .group_by(d.metric)
                )
            }
        e = EntryRow
        where = [e.workspace_id == workspace_id, e.day >= period.start, e.day <= period.end, *filters]
        only = [e.metric.in_(metrics)] if metrics is not None else []
        totals = {
            metric: (float(total), int(count))
            for metric, total, count in conn.execute(
                select(e.metric, func.sum(e.value), func.count()).where(*where, *only)
                .group_by(e.metric)
            )
        }
        for mean in _WEIGHT_OF.keys() & totals.keys():
            totals[mean] = _weighted(conn, mean, *where)
        return totals

    def _stocks(
        self, conn: Connection, workspace_id: str, gauges: Sequence[str], period: Period,
        columns: Sequence[tuple[str, str]],
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Closing and opening stocks of the partitions whose `columns` hold these values, in
        one statement (_stock_reads, the walk the unfiltered period read takes)."""
        found: dict[str, dict[str, float]] = {"closing": {}, "opening": {}}
        statement = _stock_statement(tuple(gauges), tuple(column for column, _ in columns))
        if statement is not None:
            params = {"ws": workspace_id, "start": period.start, "end": period.end,
                      **{f"is_{i}": value for i, (_, value) in enumerate(columns)}}
            for kind, metric, value, _ in conn.execute(statement, params):
                if value is not None:
                    found[kind][metric] = float(value)
        return found["closing"], found["opening"]

    def _paid_sums(
        self, conn: Connection, workspace_id: str, metrics: list[str], period: Period,
        filters: list[Any],
    ) -> dict[str, float]:
        """Sums from paid sources and untagged entries, of the metrics some of whose entries in
        the period carry a source (without any, `paid(x)` has no value and x counts whole)."""
        e = EntryRow
        rows = conn.execute(
            select(e.metric, _paid_value(self._organic(conn, workspace_id))).where(
                e.workspace_id == workspace_id, e.metric.in_(metrics), e.day >= period.start,
                e.day <= period.end, *filters,
            ).group_by(e.metric).having(func.max(e.source) != "")
        )
        return {metric: float(total) for metric, total in rows}

    def _organic(self, conn: Connection, workspace_id: str) -> frozenset[str]:
        s = SourceClassRow
        rows = conn.execute(select(s.source, s.paid).where(s.workspace_id == workspace_id))
        return organic_sources({source: bool(paid) for source, paid in rows})

    # -- sources ------------------------------------------------------------------------

    def classify_source(self, workspace_id: str, source: str, *, paid: bool, actor: str) -> bool | None:
        """Says how `source` counts from now on; returns how it counted before (None: default)."""
        s = SourceClassRow
        with self._write() as conn:
            before = conn.scalar(select(s.paid).where(s.workspace_id == workspace_id, s.source == source))
            values = dict(paid=paid, set_by=actor, set_at=self.clock())
            if before is None:
                conn.execute(insert(s).values(workspace_id=workspace_id, source=source, **values))
            else:
                conn.execute(update(s).where(s.workspace_id == workspace_id, s.source == source)
                             .values(**values))
        return None if before is None else bool(before)

    def source_classes(self, workspace_id: str) -> dict[str, bool]:
        """A workspace's own classification: source -> paid."""
        s = SourceClassRow
        with self._read() as conn:
            return {r.source: bool(r.paid) for r in conn.execute(
                select(s.source, s.paid).where(s.workspace_id == workspace_id))}

    def organic_sources(self, workspace_id: str) -> frozenset[str]:
        with self._read() as conn:
            return self._organic(conn, workspace_id)

    def sources_logged(self, workspace_id: str) -> list[str]:
        """Every `source` value the workspace has ever logged."""
        e = EntryRow
        with self._read() as conn:
            return list(conn.scalars(select(e.source).distinct().where(
                e.workspace_id == workspace_id, e.source != "").order_by(e.source)))

    def dimension_values(self, workspace_id: str, dimension: str, period: Period) -> list[str]:
        column = getattr(EntryRow, dimension)
        with self._read() as conn:
            return list(conn.scalars(
                select(column).distinct().where(
                    EntryRow.workspace_id == workspace_id, EntryRow.day >= period.start,
                    EntryRow.day <= period.end, column != "",
                ).order_by(column)
            ))

    def daily_series(
        self, workspace_id: str, metrics: Iterable[str], period: Period, gauges: Iterable[str] = ()
    ) -> dict[str, dict[date, tuple[float, int, float | None]]]:
        """metric -> day -> (total, count, latest) for charts and trends; for `gauges`, latest
        is the stock at the end of that day, summed across dimension values."""
        d = DailyTotalRow
        series: dict[str, dict[date, tuple[float, int, float | None]]] = {}
        stocks = set(gauges) & set(metrics)
        with self._read() as conn:
            for metric, day, total, count, latest in conn.execute(
                select(d.metric, d.day, d.total, d.count, d.latest).where(
                    d.workspace_id == workspace_id, d.metric.in_(list(metrics)),
                    d.day >= period.start, d.day <= period.end, d.count > 0,
                ).order_by(d.day)
            ):
                series.setdefault(metric, {})[day] = (float(total), int(count), latest)
            for metric, by_day in self._stock_by_day(conn, workspace_id, sorted(stocks), period).items():
                for day, stock in by_day.items():
                    total, count, _ = series[metric][day]
                    series[metric][day] = (total, count, stock)
        return series

    def daily_series_by(
        self, workspace_id: str, dimension: str, metrics: Iterable[str], period: Period,
        gauges: Iterable[str] = (),
    ) -> dict[str, GroupSeries]:
        """dimension value ('' for entries without one) -> its own daily series of `metrics`
        within `period` (a chart `by source`). One grouped statement gives every value's sums,
        counts and paid parts; a weighted mean and the gauges take one grouped read each.
        The number of statements never grows with the number of values."""
        if dimension not in DIMENSIONS:
            raise ValueError(f"{dimension!r} is not a dimension")
        e = EntryRow
        column = getattr(e, dimension)
        wanted = sorted(set(metrics))
        groups: dict[str, GroupSeries] = {}
        in_period = (e.workspace_id == workspace_id, e.day >= period.start, e.day <= period.end)
        with self._read() as conn:
            organic = self._organic(conn, workspace_id)
            for value, metric, day, total, count, paid, tagged in conn.execute(
                select(column, e.metric, e.day, func.sum(e.value), func.count(),
                       _paid_value(organic), func.max(e.source))
                .where(*in_period, e.metric.in_(wanted))
                .group_by(column, e.metric, e.day)
            ):
                group = groups.setdefault(value, GroupSeries())
                group.daily.setdefault(metric, {})[day] = (float(total), int(count), None)
                if tagged:
                    group.paid.setdefault(metric, {})[day] = float(paid)
            for mean in (m for m in wanted if m in _WEIGHT_OF):
                self._weighted_by(conn, column, mean, in_period, groups)
            self._stocks_by(conn, workspace_id, column, sorted(set(gauges) & set(wanted)),
                            period, groups)
        return groups

    def _weighted_by(self, conn: Connection, column: Any, mean: str, where: tuple[Any, ...],
                     groups: dict[str, GroupSeries]) -> None:
        """A weighted mean's (sum of value x weight, sum of weights) per value and day, in one
        read: each entry weighed by the count logged with it, as `_weighted` does."""
        e, w = EntryRow, aliased(EntryRow)
        sums: dict[tuple[str, date], list[float]] = {}
        for value, day, number, weight in conn.execute(
            select(column, e.day, e.value, w.value).select_from(e).outerjoin(w, and_(
                w.workspace_id == e.workspace_id, w.metric == _WEIGHT_OF[mean], w.day == e.day,
                w.author == e.author, *(getattr(w, name) == getattr(e, name) for name in DIMENSIONS),
            )).where(e.metric == mean, *where)
        ):
            weight = weight if weight and weight > 0 else 1.0
            found = sums.setdefault((value, day), [0.0, 0.0])
            found[0] += number * weight
            found[1] += weight
        for (value, day), (total, weights) in sums.items():
            groups.setdefault(value, GroupSeries()).daily.setdefault(mean, {})[day] = (
                total, round(weights), None)

    def _stocks_by(self, conn: Connection, workspace_id: str, column: Any, gauges: list[str],
                   period: Period, groups: dict[str, GroupSeries]) -> None:
        """Each gauge's stock per value at the end of each day it was logged, and before the
        period (`opening`): one pass over the entries in write order, as `_stock_by_day`."""
        if not gauges:
            return
        e = EntryRow
        rows = conn.execute(
            select(column, e.metric, e.day, e.value, *(getattr(e, name) for name in DIMENSIONS))
            .where(e.workspace_id == workspace_id, e.metric.in_(gauges), e.day <= period.end)
            .order_by(e.metric, e.day, e.write_seq)
        )
        latest: dict[tuple[str, str], dict[tuple[str, ...], float]] = {}
        inside: set[tuple[str, str]] = set()
        for value, metric, day, number, *where in rows:
            held = latest.setdefault((value, metric), {})
            group = groups.setdefault(value, GroupSeries())
            if day >= period.start and (value, metric) not in inside:
                inside.add((value, metric))
                if held:
                    group.opening[metric] = math.fsum(held.values())
            held[tuple(where)] = float(number)
            if day >= period.start:
                total, count, _ = group.daily[metric][day]
                group.daily[metric][day] = (total, count, math.fsum(held.values()))
        for (value, metric), held in latest.items():
            group = groups[value]
            if metric not in group.daily:  # nothing logged within the period: it stood still
                group.opening[metric] = math.fsum(held.values())

    def period_data_by(
        self, workspace_id: str, period: Period, catalogue: Catalogue, dimension: str,
        dims: Dims = (),
    ) -> dict[str, PeriodData]:
        """dimension column's value ('' for entries without one) -> the PeriodData that
        `period_data` gives with that value as one more filter (a report `by source`). A
        value with nothing in or before the period has no key."""
        return self.periods_data_by(workspace_id, (period,), catalogue, dimension, dims)[0].groups

    def periods_data_by(
        self, workspace_id: str, periods: Sequence[Period], catalogue: Catalogue,
        dimension: str, dims: Dims = (),
    ) -> list[DataBy]:
        """Each period's data per value of the dimension column and for the team (the
        values together: what `period_data` gives), from one grouped statement
        (_grouped_period_statement) after the source classification: the number of
        statements grows with neither the values nor the periods, and the gauges'
        partitions are walked once for all periods."""
        if dimension not in DIMENSIONS:
            raise ValueError(f"{dimension!r} is not a dimension")
        filters = {catalogue.column_of(name): value for name, value in dims}
        readings = _readings(catalogue)
        statement = _grouped_period_statement(readings, dimension, tuple(sorted(filters)),
                                              len(periods))
        params: dict[str, Any] = {"ws": workspace_id,
                                  **{f"f_{column}": value for column, value in filters.items()}}
        for i, period in enumerate(periods):
            params.update({f"start_{i}": period.start, f"end_{i}": period.end,
                           **_month_split(f"{i}", period.start, period.end)})
        cuts, covering = _year_stretches(periods)
        params.update({f"cut_{k}": cut for k, cut in enumerate(cuts)})
        for k in range(len(cuts) - 1):
            last = cuts[k + 1] - timedelta(days=1) if k < len(cuts) - 2 else cuts[k + 1]
            params.update(_month_split(f"y{k}", cuts[k], last))
        with self._read() as conn:
            if readings.paid:
                params["organic"] = sorted(self._organic(conn, workspace_id))
            rows = conn.execute(statement, params).all()
        found: list[dict[str, _GroupParts]] = [{} for _ in periods]
        for kind, span, value, metric, number, second in rows:
            for i in covering[span] if kind in ("year", "year_weighted") else (span,):
                parts = found[i].get(value)
                if parts is None:
                    parts = found[i][value] = _GroupParts()
                parts.add(kind, metric, number, second)
        return [DataBy(_GroupParts.together(period, groups.values()),
                       {value: parts.data(period) for value, parts in groups.items()})
                for period, groups in zip(periods, found, strict=True)]

    def _stock_by_day(
        self, conn: Connection, workspace_id: str, gauges: list[str], period: Period
    ) -> dict[str, dict[date, float]]:
        """Each gauge's stock at the end of each day it was logged within `period`: one pass
        over its entries in write order, keeping every dimension value's latest."""
        if not gauges:
            return {}
        e = EntryRow
        rows = conn.execute(
            select(e.metric, e.day, e.value, *(getattr(e, name) for name in DIMENSIONS)).where(
                e.workspace_id == workspace_id, e.metric.in_(gauges), e.day <= period.end,
            ).order_by(e.metric, e.day, e.write_seq)
        )
        latest: dict[str, dict[tuple[str, ...], float]] = {}
        found: dict[str, dict[date, float]] = {}
        for metric, day, value, *group in rows:
            groups = latest.setdefault(metric, {})
            groups[tuple(group)] = float(value)
            if day >= period.start:
                found.setdefault(metric, {})[day] = math.fsum(groups.values())
        return found

    def paid_series(
        self, workspace_id: str, metrics: Iterable[str], period: Period
    ) -> dict[str, dict[date, float]]:
        """metric -> day -> sum from paid sources and untagged entries, on the days some entry
        of the metric carries a source (kpis.rollup.bucket_data)."""
        e = EntryRow
        series: dict[str, dict[date, float]] = {}
        with self._read() as conn:
            for metric, day, total in conn.execute(
                select(e.metric, e.day, _paid_value(self._organic(conn, workspace_id))).where(
                    e.workspace_id == workspace_id, e.metric.in_(list(metrics)),
                    e.day >= period.start, e.day <= period.end,
                ).group_by(e.metric, e.day).having(func.max(e.source) != "")
            ):
                series.setdefault(metric, {})[day] = float(total)
        return series

    def metrics_logged_on(self, workspace_id: str, day: date) -> set[str]:
        with self._read() as conn:
            return set(conn.scalars(select(DailyTotalRow.metric).where(
                DailyTotalRow.workspace_id == workspace_id, DailyTotalRow.day == day,
                DailyTotalRow.count > 0,
            )))

    def own_values_on(self, workspace_id: str, author: str, day: date,
                      as_rep: Collection[str] = ()) -> dict[str, float]:
        """metric -> the value `author` logged for `day` with no dimension (for the metrics
        `as_rep`, with rep = `author` alone): what a log form without source, rep or campaign
        would replace."""
        e = EntryRow
        own = e.rep == "" if not as_rep else or_(
            and_(e.metric.in_(sorted(as_rep)), e.rep == author),
            and_(e.metric.not_in(sorted(as_rep)), e.rep == ""))
        with self._read() as conn:
            return {metric: float(value) for metric, value in conn.execute(
                select(e.metric, e.value).where(
                    e.workspace_id == workspace_id, e.author == author, e.day == day,
                    own, *(getattr(e, name) == "" for name in DIMENSIONS if name != "rep")))}

    def entries_between(
        self, workspace_id: str, start: date | None = None, end: date | None = None
    ) -> list[StoredEntry]:
        e = EntryRow
        query = select(e).where(e.workspace_id == workspace_id)
        if start is not None:
            query = query.where(e.day >= start)
        if end is not None:
            query = query.where(e.day <= end)
        with self._read() as conn:
            rows = conn.execute(query.order_by(e.day, e.metric, e.author, e.id)).all()
        return [
            StoredEntry(r.metric, r.day, r.value, r.author, _dims_of(r), r.origin, r.written_at)
            for r in rows
        ]

    def history(
        self, workspace_id: str, metric: str | None = None, limit: int = 15
    ) -> list[HistoryLine]:
        c = ChangeRow
        query = select(c).where(c.workspace_id == workspace_id)
        if metric:
            query = query.where(c.metric == metric)
        with self._read() as conn:
            rows = conn.execute(query.order_by(c.id.desc()).limit(limit)).all()
        return [
            HistoryLine(r.at, r.actor, r.metric, r.day, r.author, _dims_of(r), r.old_value,
                        r.new_value, r.origin, r.undone_at is not None, r.id)
            for r in rows
        ]

    def authors_of(self, workspace_id: str, metrics: Iterable[str], period: Period) -> list[str]:
        e = EntryRow
        with self._read() as conn:
            return list(conn.scalars(
                select(e.author).distinct().where(
                    e.workspace_id == workspace_id, e.metric.in_(list(metrics)),
                    e.day >= period.start, e.day <= period.end,
                ).order_by(e.author)
            ))

    # -- digest subscriptions ---------------------------------------------------------------

    def subscribe(
        self, workspace_id: str, channel_id: str, kind: str, at_time: str,
        weekday: int | None = None, actor: str = "", breakdown: str | None = None,
    ) -> Subscription:
        """Adds or moves the channel's digest of this kind (one per channel and kind), with
        its breakdown (`source`) or none."""
        s = SubscriptionRow

        def work() -> None:
            with self._write() as conn:
                found = conn.execute(select(s.id).where(
                    s.workspace_id == workspace_id, s.channel_id == channel_id, s.kind == kind,
                )).first()
                if found:
                    sub_id = found.id
                    conn.execute(update(s).where(s.id == sub_id).values(
                        at_time=at_time, weekday=weekday, created_by=actor, breakdown=breakdown))
                else:
                    sub_id = conn.execute(insert(s).values(
                        workspace_id=workspace_id, channel_id=channel_id, kind=kind,
                        at_time=at_time, weekday=weekday, created_by=actor, breakdown=breakdown,
                        created_at=self.clock()).returning(s.id)).scalar_one()
                # only this subscription's timer: its handler works out when it is next due
                self._wake(conn, workspace_id, DIGEST_TIMER, str(sub_id), ASAP)

        try:
            self._retrying(work)
        except IntegrityError:
            self._retrying(work)  # a concurrent first subscribe (PostgreSQL): now an update
        return next(x for x in self.subscriptions(workspace_id)
                    if x.channel_id == channel_id and x.kind == kind)

    def unsubscribe(self, workspace_id: str, channel_id: str, kind: str | None = None) -> int:
        """Stops the channel's digests (of one kind, or all); returns how many stopped."""
        s = SubscriptionRow
        query = delete(s).where(s.workspace_id == workspace_id, s.channel_id == channel_id)
        if kind is not None:
            query = query.where(s.kind == kind)
        with self._write() as conn:
            gone = [str(i) for i in conn.scalars(query.returning(s.id))]
            if gone:
                conn.execute(delete(TimerRow).where(
                    TimerRow.workspace_id == workspace_id, TimerRow.task == DIGEST_TIMER,
                    TimerRow.subject.in_(gone)))
            return len(gone)

    def subscription(self, subscription_id: int) -> Subscription | None:
        s = SubscriptionRow
        with self._read() as conn:
            r = conn.execute(select(s).where(s.id == subscription_id)).first()
        return None if r is None else _subscription(r)

    def subscriptions(self, workspace_id: str | None = None) -> list[Subscription]:
        """Every subscription, or one workspace's, in a stable order."""
        s = SubscriptionRow
        query = select(s).order_by(s.workspace_id, s.channel_id, s.kind)
        if workspace_id is not None:
            query = query.where(s.workspace_id == workspace_id)
        with self._read() as conn:
            return [_subscription(r) for r in conn.execute(query)]

    # -- deliveries: exactly once -----------------------------------------------------------

    def claim_delivery(
        self, workspace_id: str, key: str, *, kind: str, channel_id: str, due_at: datetime,
        owner: str, now: datetime, lease: timedelta,
    ) -> Delivery | None:
        """The delivery if `owner` may post it now, else None.

        New keys are inserted as claimed. An existing key is taken over only when it is
        neither delivered nor failed and its claim has expired (its claimer crashed or gave
        up for now). The unique key makes a concurrent second claim fail, not succeed twice.
        """
        d = DeliveryRow

        def work() -> bool:
            with self._write() as conn:
                row = conn.execute(
                    select(d.id, d.delivered_at, d.failed_at, d.expires_at)
                    .where(d.key == key).with_for_update()
                ).first()
                if row is None:
                    conn.execute(insert(d).values(
                        workspace_id=workspace_id, key=key, kind=kind, channel_id=channel_id,
                        due_at=due_at, claimed_by=owner, claimed_at=now,
                        expires_at=now + lease, attempts=1, error="",
                    ))
                    return True
                expires_at = _aware(row.expires_at)
                if row.delivered_at is not None or row.failed_at is not None or expires_at > now:
                    return False
                conn.execute(update(d).where(d.id == row.id).values(
                    claimed_by=owner, claimed_at=now, expires_at=now + lease,
                    attempts=d.attempts + 1,
                ))
                return True

        try:
            claimed = self._retrying(work)
        except IntegrityError:
            return None  # another process inserted the same key first: it posts
        return self.delivery(key) if claimed else None

    def delivery(self, key: str) -> Delivery | None:
        with self._read() as conn:
            row = conn.execute(select(DeliveryRow).where(DeliveryRow.key == key)).first()
        return None if row is None else _delivery(row)

    def deliveries(
        self, workspace_id: str, *, failed_only: bool = False, limit: int = 20
    ) -> list[Delivery]:
        """The latest deliveries of a workspace (failed ones only, for App Home)."""
        d = DeliveryRow
        query = select(d).where(d.workspace_id == workspace_id)
        if failed_only:
            query = query.where(d.failed_at.is_not(None))
        with self._read() as conn:
            return [_delivery(r) for r in conn.execute(query.order_by(d.id.desc()).limit(limit))]

    def last_reached(self, workspace_id: str, key_prefix: str) -> int:
        """The id of the latest delivery under keys starting with `key_prefix` that reached
        Slack (delivered with its message out), 0 when none did: where a failure episode
        starts (a failure notice is sent once per episode)."""
        d = DeliveryRow
        with self._read() as conn:
            found = conn.scalar(select(func.max(d.id)).where(
                d.workspace_id == workspace_id, d.key.startswith(key_prefix, autoescape=True),
                d.delivered_at.is_not(None), d.message_ts.is_not(None)))
        return int(found or 0)

    def failed_since(self, workspace_id: str, key_prefix: str, after_id: int) -> Delivery | None:
        """The latest delivery under keys starting with `key_prefix` that failed for good,
        made after the delivery `after_id` (`last_reached`: the episode it fails in)."""
        d = DeliveryRow
        with self._read() as conn:
            row = conn.execute(select(d).where(
                d.workspace_id == workspace_id, d.key.startswith(key_prefix, autoescape=True),
                d.failed_at.is_not(None), d.id > after_id).order_by(d.id.desc()).limit(1)).first()
        return None if row is None else _delivery(row)

    def record_posted(self, key: str, owner: str, message_ts: str) -> None:
        """The main message is out: a retry of this delivery must not post it again."""
        d = DeliveryRow
        with self._write() as conn:
            conn.execute(update(d).where(d.key == key, d.claimed_by == owner)
                         .values(message_ts=message_ts))

    def mark_delivered(self, key: str, owner: str, now: datetime) -> None:
        d = DeliveryRow
        with self._write() as conn:
            conn.execute(update(d).where(d.key == key, d.claimed_by == owner)
                         .values(delivered_at=now, error=""))

    def release_delivery(
        self, key: str, owner: str, now: datetime, error: str, *, permanent: bool,
        retry_after: timedelta = timedelta(0), attempted: bool = True,
    ) -> None:
        """Gives up a claim: for good on a permanent error, else until `retry_after` from now.
        `attempted=False` (paced, or Slack's 429: nothing was tried) does not count the claim
        as one of the attempts after which a delivery fails for good."""
        d = DeliveryRow
        values: dict[str, Any] = {"error": error[:200]}
        if permanent:
            values["failed_at"] = now
        else:
            values["expires_at"] = now + retry_after
        if not attempted:
            values["attempts"] = d.attempts - 1
        with self._write() as conn:
            conn.execute(update(d).where(d.key == key, d.claimed_by == owner,
                                         d.delivered_at.is_(None)).values(**values))

    # -- alert rules --------------------------------------------------------------------------

    def add_rule(
        self, workspace_id: str, channel_id: str, kpi: str, rule: str, state: str, actor: str
    ) -> StoredRule:
        with self._write() as conn:
            rule_id = conn.execute(insert(AlertRuleRow).values(
                workspace_id=workspace_id, channel_id=channel_id, kpi=kpi, rule=rule,
                state=state, version=0, created_by=actor, created_at=self.clock(),
            ).returning(AlertRuleRow.id)).scalar_one()
            self._ensure_timer(conn, workspace_id, ALERTS_TIMER)
        found = self.rule(workspace_id, int(rule_id))
        assert found is not None
        return found

    def rules(self, workspace_id: str | None = None) -> list[StoredRule]:
        """The rules in force (a removed one waiting to say so on its message is not)."""
        a = AlertRuleRow
        query = select(a).where(a.removed_at.is_(None)).order_by(a.workspace_id, a.id)
        if workspace_id is not None:
            query = query.where(a.workspace_id == workspace_id)
        with self._read() as conn:
            return [_rule(r) for r in conn.execute(query)]

    def rule(self, workspace_id: str, rule_id: int) -> StoredRule | None:
        a = AlertRuleRow
        with self._read() as conn:
            row = conn.execute(
                select(a).where(a.workspace_id == workspace_id, a.id == rule_id,
                                a.removed_at.is_(None))
            ).first()
        return None if row is None else _rule(row)

    def remove_rule(self, workspace_id: str, rule_id: int, actor: str, at: datetime,
                    look_again_at: datetime) -> StoredRule | None:
        """Removes the rule from everything but the alerts timer, which looks by
        `look_again_at` (should this process die before its message says so); the rule as
        removed, None when it was not there. `purge_rule` deletes it once it is told."""
        a = AlertRuleRow

        def work() -> StoredRule | None:
            with self._write() as conn:
                row = conn.execute(
                    update(a).where(a.workspace_id == workspace_id, a.id == rule_id,
                                    a.removed_at.is_(None))
                    .values(removed_at=at, removed_by=actor, version=a.version + 1)
                    .returning(*a.__table__.columns)).first()
                if row is None:
                    return None
                self._wake(conn, workspace_id, ALERTS_TIMER, "", look_again_at)
                return _rule(row)

        return self._retrying(work)

    def removed_rules(self, workspace_id: str) -> list[StoredRule]:
        """Removed rules whose firing message may still have to say so."""
        a = AlertRuleRow
        with self._read() as conn:
            return [_rule(r) for r in conn.execute(select(a).where(
                a.workspace_id == workspace_id, a.removed_at.is_not(None)).order_by(a.id))]

    def purge_rule(self, workspace_id: str, rule_id: int) -> bool:
        """Deletes a removed rule for good (its id is never handed out again)."""
        a = AlertRuleRow
        with self._write() as conn:
            done = conn.execute(delete(a).where(a.workspace_id == workspace_id, a.id == rule_id,
                                                a.removed_at.is_not(None)))
        return bool(done.rowcount)

    def save_rule_state(self, rule_id: int, version: int, state: str) -> bool:
        """Compare-and-set on `version`: False when another process saved a newer state first."""
        a = AlertRuleRow

        def work() -> bool:
            with self._write() as conn:
                done = conn.execute(update(a).where(a.id == rule_id, a.version == version,
                                                    a.removed_at.is_(None))
                                    .values(state=state, version=version + 1))
                return bool(done.rowcount)

        return self._retrying(work)

    # -- goals ---------------------------------------------------------------------------------

    def set_goal(self, workspace_id: str, key: str, period: str, value: float, actor: str) -> None:
        g = GoalRow

        def work() -> None:
            with self._write() as conn:
                conn.execute(delete(g).where(g.workspace_id == workspace_id, g.key == key,
                                             g.period == period))
                conn.execute(insert(g).values(workspace_id=workspace_id, key=key, period=period,
                                              value=value, created_by=actor,
                                              created_at=self.clock()))

        self._retrying(work)

    def remove_goals(self, workspace_id: str, key: str, period: str | None = None) -> list[StoredGoal]:
        """Removes the goals on `key` (of one period, or all of them): the ones removed."""
        g = GoalRow
        where = [g.workspace_id == workspace_id, g.key == key,
                 *([g.period == period] if period is not None else [])]

        def work() -> list[StoredGoal]:
            with self._write() as conn:
                removed = [StoredGoal(r.key, r.period, r.value, r.created_by) for r in
                           conn.execute(select(g).where(*where).order_by(g.period))]
                conn.execute(delete(g).where(*where))
                return removed

        return self._retrying(work)

    def goals(self, workspace_id: str) -> list[StoredGoal]:
        g = GoalRow
        with self._read() as conn:
            return [StoredGoal(r.key, r.period, r.value, r.created_by) for r in conn.execute(
                select(g).where(g.workspace_id == workspace_id).order_by(g.key, g.period))]

    # -- people ----------------------------------------------------------------------------------

    def remember_person(
        self, workspace_id: str, user_id: str, *, timezone: str | None = None,
        reminders: bool | None = None,
    ) -> None:
        p = PersonRow
        values: dict[str, Any] = {}
        if timezone is not None:
            values["timezone"] = timezone
        if reminders is not None:
            values["reminders"] = reminders

        def work() -> None:
            with self._write() as conn:
                exists = conn.execute(select(p.user_id).where(
                    p.workspace_id == workspace_id, p.user_id == user_id)).first()
                if exists:
                    if values:
                        conn.execute(update(p).where(p.workspace_id == workspace_id,
                                                     p.user_id == user_id).values(**values))
                else:
                    conn.execute(insert(p).values(workspace_id=workspace_id, user_id=user_id,
                                                  **{"reminders": True, **values}))

        try:
            self._retrying(work)
        except IntegrityError:
            self._retrying(work)

    def people(self, workspace_id: str) -> dict[str, tuple[str | None, bool]]:
        """user -> (time zone, wants reminders)."""
        p = PersonRow
        with self._read() as conn:
            return {r.user_id: (r.timezone, bool(r.reminders)) for r in conn.execute(
                select(p).where(p.workspace_id == workspace_id))}

    def last_logged_at(
        self, workspace_id: str, since: datetime, until: datetime
    ) -> dict[str, datetime]:
        """When each person last logged anything (not an undo) between `since` and `until`."""
        c = ChangeRow
        with self._read() as conn:
            return {actor: _aware(at) for actor, at in conn.execute(
                select(c.actor, func.max(c.at)).where(
                    c.workspace_id == workspace_id, c.at >= since, c.at <= until,
                    c.origin != "undo",
                ).group_by(c.actor))}

    def loggers_since(self, workspace_id: str, since: date) -> dict[str, date]:
        """Who logged anything since `since` (by the day they last logged for)."""
        c = ChangeRow
        with self._read() as conn:
            return {actor: day for actor, day in conn.execute(
                select(c.actor, func.max(c.day)).where(
                    c.workspace_id == workspace_id, c.day >= since, c.origin != "undo",
                ).group_by(c.actor))}



def workspace_column(table: Table) -> Column[Any] | None:
    """The column that says which workspace a row belongs to (None for a table of no
    workspace, like alembic_version): the workspace's own id, a reference to it, or the
    Slack team id of an installation."""
    if table.name == WorkspaceRow.__tablename__:
        return table.c.id
    for column in table.columns:
        if any(fk.target_fullname == "workspaces.id" for fk in column.foreign_keys):
            return column
    for name in ("workspace_id", "team_id"):
        if name in table.c:
            return table.c[name]
    return None


def _workspace(row: Any) -> Workspace:
    return Workspace(
        id=row.id, timezone=row.timezone, currency=row.currency, locale=row.locale,
        packs=tuple(p for p in row.packs.split(",") if p), name=row.name,
        enterprise_id=row.enterprise_id, reminder_time=row.reminder_time,
        uninstalled_at=row.uninstalled_at,
        tracked=tuple(m for m in (row.tracked or "").split(",") if m),
    )


def _paid_value(organic: frozenset[str] | BindParameter[Any], source: Any = EntryRow.source,
                value: Any = EntryRow.value) -> Any:
    """The sum of an entry group's values from paid sources and untagged entries (`organic`
    as the sources or as an expanding parameter holding them); `source` and `value` may be
    another table's (month_totals' source and total)."""
    listed = organic if isinstance(organic, BindParameter) else sorted(organic)
    return func.sum(case((source.in_(listed), 0.0), else_=value))


def _weighted(conn: Connection, mean: str, *where: Any) -> tuple[float, int]:
    """(sum of value x weight, sum of weights) of a mean's entries matching `where`, each
    weighed by the count logged in the same entry (same day, author and dimension values),
    or by 1 without one."""
    e, w = EntryRow, aliased(EntryRow)
    rows = conn.execute(
        select(e.value, w.value).select_from(e).outerjoin(w, and_(
            w.workspace_id == e.workspace_id, w.metric == _WEIGHT_OF[mean], w.day == e.day,
            w.author == e.author, *(getattr(w, name) == getattr(e, name) for name in DIMENSIONS),
        )).where(e.metric == mean, *where)
    )
    total = weights = 0.0
    for value, weight in rows:
        weight = weight if weight and weight > 0 else 1.0
        total += value * weight
        weights += weight
    return total, round(weights)


def _year_stretches(periods: Sequence[Period]) -> tuple[list[date], list[list[int]]]:
    """The `year(...)` days of several periods cut into stretches that each period's year
    either covers or misses, so that days the years share are read once: the cuts (the
    first day of each stretch, the last one ending with the last day read) and, for each
    stretch, the periods whose year covers it."""
    years = [year_of(period) for period in periods]
    starts = sorted([y.start for y in years] + [y.end + timedelta(days=1) for y in years])
    covering = [[i for i, y in enumerate(years)
                 if y.start <= starts[k] and starts[k + 1] <= y.end + timedelta(days=1)]
                for k in range(len(starts) - 1)]
    return [*starts[:-1], starts[-1] - timedelta(days=1)], covering


def _month_split(name: str, first: date, last: date) -> dict[str, date]:
    """The days first..last as the parameters of `_grouped_period_statement`'s split read
    `name`: its whole months (months_<name> to months_end_<name>, first days, from
    month_totals) and the days before and after them (from entries: first_<name> to
    head_<name>, tail_<name> to last_<name>). Without a whole month, every day is a head."""
    months = first if first.day == 1 else _next_month(first)
    after = _month_of(last + timedelta(days=1))  # the day after the last whole month
    if months >= after:
        head, tail, months, last_month = last, last + timedelta(days=1), date.max, date.min
    else:
        head, tail, last_month = months - timedelta(days=1), after, _month_of(after - timedelta(days=1))
    return {f"first_{name}": first, f"head_{name}": head, f"months_{name}": months,
            f"months_end_{name}": last_month, f"tail_{name}": tail, f"last_{name}": last}


def _grouped_period_statement(readings: _Readings, column: str, filtered: tuple[str, ...],
                              spans: int) -> Any:
    """Every part of `period_data` for each of `spans` periods (parameters start_<i> and
    end_<i>, and cut_<k> from `_year_stretches`), filtered on the columns `filtered`
    (parameters f_<column>) and grouped by `column`'s value as well as by metric, in one
    UNION ALL of rows (kind, span, value, metric, number, second): sums and counts, weighted
    means' sums and weights (each entry weighed as `_weighted` does), gauges' closing and
    opening stocks (the latest value of each partition from `_partition_walk`, walked once
    for every span, on or before the last day and before the first, summed), `paid(...)`
    sums with the `organic` sources and whether an entry has a source, and `year(...)` sums
    per stretch of days (their `span` is the stretch's number). Sums read a period's whole
    months from month_totals and only its edge days from entries (`_month_split`), so a
    month costs one row per value and metric, not one per entry. Built once per shape:
    building it took longer than running it."""
    key = (readings, column, filtered, spans)
    found = _GROUPED_STATEMENTS.get(key)
    if found is not None:
        return found
    e = EntryRow.__table__
    ws: Any = bindparam("ws")
    grouped = e.c[column]
    matching = [e.c.workspace_id == ws, *(e.c[c] == bindparam(f"f_{c}") for c in filtered)]

    m = MonthTotalRow.__table__

    organic: Any = bindparam("organic", expanding=True)

    def summed(table: Any, value: Any, count: Any) -> tuple[Any, Any]:
        return func.sum(value), count

    def paid(table: Any, value: Any, count: Any) -> tuple[Any, Any]:
        """The sum from paid sources and untagged entries, and whether any has a source."""
        return (_paid_value(organic, table.c.source, value),
                case((func.max(table.c.source) != "", 1), else_=0))

    def sums(kind: str, span: Any, name: str, metrics: Sequence[str] | None,
             measures: Callable[[Any, Any, Any], tuple[Any, Any]] = summed) -> list[Any]:
        """The `measures` (sums and counts, or `paid`) of split read `name` (`_month_split`):
        its edge days from entries, its whole months from month_totals."""
        def only(table: Any) -> list[Any]:
            return [] if metrics is None else [_listed(table.c.metric, metrics)]

        days = [(select(_kind(kind), span, grouped, e.c.metric,
                        *measures(e, e.c.value, func.count()))
                 .where(*matching, e.c.day >= bindparam(f"{lower}_{name}"),
                        e.c.day <= bindparam(f"{upper}_{name}"), *only(e))
                 .group_by(grouped, e.c.metric))
                for lower, upper in (("first", "head"), ("tail", "last"))]
        months = (select(_kind(kind), span, m.c[column], m.c.metric,
                         *measures(m, m.c.total, func.sum(m.c.count)))
                  .where(m.c.workspace_id == ws, *(m.c[c] == bindparam(f"f_{c}") for c in filtered),
                         m.c.month >= bindparam(f"months_{name}"),
                         m.c.month <= bindparam(f"months_end_{name}"), *only(m))
                  .group_by(m.c[column], m.c.metric))
        return [*days, months]

    def weighted(kind: str, span: Any, mean: str, within: tuple[Any, Any], *by: Any) -> Any:
        w = e.alias("weights")
        weight = case((w.c.value > 0, w.c.value), else_=1.0)
        return (select(_kind(kind), span, grouped, e.c.metric, func.sum(e.c.value * weight),
                       func.sum(weight))
                .select_from(e.outerjoin(w, and_(
                    w.c.workspace_id == e.c.workspace_id, w.c.metric == _WEIGHT_OF[mean],
                    w.c.day == e.c.day, w.c.author == e.c.author,
                    *(w.c[name] == e.c[name] for name in DIMENSIONS))))
                .where(*matching, e.c.metric == mean, e.c.day >= within[0], e.c.day <= within[1])
                .group_by(*by, grouped, e.c.metric))

    parts = []
    for i in range(spans):
        span: Any = literal_column(str(i)).label("span")
        start: Any = bindparam(f"start_{i}")
        end: Any = bindparam(f"end_{i}")
        parts.extend(sums("total", span, f"{i}", None))
        parts.extend(weighted("weighted", span, mean, (start, end)) for mean in sorted(_WEIGHT_OF))
        if readings.paid:
            parts.extend(sums("paid", span, f"{i}", readings.paid, paid))
    if readings.year:
        # the periods' years overlap: each stretch between two cuts is read once
        cuts: list[Any] = [bindparam(f"cut_{k}") for k in range(2 * spans)]
        inner: list[tuple[Any, Any]] = [(e.c.day < cut, literal_column(str(k)))
                                        for k, cut in enumerate(cuts[1:-1])]
        last: Any = literal_column(str(2 * spans - 2))
        stretch = case(*inner, else_=last) if inner else last
        by = (stretch,) if inner else ()
        within = (cuts[0], cuts[-1])
        for k in range(2 * spans - 1):
            parts.extend(sums("year", literal_column(str(k)).label("span"), f"y{k}",
                              readings.year))
        parts.extend(weighted("year_weighted", stretch.label("span"), mean, within, *by)
                     for mean in sorted(_WEIGHT_OF.keys() & set(readings.year)))
    if readings.gauges:
        walk = _partition_walk(readings.gauges, lambda entry: [
            entry.c[c] == bindparam(f"f_{c}") for c in filtered])
        first = e.alias("first")

        def stocks(i: int) -> tuple[Any, Any]:
            """Span i's closing (on or before its last day) and opening (before its first)."""
            end: Any = bindparam(f"end_{i}")
            start: Any = bindparam(f"start_{i}")
            return (_latest_stock(first, lambda day: day <= end).label(f"closing_{i}"),
                    _latest_stock(first, lambda day: day < start).label(f"opening_{i}"))

        latest = (select(first.c[column].label("value"), first.c.metric,
                         *(stock for i in range(spans) for stock in stocks(i)))
                  .select_from(walk.join(first, first.c.id == walk.c.id)).cte("stocks"))
        parts.extend(select(_kind("stocks"), literal_column(str(i)).label("span"), latest.c.value,
                            latest.c.metric, func.sum(latest.c[f"closing_{i}"]),
                            func.sum(latest.c[f"opening_{i}"]))
                     .group_by(latest.c.value, latest.c.metric) for i in range(spans))
    found = union_all(*parts)
    if len(_GROUPED_STATEMENTS) >= 256:
        _GROUPED_STATEMENTS.clear()
    _GROUPED_STATEMENTS[key] = found
    return found


_GROUPED_STATEMENTS: dict[tuple[_Readings, str, tuple[str, ...], int], Any] = {}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _subscription(row: Any) -> Subscription:
    return Subscription(row.id, row.workspace_id, row.channel_id, row.kind, row.at_time,
                        row.weekday, row.created_by, row.breakdown)


def _delivery(row: Any) -> Delivery:
    return Delivery(row.key, row.workspace_id, row.kind, row.channel_id, row.due_at,
                    row.claimed_by, row.attempts, row.message_ts, row.delivered_at, row.failed_at,
                    row.error, _aware(row.expires_at))


def _rule(row: Any) -> StoredRule:
    return StoredRule(row.id, row.workspace_id, row.channel_id, row.kpi, row.rule, row.state,
                      row.version, row.created_by, _aware(row.removed_at) if row.removed_at else None,
                      row.removed_by)


# -- statements built once ---------------------------------------------------------------------
# The request path (a /kpi log and the context every command opens) runs these prebuilt
# statements with bound parameters: SQLAlchemy compiles each once and finds it in its cache by
# a memoised key, instead of building and hashing a new expression tree per call.

_WORKSPACE = select(WorkspaceRow).where(WorkspaceRow.id == bindparam("ws"))
_DEFINITION_COLUMNS = (DefinitionRow.key, DefinitionRow.label, DefinitionRow.formula,
                       DefinitionRow.unit, DefinitionRow.aggregation, DefinitionRow.better,
                       DefinitionRow.slot, DefinitionRow.choices)
_DEFINITION_WIDTH = len(_DEFINITION_COLUMNS)
_DEFINITIONS = (select(*_DEFINITION_COLUMNS)
                .where(DefinitionRow.workspace_id == bindparam("ws")).order_by(DefinitionRow.id))
_WORKSPACE_AND_DEFINITIONS = (
    select(*WorkspaceRow.__table__.columns,
           *(c.label(f"d_{c.key}") for c in _DEFINITION_COLUMNS))
    .outerjoin(DefinitionRow, DefinitionRow.workspace_id == WorkspaceRow.id)
    .where(WorkspaceRow.id == bindparam("ws")).order_by(DefinitionRow.id)
)


@lru_cache(maxsize=512)
def _built_catalogue(rows: tuple[tuple[Any, ...], ...]) -> Catalogue:
    """The catalogue of these definition rows, built once per distinct set of definitions."""
    if not rows:
        return DEFAULT
    metrics = [custom_metric(key, label=label, unit=unit, aggregation=aggregation)
               for key, label, formula, unit, aggregation, _, slot, _ in rows
               if formula is None and slot is None]
    kpis = [custom_kpi(key, formula, label=label, unit=unit, better=better)
            for key, label, formula, unit, _, better, _, _ in rows if formula is not None]
    # a removed dimension whose tags are kept has its slot negated (Store.remove_dimension)
    dimensions = [(slot > 0, Dimension(key, DIMENSION_SLOTS[abs(slot) - 1],
                                       tuple(v for v in (choices or "").split(",") if v)))
                  for key, *_, slot, choices in rows if slot is not None]
    return Catalogue.build(metrics, kpis, [d for live, d in dimensions if live],
                           [d for live, d in dimensions if not live])


@dataclass(frozen=True)
class _Readings:
    """What a catalogue makes storage read besides sums: gauges, `paid(...)`, `year(...)`."""

    gauges: tuple[str, ...]
    paid: tuple[str, ...]
    year: tuple[str, ...]


_READINGS: dict[int, tuple[Catalogue, _Readings]] = {}


def _readings(catalogue: Catalogue) -> _Readings:
    """Worked out once per catalogue object (the store builds one per set of definitions)."""
    found = _READINGS.get(id(catalogue))
    if found is not None and found[0] is catalogue:
        return found[1]
    gauges = sorted(k for k, m in catalogue.metrics.items() if m.aggregation is Aggregation.LAST)
    readings = _Readings(tuple(gauges), tuple(sorted(catalogue.read_as("paid"))),
                         tuple(sorted(catalogue.read_as("year"))))
    if len(_READINGS) > 1024:
        _READINGS.clear()
    _READINGS[id(catalogue)] = (catalogue, readings)
    return readings


def _exact(*values: float) -> bool:
    """Whole numbers that floats add and subtract exactly, in any order."""
    return all(v.is_integer() and abs(v) < 2.0**52 for v in values)


def _after_writes(
    before: PeriodData, catalogue: Catalogue, writes: Sequence[Write],
    totals: dict[tuple[str, date], tuple[float, int]] | None,
) -> PeriodData | None:
    """A one-day period's data after `writes`, from the data before them and the writes' own
    refreshed totals, when that is exactly what a new read would give; None when only a new
    read can tell (a gauge, a weighted mean, a `paid(...)` sum with sources, a `year(...)` sum
    of fractions)."""
    period = before.period
    if totals is None or period.start != period.end or any(w.day != period.start for w in writes):
        return None
    readings = _readings(catalogue)
    for w in writes:
        if w.metric in readings.gauges or w.metric in _WEIGHT_OF or w.metric in _WEIGHED_BY:
            return None
        if w.metric in readings.paid and (w.metric in before.paid or dict(w.dims).get("source")):
            return None
    new_totals = dict(before.totals)
    year = dict(before.year)
    for (metric, _), (total, count) in totals.items():
        if metric in readings.year:
            was = before.year.get(metric)
            day_before = before.totals.get(metric, (0.0, 0))[0]
            if was is None:
                year[metric] = total
            elif _exact(was, day_before, total):
                year[metric] = was - day_before + total
            else:
                return None
        new_totals[metric] = (total, count)
    return replace(before, totals=new_totals, year=year)


def _entry_key(w: Write) -> tuple[Any, ...]:
    return (w.metric, w.day, w.author, *_dims_columns(w.dims).values())


def _lock_keys(workspace_id: str, keys: Iterable[tuple[str, date]]) -> list[int]:
    """The advisory lock of each (metric, day), in one global order; a count that weighs a
    mean (sales for days_to_close) locks the mean's day too."""
    days = set(keys)
    days |= {(mean, day) for metric, day in days for mean in _WEIGHED_BY.get(metric, ())}
    locked = {f"{workspace_id}\0{metric}\0{day.isoformat()}" for metric, day in days}
    locked |= {f"{workspace_id}\0{metric}\0month\0{_month_of(day).isoformat()}"
               for metric, day in days}
    return [
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        for name in sorted(locked)
    ]


def _month_of(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def _refresh_months(conn: Connection, workspace_id: str, writes: Iterable[Write], *,
                    emptied: bool = False) -> None:
    """month_totals of the (metric, month, dimension values) keys of `writes`, summed again
    from entries (the caller holds their month locks, `_lock_keys`); `emptied` (an entry was
    deleted) drops the keys' rows first, so a key left without entries has none."""
    keys = {(w.metric, _month_of(w.day), tuple(_dims_columns(w.dims).items())) for w in writes}
    params = [{"ws": workspace_id, "metric": metric, "month": month,
               "next_month": _next_month(month), **{f"d_{n}": v for n, v in dims}}
              for metric, month, dims in sorted(keys)]
    if emptied:
        conn.execute(_EMPTY_MONTH, params)
    conn.execute(_REFRESH_MONTHS[conn.dialect.name], params)


def fill_month_totals(conn: Connection) -> int:
    """month_totals of every entry in one INSERT ... SELECT ... GROUP BY, for bulk loads that
    write entries past `Store` (benchmarks) into an empty table; returns its rows."""
    e = EntryRow.__table__
    month: Any = (func.date(e.c.day, "start of month") if conn.dialect.name == "sqlite"
                  else cast(func.date_trunc("month", e.c.day), Date))
    dims = [e.c[name] for name in DIMENSIONS]
    grouped = (select(e.c.workspace_id, e.c.metric, month, *dims, func.sum(e.c.value),
                      func.count())
               .group_by(e.c.workspace_id, e.c.metric, month, *dims))
    conn.execute(insert(MonthTotalRow).from_select(
        ["workspace_id", "metric", "month", *DIMENSIONS, "total", "count"], grouped))
    return int(conn.execute(select(func.count()).select_from(MonthTotalRow)).scalar_one())


_ENTRY_KEY = ("workspace_id", "metric", "day", "author", *DIMENSIONS)
_ORGANIC_DEFAULTS = tuple(sorted(ORGANIC_SOURCES))


def _statements() -> dict[str, Any]:
    """The write path's statements, built once at import."""
    e, c, d = EntryRow, ChangeRow, DailyTotalRow
    old_value = select(e.value).where(
        *(getattr(e, name) == bindparam(f"k_{name}") for name in _ENTRY_KEY)).scalar_subquery()
    built: dict[str, Any] = {
        "changes": insert(c).values(old_value=old_value).returning(
            c.id, c.metric, c.day, c.author, *(getattr(c, n) for n in DIMENSIONS), c.old_value),
    }
    later = aliased(EntryRow)
    latest = (select(later.value).where(later.workspace_id == e.workspace_id,
                                         later.metric == e.metric, later.day == e.day)
              .order_by(later.write_seq.desc()).limit(1).scalar_subquery())
    day_sums = (
        select(e.workspace_id, e.metric, e.day, func.coalesce(func.sum(e.value), 0.0),
               func.count(), latest)
        .where(e.workspace_id == bindparam("ws"), e.day == bindparam("day"),
               e.metric.in_(bindparam("metrics", expanding=True)))
        .group_by(e.workspace_id, e.metric, e.day)
    )
    m = MonthTotalRow
    dims = [getattr(e, name) for name in DIMENSIONS]
    month_sums = (
        select(e.workspace_id, e.metric, bindparam("month", type_=Date), *dims,
               func.sum(e.value), func.count())
        .where(e.workspace_id == bindparam("ws"), e.metric == bindparam("metric"),
               e.day >= bindparam("month", type_=Date), e.day < bindparam("next_month"),
               *(column == bindparam(f"d_{column.key}") for column in dims))
        .group_by(e.workspace_id, e.metric, *dims)
    )
    month_key = ["workspace_id", "metric", "month", *DIMENSIONS]
    built["empty_month"] = delete(m).where(
        m.workspace_id == bindparam("ws"), m.metric == bindparam("metric"),
        m.month == bindparam("month"),
        *(getattr(m, name) == bindparam(f"d_{name}") for name in DIMENSIONS))
    for dialect, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert)):
        months = dialect_insert(m).from_select([*month_key, "total", "count"], month_sums)
        built[f"months:{dialect}"] = months.on_conflict_do_update(
            index_elements=month_key,
            set_={name: getattr(months.excluded, name) for name in ("total", "count")})
        entries = dialect_insert(e)
        built[f"entries:{dialect}"] = entries.on_conflict_do_update(
            index_elements=list(_ENTRY_KEY),
            set_={name: getattr(entries.excluded, name)
                  for name in ("value", "origin", "written_at", "write_seq")},
        ).returning(e.id)
        totals = dialect_insert(d).from_select(
            ["workspace_id", "metric", "day", "total", "count", "latest"], day_sums)
        built[f"totals:{dialect}"] = totals.on_conflict_do_update(
            index_elements=["workspace_id", "metric", "day"],
            set_={name: getattr(totals.excluded, name) for name in ("total", "count", "latest")},
        ).returning(d.metric, d.total, d.count)

    return built


def _kind(name: str) -> Any:
    return literal_column(f"'{name}'", String).label("kind")


def _listed(column: Any, values: Sequence[str]) -> Any:
    """`column IN ('a', 'b')` written into the statement: the period read's lists are fixed
    per catalogue, so each catalogue's statement is compiled once, with nothing to expand per
    execution (an expanding parameter rewrites the SQL on every call)."""
    if not values:
        return false()
    return column.in_([literal_column(_quoted(v), String) for v in values])


def _quoted(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _period_reads(readings: _Readings) -> tuple[Any, ...]:
    """The parts of the unfiltered period read (sums, closing and opening gauges, paid
    sums, year sums), for a catalogue's readings; no gauges, no gauge parts."""
    e, d, s = EntryRow, DailyTotalRow, SourceClassRow
    ws: Any = bindparam("ws")
    start: Any = bindparam("start")
    end: Any = bindparam("end")
    sums = (select(_kind("total"), d.metric, func.sum(d.total), func.sum(d.count))
            .where(d.workspace_id == ws, d.day >= start, d.day <= end, d.count > 0)
            .group_by(d.metric))

    def classified(paid: bool) -> Any:
        return exists().where(s.workspace_id == e.workspace_id, s.source == e.source,
                              s.paid.is_(true() if paid else false()))

    # kpis.catalogue.organic_sources in SQL: the defaults, less those the workspace counts as
    # paid, plus those it counts as organic
    organic = or_(and_(_listed(e.source, _ORGANIC_DEFAULTS), ~classified(True)), classified(False))
    paid = (select(_kind("paid"), e.metric, func.sum(case((organic, 0.0), else_=e.value)),
                   literal_column("0"))
            .where(e.workspace_id == ws, _listed(e.metric, readings.paid),
                   e.day >= start, e.day <= end)
            .group_by(e.metric).having(func.max(e.source) != ""))
    year = (select(_kind("year"), d.metric, func.sum(d.total), func.sum(d.count))
            .where(d.workspace_id == ws, d.day >= bindparam("year_start"),
                   d.day <= bindparam("year_end"), d.count > 0,
                   _listed(d.metric, readings.year))
            .group_by(d.metric))
    return (sums, *_stock_reads(readings.gauges), paid, year)


#: the columns of ix_entries_partition after workspace_id and before (day, write_seq): a
#: stock's partition, one latest value each
_PARTITION = ("metric", *DIMENSIONS)


def _stock_reads(gauges: Sequence[str], columns: Sequence[str] = ()) -> tuple[Any, ...]:
    """The closing (day <= :end) and opening (day < :start) parts of a period read of
    workspace :ws (none without gauges): each gauge's partitions (`_partition_walk`), only
    those whose `columns` hold the values :is_0, :is_1..., summed per metric, the latest
    day's last write of each (several authors may write one day), one backward seek each."""
    if not gauges:
        return ()
    e = EntryRow.__table__
    walk = _partition_walk(gauges, lambda entry: [
        entry.c[column] == bindparam(f"is_{i}") for i, column in enumerate(columns)])
    first = e.alias("first")

    def stock(name: str, bound: Callable[[Any], Any]) -> Any:
        latest = (select(first.c.metric, _latest_stock(first, bound).label("value"))
                  .select_from(walk.join(first, first.c.id == walk.c.id))
                  .subquery())
        return (select(_kind(name), latest.c.metric, func.sum(latest.c.value), literal_column("0"))
                .group_by(latest.c.metric))

    end: Any = bindparam("end")
    start: Any = bindparam("start")
    return stock("closing", lambda day: day <= end), stock("opening", lambda day: day < start)


def _partition_walk(gauges: Sequence[str], matching: Callable[[Any], list[Any]]) -> Any:
    """The id of the first entry of each (gauge, dimension values) partition of workspace
    :ws whose entries meet `matching` (conditions on an alias of the entries table), as a
    recursive CTE with one column, `id` (and one NULL row where a walk ends).

    Grouping a gauge's whole history by partition cost ~185 ms at 1M entries; this walks
    ix_entries_partition instead (a skip scan, which neither SQLite nor PostgreSQL does by
    itself): seeded per gauge, each next partition is one index seek away (the first entry
    after this partition that shares the longest prefix of its columns, tried longest prefix
    first). The cost grows with the number of partitions, not the history; a filter on a
    column after the first makes a seek step over the entries between two matching
    partitions, each entry once at most."""
    e = EntryRow.__table__  # aliases of the table: building on ORM aliases took ~90 ms
    names = union_all(*(select(literal_column(_quoted(g), String).label("metric"))
                        for g in gauges)).subquery("gauges")
    ws: Any = bindparam("ws")

    def first_after(fixed: int) -> Any:
        """The id of the first entry, in index order, that has the current entry `e`'s first
        `fixed` partition columns and a greater next one."""
        n = e.alias()
        same = [n.c[c] == e.c[c] for c in _PARTITION[:fixed]]
        past = n.c[_PARTITION[fixed]] > e.c[_PARTITION[fixed]]
        return (select(n.c.id).where(n.c.workspace_id == ws, *same, past, *matching(n))
                .order_by(*(n.c[c] for c in _PARTITION[fixed:])).limit(1)
                .scalar_subquery())

    n = e.alias()
    seed = (select(n.c.id).where(n.c.workspace_id == ws, n.c.metric == names.c.metric, *matching(n))
            .order_by(*(n.c[c] for c in _PARTITION[1:])).limit(1).scalar_subquery())
    walk = select(seed.label("id")).select_from(names).cte("partitions", recursive=True)
    steps = [first_after(fixed) for fixed in range(len(_PARTITION) - 1, 0, -1)]
    return walk.union_all(
        select(func.coalesce(*steps)).select_from(walk.join(e, e.c.id == walk.c.id)))


def _latest_stock(first: Any, bound: Callable[[Any], Any]) -> Any:
    """The value of the last write on the latest day within `bound` of the partition of the
    entry `first` (an alias of the entries table): one backward index seek."""
    v = EntryRow.__table__.alias()
    return (select(v.c.value)
            .where(v.c.workspace_id == bindparam("ws"), bound(v.c.day),
                   *(v.c[c] == first.c[c] for c in _PARTITION))
            .order_by(v.c.day.desc(), v.c.write_seq.desc()).limit(1)
            .scalar_subquery())


@lru_cache(maxsize=256)
def _stock_statement(gauges: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """The filtered read's stocks in one statement (None without gauges), built once per
    gauges and filtered columns."""
    reads = _stock_reads(gauges, columns)
    return union_all(*reads) if reads else None


_PERIOD_STATEMENTS: dict[tuple[_Readings, bool], Any] = {}


def _period_statement(readings: _Readings, locking: bool) -> Any:
    """The period read of a catalogue's readings (taking the days' advisory locks first when
    `locking`, PostgreSQL only), built once per set of readings."""
    key = (readings, locking)
    found = _PERIOD_STATEMENTS.get(key)
    if found is None:
        reads = _period_reads(readings)
        if locking:
            found = union_all(select(_kind("lock"), literal_column("''"), literal_column("0.0"),
                                     func.count()).select_from(_LOCKING), *reads)
        else:
            found = union_all(*reads)
        if len(_PERIOD_STATEMENTS) >= 256:
            _PERIOD_STATEMENTS.clear()
        _PERIOD_STATEMENTS[key] = found
    return found


_LOCKING = select(func.pg_advisory_xact_lock(
    func.unnest(bindparam("locks", type_=ARRAY(BigInteger))).column_valued("k")).label("locked")
).subquery()
_BUILT = _statements()
_INSERT_CHANGES = _BUILT["changes"]
_UPSERT_ENTRIES = {dialect: _BUILT[f"entries:{dialect}"] for dialect in ("sqlite", "postgresql")}
_REFRESH_TOTALS = {dialect: _BUILT[f"totals:{dialect}"] for dialect in ("sqlite", "postgresql")}
_REFRESH_MONTHS = {dialect: _BUILT[f"months:{dialect}"] for dialect in ("sqlite", "postgresql")}
_EMPTY_MONTH = _BUILT["empty_month"]
_LOCK_DAYS = select(func.count()).select_from(_LOCKING)
_PERIOD_KINDS = ("total", "closing", "opening", "paid", "year", "lock")
