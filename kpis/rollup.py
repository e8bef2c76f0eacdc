"""Roll-up of logged entries into period values, and KPIs as ratios of those sums.

Storage hands over per-metric aggregates computed in SQL (`PeriodData`); `roll_up` computes
the same thing from raw entries, which is what the tests use as the reference.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from kpis.catalogue import BUILTIN_NAMES, Aggregation, Catalogue
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

    totals: metric -> (sum, count) of the values logged within the period;
    closing: gauge -> the latest value on or before the period's last day;
    opening: gauge -> the latest value before the period's first day.
    """

    period: Period
    totals: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    closing: Mapping[str, float] = field(default_factory=dict)
    opening: Mapping[str, float] = field(default_factory=dict)


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


def formula_scope(catalogue: Catalogue, data: PeriodData) -> dict[str, float | None]:
    """What a formula may read: metric values, gauges' opening values and the period's days."""
    scope: dict[str, float | None] = dict(metric_values(catalogue, data))
    scope.update({f"opening:{k}": v for k, v in data.opening.items()})
    scope["days"] = float(data.period.days)
    return scope


def value_of(catalogue: Catalogue, data: PeriodData, key: str) -> float | None:
    """One KPI's or metric's value for the period (None without data)."""
    if key in catalogue.kpis:
        return kpi_values(catalogue, data, [key]).get(key)
    return metric_values(catalogue, data).get(key)


def kpi_values(
    catalogue: Catalogue, data: PeriodData, keys: Iterable[str] | None = None
) -> dict[str, float | None]:
    """KPIs whose every input has data; the value is None where a denominator is empty."""
    scope = formula_scope(catalogue, data)
    available = set(scope) - BUILTIN_NAMES
    wanted = set(catalogue.order if keys is None else keys)
    result: dict[str, float | None] = {}
    for key in catalogue.order:
        kpi = catalogue.kpis[key]
        if not catalogue.computable(key, available):
            continue
        scope[key] = evaluate(kpi.formula, scope)
        if key in wanted:
            result[key] = scope[key]
    return result


def roll_up(entries: Iterable[Entry], period: Period, gauges: Iterable[str]) -> PeriodData:
    """The PeriodData of `period` computed in Python from raw entries (the reference for SQL)."""
    gauge_keys = set(gauges)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    latest: dict[tuple[str, date], tuple[float, float]] = {}
    for entry in entries:
        if entry.metric in gauge_keys:
            key = (entry.metric, entry.day)
            if key not in latest or entry.written >= latest[key][0]:
                latest[key] = (entry.written, entry.value)
        elif entry.day in period:
            slot = totals[entry.metric]
            slot[0] += entry.value
            slot[1] += 1
    closing: dict[str, tuple[date, float]] = {}
    opening: dict[str, tuple[date, float]] = {}
    for (metric, day), (_, value) in latest.items():
        if day <= period.end and (metric not in closing or day > closing[metric][0]):
            closing[metric] = (day, value)
        if day < period.start and (metric not in opening or day > opening[metric][0]):
            opening[metric] = (day, value)
    return PeriodData(
        period,
        {k: (v[0], int(v[1])) for k, v in totals.items()},
        {k: v for k, (_, v) in closing.items()},
        {k: v for k, (_, v) in opening.items()},
    )


def bucket_data(
    daily: DailyTotals, buckets: Sequence[Period], gauges: Iterable[str],
    opening: Mapping[str, float] | None = None,
) -> list[PeriodData]:
    """The PeriodData of each bucket (days or weeks of a chart) from one read of daily totals.

    `opening` holds each gauge's latest value before the days in `daily`, so a gauge not
    logged inside the range still has its opening and closing values.
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

    result = []
    for bucket in buckets:
        totals: dict[str, tuple[float, int]] = {}
        for metric, by_day in daily.items():
            if metric in gauge_keys:
                continue
            total, count = 0.0, 0
            for day, (value, n, _) in by_day.items():
                if bucket.start <= day <= bucket.end:
                    total += value
                    count += n
            if count:
                totals[metric] = (total, count)
        closing = {m: v for m in gauge_keys if (v := latest(m, bucket.end, before=False)) is not None}
        opened = {m: v for m in gauge_keys if (v := latest(m, bucket.start, before=True)) is not None}
        result.append(PeriodData(bucket, totals, closing, opened))
    return result
