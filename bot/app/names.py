"""Finding what a person named: a metric, a KPI, or either, with the nearest valid choice."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from datetime import timedelta

from bot.app.context import Context, UserError
from kpis.catalogue import Catalogue, Kpi, Metric, Unit
from kpis.periods import NAMED_RANGES, Period, PeriodError, resolve
from kpis.suggest import did_you_mean, nearest


def find_metric(catalogue: Catalogue, key: str) -> Metric:
    name = key.strip().lower()
    if name in catalogue.metrics:
        return catalogue.metrics[name]
    if name in catalogue.kpis:
        raise UserError(f"`{name}` is a KPI computed from other numbers, so it can't be logged. "
                        f"Log its inputs instead: {', '.join(sorted(catalogue.inputs_of(name)))}.")
    raise UserError(f"I don't track a metric called `{key}`.{did_you_mean(name, catalogue.metrics)} "
                    "See `/kpi metrics` for the list.")


def find_kpi(catalogue: Catalogue, key: str) -> Kpi:
    name = key.strip().lower()
    if name in catalogue.kpis:
        return catalogue.kpis[name]
    raise _unknown(key, catalogue.kpis, "a KPI")


def find_name(catalogue: Catalogue, key: str) -> str:
    """A KPI or an input metric: everything a report, chart, goal, alert or why accepts."""
    name = key.strip().lower()
    if name in catalogue.kpis or name in catalogue.metrics:
        return name
    raise _unknown(key, catalogue.names, "a KPI or metric")


def _unknown(key: str, choices: Collection[str], what: str) -> UserError:
    """The refusal of a name that is not among `choices`: the nearest one, or the period it
    looks more like (`/kpi report lastweek`)."""
    name = key.strip().lower()
    guess = nearest(name, choices)
    period_guess = nearest(name, NAMED_RANGES)
    if period_guess and (guess is None or _closeness(name, period_guess) > _closeness(name, guess)):
        nor = what.removeprefix("a ").replace(" or ", ", a ")
        return UserError(f"`{key}` is neither a {nor} nor a period. Did you mean the period "
                         f"`{period_guess}`? Periods: {', '.join(NAMED_RANGES)} or YYYY-MM-DD..YYYY-MM-DD.")
    return UserError(f"I don't know {what} called `{key}`.{did_you_mean(name, choices)} "
                     "See `/kpi metrics` for the list.")


def _closeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b.lower()).ratio()


def unit_of(catalogue: Catalogue, key: str) -> Unit:
    if key in catalogue.kpis:
        return catalogue.kpis[key].unit
    return catalogue.metrics[key].unit


def label_of(catalogue: Catalogue, key: str) -> str:
    definition = catalogue.kpis.get(key) or catalogue.metrics.get(key)
    return definition.label if definition else key


def watched_key(catalogue: Catalogue, name: str) -> str:
    """A KPI, or a metric (an alert on `leads < 5` is as useful as one on CPL)."""
    key = name.strip().lower()
    if key in catalogue.metrics:
        return key
    return find_kpi(catalogue, key).key


def period_for(ctx: Context, spec: str | None, default: str = "week") -> Period:
    """A named range (`week`, `30d`, `A..B`) on the workspace's today; a range that starts
    after today is refused (nothing is logged there yet), with the same length ending today."""
    try:
        period = resolve(spec, ctx.today, default)
    except PeriodError as error:
        raise UserError(str(error)) from None
    return not_in_future(ctx, period)


def not_in_future(ctx: Context, period: Period) -> Period:
    """`period`, unless it starts after today: then a refusal naming the same length ending today."""
    if period.start > ctx.today:
        instead = Period(ctx.today - timedelta(days=period.days - 1), ctx.today)
        suggestion = "today" if instead.days == 1 else f"{instead.start}..{instead.end}"
        raise UserError(f"{period} is in the future: today is {ctx.today} in this workspace. "
                        f"Try `{suggestion}`.")
    return period
