"""`/kpi chart NAME [RANGE] [by DIM]`: a KPI's or an input metric's values over a range, posted
once in the asking channel as a native line chart with its PNG in the thread.

NAME is anything a report accepts (`find_name`: a KPI or a metric). Without `by` the PNG is the
daily trend (`chart_trend`); the native chart takes at most MAX_BUCKETS points, so a longer
range is shown in equal runs of days ending with the range's last day. With `by DIM` each
value of the dimension is a line computed from its own entries (a KPI of a group is the ratio
of that group's sums), read in one grouped query (`Store.daily_series_by`). At most MAX_LINES
lines: the biggest values, the rest pooled as one "other" line, and the entries without the
dimension as their own line, never dropped. A range of one day is one bar per value.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from bot.app.context import Context, UserError
from bot.app.digests import Trend, chart_trend, post_problem, trend_over
from bot.app.entries import checked_dimension
from bot.app.names import find_name, label_of, period_for, unit_of
from kpis.catalogue import Aggregation, Catalogue, Unit
from kpis.goals import is_summed
from kpis.periods import Period
from kpis.rollup import bucket_data, value_of
from storage.repository import GroupSeries

#: points of the native chart (slack-platform.md section 11: 1 to 20 per series)
MAX_BUCKETS = 20
#: lines of a breakdown, "other" and the untagged line included (section 11: 1 to 6 series)
MAX_LINES = 6
#: a chart covers at most this many days
MAX_DAYS = 366


@dataclass(frozen=True)
class ChartLine:
    """One line: a dimension value (None: the entries without one, or, without `by`, the
    name itself), its value in each bucket and over the whole range."""

    value: str | None
    points: tuple[float | None, ...]
    total: float | None
    #: the values pooled into this line: it is the "other" line
    others: tuple[str, ...] = ()


@dataclass(frozen=True)
class Charted:
    """What `/kpi chart` posts: the lines over the buckets (the native chart), and without
    `by` the daily trend (the PNG)."""

    workspace_id: str
    key: str
    label: str
    unit: Unit
    period: Period
    buckets: tuple[Period, ...]
    lines: tuple[ChartLine, ...]
    #: the value grows with the days (a sum): an empty bucket is 0, not unknown
    summed: bool
    currency: str
    locale: str
    asker: str
    by: str | None = None
    trend: Trend | None = None

    @property
    def bars(self) -> bool:
        """A breakdown of one day: a bar per value, not lines of one point."""
        return self.by is not None and len(self.buckets) == 1

    @property
    def has_data(self) -> bool:
        return any(v is not None for line in self.lines for v in line.points)


@dataclass(frozen=True)
class ChartAnswer:
    chart: Charted
    #: it went out as a message in the channel (through the Poster); False: share the PNG
    posted: bool


def chart_buckets(period: Period, most: int = MAX_BUCKETS) -> tuple[Period, ...]:
    """At most `most` runs of equal length ending with the period's last day; the first run
    is shorter when the days do not divide evenly (it is never stretched outside the range)."""
    size = math.ceil(period.days / most)
    found: list[Period] = []
    end = period.end
    while end >= period.start:
        start = max(period.start, end - timedelta(days=size - 1))
        found.append(Period(start, end))
        end = start - timedelta(days=1)
    return tuple(reversed(found))


def charted(ctx: Context, name: str, range_spec: str | None, by: str | None = None) -> Charted:
    """The chart of `name` over the range (30 days by default), refused when there is
    nothing to draw."""
    catalogue = ctx.catalogue
    key = find_name(catalogue, name)
    dimension = checked_dimension(by, catalogue) if by is not None else None
    period = period_for(ctx, range_spec, default="30d")
    if period.days > MAX_DAYS:
        raise UserError("A chart covers at most a year; choose a shorter range, e.g. `90d`.")
    if dimension is None:
        found = _single(ctx, key, period)
    else:
        found = _breakdown(ctx, key, period, dimension)
    if not found.has_data:
        raise UserError(f"No data for {found.label} in {period}: log its inputs "
                        f"({', '.join(sorted(catalogue.inputs_of(key)))}) first.")
    return found


def post_chart(ctx: Context, name: str, range_spec: str | None, by: str | None = None) -> ChartAnswer:
    """Posts the chart once in the asking channel (the Courier: its native block, or its text
    when Slack refuses the block, and the PNG in its thread). Without a Poster (no Slack
    connection to post with) the answer is the PNG alone."""
    found = charted(ctx, name, range_spec, by)
    poster = ctx.ports.poster
    if poster is None:
        return ChartAnswer(found, posted=False)
    channel = ctx.in_channel()
    key = f"chart:{ctx.workspace.id}:{channel}:{found.key}:{uuid.uuid4().hex}"
    outcome = poster.deliver(ctx.workspace.id, key, kind="chart", channel=channel,
                             due_at=ctx.now, build=lambda: found)
    if outcome != "posted":
        problem = ctx.store.delivery(key)
        raise UserError(post_problem(problem.error if problem and problem.error else outcome))
    return ChartAnswer(found, posted=True)


def _single(ctx: Context, key: str, period: Period) -> Charted:
    catalogue = ctx.catalogue
    trend = chart_trend(ctx, key, period)
    buckets = chart_buckets(period)
    if len(buckets) == period.days:
        points = tuple(v for _, v in trend.points[-len(buckets):])
    else:
        points = tuple(v for _, v in trend_over(ctx, key, list(buckets)).points)
    total = value_of(catalogue, ctx.store.period_data(ctx.workspace.id, period, catalogue), key)
    return _charted(ctx, key, period, buckets, (ChartLine(None, points, total),), None, trend)


def _charted(ctx: Context, key: str, period: Period, buckets: tuple[Period, ...],
             lines: tuple[ChartLine, ...], by: str | None, trend: Trend | None) -> Charted:
    catalogue, ws = ctx.catalogue, ctx.workspace
    return Charted(ws.id, key, label_of(catalogue, key), unit_of(catalogue, key), period, buckets,
                   lines, is_summed(catalogue, key), ws.currency, ws.locale, ctx.actor, by, trend)


def _breakdown(ctx: Context, key: str, period: Period, by: str) -> Charted:
    catalogue = ctx.catalogue
    inputs = catalogue.metrics_of(key)
    gauges = {k for k in inputs if catalogue.metrics[k].aggregation is Aggregation.LAST}
    groups = ctx.store.daily_series_by(ctx.workspace.id, catalogue.column_of(by), inputs,
                                       period, gauges)
    buckets = chart_buckets(period)
    summed = is_summed(catalogue, key)

    def line(value: str | None, series: GroupSeries, others: tuple[str, ...] = ()) -> ChartLine:
        points = _values(catalogue, key, series, [*buckets, period], gauges)
        return ChartLine(value, tuple(points[:-1]), points[-1], others)

    untagged = groups.pop("", None)
    named = sorted(groups.items(), key=lambda item: _rank(catalogue, key, item[1], period, gauges,
                                                         summed) + (item[0],))
    room = MAX_LINES - (1 if untagged is not None else 0)
    if len(named) > room:
        kept, pooled = named[:room - 1], named[room - 1:]
    else:
        kept, pooled = named, []
    lines = [line(value, series) for value, series in kept]
    if pooled:
        lines.append(line(None, merged([s for _, s in pooled], gauges),
                          tuple(value for value, _ in pooled)))
    if untagged is not None:
        lines.append(line(None, untagged))
    return _charted(ctx, key, period, buckets, tuple(lines), by, None)


def _values(catalogue: Catalogue, key: str, series: GroupSeries, buckets: Sequence[Period],
            gauges: set[str]) -> list[float | None]:
    paid = series.paid or None
    return [value_of(catalogue, data, key)
            for data in bucket_data(series.daily, buckets, gauges, series.opening, paid)]


def _rank(catalogue: Catalogue, key: str, series: GroupSeries, period: Period, gauges: set[str],
          summed: bool) -> tuple[float]:
    """Biggest first: a sum by its size over the range; a ratio or a gauge by how many entries
    it is made of (a value with one lead does not push out one with hundreds)."""
    if summed:
        total = _values(catalogue, key, series, [period], gauges)[0]
        return (-abs(total or 0.0),)
    return (-float(sum(count for by_day in series.daily.values() for _, count, _ in by_day.values())),)


def merged(groups: Sequence[GroupSeries], gauges: set[str]) -> GroupSeries:
    """Several values' series as one (the "other" line): sums and counts add up; a day's paid
    part is each value's paid part, or its whole total where it has none; a gauge's stock is
    the sum of each value's latest stock on that day."""
    pooled = GroupSeries()
    for group in groups:
        for metric, by_day in group.daily.items():
            if metric in gauges:
                continue
            into = pooled.daily.setdefault(metric, {})
            for day, (total, count, _) in by_day.items():
                before = into.get(day, (0.0, 0, None))
                into[day] = (before[0] + total, before[1] + count, None)
    for metric in {m for group in groups for m in group.paid}:
        days = {d for group in groups for d in group.paid.get(metric, {})}
        pooled.paid[metric] = {
            day: math.fsum(group.paid.get(metric, {}).get(
                day, group.daily.get(metric, {}).get(day, (0.0, 0, None))[0]) for group in groups)
            for day in days
        }
    for metric in gauges:
        _merge_stocks(pooled, groups, metric)
    return pooled


def _merge_stocks(pooled: GroupSeries, groups: Sequence[GroupSeries], metric: str) -> None:
    logged = [(sorted(d for d, (_, n, latest) in g.daily.get(metric, {}).items()
                      if n and latest is not None), g) for g in groups]

    def stock(days: list[date], group: GroupSeries, day: date) -> float | None:
        i = bisect.bisect_right(days, day)
        return group.daily[metric][days[i - 1]][2] if i else group.opening.get(metric)

    openings = [g.opening[metric] for g in groups if metric in g.opening]
    if openings:
        pooled.opening[metric] = math.fsum(openings)
    every_day = sorted({d for days, _ in logged for d in days})
    if not every_day:
        return
    into = pooled.daily.setdefault(metric, {})
    for day in every_day:
        total = count = 0.0
        for _days, group in logged:
            entry = group.daily.get(metric, {}).get(day)
            if entry is not None:
                total += entry[0]
                count += entry[1]
        stocks = [s for days, group in logged if (s := stock(days, group, day)) is not None]
        into[day] = (total, int(count), math.fsum(stocks))
