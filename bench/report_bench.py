"""The month report (`bot.usecases.report`) on a 1,000,000-entry and a 10,000-entry database.

Both databases hold the same 40 input metrics up to the same last day; the big one has five
years of history with ~550 entries a day (several authors and sources per metric and day),
the small one 250 days with one entry per metric and day. The report asks for the same month
on both, so the ratio of the two timings shows whether a report costs what its period costs
(it reads `daily_totals`, one row per metric and day) or what the whole history costs.

The databases are built once through `storage.open_store` (schema from the migrations), bulk
loaded with Core executemany inserts, and cached under `bench/.data/` (git-ignored); a
database is rebuilt when its file or its `.json` sidecar (written last) is missing.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select

from bench import DATA, Options, Row, ms, register
from bot.app.context import open_context
from bot.app.reports import report
from kpis.catalogue import METRICS, Aggregation, Metric, Unit
from kpis.periods import Period
from storage import open_store
from storage.models import DailyTotalRow, EntryRow
from storage.repository import Store

WORKSPACE = "T0BENCH"
ACTOR = "U0BENCH"
LAST_DAY = date(2025, 12, 31)
#: the month asked for: late in both histories, with months of data before and after it
MONTH = Period.month(date(2025, 9, 1))
NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
AUTHORS = ("U01ANA", "U02LUIS", "U03MARA", "U04JON", "U05KIM")
#: a paid source first, so that the 10k database (one entry per metric and day) has paid
#: leads too and both reports compute the same KPIs (paid_cpl needs them)
SOURCES = ("facebook", "google", "")
#: (author, source) pairs, the i-th entry of a metric and day uses the i-th pair
COMBOS = tuple((a, s) for s in SOURCES for a in AUTHORS)
BATCH = 50_000
SHAPE_VERSION = 2  # bump when the generated data changes, so caches are rebuilt

REPORT_TARGET_S = 0.030
RATIO_TARGET = 1.5
BUILD_TARGET_S = 120.0


def _bench_metrics() -> tuple[Metric, ...]:
    """40 input metrics: every gauge (the costly `_gauges_on` path) and the first others."""
    gauges = [m for m in METRICS if m.aggregation is Aggregation.LAST]
    others = [m for m in METRICS if m.aggregation is not Aggregation.LAST]
    chosen = {m.key for m in (*gauges, *others[: 40 - len(gauges)])}
    return tuple(m for m in METRICS if m.key in chosen)


BENCH_METRICS = _bench_metrics()
assert len(BENCH_METRICS) == 40


@dataclass(frozen=True)
class Shape:
    """A database to build: `entries` rows over the `days` days ending on LAST_DAY."""

    name: str
    entries: int
    days: int

    @property
    def first_day(self) -> date:
        return LAST_DAY - timedelta(days=self.days - 1)

    @property
    def path(self) -> Path:
        return DATA / f"report-{self.name}-v{SHAPE_VERSION}.db"

    @property
    def meta_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


BIG = Shape("1m", 1_000_000, (LAST_DAY - date(2021, 1, 1)).days + 1)  # 1826 days, ~548 a day
SMALL = Shape("10k", 10_000, 250)  # one entry per metric and day
assert SMALL.first_day < MONTH.previous().start


# -- building ---------------------------------------------------------------------------------


def _scale(metric: Metric) -> tuple[float, bool]:
    """A plausible magnitude for a metric's values, and whether they are whole numbers."""
    if metric.unit is Unit.CURRENCY:
        return (20_000.0 if metric.aggregation is Aggregation.LAST else 400.0), False
    if metric.unit is Unit.COUNT:
        return (300.0 if metric.aggregation is Aggregation.LAST else 40.0), True
    if metric.unit is Unit.PERCENT:
        return 100.0, False
    return 30.0, False


def _entries(shape: Shape, seed: int = 20251231) -> Iterator[dict[str, Any]]:
    """The rows of `entries`, day by day; write_seq = id, as if written in id order."""
    rng = random.Random(seed)
    slots = shape.days * len(BENCH_METRICS)  # (day, metric) pairs
    base, extra = divmod(shape.entries, slots)
    if base + (1 if extra else 0) > len(COMBOS):
        raise ValueError(f"{shape.name}: more entries per metric and day than author/source pairs")
    scales = [(m.key, *_scale(m)) for m in BENCH_METRICS]
    row_id = 0
    slot = 0
    for offset in range(shape.days):
        day = shape.first_day + timedelta(days=offset)
        written = datetime(day.year, day.month, day.day, 18, 0, tzinfo=UTC)
        for key, scale, whole in scales:
            # spread the `extra` entries evenly over the slots (Bresenham), total exactly N
            n = base + (slot + 1) * extra // slots - slot * extra // slots
            slot += 1
            for author, source in COMBOS[:n]:
                row_id += 1
                value = scale * (0.5 + rng.random())
                yield {
                    "id": row_id, "workspace_id": WORKSPACE, "metric": key, "day": day,
                    "author": author, "source": source, "rep": "", "campaign": "", "product": "",
                    "value": float(int(value)) if whole else round(value, 2),
                    "origin": "import", "written_at": written, "write_seq": row_id,
                }


def _fill_daily_totals(conn: Any) -> int:
    """daily_totals from entries in one INSERT ... SELECT ... GROUP BY."""
    e = EntryRow.__table__
    last = e.alias("last_e")
    latest = (
        select(last.c.value)
        .where(last.c.workspace_id == e.c.workspace_id, last.c.metric == e.c.metric,
               last.c.day == e.c.day)
        .order_by(last.c.write_seq.desc()).limit(1)
        .scalar_subquery()
    )
    grouped = select(
        e.c.workspace_id, e.c.metric, e.c.day, func.sum(e.c.value), func.count(), latest,
    ).group_by(e.c.workspace_id, e.c.metric, e.c.day)
    result = conn.execute(insert(DailyTotalRow).from_select(
        ["workspace_id", "metric", "day", "total", "count", "latest"], grouped,
    ))
    return int(result.rowcount)


def build(shape: Shape) -> float:
    """Builds `shape` from scratch; returns the seconds it took."""
    DATA.mkdir(parents=True, exist_ok=True)
    for stale in (shape.meta_path, shape.path, Path(f"{shape.path}-wal"), Path(f"{shape.path}-shm")):
        stale.unlink(missing_ok=True)
    print(f"building {shape.path.name}: {shape.entries:,} entries over {shape.days} days "
          f"({shape.first_day}..{LAST_DAY}), {len(BENCH_METRICS)} metrics", flush=True)
    started = time.perf_counter()
    store = open_store(shape.url)
    store.ensure_workspace(WORKSPACE, name="benchmark")
    statement = insert(EntryRow)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MiB for the load
        batch: list[dict[str, Any]] = []
        loaded = 0
        step = max(shape.entries // 10, BATCH)
        for row in _entries(shape):
            batch.append(row)
            if len(batch) == BATCH:
                conn.execute(statement, batch)
                loaded += len(batch)
                batch = []
                if loaded % step == 0:
                    print(f"  {loaded:>9,} / {shape.entries:,} entries  "
                          f"{time.perf_counter() - started:6.1f} s", flush=True)
        if batch:
            conn.execute(statement, batch)
            loaded += len(batch)
        print(f"  {loaded:>9,} entries loaded  {time.perf_counter() - started:6.1f} s; "
              "filling daily_totals", flush=True)
        days = _fill_daily_totals(conn)
        _check(conn, shape, days)
    raw = store.engine.raw_connection()  # outside any transaction, as a checkpoint needs
    try:
        driver = raw.driver_connection
        assert driver is not None
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    store.engine.dispose()
    seconds = time.perf_counter() - started
    print(f"  {days:,} daily_totals rows; built in {seconds:.1f} s", flush=True)
    shape.meta_path.write_text(json.dumps({
        "entries": shape.entries, "days": shape.days, "first_day": shape.first_day.isoformat(),
        "last_day": LAST_DAY.isoformat(), "daily_totals": days, "build_seconds": round(seconds, 2),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2) + "\n")
    return seconds


def _check(conn: Any, shape: Shape, days: int) -> None:
    """The load is what was asked for and daily_totals agrees with entries."""
    e, d = EntryRow.__table__, DailyTotalRow.__table__
    count, total = conn.execute(select(func.count(), func.sum(e.c.value))).one()
    d_count, d_total = conn.execute(select(func.sum(d.c.count), func.sum(d.c.total))).one()
    expected_days = shape.days * len(BENCH_METRICS)
    if count != shape.entries or d_count != count or days != expected_days:
        raise RuntimeError(f"{shape.name}: {count} entries, {d_count} counted in {days} "
                           f"daily_totals rows; expected {shape.entries} in {expected_days}")
    if abs(d_total - total) > 1e-6 * abs(total):
        raise RuntimeError(f"{shape.name}: daily_totals sum {d_total} != entries sum {total}")


def ensure_built(shape: Shape, rebuild: bool) -> tuple[float, bool]:
    """(build seconds, built in this run), building when the cache is missing."""
    if rebuild or not (shape.path.exists() and shape.meta_path.exists()):
        return build(shape), True
    meta = json.loads(shape.meta_path.read_text())
    print(f"using cached {shape.path.name} (built {meta['built_at']} in "
          f"{meta['build_seconds']} s)", flush=True)
    return float(meta["build_seconds"]), False


# -- measuring --------------------------------------------------------------------------------


def explain(store: Store, label: str) -> None:
    """Prints EXPLAIN QUERY PLAN of the statements `period_data` runs for MONTH."""
    catalogue = store.catalogue(WORKSPACE)
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.period_data(WORKSPACE, MONTH, catalogue)
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    print(f"\nEXPLAIN QUERY PLAN of Store.period_data({MONTH}) on the {label} database:")
    with store.engine.connect().execution_options(readonly=True) as conn:
        for number, (statement, parameters) in enumerate(captured, 1):
            print(f"\n-- query {number}, parameters {tuple(parameters)}")
            print("   " + " ".join(statement.split()))
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth: dict[int, int] = {0: 0}
            for node, parent, _unused, detail in plan:
                depth[node] = depth.get(parent, 0) + 1
                print("   " + "  " * depth[node] + detail)
        conn.rollback()
    print()


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (f"median {ms(statistics.median(samples))}, min {ms(ordered[0])}, "
            f"p90 {ms(p90)} over {len(samples)} runs")


@register("month report")
def month_report(options: Options) -> list[Row]:
    build_seconds, built_now = ensure_built(BIG, options.rebuild)
    ensure_built(SMALL, options.rebuild)
    stores = {shape.name: open_store(shape.url) for shape in (BIG, SMALL)}
    contexts = {name: open_context(store, WORKSPACE, ACTOR, NOW) for name, store in stores.items()}
    if options.explain:
        explain(stores[BIG.name], "1M-entry")
        explain(stores[SMALL.name], "10k-entry")

    shapes = {}
    for name, ctx in contexts.items():
        result = report(ctx, MONTH)
        shapes[name] = (sorted(result.metrics), sorted(result.kpis))
        print(f"{name}: report of {MONTH} vs {result.previous}: {len(result.metrics)} metrics, "
              f"{len(result.kpis)} KPIs", flush=True)
    if shapes[BIG.name] != shapes[SMALL.name]:
        raise RuntimeError("the two reports differ in metrics or KPIs; the ratio would mislead")

    for _ in range(options.warmups):
        for ctx in contexts.values():
            report(ctx, MONTH)
    samples: dict[str, list[float]] = {name: [] for name in contexts}
    for _ in range(options.runs):  # interleaved, so drift of the machine hits both alike
        for name, ctx in contexts.items():
            started = time.perf_counter()
            report(ctx, MONTH)
            samples[name].append(time.perf_counter() - started)
    for store in stores.values():
        store.engine.dispose()

    big, small = (statistics.median(samples[s.name]) for s in (BIG, SMALL))
    for shape in (BIG, SMALL):
        print(f"{shape.name}: {_summary(samples[shape.name])}", flush=True)
    ratio = big / small
    return [
        Row("month report, 1M entries", ms(big), f"< {REPORT_TARGET_S * 1000:g} ms", "—",
            big < REPORT_TARGET_S),
        Row("month report, 10k entries", ms(small), f"< {REPORT_TARGET_S * 1000:g} ms", "—",
            small < REPORT_TARGET_S),
        Row("ratio 1M / 10k", f"{ratio:.2f}", f"<= {RATIO_TARGET:g}", "10k-entry report",
            ratio <= RATIO_TARGET),
        Row("build 1M-entry database" + ("" if built_now else " (cached)"),
            f"{build_seconds:.1f} s", f"< {BUILD_TARGET_S:g} s", "—",
            build_seconds < BUILD_TARGET_S),
    ]
