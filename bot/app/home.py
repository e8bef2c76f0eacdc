"""App Home: this week against last week, the viewer's own numbers as a rep, what is missing
today, schedules, problems, goals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.app.context import Context
from bot.app.failures import KIND as FAILURE_DM
from bot.app.goals import GoalProgress, goal_progress
from bot.app.names import label_of, unit_of
from bot.app.reports import Report, report, standing
from bot.app.tracking import asked_for
from kpis.catalogue import HEADLINE_KPIS, Metric, Unit
from kpis.compare import Change
from kpis.periods import Period
from storage.repository import Subscription
from storage.tokens import Notice

#: failed deliveries and notices (e.g. a refused Stripe event) an admin sees, newest first
PROBLEMS_SHOWN = 5
#: figures of the viewer's own scorecard: their KPIs first, then their metrics
REP_FIGURES = 6


@dataclass(frozen=True)
class RepFigure:
    """One of the viewer's own figures this month, like for like, with their place among the
    reps who have that figure (`place` of `of`, as the `by rep` leaderboard ranks them)."""

    key: str
    label: str
    unit: Unit
    change: Change
    place: int
    of: int


@dataclass(frozen=True)
class RepCard:
    """The viewer's scorecard as a rep: the sales figures logged with them as `rep`."""

    rep: str
    period: Period
    previous: Period
    partial: bool
    figures: tuple[RepFigure, ...]


@dataclass(frozen=True)
class Problem:
    """A delivery that failed for good, for admins to fix."""

    kind: str
    channel_id: str
    error: str
    failed_at: datetime


@dataclass(frozen=True)
class Home:
    report: Report
    missing: tuple[Metric, ...]
    is_admin: bool
    schedules: tuple[Subscription, ...]
    problems: tuple[Problem, ...]
    goals: tuple[GoalProgress, ...]
    notices: tuple[Notice, ...] = ()
    #: an admin chose nothing the set-up form sets yet (tracked metrics, a digest, a goal)
    needs_setup: bool = False
    #: the viewer's own numbers as a rep; None when no entry names them as rep this month
    reps: RepCard | None = None


def home(ctx: Context, *, is_admin: bool) -> Home:
    catalogue = ctx.catalogue
    headline = [k for k in HEADLINE_KPIS if k in catalogue.kpis]
    week = report(ctx, Period.iso_week(ctx.today), headline)
    logged = ctx.store.metrics_logged_on(ctx.workspace.id, ctx.today)
    missing = tuple(m for m in asked_for(catalogue, ctx.workspace) if m.key not in logged)
    problems = tuple(
        Problem(d.kind, d.channel_id, d.error or "", d.failed_at)
        for d in ctx.store.deliveries(ctx.workspace.id, failed_only=True, limit=PROBLEMS_SHOWN)
        if d.failed_at is not None and d.kind != FAILURE_DM
    ) if is_admin else ()
    notices = tuple(ctx.store.notices(ctx.workspace.id, PROBLEMS_SHOWN)) if is_admin else ()
    schedules = tuple(ctx.store.subscriptions(ctx.workspace.id))
    goals = tuple(goal_progress(ctx))
    needs_setup = not (ctx.workspace.tracked or schedules or ctx.store.goals(ctx.workspace.id))
    return Home(week, missing, is_admin, schedules, problems, goals, notices, needs_setup,
                rep_card(ctx))


def rep_card(ctx: Context) -> RepCard | None:
    """The viewer's tracked sales metrics that carry rep tags this month (so far, against the
    same days of last month), and the KPIs made of them alone (close rate = sales / shows),
    each with their place among the reps: the `by rep` report and its leaderboard order."""
    catalogue, ws = ctx.catalogue, ctx.workspace
    month = Period.month(ctx.today)
    if ctx.actor not in ctx.store.dimension_values(ws.id, catalogue.column_of("rep"), month):
        return None
    metrics = [m.key for m in asked_for(catalogue, ws) if m.by_rep]
    if not metrics:
        return None
    kpis = [k for k in catalogue.order
            if catalogue.metrics_of(k) and catalogue.metrics_of(k) <= set(metrics)]
    # the headline KPIs (close rate), then the rep's own counts, then the other KPIs
    headline = [k for k in HEADLINE_KPIS if k in kpis]
    keys = [*headline, *metrics, *(k for k in kpis if k not in headline)]
    board = report(ctx, month, keys, by="rep")
    mine = next((g for g in board.groups if g.value == ctx.actor), None)
    if mine is None:
        return None
    figures = []
    for key in keys:
        change = mine.kpis.get(key) or mine.metrics.get(key)
        place = standing(catalogue, board.groups, key, ctx.actor)
        if change is None or change.value is None or place is None:
            continue
        figures.append(RepFigure(key, label_of(catalogue, key), unit_of(catalogue, key), change,
                                 *place))
    if not figures:
        return None
    return RepCard(ctx.actor, board.period, board.previous, board.partial,
                   tuple(figures[:REP_FIGURES]))
