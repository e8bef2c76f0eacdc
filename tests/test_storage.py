"""The database as kpi-catalogue.md section 4 describes it, on real SQLite files and PostgreSQL.

Every test that takes `any_store` runs on a fresh SQLite file and, when
KPIBOT_TEST_POSTGRES_URL is set, again on an empty PostgreSQL schema.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, inspect, select

from kpis.catalogue import (
    DEFAULT,
    DIMENSION_SLOTS,
    DIMENSIONS,
    ORGANIC_SOURCES,
    Aggregation,
    Catalogue,
)
from kpis.formula import evaluate
from kpis.periods import Period
from kpis.rollup import Dims, PeriodData, kpi_values, metric_values
from storage import Store, Write, open_store
from storage.models import ChangeRow, DailyTotalRow, EntryRow, MonthTotalRow
from storage.repository import UndoConflict, fill_month_totals

DAY = date(2026, 3, 10)
WEEK = Period.iso_week(DAY)
FB: Dims = (("source", "facebook"),)
GOOGLE: Dims = (("source", "google"),)


class TickingClock:
    """A clock that moves one second each time it is read, so audit times are exact."""

    def __init__(self, start: datetime = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)) -> None:
        self.now = start
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            self.now += timedelta(seconds=1)
            return self.now


@pytest.fixture
def db(any_store: Store) -> Store:
    """A store on each backend, with a ticking clock and a workspace `T1`."""
    any_store.clock = TickingClock()
    any_store.ensure_workspace("T1")
    return any_store


def log(store: Store, *writes: Write, actor: str = "ana", origin: str = "cli") -> None:
    store.record("T1", list(writes), actor=actor, origin=origin)


def totals(
    store: Store, period: Period = WEEK, dims: Dims = (), workspace: str = "T1"
) -> PeriodData:
    return store.period_data(workspace, period, DEFAULT, dims)


def values(store: Store, period: Period = WEEK, dims: Dims = ()) -> dict[str, float | None]:
    data = totals(store, period, dims)
    return {**metric_values(DEFAULT, data), **kpi_values(DEFAULT, data)}


def entries(store: Store, workspace: str = "T1") -> list[tuple[str, date, str, Dims, float]]:
    return sorted(
        (e.metric, e.day, e.author, e.dims, e.value) for e in store.entries_between(workspace)
    )


# -- who logs what, and corrections --------------------------------------------------------


def test_the_same_author_logging_again_replaces(db: Store) -> None:
    log(db, Write("spend", DAY, 100, "ana"))
    log(db, Write("spend", DAY, 120, "ana"))
    assert entries(db) == [("spend", DAY, "ana", (), 120)]
    assert totals(db).totals["spend"] == (120, 1)


def test_different_authors_add_up(db: Store) -> None:
    log(db, Write("bookings", DAY, 3, "setter.ana"), actor="setter.ana")
    log(db, Write("bookings", DAY, 4, "setter.luis"), actor="setter.luis")
    assert totals(db).totals["bookings"] == (7, 2)
    assert len(entries(db)) == 2
    # a correction by one of them still replaces only their own value
    log(db, Write("bookings", DAY, 5, "setter.ana"), actor="setter.ana")
    assert totals(db).totals["bookings"] == (9, 2)


def test_for_last_metrics_the_latest_write_of_the_day_wins_whoever_wrote_it(db: Store) -> None:
    log(db, Write("mrr", DAY, 5000, "ana"))
    log(db, Write("mrr", DAY, 5200, "luis"), actor="luis")
    assert values(db)["mrr"] == 5200
    log(db, Write("mrr", DAY, 5100, "ana"))  # ana corrects hers: now hers is the latest
    assert values(db)["mrr"] == 5100
    # an earlier day written later does not beat a later day
    log(db, Write("mrr", DAY - timedelta(days=1), 9999, "luis"), actor="luis")
    assert values(db)["mrr"] == 5100


def test_gauges_read_the_closing_and_opening_values(db: Store) -> None:
    march = Period.month(DAY)
    log(db, Write("active_customers", date(2026, 2, 28), 200, "ops"))
    log(db, Write("active_customers", date(2026, 3, 20), 190, "ops"))
    log(db, Write("customers_lost", date(2026, 3, 5), 10, "ops"))
    data = totals(db, march)
    assert data.opening["active_customers"] == 200
    assert data.closing["active_customers"] == 190
    got = values(db, march)
    assert got["churn_rate"] == pytest.approx(0.05)
    assert got["retention_rate"] == pytest.approx(0.95)


WARM: Dims = (("dim1", "warm"),)
REP_TIER: Dims = (("dim2", "gold"), ("rep", "U1"))
FB_REGION: Dims = (("dim3", "north"), ("source", "facebook"))
NORTH: Dims = (("dim3", "north"),)
SILVER: Dims = (("dim2", "silver"),)
COLD: Dims = (("dim1", "cold"),)
MARCH = Period.month(DAY)


@pytest.mark.parametrize(("metric", "writes", "opening", "closing"), [
    pytest.param("pipeline_value", [
        (date(2026, 2, 20), 100, "ana", ()), (date(2026, 3, 5), 150, "ana", ()),
        (date(2026, 2, 25), 40, "ana", WARM), (date(2026, 2, 25), 45, "luis", WARM),
        (date(2026, 3, 3), 7, "ana", REP_TIER), (date(2026, 3, 3), 9, "luis", REP_TIER),
        (date(2026, 3, 3), 8, "ana", REP_TIER),  # ana's correction is the day's last write
        (date(2026, 3, 10), 5, "ana", FB_REGION), (date(2026, 3, 12), 3, "ana", NORTH),
        (date(2026, 4, 2), 1000, "ana", NORTH),  # after the period
        (date(2026, 2, 27), 11, "luis", SILVER),
        (date(2026, 4, 2), 1000, "ana", COLD),  # a partition with no value up to the period's end
    ], 100 + 45 + 11, 150 + 45 + 8 + 5 + 3 + 11,
        id="partitions-by-own-dimensions-and-several-authors-a-day"),
    pytest.param("mrr", [
        (date(2026, 2, 10), 300, "ana", ()), (date(2026, 2, 11), 20, "luis", WARM),
    ], 320, 320, id="logged-only-before-the-period"),
    pytest.param("cash_balance", [(date(2026, 4, 1), 900, "ana", ())], None, None,
                 id="logged-only-after-the-period"),
    pytest.param("active_customers", [], None, None, id="never-logged"),
])
def test_a_stock_sums_the_last_write_of_each_partition(
    db: Store, metric: str, writes: list[tuple[date, float, str, Dims]],
    opening: float | None, closing: float | None,
) -> None:
    for day, value, author, dims in writes:
        log(db, Write(metric, day, value, author, dims), actor=author)
    log(db, Write("accounts_payable", date(2026, 1, 5), 1, "ops"))  # another gauge, apart
    data = totals(db, MARCH)
    assert (data.opening.get(metric), data.closing.get(metric)) == (opening, closing)
    assert (data.opening["accounts_payable"], data.closing["accounts_payable"]) == (1, 1)
    # a read filtered by one tag walks only the partitions carrying it
    for dims in {dims for *_, dims in writes if dims}:
        filtered = totals(db, MARCH, dims)
        assert filtered.opening.get(metric) == _latest_sum(writes, dims, MARCH.start, before=True)
        assert filtered.closing.get(metric) == _latest_sum(writes, dims, MARCH.end), dims


def _latest_sum(writes: list[tuple[date, float, str, Dims]], dims: Dims, bound: date,
                before: bool = False) -> float | None:
    """The sum over the partitions carrying `dims` of each one's last write on or before
    `bound` (before it, when `before`), by hand."""
    latest: dict[Dims, tuple[date, int, float]] = {}
    for seq, (day, value, _, partition) in enumerate(writes):
        if set(dims) <= set(partition) and (day < bound if before else day <= bound):
            latest[partition] = max(latest.get(partition, (day, seq, value)), (day, seq, value))
    return sum(v for *_, v in latest.values()) if latest else None


def test_a_catalogue_without_gauges_reads_no_stocks(db: Store) -> None:
    log(db, Write("leads", DAY, 3, "ana"), Write("mrr", DAY, 50, "ana"))
    no_gauges = Catalogue({k: m for k, m in DEFAULT.metrics.items()
                           if m.aggregation is not Aggregation.LAST}, {})
    data = db.period_data("T1", WEEK, no_gauges)
    assert (data.totals["leads"], data.closing, data.opening) == ((3.0, 1), {}, {})


def test_dimensions_make_separate_entries(db: Store) -> None:
    log(db, Write("leads", DAY, 10, "ana", FB), Write("leads", DAY, 5, "ana", GOOGLE))
    log(db, Write("leads", DAY, 1, "ana"))
    assert entries(db) == [
        ("leads", DAY, "ana", (), 1),
        ("leads", DAY, "ana", FB, 10),
        ("leads", DAY, "ana", GOOGLE, 5),
    ]
    assert totals(db).totals["leads"] == (16, 3)
    log(db, Write("leads", DAY, 12, "ana", FB))  # same dims again: replaces
    assert totals(db).totals["leads"] == (18, 3)


def test_dimension_filtered_period_data(db: Store) -> None:
    log(
        db,
        Write("spend", DAY, 300, "ana", FB),
        Write("leads", DAY, 30, "ana", FB),
        Write("spend", DAY, 100, "ana", GOOGLE),
        Write("leads", DAY, 5, "ana", GOOGLE),
        Write("spend", DAY, 50, "ana", (("campaign", "spring"), ("source", "facebook"))),
        Write("mrr", DAY, 1000, "ana", FB),
        Write("mrr", DAY, 2000, "ana", GOOGLE),
    )
    facebook = values(db, dims=FB)
    assert facebook["spend"] == 350 and facebook["leads"] == 30
    assert facebook["cpl"] == pytest.approx(350 / 30)
    assert facebook["mrr"] == 1000
    google = values(db, dims=GOOGLE)
    assert google["cpl"] == pytest.approx(20) and google["mrr"] == 2000
    spring = values(db, dims=(("campaign", "spring"),))
    assert spring == {"spend": 50, "total_costs": 50}
    everything = values(db)
    assert everything["spend"] == 450 and everything["leads"] == 35
    assert everything["mrr"] == 3000  # a stock: each source's latest, summed
    assert db.dimension_values("T1", "source", WEEK) == ["facebook", "google"]


def test_workspaces_are_kept_apart(db: Store) -> None:
    db.ensure_workspace("T2")
    log(db, Write("leads", DAY, 10, "ana"))
    db.record("T2", [Write("leads", DAY, 99, "ana")], actor="ana", origin="cli")
    assert totals(db).totals["leads"] == (10, 1)
    assert totals(db, workspace="T2").totals["leads"] == (99, 1)
    assert db.history("T2")[0].new == 99
    assert db.undo_last("T1", "ana") is not None
    assert entries(db, "T2") == [("leads", DAY, "ana", (), 99)]
    assert db.workspace_ids() == ["T1", "T2"]


def test_reads_in_a_reading_block_share_one_connection_and_writes_still_commit(db: Store) -> None:
    log(db, Write("leads", DAY, 10, "ana", FB))
    checkouts: list[object] = []

    def checkout(*args: object) -> None:
        checkouts.append(args[0])

    event.listen(db.engine, "checkout", checkout)
    try:
        with db.reading():
            assert totals(db).totals["leads"] == (10, 1)
            assert db.dimension_values("T1", "source", WEEK) == ["facebook"]
            with db.reading():  # nested: still the same connection
                assert db.workspace("T1") is not None
            shared = len(checkouts)
            log(db, Write("leads", DAY, 5, "luis"))  # a write: its own connection, committed
        assert shared == 1 and len(checkouts) > shared
    finally:
        event.remove(db.engine, "checkout", checkout)
    assert totals(db).totals["leads"] == (15, 2)
    with pytest.raises(ZeroDivisionError), db.reading():
        totals(db)
        raise ZeroDivisionError  # the block's connection goes back; later reads get their own
    assert totals(db, workspace="T1").totals["leads"] == (15, 2)


# -- the audit trail and undo ----------------------------------------------------------------


def test_every_change_is_in_the_audit_trail(db: Store) -> None:
    log(db, Write("spend", DAY, 100, "ana"), origin="slack")
    log(db, Write("spend", DAY, 120, "ana"), actor="boss", origin="csv")
    log(db, Write("leads", DAY, 7, "luis", FB), actor="luis", origin="form")
    lines = db.history("T1")
    assert [(h.actor, h.metric, h.author, h.dims, h.old, h.new, h.origin) for h in lines] == [
        ("luis", "leads", "luis", FB, None, 7, "form"),
        ("boss", "spend", "ana", (), 100, 120, "csv"),
        ("ana", "spend", "ana", (), None, 100, "slack"),
    ]
    times = [h.at for h in lines]
    assert times == sorted(times, reverse=True) and len(set(times)) == 3
    assert all(h.at.year == 2026 and not h.undone for h in lines)
    assert [h.new for h in db.history("T1", "spend")] == [120, 100]
    assert len(db.history("T1", limit=1)) == 1


def test_times_come_back_timezone_aware_in_utc_on_every_backend(db: Store) -> None:
    bogota = datetime(2026, 3, 10, 7, 0, tzinfo=ZoneInfo("America/Bogota"))
    db.clock = lambda: bogota
    log(db, Write("leads", DAY, 1, "ana"))
    for at in (db.history("T1")[0].at, db.entries_between("T1")[0].written_at):
        assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
        assert at == bogota  # the same instant, read back in UTC
    assert at.hour == 12


def test_undo_restores_the_old_value_then_removes_the_new_entry(db: Store) -> None:
    log(db, Write("leads", DAY, 10, "ana"))
    log(db, Write("leads", DAY, 12, "ana"))
    log(db, Write("leads", DAY, 5, "luis"), actor="luis")
    assert totals(db).totals["leads"] == (17, 2)

    first = db.undo_last("T1", "ana")
    assert first is not None and first.origin == "undo"
    assert [(c.old, c.new) for c in first.changes] == [(12, 10)]
    assert entries(db) == [("leads", DAY, "ana", (), 10), ("leads", DAY, "luis", (), 5)]

    second = db.undo_last("T1", "ana")  # undo again: the batch before
    assert second is not None and [(c.old, c.new) for c in second.changes] == [(10, None)]
    assert entries(db) == [("leads", DAY, "luis", (), 5)]  # luis's change untouched
    assert totals(db).totals["leads"] == (5, 1)

    assert db.undo_last("T1", "ana") is None  # nothing of ana's is left to undo
    history = db.history("T1", limit=50)
    assert [h.origin for h in history[:2]] == ["undo", "undo"]
    assert [h.undone for h in history if h.origin != "undo" and h.actor == "ana"] == [True, True]
    assert [h.undone for h in history if h.actor == "luis"] == [False]


def test_undoing_an_older_log_never_overwrites_a_newer_value(db: Store) -> None:
    older = db.record("T1", [Write("leads", DAY, 10, "ana")], actor="ana", origin="cli")
    log(db, Write("leads", DAY, 12, "ana"))

    with pytest.raises(UndoConflict) as conflict:
        db.undo_last("T1", "ana", older.id)
    assert conflict.value.changed == (("leads", DAY),)
    assert entries(db) == [("leads", DAY, "ana", (), 12)]  # nothing reverted, nothing claimed

    assert db.undo_last("T1", "ana") is not None  # the newer one first: back to 10
    undone = db.undo_last("T1", "ana", older.id)  # now the older one applies cleanly
    assert undone is not None and [(c.old, c.new) for c in undone.changes] == [(10, None)]
    assert entries(db) == []


def test_undo_reverts_a_whole_batch(db: Store) -> None:
    log(db, Write("spend", DAY, 100, "ana"))
    log(
        db,
        Write("spend", DAY, 150, "ana"),
        Write("leads", DAY, 3, "ana"),
        Write("mrr", DAY, 9, "ana"),
    )
    batch = db.undo_last("T1", "ana")
    assert batch is not None and batch.metrics == ["leads", "mrr", "spend"]
    assert entries(db) == [("spend", DAY, "ana", (), 100)]
    assert "mrr" not in totals(db).closing


def test_undo_of_a_gauge_brings_back_the_earlier_latest_value(db: Store) -> None:
    log(db, Write("cash_balance", DAY, 1000, "luis"), actor="luis")
    log(db, Write("cash_balance", DAY, 2000, "ana"))
    assert values(db)["cash_balance"] == 2000
    db.undo_last("T1", "ana")
    assert values(db)["cash_balance"] == 1000


def test_undoing_a_gauge_correction_restores_the_days_latest_value(db: Store) -> None:
    log(db, Write("cash_balance", DAY, 1000, "ana"))
    log(db, Write("cash_balance", DAY, 2000, "luis"), actor="luis")
    log(db, Write("cash_balance", DAY, 1500, "ana"))  # ana corrects hers: now the latest
    assert values(db)["cash_balance"] == 1500
    db.undo_last("T1", "ana")
    # as if the correction never happened: luis's value was the day's latest write
    assert values(db)["cash_balance"] == 2000
    assert entries(db) == [
        ("cash_balance", DAY, "ana", (), 1000),
        ("cash_balance", DAY, "luis", (), 2000),
    ]


def test_undo_after_undo_keeps_the_original_write_order(db: Store) -> None:
    log(db, Write("cash_balance", DAY, 100, "luis"), actor="luis")
    log(db, Write("cash_balance", DAY, 200, "luis"), actor="luis")
    log(db, Write("cash_balance", DAY, 300, "ana"))
    db.undo_last("T1", "luis")  # luis is back to 100, written before ana's 300
    assert values(db)["cash_balance"] == 300
    log(db, Write("cash_balance", DAY, 400, "luis"), actor="luis")
    assert values(db)["cash_balance"] == 400
    db.undo_last("T1", "luis")  # back to the state before: ana's 300 is the latest write
    assert values(db)["cash_balance"] == 300


def test_record_is_all_or_nothing(db: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    log(db, Write("spend", DAY, 100, "ana"))
    before = (entries(db), totals(db).totals, len(db.history("T1", limit=100)))
    real_batch = db._write_batch

    def failing_batch(*args: Any, **kwargs: Any) -> Any:
        real_batch(*args, **kwargs)  # audit rows, entries and totals all written, then:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(db, "_write_batch", failing_batch)
    with pytest.raises(RuntimeError):
        log(
            db,
            Write("spend", DAY, 999, "ana"),
            Write("leads", DAY, 10, "ana"),
            Write("revenue", DAY, 500, "ana"),
        )
    monkeypatch.undo()
    assert (entries(db), totals(db).totals, len(db.history("T1", limit=100))) == before


def test_a_write_for_an_unknown_workspace_is_refused_and_stores_nothing(db: Store) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the foreign key refuses it, whatever the driver calls it
        db.record("nobody", [Write("leads", DAY, 1, "ana")], actor="ana", origin="cli")
    assert db.entries_between("nobody") == []


def test_custom_definitions_extend_the_catalogue(db: Store) -> None:
    for key, unit in (
        ("local_price", "currency"),
        ("us_price", "currency"),
        ("official_rate", "ratio"),
    ):
        db.define("T1", key, formula=None, unit=unit, actor="ana", aggregation="last")
    db.define("T1", "implied_rate", formula="local_price / us_price", unit="ratio", actor="ana")
    db.define(
        "T1",
        "valuation_gap",
        formula="(official_rate - implied_rate) / official_rate",
        unit="percent",
        actor="ana",
    )
    catalogue = db.catalogue("T1")
    log(
        db,
        Write("local_price", DAY, 4, "ana"),
        Write("us_price", DAY, 5, "ana"),
        Write("official_rate", DAY, 0.91, "ana"),
    )
    got = kpi_values(catalogue, db.period_data("T1", WEEK, catalogue))
    assert got["implied_rate"] == pytest.approx(0.80)
    assert got["valuation_gap"] == pytest.approx(0.1209, abs=5e-5)
    assert db.remove_definition("T1", "valuation_gap")
    assert "valuation_gap" not in db.catalogue("T1").kpis
    assert "implied_rate" not in DEFAULT.kpis


# -- the key property: SQL aggregates equal a brute force over the raw rows -----------------

PROPERTY_METRICS = (
    "spend", "leads", "new_customers", "revenue", "cash_collected", "customers_lost",
    "expenses", "cogs", "days_to_close", "sales", "employee_satisfaction", "mrr",
    "active_customers", "cash_balance", "pipeline_value",
)  # fmt: skip
FIRST_DAY = date(2026, 2, 24)
PROPERTY_PERIODS = (
    Period(date(2026, 3, 2), date(2026, 3, 8)),  # an ISO week
    Period.month(date(2026, 2, 1)),  # a month that starts before any entry
    Period(date(2026, 3, 6), date(2026, 3, 12)),  # ends after the last entry
)
PROPERTY_DIMS: tuple[Dims, ...] = (
    (), FB, GOOGLE, (("campaign", "spring"), ("source", "facebook")), (("source", "seo"),),
    (("rep", "U1"),), (("rep", "U2"), ("source", "seo")),
    # a workspace's own dimensions (entry columns dim1..dim3) are partitions of a stock too
    (("dim1", "warm"),), (("dim1", "warm"), ("dim3", "north")), (("dim2", "gold"), ("rep", "U1")),
)  # fmt: skip
AUTHORS = ("ana", "luis", "marta")

a_value = st.integers(min_value=0, max_value=4000).map(lambda n: n / 4)  # exact in binary
a_slot = st.tuples(  # (metric, day offset, dims): what a write is keyed by, with its author
    st.sampled_from(PROPERTY_METRICS),
    st.integers(min_value=0, max_value=14),
    st.sampled_from(PROPERTY_DIMS),
)
Operation = tuple[str, str, list[tuple[str, int, float, Dims]]]


@st.composite
def operation_lists(draw: st.DrawFn) -> list[Operation]:
    """Logs and undos by three people over a few slots, so that corrections (the same person
    and slot again), additions (another person, same slot) and gauge races are frequent."""
    slots = draw(st.lists(a_slot, min_size=1, max_size=6, unique=True))
    a_write = st.builds(
        lambda slot, value: (slot[0], slot[1], value, slot[2]), st.sampled_from(slots), a_value
    )
    an_operation: st.SearchStrategy[Operation] = st.one_of(
        st.tuples(
            st.just("log"), st.sampled_from(AUTHORS), st.lists(a_write, min_size=1, max_size=4)
        ),
        st.tuples(st.just("undo"), st.sampled_from(AUTHORS), st.builds(list)),
    )
    return draw(st.lists(an_operation, min_size=1, max_size=12))


Key = tuple[str, date, str, Dims]


@dataclass
class Row:
    metric: str
    day: date
    author: str
    dims: Dims
    value: float
    seq: int


class Model:
    """What the entries should be after the operations: the rules of section 4, by hand.

    An entry is (value, write order). A write replaces the author's own entry and becomes the
    latest; an undo puts back exactly what was there before (value and write order), so the
    day's latest gauge value is what it was before the undone change.
    """

    def __init__(self) -> None:
        self.rows: dict[Key, tuple[float, int]] = {}
        self.batches: dict[str, list[list[tuple[Key, tuple[float, int] | None]]]] = {
            a: [] for a in AUTHORS
        }
        self.seq = 0

    def log(self, actor: str, writes: list[tuple[str, int, float, Dims]]) -> None:
        batch = []
        for metric, offset, value, dims in writes:
            key = (metric, FIRST_DAY + timedelta(days=offset), actor, dims)
            batch.append((key, self.rows.get(key)))
            self.seq += 1
            self.rows[key] = (value, self.seq)
        self.batches[actor].append(batch)

    def undo(self, actor: str) -> None:
        if self.batches[actor]:
            for key, old in reversed(self.batches[actor].pop()):
                if old is None:
                    del self.rows[key]
                else:
                    self.rows[key] = old

    def as_rows(self) -> list[Row]:
        return [Row(*key, value, seq) for key, (value, seq) in self.rows.items()]


def raw_rows(store: Store, workspace: str) -> list[Row]:
    """The entries table as it is, read straight from SQL."""
    e = EntryRow
    with store.engine.connect() as conn:
        found = conn.execute(select(e).where(e.workspace_id == workspace)).all()
    return [
        Row(
            r.metric,
            r.day,
            r.author,
            tuple(sorted((n, getattr(r, n)) for n in (*DIMENSIONS, *DIMENSION_SLOTS)
                         if getattr(r, n))),
            r.value,
            r.write_seq,
        )  # fmt: skip
        for r in found
    ]


def brute_force(
    rows: list[Row], period: Period, catalogue: Catalogue, dims: Dims
) -> dict[str, float | None]:
    """Metrics and KPIs of `period` from the raw rows, with no help from the code under test."""
    rows = [r for r in rows if set(dims) <= set(r.dims)]
    scope: dict[str, float | None] = {"days": float(period.days)}
    for key, metric in catalogue.metrics.items():
        mine = [r for r in rows if r.metric == key]
        if metric.aggregation is Aggregation.LAST:  # a stock: each dimension value's latest, summed
            for name, rows_in in (("", [r for r in mine if r.day <= period.end]),
                                  ("opening:", [r for r in mine if r.day < period.start])):
                if rows_in:
                    scope[name + key] = sum(
                        max((r for r in rows_in if r.dims == g), key=lambda r: (r.day, r.seq)).value
                        for g in {r.dims for r in rows_in}
                    )
            continue
        inside = [r for r in mine if period.start <= r.day <= period.end]
        year = [r for r in mine if period.end - timedelta(days=364) <= r.day <= period.end]
        if year and key in catalogue.read_as("year"):
            scope[f"year:{key}"] = sum(r.value for r in year)
        if not inside:
            continue
        if metric.aggregation is Aggregation.SUM:
            scope[key] = sum(r.value for r in inside)
            if key in catalogue.read_as("paid") and any(dict(r.dims).get("source") for r in inside):
                scope[f"paid:{key}"] = sum(r.value for r in inside
                                           if dict(r.dims).get("source", "") not in ORGANIC_SOURCES)
            continue
        weights = []
        for r in inside:
            same = [w.value for w in rows if (w.metric, w.day, w.author, w.dims)
                    == (metric.weight, r.day, r.author, r.dims)]
            weights.append(same[0] if same and same[0] > 0 else 1.0)
        scope[key] = sum(r.value * w for r, w in zip(inside, weights, strict=True)) / sum(weights)
    result = {k: v for k, v in scope.items() if k in catalogue.metrics}
    for key in catalogue.order:
        kpi = catalogue.kpis[key]
        if catalogue.computable(key, set(scope)):
            scope[key] = result[key] = evaluate(kpi.formula, scope)
    return result


MonthKey = tuple[str, date, Dims]


def month_totals(store: Store, workspace: str) -> dict[MonthKey, tuple[float, int]]:
    """The month_totals table as it is: (metric, month, dims) -> (sum, count)."""
    m = MonthTotalRow
    with store.engine.connect() as conn:
        found = conn.execute(select(m).where(m.workspace_id == workspace)).all()
    return {(r.metric, r.month, tuple(sorted((n, getattr(r, n)) for n in (*DIMENSIONS,
                                              *DIMENSION_SLOTS) if getattr(r, n)))):
            (r.total, r.count) for r in found}


def months_of(rows: list[Row]) -> dict[MonthKey, tuple[float, int]]:
    """What month_totals must hold: the rows summed and counted per metric, month and dims."""
    found: dict[MonthKey, tuple[float, int]] = {}
    for r in rows:
        key = (r.metric, r.day.replace(day=1), r.dims)
        total, count = found.get(key, (0.0, 0))
        found[key] = (total + r.value, count + 1)
    return found


def test_month_totals_follow_edits_deletes_and_undos(db: Store) -> None:
    """Every way an entry changes keeps its month's row, and a month left empty has none."""
    march, april = date(2026, 3, 30), date(2026, 4, 2)
    log(db, Write("leads", march, 1, "luis"), actor="luis")
    log(db, Write("leads", march, 4, "ana", FB), Write("leads", april, 2, "ana", FB),
        Write("mrr", march, 900, "ana"))
    log(db, Write("leads", march, 6, "ana", FB), Write("leads", march, 7, "ana", FB))  # twice
    assert month_totals(db, "T1") == months_of(raw_rows(db, "T1"))
    assert month_totals(db, "T1")[("leads", date(2026, 3, 1), FB)] == (7.0, 1)

    period = Period.month(date(2026, 3, 1))
    assert db.delete_entry("T1", Write("leads", april, 2, "ana", FB), actor="ana", origin="cli",
                           period=period, catalogue=DEFAULT) is not None
    assert ("leads", date(2026, 4, 1), FB) not in month_totals(db, "T1")
    db.undo_last("T1", "ana")  # the delete undone: April's row is back
    assert month_totals(db, "T1") == months_of(raw_rows(db, "T1"))
    assert month_totals(db, "T1")[("leads", date(2026, 4, 1), FB)] == (2.0, 1)
    db.undo_last("T1", "ana")  # the double write undone: March's 4 again
    db.undo_last("T1", "ana")  # the first log undone: only luis's lead is left
    assert month_totals(db, "T1") == months_of(raw_rows(db, "T1")) == {
        ("leads", date(2026, 3, 1), ()): (1.0, 1)}


def test_a_bulk_fill_of_month_totals_matches_what_writes_keep(db: Store) -> None:
    """`fill_month_totals` (for loads that bypass `Store`) rebuilds what each write keeps."""
    log(db, Write("leads", date(2026, 1, 31), 3, "ana", FB), Write("leads", date(2026, 2, 1), 5,
        "ana", FB), Write("leads", date(2026, 2, 27), 2, "luis"), Write("mrr", date(2026, 2, 3),
        900, "ana"))
    kept = month_totals(db, "T1")
    with db.engine.begin() as conn:
        conn.execute(delete(MonthTotalRow))
        assert fill_month_totals(conn) == len(kept) == 4
    assert month_totals(db, "T1") == kept == months_of(raw_rows(db, "T1"))


def test_writers_of_different_days_of_one_month_lose_no_month_total(db: Store) -> None:
    """Each writer refreshes the month it wrote in; the month lock makes the last refresh see
    every other writer's entries (without it, PostgreSQL's concurrent refreshes each miss the
    others' uncommitted days)."""
    threads_count, per_thread = 6, 15

    def writer(t: int) -> None:
        for i in range(per_thread):
            db.record("T1", [Write("leads", date(2026, 3, 1 + (t * 5 + i) % 31), i + 1,
                                   f"user{t}")], actor=f"user{t}", origin="cli")

    at_once(threads_count, writer)
    stored = raw_rows(db, "T1")
    assert month_totals(db, "T1") == months_of(stored)
    assert month_totals(db, "T1")[("leads", date(2026, 3, 1), ())][1] == len(stored)


def assert_same(got: dict[str, float | None], expected: dict[str, float | None]) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=operation_lists())
def test_period_data_equals_a_brute_force_over_the_raw_rows(
    any_store: Store, operations: list[Operation]
) -> None:
    workspace = f"P{uuid.uuid4().hex[:20]}"
    any_store.ensure_workspace(workspace)
    model = Model()
    for kind, actor, writes in operations:
        if kind == "log":
            batch = [
                Write(m, FIRST_DAY + timedelta(days=offset), value, actor, dims)
                for m, offset, value, dims in writes
            ]
            any_store.record(workspace, batch, actor=actor, origin="test")
            model.log(actor, writes)
        else:
            undone = any_store.undo_last(workspace, actor)
            assert (undone is None) == (not model.batches[actor])
            model.undo(actor)

    stored = raw_rows(any_store, workspace)
    # the replace/add/undo rules: exactly the model's entries, in the model's write order
    assert sorted((r.metric, r.day, r.author, r.dims, r.value) for r in stored) == sorted(
        (r.metric, r.day, r.author, r.dims, r.value) for r in model.as_rows()
    )
    by_seq = [(r.metric, r.day, r.author, r.dims) for r in sorted(stored, key=lambda r: r.seq)]
    model_by_seq = [
        (r.metric, r.day, r.author, r.dims) for r in sorted(model.as_rows(), key=lambda r: r.seq)
    ]
    assert by_seq == model_by_seq

    assert month_totals(any_store, workspace) == months_of(stored)
    for period in PROPERTY_PERIODS:
        for dims in (*PROPERTY_DIMS[:3], PROPERTY_DIMS[5], PROPERTY_DIMS[7]):
            data = any_store.period_data(workspace, period, DEFAULT, dims)
            got = {**metric_values(DEFAULT, data), **kpi_values(DEFAULT, data)}
            assert_same(got, brute_force(stored, period, DEFAULT, dims))


# -- concurrency ---------------------------------------------------------------------------


def at_once(count: int, work: Callable[[int], None]) -> None:
    """`work(t)` for t in range(count) in as many threads, released together; fails with
    whatever escaped any of them."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(t: int) -> None:
        try:
            start.wait()
            work(t)
        except BaseException as error:  # noqa: BLE001 - the test reports whatever escaped
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]


def test_eight_threads_writing_at_once_lose_nothing(db: Store) -> None:
    threads_count, per_thread = 8, 100

    def writer(t: int) -> None:
        for i in range(per_thread):
            db.record("T1", [Write("leads", DAY, i + 1, f"user{t}-{i}")], actor=f"user{t}",
                      origin="cli")

    at_once(threads_count, writer)
    expected_total = threads_count * per_thread * (per_thread + 1) / 2
    assert totals(db).totals["leads"] == (expected_total, threads_count * per_thread)
    assert len(db.entries_between("T1")) == threads_count * per_thread
    with db.engine.connect() as conn:
        daily = conn.execute(select(DailyTotalRow.total, DailyTotalRow.count)).all()
        changes = conn.scalar(select(ChangeRow.id).order_by(ChangeRow.id.desc()).limit(1))
    assert [tuple(r) for r in daily] == [(expected_total, threads_count * per_thread)]
    assert changes is not None


def test_concurrent_corrections_of_a_gauge_keep_the_latest_write(db: Store) -> None:
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(20):
                db.record(
                    "T1",
                    [Write("mrr", DAY, t * 100 + i, f"user{t}")],
                    actor=f"user{t}",
                    origin="cli",
                )
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    last = max(raw_rows(db, "T1"), key=lambda r: r.seq)
    assert values(db)["mrr"] == last.value
    assert totals(db).totals["mrr"][1] == 4


def test_a_new_workspace_created_by_many_requests_at_once_is_created_once(db: Store) -> None:
    errors: list[BaseException] = []
    flags: list[bool] = []
    start = threading.Barrier(8)

    def first_request() -> None:
        try:
            start.wait()
            flags.append(db.ensure_workspace("TNEW", timezone="America/Bogota")[1])
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert sorted(flags) == [False] * 7 + [True]  # exactly one request created it
    workspace = db.workspace("TNEW")
    assert workspace is not None and workspace.timezone == "America/Bogota"


def test_batches_locking_the_same_days_in_opposite_orders_do_not_deadlock(db: Store) -> None:
    errors: list[BaseException] = []
    metrics = ["spend", "leads", "revenue"]

    def writer(t: int) -> None:
        order = metrics if t % 2 else metrics[::-1]
        try:
            for i in range(15):
                batch = [Write(m, DAY, 1, f"user{t}-{i}") for m in order]
                db.record("T1", batch, actor=f"user{t}", origin="cli")
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert {m: totals(db).totals[m] for m in metrics} == {m: (90, 90) for m in metrics}


def test_concurrent_undos_never_revert_the_same_batch_twice(db: Store) -> None:
    for value in range(1, 6):
        log(db, Write("leads", DAY, value, "ana"))
    results: list[object] = []

    def undo() -> None:
        results.append(db.undo_last("T1", "ana"))

    threads = [threading.Thread(target=undo) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done = [r for r in results if r is not None]
    assert 1 <= len(done) <= 4
    history = db.history("T1", limit=100)
    assert sum(h.origin == "undo" for h in history) == len(done)
    assert sum(h.undone for h in history) == len(done)
    assert entries(db) == [("leads", DAY, "ana", (), 5 - len(done))]


# -- migrations -------------------------------------------------------------------------------

TABLES = {"workspaces", "definitions", "entries", "daily_totals", "changes", "alembic_version"}


def test_open_store_twice_on_the_same_file_is_idempotent(sqlite_url: str) -> None:
    first = open_store(sqlite_url)
    first.ensure_workspace("T1")
    first.record("T1", [Write("leads", DAY, 3, "ana")], actor="ana", origin="cli")
    first.engine.dispose()
    second = open_store(sqlite_url)
    try:
        assert entries(second) == [("leads", DAY, "ana", (), 3)]
        assert set(inspect(second.engine).get_table_names()) >= TABLES
        with second.engine.connect() as conn:
            versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        assert len(versions) == 1
    finally:
        second.engine.dispose()


def test_an_empty_database_gets_the_schema(db_url: str) -> None:
    from sqlalchemy import create_engine

    bare = create_engine(db_url)
    try:
        assert not set(inspect(bare).get_table_names()) & TABLES
    finally:
        bare.dispose()
    opened = open_store(db_url)
    again = open_store(db_url)  # and a second time changes nothing
    try:
        assert set(inspect(opened.engine).get_table_names()) >= TABLES
        assert opened.ping()
        opened.ensure_workspace("T1")
        assert again.workspace("T1") is not None
        assert again.workspace("T1") == opened.workspace("T1")
    finally:
        opened.engine.dispose()
        again.engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
