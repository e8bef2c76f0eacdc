"""A report `by DIM` from one grouped read of both periods (Store.periods_data_by).

The grouped read must give each value exactly what `period_data` gives with that value as a
filter (sums, weighted means, gauges' stocks, paid and year sums, own dimensions, untagged
entries), the team what `period_data` gives unsplit, several periods what each gives alone,
and the report must run as many statements for 8 values as for 2. Every test runs
on SQLite and, with KPIBOT_TEST_POSTGRES_URL set, on PostgreSQL. Values are whole numbers and
halves, which floats add exactly in any order, so "equal" means equal.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app.context import Context, open_context
from bot.app.reports import report
from kpis.catalogue import PACKS, Aggregation, Catalogue
from kpis.periods import Period
from kpis.rollup import Dims, PeriodData
from storage import Store, Write, open_store
from storage.models import EntryRow
from tests.conftest import sql_statements

NOW = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
WEEK = Period.iso_week(date(2026, 3, 11))  # Monday 9 to Sunday 15 March
WS = "T0BY"
#: the tags entries are logged with: paid and organic sources (seo counted as paid and
#: newsletter as organic by the workspace), campaigns, reps, an own dimension, and none
TAGS: tuple[Dims, ...] = (
    (("campaign", "spring"), ("dim1", "warm"), ("source", "facebook")),
    (("campaign", "spring"), ("source", "seo")),
    (("campaign", "autumn"), ("dim1", "cold"), ("source", "newsletter")),
    (("source", "referral"),),
    (("rep", "U1"),),
    (("dim1", "warm"), ("rep", "U2")),
    (),
    GONE := (("campaign", "winter"), ("source", "google")),  # nothing after January
)
PERIODS = {
    "week": WEEK,
    "previous week": WEEK.previous(),
    "month": Period.month(date(2026, 3, 1)),
    "a day": Period.day(date(2026, 3, 12)),
    "after the last entry": Period.iso_week(date(2026, 4, 8)),
    "before the first entry": Period.iso_week(date(2024, 6, 5)),
}
#: (dimension, dims): the column of the groups and the filter the report keeps
BREAKDOWNS = [
    ("source", ()),
    ("campaign", ()),
    ("rep", ()),
    ("temperature", ()),
    ("campaign", (("source", "facebook"),)),
    ("source", (("temperature", "warm"),)),
]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    made = open_store(db_url)
    made.clock = lambda: NOW
    try:
        yield made
    finally:
        made.engine.dispose()


def logged(store: Store, workspace: str = WS, tags: tuple[Dims, ...] = TAGS,
           first: date = date(2025, 1, 1), gaps: bool = True) -> Catalogue:
    """Every fifth day from `first` to early April 2026, for each of `tags` (with `gaps`, a
    fifth of them left out): sums, weighted means (with and without their weight) and
    gauges (two authors on one day, partitions that stop before a period or start after it),
    with every pack and the own dimension `temperature` in slot dim1; returns the catalogue."""
    store.ensure_workspace(workspace)
    store.update_workspace(workspace, packs=PACKS)
    store.add_dimension(workspace, "temperature", ("warm", "cold"), actor="ana")
    store.classify_source(workspace, "seo", paid=True, actor="ana")
    store.classify_source(workspace, "newsletter", paid=False, actor="ana")
    rng = random.Random(13)

    def half(top: int) -> float:
        return rng.randint(1, 2 * top) / 2

    writes: list[Write] = []
    for offset in range(0, (date(2026, 4, 5) - first).days, 5):
        day = first + timedelta(days=offset)
        for i, dims in enumerate(tags):
            if (gaps and rng.random() < 0.2) or (dims == GONE and day >= date(2026, 2, 1)):
                continue
            writes += [Write("leads", day, float(rng.randint(1, 9)), "ana", dims),
                       Write("spend", day, half(40), "ana", dims),
                       Write("revenue", day, half(300), "ana", dims),
                       Write("new_customers", day, float(rng.randint(0, 3)), "ana", dims),
                       Write("days_to_close", day, half(20), "ana", dims)]
            if i % 2 == 0:  # the weight logged with the mean; the others weigh 1
                writes.append(Write("sales", day, float(rng.randint(0, 4)), "ana", dims))
            if i != 3 or day < date(2026, 2, 1):  # referral's pipeline stops in January
                writes.append(Write("pipeline_value", day, half(900), "ana", dims))
                if i == 0:  # a second author the same day: the later write is the stock
                    writes.append(Write("pipeline_value", day, half(900), "bo", dims))
            if i != 4 or day > date(2026, 3, 20):  # rep U1's customers start after the week
                writes.append(Write("active_customers", day, float(rng.randint(10, 60)), "ana", dims))
    for start in range(0, len(writes), 500):
        store.record(workspace, writes[start:start + 500], actor="ana", origin="test")
    return store.catalogue(workspace)


def values_logged(store: Store, column: str) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.scalars(select(getattr(EntryRow, column)).distinct()))


@pytest.mark.parametrize(("dimension", "dims"), BREAKDOWNS)
def test_each_group_is_the_period_data_filtered_by_its_value(
        store: Store, dimension: str, dims: Dims) -> None:
    catalogue = logged(store)
    column = catalogue.column_of(dimension)
    gauges = {k for k, m in catalogue.metrics.items() if m.aggregation is Aggregation.LAST}
    assert {"pipeline_value", "active_customers"} <= gauges
    assert {"leads", "new_customers"} <= catalogue.read_as("paid")
    assert {"revenue", "new_customers"} <= catalogue.read_as("year")

    logged_values = values_logged(store, column)
    assert "" in logged_values and len(logged_values) >= 3

    for name, period in PERIODS.items():
        grouped = store.period_data_by(WS, period, catalogue, column, dims)

        assert set(grouped) <= logged_values
        for value in logged_values:
            filtered = store.period_data(WS, period, catalogue, (*dims, (dimension, value)))
            assert grouped.get(value, PeriodData(period)) == filtered, (name, value)


#: periods read together (a report's period and the one it is compared with, a `why`'s two
#: spans): their years overlap, meet, or lie apart; each must read as it reads alone
SPANS = {
    "a week and the week before": (WEEK, WEEK.previous()),
    "like for like, a partial month": (Period(date(2026, 3, 1), date(2026, 3, 11)),
                                       Period(date(2026, 2, 1), date(2026, 2, 11))),
    "a year and the year before": (Period(date(2025, 4, 1), date(2026, 3, 31)),
                                   Period(date(2024, 4, 1), date(2025, 3, 31))),
    "a year and more apart": (Period.month(date(2026, 3, 1)), Period.month(date(2025, 2, 1))),
    "three at once": (WEEK, Period.month(date(2025, 11, 1)), Period.day(date(2026, 1, 6))),
}


@pytest.mark.parametrize("spans", SPANS.values(), ids=SPANS.keys())
def test_periods_read_together_read_as_each_alone_and_the_team_as_period_data(
        store: Store, spans: tuple[Period, ...]) -> None:
    catalogue = logged(store)
    for dimension, dims in (BREAKDOWNS[0], BREAKDOWNS[4], BREAKDOWNS[5]):
        column = catalogue.column_of(dimension)
        with sql_statements(store.engine) as statements:
            together = store.periods_data_by(WS, spans, catalogue, column, dims)
        assert len([s for s in statements if "UNION ALL" in s]) == 1
        for period, read in zip(spans, together, strict=True):
            assert read.groups == store.period_data_by(WS, period, catalogue, column, dims)
            assert read.team == store.period_data(WS, period, catalogue, dims), (period, dims)
        first = together[0].team
        assert first.paid and first.year and first.closing and first.opening  # all parts


def test_the_groups_add_up_to_the_team_and_untagged_stays_a_group(store: Store) -> None:
    catalogue = logged(store)
    team = store.period_data(WS, WEEK, catalogue)
    for column in ("source", "campaign", "dim1"):
        grouped = store.period_data_by(WS, WEEK, catalogue, column)
        assert grouped[""].totals  # the entries without a value are a group of their own
        for metric in ("leads", "spend", "revenue", "days_to_close"):
            parts = [g.totals.get(metric, (0.0, 0)) for g in grouped.values()]
            assert (sum(p[0] for p in parts), sum(p[1] for p in parts)) == team.totals[metric]
        for gauge in ("pipeline_value", "active_customers"):
            assert sum(g.closing.get(gauge, 0.0) for g in grouped.values()) == team.closing[gauge]
            assert sum(g.opening.get(gauge, 0.0) for g in grouped.values()) == team.opening[gauge]


def test_an_unknown_column_is_refused(store: Store) -> None:
    catalogue = logged(store, tags=((),))
    with pytest.raises(ValueError, match="not a dimension"):
        store.period_data_by(WS, WEEK, catalogue, "author")


@pytest.mark.parametrize("by", ["source", "campaign", "temperature"])
def test_a_report_by_a_dimension_gives_each_value_its_filtered_report(store: Store, by: str) -> None:
    logged(store)
    ctx = open_context(store, WS, "ana", NOW)
    kpis = ["cpl", "paid_cpl", "ltv", "pipeline_value", "days_to_close", "leads"]

    grouped = report(ctx, WEEK, kpis, by=by)

    assert grouped.groups[-1].value is None  # untagged last
    column = ctx.catalogue.column_of(by)
    listed = {*store.dimension_values(WS, column, WEEK), None}
    assert {g.value for g in grouped.groups} == listed  # the values logged in the week
    if by in dict(GONE):  # its gauges stand in March, but it logged nothing then: no group
        gone = dict(GONE)[by]
        assert store.period_data_by(WS, WEEK, ctx.catalogue, column)[gone].closing
        assert gone not in listed
    tagged = [g for g in grouped.groups if g.value is not None]
    assert len(tagged) >= 2
    for group in tagged:
        alone = report(ctx, WEEK, kpis, dims=((by, group.value),))
        assert (group.metrics, group.kpis) == (alone.metrics, alone.kpis), group.value
    assert sum(g.metrics["leads"].value for g in grouped.groups) == grouped.metrics["leads"].value


def sources(count: int) -> tuple[Dims, ...]:
    return (*((("campaign", f"v{i}"), ("source", f"v{i}")) for i in range(count)), ())


@pytest.mark.parametrize("by", ["source", "campaign"])
def test_a_report_by_runs_as_many_statements_for_8_values_as_for_2(store: Store, by: str) -> None:
    logged(store, "T0FEW", sources(2), first=date(2026, 2, 20), gaps=False)
    logged(store, "T0MANY", sources(8), first=date(2026, 2, 20), gaps=False)
    contexts: dict[str, Context] = {ws: open_context(store, ws, "ana", NOW) for ws in ("T0FEW", "T0MANY")}
    report(contexts["T0FEW"], WEEK, by=by)  # the source classification and so on, read once

    with sql_statements(store.engine) as few:
        two = report(contexts["T0FEW"], WEEK, by=by)
    with sql_statements(store.engine) as many:
        eight = report(contexts["T0MANY"], WEEK, by=by)

    assert {g.value for g in two.groups} == {"v0", "v1", None}
    assert {g.value for g in eight.groups} == {*(f"v{i}" for i in range(8)), None}
    assert len(few) == len(many)
