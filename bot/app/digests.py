"""The digest use case: what a daily or weekly digest says, computed once for every front end.

The scheduler, `/kpi digest now`, `/kpi chart` and `kpibot digest` all call `compute_digest`
(or `chart_trend`); renderers turn the result into Block Kit, Markdown and PNGs. Schedules
(subscriptions) and what is due live here too; bot/scheduler.py only says "look now".
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import partial

from bot.app.alerts import AlertRule, counted, rules, unusual_history
from bot.app.context import SYSTEM_ACTOR, Context, UserError, open_context
from bot.app.failures import Subject, Told, tell_owner
from bot.app.goals import GoalProgress, goal_progress
from bot.app.insights import WhyResult, why_briefs
from bot.app.names import find_name, label_of, unit_of
from bot.app.ports import Outcome, Poster
from bot.app.reports import report
from bot.app.timers import PENDING, Woken, retry_at
from bot.app.tracking import asked_for
from kpis.alerts import Op, Status
from kpis.catalogue import HEADLINE_KPIS, Aggregation, Better, Catalogue, Unit
from kpis.compare import Change, compare, significance
from kpis.goals import is_summed
from kpis.periods import Period, PeriodError, local_date, zone
from kpis.rollup import PeriodData, bucket_data, kpi_values, metric_values
from kpis.schedule import last_due, next_due, parse_time
from kpis.unusual import Expectation, expect
from storage.repository import Store, Subscription
from storage.timers import Timer

log = logging.getLogger("kpibot.digests")

DAILY, WEEKLY = "daily", "weekly"
KINDS = (DAILY, WEEKLY)
FUNNEL_STEPS = ("impressions", "clicks", "leads", "bookings", "shows", "sales")
TREND_DAYS = 30
TREND_WEEKS = 12
MOVERS = 5
#: a daily ratio chart draws the ratio of the last 7 days' sums: one day's close rate is noise
ROLLING_DAYS = 7
#: rules whose line a chart can draw (a change rule has no level)
THRESHOLD_OPS = (Op.GT, Op.GE, Op.LT, Op.LE)
#: at most this many "unusual" lines: a tracked metric or headline KPI outside its usual band
UNUSUAL_LINES = 3
#: what a digest can break down by (`/kpi digest daily 09:00 by source`)
BREAKDOWNS = ("source",)


@dataclass(frozen=True)
class Line:
    """One KPI or metric of a digest, with its change against the previous period."""

    key: str
    label: str
    unit: Unit
    change: Change
    why: WhyResult | None = None


@dataclass(frozen=True)
class Unusual:
    """A number of the digest's period outside what the same weekday (or recent weeks) makes
    usual: `Leads 3 on a Tuesday; Tuesdays are usually 35-45`."""

    key: str
    label: str
    unit: Unit
    expectation: Expectation


@dataclass(frozen=True)
class SourceMove:
    """One source's biggest move in the digest's period, computed from its own entries: the
    headline KPI or tracked metric that changed most beyond noise (`moved`); when none did,
    the biggest change all the same (noise, shown as such), or, for a source with nothing to
    compare with, its first number. `source` None holds the entries without a source."""

    source: str | None
    line: Line | None
    moved: bool = False


@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    value: float | None
    conversion: float | None


@dataclass(frozen=True)
class Trend:
    """A KPI over the buckets of a chart, with the bucket-aligned previous run and the goal."""

    key: str
    label: str
    unit: Unit
    points: tuple[tuple[date, float | None], ...]
    previous: tuple[tuple[date, float | None], ...]
    goal: float | None = None
    #: a ratio's 7-day rolling value at each daily point (daily ratios are mostly noise)
    smoothed: tuple[float | None, ...] = ()
    #: the alert rule on this KPI at this chart's grain, as (op, value): `(">", 15.0)`
    threshold: tuple[str, float] | None = None
    #: the last point is a day or week that has not ended
    unfinished: bool = False

    @property
    def has_data(self) -> bool:
        return any(v is not None for _, v in self.points)


@dataclass(frozen=True)
class Digest:
    workspace_id: str
    kind: str
    period: Period
    previous: Period
    currency: str
    locale: str
    headline: tuple[Line, ...]
    funnel: tuple[FunnelStep, ...]
    movers: tuple[Line, ...]
    missing: tuple[str, ...]
    trends: tuple[Trend, ...]
    goals: tuple[GoalProgress, ...] = field(default_factory=tuple)
    firing: tuple[AlertRule, ...] = field(default_factory=tuple)
    no_data: tuple[AlertRule, ...] = field(default_factory=tuple)
    #: most unusual first, at most UNUSUAL_LINES
    unusual: tuple[Unusual, ...] = field(default_factory=tuple)
    #: the breakdown the subscription asked for (`source`), and each value's biggest move:
    #: movers beyond noise first, biggest first; the untagged entries last
    by: str | None = None
    sources: tuple[SourceMove, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        if self.kind == DAILY:
            return f"Daily KPIs: {self.period.start:%a %d %b %Y}"
        return f"Weekly KPIs: {self.period}"

    @property
    def has_funnel(self) -> bool:
        return any(step.value is not None for step in self.funnel)

    @property
    def has_data(self) -> bool:
        return self.has_funnel or bool(self.headline)


def digest_period(kind: str, today: date, on: date | None = None) -> Period:
    """Yesterday, or last ISO week; with `on`, the day or week containing it."""
    if kind not in KINDS:
        raise UserError(f"`{kind}` is not a digest: choose `daily` or `weekly`.")
    if kind == DAILY:
        return Period.day(on or today - timedelta(days=1))
    return Period.iso_week(on or today - timedelta(days=7))


def compute_digest(ctx: Context, kind: str, on: date | None = None, by: str | None = None) -> Digest:
    """The digest of the period before today (or the one containing `on`); with `by`
    ("source"), each source's biggest move too. Its fifteen-odd reads share one connection."""
    if on is not None and on > ctx.today:
        raise UserError(f"{on} is in the future; a digest covers days that are over.")
    checked_breakdown(by)
    with ctx.store.reading():
        return _compute_digest(ctx, kind, digest_period(kind, ctx.today, on), by)


def _compute_digest(ctx: Context, kind: str, period: Period, by: str | None) -> Digest:
    catalogue = ctx.catalogue
    result = report(ctx, period)
    ws = ctx.workspace

    def line(key: str, change: Change) -> Line:
        kpi = catalogue.kpis[key]
        return Line(key, kpi.label, kpi.unit, change)

    headline_keys = [k for k in HEADLINE_KPIS if k in result.kpis]
    headline = tuple(line(k, result.kpis[k]) for k in headline_keys)
    biggest = sorted(
        (line(k, c) for k, c in result.kpis.items()
         if c.change_pct is not None and c.value is not None and c.news and k not in headline_keys),
        key=lambda item: -abs(item.change.change_pct or 0.0),
    )[:MOVERS]
    whys = why_briefs(ctx, [m.key for m in biggest], period) if biggest else {}
    movers = [replace(m, why=whys[m.key]) for m in biggest]
    tracked = asked_for(catalogue, ws)
    missing = tuple(m.label for m in tracked if m.key not in result.metrics)
    funnel = _funnel(catalogue, {k: c.value for k, c in result.metrics.items()})
    trends = tuple(t for t in kpi_trends(ctx, headline_keys, kind, period.end) if t.has_data)
    watched = [r for r in rules(ctx.store, ws.id) if r.rule.kpi in catalogue.names]
    return Digest(
        ws.id, kind, period, result.previous, ws.currency, ws.locale, headline, funnel,
        tuple(movers), missing, trends, goals=tuple(goal_progress(ctx, period.end, day_over=True)),
        firing=tuple(r for r in watched if r.state.status is Status.FIRING),
        no_data=tuple(r for r in watched if r.state.last_period is not None and r.state.last_held is None),
        unusual=unusual_lines(ctx, kind, period, [m.key for m in tracked] + headline_keys),
        by=by, sources=source_moves(ctx, period, result.previous,
                                    [*headline_keys, *(m.key for m in tracked)]) if by else (),
    )


def checked_breakdown(by: str | None) -> str | None:
    if by is not None and by not in BREAKDOWNS:
        raise UserError(f"A digest breaks down by source only, not by `{by}`: write "
                        "`/kpi digest daily 09:00 by source`.")
    return by


def source_moves(ctx: Context, period: Period, previous: Period,
                 keys: Sequence[str]) -> tuple[SourceMove, ...]:
    """Each source's biggest move between `previous` and `period`, its metrics and KPIs what
    the report `by source` gives, its changes tested as the report tests them. One grouped
    read of both periods (Store.periods_data_by): the number of statements does not grow
    with the number of sources. Nothing when no entry carries a source."""
    catalogue = ctx.catalogue
    keys = [k for k in dict.fromkeys(keys) if k in catalogue.names]
    if not keys:
        return ()
    now_by, before_by = ctx.store.periods_data_by(
        ctx.workspace.id, (period, previous), catalogue, catalogue.column_of("source"))
    if not set(now_by.groups) - {""}:
        return ()
    kpis = [k for k in keys if k in catalogue.kpis]
    found = []
    for value, now in now_by.groups.items():
        before = before_by.groups.get(value, PeriodData(previous))
        now_m, before_m = metric_values(catalogue, now), metric_values(catalogue, before)
        if not now_m:
            continue  # nothing from this source in the period
        now_k, before_k = kpi_values(catalogue, now, kpis), kpi_values(catalogue, before, kpis)
        lines = []
        for key in keys:
            kpi = catalogue.kpis.get(key)
            current = now_k.get(key) if kpi else now_m.get(key)
            if current is None:
                continue
            change = compare(current, before_k.get(key) if kpi else before_m.get(key),
                             kpi.better if kpi else Better.NEUTRAL,
                             partial(significance, catalogue, key, now_m, before_m, period.days,
                                     previous.days))
            lines.append(Line(key, label_of(catalogue, key), unit_of(catalogue, key), change))
        found.append(_biggest_move(value or None, lines))
    return tuple(sorted(found, key=_move_order))


def _biggest_move(source: str | None, lines: Sequence[Line]) -> SourceMove:
    comparable = [line for line in lines if line.change.change_pct is not None]
    moved = [line for line in comparable if line.change.beyond_noise]
    pool = moved or comparable
    if not pool:
        return SourceMove(source, lines[0] if lines else None)
    return SourceMove(source, max(pool, key=lambda line: abs(line.change.change_pct or 0.0)),
                      moved=bool(moved))


def _move_order(move: SourceMove) -> tuple[int, float, str]:
    """Movers beyond noise first, biggest first; then the steady sources by name; the
    untagged entries last."""
    if move.source is None:
        return (2, 0.0, "")
    if move.moved and move.line is not None:
        return (0, -abs(move.line.change.change_pct or 0.0), move.source)
    return (1, 0.0, move.source)


def unusual_lines(ctx: Context, kind: str, period: Period, keys: Sequence[str]) -> tuple[Unusual, ...]:
    """The keys whose value for `period` is outside its band (kpis.unusual at the default
    sensitivity, the way an `unusual` alert judges), most unusual first; no rule is needed.

    A daily digest compares the day with the same weekday of recent weeks, a weekly one the
    week with recent weeks. A metric counts only when it was logged in the period itself."""
    catalogue = ctx.catalogue
    keys = list(dict.fromkeys(k for k in keys if k in catalogue.names))
    if not keys:
        return ()
    grain = "daily" if kind == DAILY else "weekly"
    history, logged = unusual_history(ctx, keys, grain, period)
    judged = {k: series for k, series in history.items() if k in catalogue.kpis or k in logged}
    unit = {**{k: m.unit for k, m in catalogue.metrics.items()},
            **{k: kpi.unit for k, kpi in catalogue.kpis.items()}}
    label = {**{k: m.label for k, m in catalogue.metrics.items()},
             **{k: kpi.label for k, kpi in catalogue.kpis.items()}}
    found = []
    for key, series in judged.items():
        expectation = expect(series, period.start, grain, count=counted(catalogue, key))
        if expectation is not None and expectation.unusual:
            found.append(Unusual(key, label[key], unit[key], expectation))
    found.sort(key=lambda u: (-abs(u.expectation.score), u.key))
    return tuple(found[:UNUSUAL_LINES])


def _funnel(catalogue: Catalogue, values: dict[str, float | None]) -> tuple[FunnelStep, ...]:
    steps = []
    before: float | None = None
    for i, key in enumerate(FUNNEL_STEPS):
        if key not in catalogue.metrics:
            continue
        value = values.get(key)
        conversion = value / before if i and value is not None and before else None
        steps.append(FunnelStep(key, catalogue.metrics[key].label, value, conversion))
        before = value
    return tuple(steps)


def values_of(catalogue: Catalogue, data: PeriodData, keys: Sequence[str]) -> dict[str, float | None]:
    """The values of `keys`, KPIs and input metrics alike (a chart of `leads` or of `cpl`)."""
    kpis = [k for k in keys if k in catalogue.kpis]
    found = kpi_values(catalogue, data, kpis) if kpis else {}
    if len(kpis) < len(keys):
        metrics = metric_values(catalogue, data)
        found.update({k: metrics.get(k) for k in keys if k in catalogue.metrics})
    return found


def kpi_trends(ctx: Context, keys: Sequence[str], kind: str, end: date) -> list[Trend]:
    """Each KPI over 30 days (daily) or 12 ISO weeks (weekly) ending with `end`, from one read."""
    if kind == DAILY:
        buckets = [Period.day(end - timedelta(days=i)) for i in range(2 * TREND_DAYS - 1, -1, -1)]
        size = TREND_DAYS
    else:
        last = Period.iso_week(end)
        buckets = [Period.iso_week(last.start - timedelta(weeks=i))
                   for i in range(2 * TREND_WEEKS - 1, -1, -1)]
        size = TREND_WEEKS
    return _trends(ctx, keys, buckets, size)


def chart_trend(ctx: Context, name: str, period: Period) -> Trend:
    """`/kpi chart NAME RANGE` (a KPI or an input metric): daily values over the range, the
    previous range faint behind."""
    key = find_name(ctx.catalogue, name)
    days = min(period.days, 366)
    if days < period.days:
        raise UserError("A chart covers at most a year; choose a shorter range, e.g. `90d`.")
    start = period.start - timedelta(days=days)
    buckets = [Period.day(start + timedelta(days=i)) for i in range(2 * days)]
    return _trends(ctx, [key], buckets, days)[0]


def trend_over(ctx: Context, key: str, buckets: list[Period]) -> Trend:
    """`key` over these buckets (the runs of days of a long chart), with no previous run."""
    return _trends(ctx, [key], buckets, len(buckets))[0]


def _trends(ctx: Context, keys: Sequence[str], buckets: list[Period], size: int) -> list[Trend]:
    catalogue = ctx.catalogue
    if not keys:
        return []
    inputs = set().union(*(catalogue.metrics_of(k) for k in keys))
    span = Period(buckets[0].start, buckets[-1].end)
    gauges = [k for k in inputs if catalogue.metrics[k].aggregation is Aggregation.LAST]
    daily = ctx.store.daily_series(ctx.workspace.id, inputs, span, gauges)
    opening = (ctx.store.period_data(ctx.workspace.id, Period.day(span.start), catalogue).opening
               if gauges else {})
    paid_inputs = set().union(*(
        {i.partition(":")[2] for i in catalogue.inputs_of(k) if i.startswith("paid:")} for k in keys))
    paid = ctx.store.paid_series(ctx.workspace.id, paid_inputs, span) if paid_inputs else {}
    values = [values_of(catalogue, data, keys)
              for data in bucket_data(daily, buckets, gauges, opening, paid)]
    # a goal line makes sense on a chart of the goal's own scale: ratios (a CPL of 10), not
    # a monthly revenue total drawn across daily values
    goals = {g.key: g.value for g in ctx.store.goals(ctx.workspace.id)
             if g.key in catalogue.names and not is_summed(catalogue, g.key)}
    daily_buckets = all(b.days == 1 for b in buckets)
    ratios = [k for k in keys if not is_summed(catalogue, k)] if daily_buckets and size >= 7 else []
    smoothed: list[dict[str, float | None]] = []
    if ratios:  # each window's ratio of sums, from the same read: the previous half covers it
        windows = [Period(b.start - timedelta(days=ROLLING_DAYS - 1), b.start)
                   for b in buckets[-size:]]
        smoothed = [values_of(catalogue, data, ratios)
                    for data in bucket_data(daily, windows, gauges, opening, paid)]
    grain = "daily" if daily_buckets else "weekly"
    thresholds = {}
    for r in reversed(rules(ctx.store, ctx.workspace.id)):
        if r.rule.period == grain and not r.rule.dims and r.rule.op in THRESHOLD_OPS:
            thresholds[r.rule.kpi] = (str(r.rule.op), r.rule.threshold)
    unfinished = buckets[-1].start <= ctx.today <= buckets[-1].end
    trends = []
    for key in keys:
        series = [(b.start, v.get(key)) for b, v in zip(buckets, values, strict=True)]
        current = series[-size:]
        previous = [(current[i][0], series[i][1]) for i in range(len(series) - size)]
        rolling = tuple(w.get(key) for w in smoothed) if key in ratios else ()
        trends.append(Trend(key, label_of(catalogue, key), unit_of(catalogue, key),
                            tuple(current), tuple(previous),
                            goals.get(key), rolling, thresholds.get(key), unfinished))
    return trends


# -- schedules -------------------------------------------------------------------------------

#: a digest missed by this much (a restart, an outage) is still sent; older ones are not
GRACE = timedelta(hours=6)


def digest_key(workspace_id: str, channel_id: str, kind: str, period: Period) -> str:
    """What a digest's delivery is claimed under: one post per channel, kind and period,
    whoever sends it (the scheduler, or `kpibot digest --post`)."""
    return f"digest:{workspace_id}:{channel_id}:{kind}:{period.start.isoformat()}"


@dataclass(frozen=True)
class Due:
    subscription: Subscription
    due_at: datetime
    period: Period

    @property
    def key(self) -> str:
        s = self.subscription
        return digest_key(s.workspace_id, s.channel_id, s.kind, self.period)


def due_now(sub: Subscription, timezone: str, now: datetime, grace: timedelta = GRACE) -> Due | None:
    """The subscription's latest scheduled time with its period, while within the grace window
    (a digest missed by a restart or an outage is still sent; an older one is not)."""
    due_at = last_due(parse_time(sub.at_time), sub.weekday, timezone, now)
    if now - due_at > grace:
        return None
    return Due(sub, due_at, digest_period(sub.kind, local_date(due_at, timezone)))


def wake_digest(store: Store, poster: Poster, timer: Timer, now: datetime,
                clock: Callable[[], datetime]) -> Woken:
    """A subscription's timer: its digest if due and not out yet, then its next time."""
    sub = store.subscription(int(timer.subject))
    workspace = None if sub is None else store.workspace(sub.workspace_id)
    if sub is None or workspace is None or not workspace.installed:
        return Woken(None)
    try:
        due = due_now(sub, workspace.timezone, now)
        after = next_due(parse_time(sub.at_time), sub.weekday, workspace.timezone, now)
    except (ValueError, PeriodError):
        log.warning("subscription %d has an unusable schedule", sub.id)
        return Woken(now + timedelta(days=1))
    if due is None:
        return Woken(after)
    done = store.delivery(due.key)
    if done is not None and done.delivered_at:
        return Woken(after)
    outcomes: tuple[Outcome, ...] = ()
    if done is None or not done.failed_at:
        outcomes = (send_due(store, poster, due, clock),)
        if outcomes[0] in PENDING:
            return Woken(retry_at(store, [due.key], now), outcomes)
    # failed for good (now, or before a crash): its creator is told, once per episode
    told = tell_creator(store, poster, due, clock)
    if told is not None and told.outcome in PENDING:
        return Woken(retry_at(store, [told.key], now), outcomes)
    return Woken(after, outcomes)


def send_due(store: Store, poster: Poster, due: Due, clock: Callable[[], datetime]) -> Outcome:
    """Delivers one due digest (the Courier's claim makes it once, whoever calls)."""
    sub = due.subscription

    def build() -> Digest:
        ctx = open_context(store, sub.workspace_id, SYSTEM_ACTOR, clock())
        return compute_digest(ctx, sub.kind, on=due.period.start, by=sub.breakdown)

    return poster.deliver(sub.workspace_id, due.key, kind=f"digest-{sub.kind}",
                          channel=sub.channel_id, due_at=due.due_at, build=build)


def tell_creator(store: Store, poster: Poster, due: Due,
                 clock: Callable[[], datetime]) -> Told | None:
    """When `due`'s digest failed for good, one DM to whoever scheduled it, per episode of
    the subscription (bot/app/failures.py)."""
    return tell_owner(store, poster, due.key, failure_subject(due.subscription), clock)


def failure_subject(sub: Subscription) -> Subject:
    """The subscription as its failure DM names it (its id is never reused)."""
    return Subject(f"digest:{sub.id}", sub.workspace_id,
                   f"digest:{sub.workspace_id}:{sub.channel_id}:{sub.kind}:",
                   sub.created_by, f"the {sub.kind} digest")


def subscription_subject(store: Store, workspace_id: str, subscription_id: int) -> Subject | None:
    """The failure-DM timer's subject `digest:{id}` now; None once it is unsubscribed."""
    sub = store.subscription(subscription_id)
    return None if sub is None or sub.workspace_id != workspace_id else failure_subject(sub)


@dataclass(frozen=True)
class Scheduling:
    """A digest subscription as set up, with its next post in the workspace's zone."""

    subscription: Subscription
    timezone: str
    next_post: datetime


def subscribe(ctx: Context, kind: str, weekday: int | None, time_text: str,
              by: str | None = None) -> Scheduling:
    """`/kpi digest daily HH:MM [by source]` or `weekly DAY HH:MM [by source]` in the asking
    channel; set again without `by source`, the digest has no breakdown."""
    channel = ctx.in_channel()
    try:
        at = parse_time(time_text)
    except ValueError as error:
        raise UserError(str(error)) from None
    sub = ctx.store.subscribe(ctx.workspace.id, channel, kind, f"{at:%H:%M}", weekday, ctx.actor,
                              breakdown=checked_breakdown(by))
    ctx.ports.schedule_changed()
    tz = ctx.workspace.timezone
    return Scheduling(sub, tz, next_due(at, sub.weekday, tz, ctx.now).astimezone(zone(tz)))


def unsubscribe(ctx: Context, kind: str | None) -> int:
    """`/kpi digest off [KIND]`: how many schedules of this channel stopped."""
    stopped = ctx.store.unsubscribe(ctx.workspace.id, ctx.in_channel(), kind)
    ctx.ports.schedule_changed()
    return stopped


@dataclass(frozen=True)
class Posted:
    kind: str
    period: Period


def post_now(ctx: Context, kind: str, by: str | None = None) -> Posted:
    """`/kpi digest now [KIND] [by source]`: this period's digest in the asking channel, once;
    without `by`, broken down as this channel's schedule of that kind is."""
    channel = ctx.in_channel()
    if ctx.ports.poster is None:
        raise UserError("Posting is not available here.")
    period = digest_period(kind, ctx.today)
    by = checked_breakdown(by) or channel_breakdown(ctx.store, ctx.workspace.id, channel, kind)
    key = f"digest-now:{ctx.workspace.id}:{channel}:{kind}:{uuid.uuid4().hex}"
    outcome = ctx.ports.poster.deliver(
        ctx.workspace.id, key, kind=f"digest-{kind}", channel=channel, due_at=ctx.now,
        build=lambda: compute_digest(ctx, kind, on=period.start, by=by),
    )
    if outcome != "posted":
        problem = ctx.store.delivery(key)
        raise UserError(post_problem(problem.error if problem and problem.error else outcome))
    return Posted(kind, period)


def channel_breakdown(store: Store, workspace_id: str, channel: str, kind: str) -> str | None:
    """What the channel's schedule of `kind` breaks down by (None: no schedule, or none)."""
    return next((s.breakdown for s in store.subscriptions(workspace_id)
                 if s.channel_id == channel and s.kind == kind), None)


def post_problem(code: str) -> str:
    if code in ("not_in_channel", "method_not_supported_for_channel_type", "channel_not_found"):
        return "I can't post in this channel. Invite me with `/invite @KPI Bot`, then try again."
    return f"I couldn't post here (Slack said `{code}`). Nothing was posted twice; try again later."
