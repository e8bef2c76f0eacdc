"""App Home: this week against last week, what is missing today, schedules, problems, goals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.app.context import Context
from bot.app.failures import KIND as FAILURE_DM
from bot.app.goals import GoalProgress, goal_progress
from bot.app.reports import Report, report
from bot.app.tracking import asked_for
from kpis.catalogue import HEADLINE_KPIS, Metric
from kpis.periods import Period
from storage.repository import Subscription
from storage.tokens import Notice

#: failed deliveries and notices (e.g. a refused Stripe event) an admin sees, newest first
PROBLEMS_SHOWN = 5


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
    return Home(week, missing, is_admin, schedules, problems, goals, notices, needs_setup)
