"""Roll-up of logged entries into period values, and KPIs as ratios of those sums.

Storage hands over per-metric aggregates computed in SQL (`PeriodData`); `roll_up` computes
the same thing from raw entries, which is what the tests use as the reference.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from kpis.catalogue import BUILTIN_NAMES, ORGANIC_SOURCES, Aggregation, Catalogue
from kpis.formula import evaluate
from kpis.periods import Period

Dims = tuple[tuple[str, str], ...]
#: metric -> day -> (sum, count, latest value written that day), as storage reads it
DailyTotals = Mapping[str, Mapping[date, tuple[float, int, float | None]]]


@dataclass(frozen=True)
class Entry:
    """One stored value: a metric, for a day, by an author, with optional dimension values.

    `written` orders writes (a timestamp or a sequence number); the latest write of a day wins
    for gauges.
    """

    metric: str
    day: date
    value: float
    author: str = ""
    dims: Dims = ()
    written: float = 0.0


@dataclass(frozen=True)
class PeriodData:
    """The aggregated inputs of one period, as SQL returns them.

    totals: metric -> (sum, count) of the values logged within the period; for a `mean`
        with a weight, (sum of value x weight, sum of weights);
    closing: gauge -> the latest value on or before the period's last day, summed across
        dimension values (each rep's pipeline, each product's customers);
    opening: gauge -> the same before the period's first day;
    paid: metric read as `paid(...)` -> its sum from paid sources and untagged entries, when
        some of its entries in the period carry a source (0.0 when all of it is organic);
    year: metric read as `year(...)` -> its sum over the 365 days ending with the period.
    """

    period: Period
    totals: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    closing: Mapping[str, float] = field(default_factory=dict)
    opening: Mapping[str, float] = field(default_factory=dict)
    paid: Mapping[str, float] = field(default_factory=dict)
    year: Mapping[str, float] = field(default_factory=dict)


def metric_values(catalogue: Catalogue, data: PeriodData) -> dict[str, float]:
    """Each metric with data, rolled up by its aggregation (sum, last or mean)."""
    values: dict[str, float] = {}
    for key, metric in catalogue.metrics.items():
        if metric.aggregation is Aggregation.LAST:
            if key in data.closing:
                values[key] = data.closing[key]
        elif key in data.totals:
            total, count = data.totals[key]
            if metric.aggregation is Aggregation.SUM:
                values[key] = total
            elif count:
                values[key] = total / count
    return values


def formula_scope(catalogue: Catalogue, data: PeriodData,
                  metrics: Mapping[str, float] | None = None) -> dict[str, float | None]:
    """What a formula may read: metric values (`metrics`, when the caller has them already),
    readings (kpis.formula.READINGS) and the period's days."""
    scope: dict[str, float | None] = dict(metric_values(catalogue, data) if metrics is None
                                          else metrics)
    scope.update({f"opening:{k}": v for k, v in data.opening.items()})
    scope.update({f"paid:{k}": v for k, v in data.paid.items()})
    scope.update({f"year:{k}": v for k, v in data.year.items()})
    scope["days"] = float(data.period.days)
    return scope


def value_of(catalogue: Catalogue, data: PeriodData, key: str) -> float | None:
    """One KPI's or metric's value for the period (None without data)."""
    if key in catalogue.kpis:
        return kpi_values(catalogue, data, [key]).get(key)
    return metric_values(catalogue, data).get(key)


def kpi_values(
    catalogue: Catalogue, data: PeriodData, keys: Iterable[str] | None = None,
    metrics: Mapping[str, float] | None = None,
) -> dict[str, float | None]:
    """KPIs whose every input has data; the value is None where a denominator is empty. With
    `keys`, only those and the KPIs their formulas use are evaluated; `metrics` are the
    data's `metric_values`, when the caller has them already (a breakdown's fifty groups)."""
    scope = formula_scope(catalogue, data, metrics)
    available = frozenset(scope) - BUILTIN_NAMES
    wanted = set(catalogue.order if keys is None else keys)
    order = catalogue.order if keys is None else catalogue.evaluation_order(wanted)
    result: dict[str, float | None] = {}
    for key in catalogue.computable_of(order, available):
        scope[key] = evaluate(catalogue.kpis[key].formula, scope)
        if key in wanted:
            result[key] = scope[key]
    return result


def year_of(period: Period) -> Period:
    """The 365 days ending with `period`, which `year(...)` readings sum over."""
    return Period(period.end - timedelta(days=364), period.end)


def methods_used(catalogue: Catalogue, data: PeriodData, keys: Iterable[str]) -> dict[str, str]:
    """How each of `keys` with several methods (`Kpi.methods`) got its value this period."""
    scope = formula_scope(catalogue, data)
    scope.update(kpi_values(catalogue, data))
    return {k: m for k in keys if (m := catalogue.method(k, scope))}


def roll_up(
    entries: Iterable[Entry], period: Period, catalogue: Catalogue,
    organic: Collection[str] = ORGANIC_SOURCES,
) -> PeriodData:
    """The PeriodData of `period` computed in Python from raw entries (the reference for SQL)."""
    entries = list(entries)
    gauge_keys = {k for k, m in catalogue.metrics.items() if m.aggregation is Aggregation.LAST}
    weights = {k: m.weight for k, m in catalogue.metrics.items() if m.weight}
    paid_keys, year_keys = catalogue.read_as("paid"), catalogue.read_as("year")
    logged = {(e.metric, e.day, e.author, e.dims): e.value for e in entries}
    year = year_of(period)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    paid: dict[str, float] = defaultdict(float)
    tagged: set[str] = set()
    year_sums: dict[str, float] = defaultdict(float)
    latest: dict[tuple[str, Dims], tuple[date, float, float]] = {}
    latest_before: dict[tuple[str, Dims], tuple[date, float, float]] = {}
    for entry in entries:
        if entry.metric in gauge_keys:
            group = (entry.metric, entry.dims)
            stamp = (entry.day, entry.written, entry.value)
            if entry.day <= period.end and (group not in latest or stamp[:2] >= latest[group][:2]):
                latest[group] = stamp
            if entry.day < period.start and (
                group not in latest_before or stamp[:2] >= latest_before[group][:2]
            ):
                latest_before[group] = stamp
            continue
        if entry.metric in year_keys and entry.day in year:
            year_sums[entry.metric] += entry.value
        if entry.day not in period:
            continue
        weight = 1.0
        if entry.metric in weights:
            partner = logged.get((weights[entry.metric], entry.day, entry.author, entry.dims))
            weight = partner if partner and partner > 0 else 1.0
        slot = totals[entry.metric]
        slot[0] += entry.value * weight
        slot[1] += weight
        if entry.metric in paid_keys:
            source = dict(entry.dims).get("source", "")
            paid[entry.metric] += entry.value if source not in organic else 0.0
            if source:
                tagged.add(entry.metric)

    def stocks(found: Mapping[tuple[str, Dims], tuple[date, float, float]]) -> dict[str, float]:
        summed: dict[str, float] = defaultdict(float)
        for (metric, _), (_, _, value) in found.items():
            summed[metric] += value
        return dict(summed)

    return PeriodData(
        period,
        {k: (v[0], round(v[1])) for k, v in totals.items()},
        stocks(latest),
        stocks(latest_before),
        {k: paid[k] for k in tagged},
        dict(year_sums),
    )


@dataclass(frozen=True)
class _Days:
    """One metric's daily totals, for summing many buckets: a bucket of days in order is a
    slice found by bisection (a 60-bucket chart scanned every day once per bucket)."""

    days: list[date]
    values: list[float]
    counts: list[int]
    #: the days came in order (the stores read them so): the sum of a slice adds them in the
    #: same order as a scan would, so the totals are the same to the last bit
    ordered: bool

    @classmethod
    def of(cls, by_day: Mapping[date, tuple[float, int, float | None]]) -> _Days:
        days = list(by_day)
        return cls(days, [v for v, _, _ in by_day.values()], [n for _, n, _ in by_day.values()],
                   all(a < b for a, b in zip(days, days[1:], strict=False)))

    def sum(self, bucket: Period) -> tuple[float, int]:
        picked: Iterable[int]
        if self.ordered:
            lo = bisect.bisect_left(self.days, bucket.start)
            picked = range(lo, bisect.bisect_right(self.days, bucket.end, lo))
        else:
            picked = [i for i, day in enumerate(self.days) if bucket.start <= day <= bucket.end]
        total, count = 0.0, 0
        for i in picked:
            total += self.values[i]
            count += self.counts[i]
        return total, count


def bucket_data(
    daily: DailyTotals, buckets: Sequence[Period], gauges: Iterable[str],
    opening: Mapping[str, float] | None = None, paid: Mapping[str, Mapping[date, float]] | None = None,
) -> list[PeriodData]:
    """The PeriodData of each bucket (days or weeks of a chart) from one read of daily totals.

    `opening` holds each gauge's latest value before the days in `daily`, so a gauge not
    logged inside the range still has its opening and closing values; `paid` holds, for the
    metrics read as `paid(...)`, the sum from paid sources and untagged entries of each day
    some entry carries a source (a day without one counts whole).
    """
    gauge_keys = set(gauges)
    known = dict(opening or {})
    gauge_days: dict[str, tuple[list[date], list[float]]] = {}
    for metric in gauge_keys & set(daily):
        days = sorted(d for d, (_, count, latest) in daily[metric].items() if count and latest is not None)
        gauge_days[metric] = (days, [float(daily[metric][d][2] or 0.0) for d in days])

    def latest(metric: str, day: date, *, before: bool) -> float | None:
        days, values = gauge_days.get(metric, ([], []))
        i = bisect.bisect_left(days, day) if before else bisect.bisect_right(days, day)
        return values[i - 1] if i else known.get(metric)

    summed = [_Days.of(by_day) for metric, by_day in daily.items() if metric not in gauge_keys]
    names = [metric for metric in daily if metric not in gauge_keys]
    result = []
    for bucket in buckets:
        totals: dict[str, tuple[float, int]] = {}
        for metric, series in zip(names, summed, strict=True):
            total, count = series.sum(bucket)
            if count:
                totals[metric] = (total, count)
        closing = {m: v for m in gauge_keys if (v := latest(m, bucket.end, before=False)) is not None}
        opened = {m: v for m in gauge_keys if (v := latest(m, bucket.start, before=True)) is not None}
        paid_sums = {
            m: math.fsum(by_day.get(d, daily_total) for d, (daily_total, _, _) in daily[m].items()
                         if bucket.start <= d <= bucket.end)
            for m, by_day in (paid or {}).items()
            if m in daily and any(bucket.start <= d <= bucket.end for d in by_day)
        }
        result.append(PeriodData(bucket, totals, closing, opened, paid_sums))
    return result
