"""Goals: a target per KPI or metric for a week or month, with progress and pace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from bot.app.context import Context, UserError
from bot.app.names import find_name, label_of, unit_of
from kpis.catalogue import Better, Unit
from kpis.goals import GOAL_PERIODS, MIN_WHOLE_DAYS, Pace, goal_period, is_summed, pace
from kpis.numbers import NumberError, parse_number
from kpis.periods import Period
from kpis.rollup import value_of
from kpis.suggest import did_you_mean
from storage.repository import StoredGoal


@dataclass(frozen=True)
class GoalProgress:
    key: str
    label: str
    unit: Unit
    period_kind: str
    period: Period
    pace: Pace


def checked_goal(ctx: Context, kpi: str, value: str, period: str) -> tuple[str, float]:
    """The goal's key and target, or a UserError saying what is wrong; nothing is stored (the
    setup form checks every goal with it before it stores any)."""
    catalogue = ctx.catalogue
    key = find_name(catalogue, kpi)  # a goal on a metric (revenue, leads) is as good as on a KPI
    if period not in GOAL_PERIODS:
        raise UserError(f"`{period}` is not a goal period: use weekly or monthly.")
    try:
        return key, parse_number(value, unit_of(catalogue, key).value)
    except NumberError as error:
        raise UserError(f"The goal {error}") from None


def set_goal(ctx: Context, kpi: str, value: str, period: str) -> GoalProgress:
    key, target = checked_goal(ctx, kpi, value, period)
    ctx.store.set_goal(ctx.workspace.id, key, period, target, ctx.actor)
    return next(g for g in goal_progress(ctx) if g.key == key and g.period_kind == period)


def remove_goal(ctx: Context, name: str, period: str | None = None) -> list[StoredGoal]:
    """`/kpi goal remove NAME [weekly|monthly]`: the goals removed; a name with no goal is
    answered with the goals there are."""
    key = name.strip().lower()
    existing = ctx.store.goals(ctx.workspace.id)
    if not any(g.key == key and period in (None, g.period) for g in existing):
        if not existing:
            raise UserError("There are no goals to remove. Set one with "
                            "`/kpi goal revenue 50000 monthly`.")
        listed = ", ".join(f"`{g.key}` ({g.period})" for g in existing)
        which = f"{period} goal" if period else "goal"
        raise UserError(f"There is no {which} on `{key}`."
                        f"{did_you_mean(key, {g.key for g in existing})} The goals are: {listed}.")
    return ctx.store.remove_goals(ctx.workspace.id, key, period)


def goals(ctx: Context) -> list[GoalProgress]:
    """`/kpi goals`: every goal with its progress and pace today."""
    return goal_progress(ctx)


def goal_progress(ctx: Context, today: date | None = None, *, day_over: bool = False) -> list[GoalProgress]:
    """Every goal's progress and pace on `today` (the workspace's today by default); with
    `day_over`, that day is a whole day (a digest of yesterday paces through yesterday)."""
    catalogue = ctx.catalogue
    day = today or ctx.today
    found = []
    for goal in ctx.store.goals(ctx.workspace.id):
        if goal.key not in catalogue.names:
            continue
        period = goal_period(goal.period, day)
        actual = value_of(catalogue, ctx.store.period_data(ctx.workspace.id, period, catalogue),
                          goal.key)
        settled = None
        if period.start < day <= period.end and not day_over:
            whole_days = Period(period.start, day - timedelta(days=1))
            settled = value_of(catalogue, ctx.store.period_data(ctx.workspace.id, whole_days,
                                                                catalogue), goal.key)
        elif day_over:
            settled = actual
        # a metric goal is a target to reach (revenue, leads)
        better = catalogue.kpis[goal.key].better if goal.key in catalogue.kpis else Better.HIGHER
        found.append(GoalProgress(
            goal.key, label_of(catalogue, goal.key), unit_of(catalogue, goal.key), goal.period,
            period, pace(goal.value, actual, period, day + timedelta(days=1) if day_over else day,
                         better=better, summed=is_summed(catalogue, goal.key), settled=settled,
                         min_whole_days=MIN_WHOLE_DAYS[goal.period]),
        ))
    return found
