"""Goals: progress toward a target over a week or a month, and whether the pace will meet it.

Pace rules, in one place:

- Only whole days count (kpi-catalogue.md section 5): today is still being logged, so the run
  rate is the value of the days before today (`settled`) over their number. On 2 December,
  with November's goal beaten, a month is not "behind" because 2 December has barely begun.
- No verdict (`on_pace` None) before `MIN_WHOLE_DAYS` whole days of the period: one day is
  not a pace. From `ON_TRACK` (98%) of the goal's pace a goal is on track.
- A summed number (a SUM metric such as revenue, or a KPI that is a sum or difference of such
  metrics, like gross profit) projects by run rate: value / days elapsed * days in the period.
- Anything else (a ratio such as cpl or close rate, a gauge such as mrr, a mean) projects as its
  current value: a ratio does not accumulate over the period.
- `progress` and `projected_ratio` read the same way in both directions: 1.0 or more means the
  goal is met (or will be). Higher is better (and neutral): value / goal. Lower is better (a CPL
  goal of 10 is met at 10 or below): goal / value. They are None when that division means
  nothing (a zero or negative denominator, or a negative goal); `on_pace` is still given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Literal

from kpis.catalogue import Aggregation, Better, Catalogue
from kpis.formula import Binary, Call, Expr, Name, Number, Reading, Unary
from kpis.periods import Period, PeriodError

GOAL_PERIODS = ("weekly", "monthly")
#: whole days of a period before pacing gives a verdict
MIN_WHOLE_DAYS = {"weekly": 2, "monthly": 3}
#: the share of the goal's pace that is still on track
ON_TRACK = 0.98
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Goal:
    """A target for one KPI or metric over each week or each month."""

    kpi: str
    target: float
    period: str = "monthly"

    def __post_init__(self) -> None:
        if not math.isfinite(self.target):
            raise ValueError("a goal must be a finite number")
        goal_period(self.period, date(2000, 1, 1))

    def window(self, today: date) -> Period:
        return goal_period(self.period, today)


@dataclass(frozen=True)
class Pace:
    """Where a goal stands on a day; see the module docstring for how each number is made."""

    goal: float
    actual: float | None
    progress: float | None
    projected: float | None
    projected_ratio: float | None
    on_pace: bool | None
    days_elapsed: int
    days_total: int
    better: Better = Better.HIGHER
    summed: bool = True


def goal_period(kind: str, today: date) -> Period:
    """The week (ISO, Monday first) or calendar month a goal is measured over on `today`."""
    if kind == "weekly":
        return Period.iso_week(today)
    if kind == "monthly":
        return Period.month(today)
    raise PeriodError(f"`{kind}` is not a goal period; use weekly or monthly")


def pace(
    goal: float,
    actual: float | None,
    period: Period,
    today: date,
    *,
    better: Better = Better.HIGHER,
    summed: bool,
    settled: float | None = None,
    min_whole_days: int = 1,
) -> Pace:
    """Progress so far (`actual`, today included) and the value projected at the period's end
    from `settled`, the value of the whole days before today, judged by `better`."""
    total = period.days
    whole = min(max((today - period.start).days, 0), total)
    basis = actual if whole == total else settled
    projected: float | None = None
    if basis is not None and whole > 0:
        projected = basis / whole * total if summed else basis
    lower = better is Better.LOWER
    ratio = _ratio(projected, goal, lower)
    on_pace: bool | None = None
    if projected is not None and whole >= min(min_whole_days, total):
        if ratio is not None:
            on_pace = ratio >= ON_TRACK - _TOLERANCE
        else:
            on_pace = _at_most(projected, goal) if lower else _at_most(goal, projected)
    return Pace(
        goal=goal,
        actual=actual,
        progress=_ratio(actual, goal, lower),
        projected=projected,
        projected_ratio=ratio,
        on_pace=on_pace,
        days_elapsed=whole,
        days_total=total,
        better=better,
        summed=summed,
    )


def _at_most(a: float, b: float) -> bool:
    return a <= b or math.isclose(a, b, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)


def _ratio(value: float | None, goal: float, lower: bool) -> float | None:
    if value is None or goal <= 0:
        return None
    if lower:
        return goal / value if value > 0 else None
    return value / goal


def is_summed(catalogue: Catalogue, key: str) -> bool:
    """Whether `key` grows with the days of a period, so that a run rate projects it."""
    return _shape(catalogue, Name(key), frozenset()) == "summed"


_Shape = Literal["constant", "summed", "other"]


def _shape(catalogue: Catalogue, expr: Expr, seen: frozenset[str]) -> _Shape:
    """Constant, a linear combination of summed inputs, or anything else (ratios, gauges)."""
    if isinstance(expr, Number):
        return "constant"
    if isinstance(expr, Call) and expr.func in ("first", "sum"):
        # first(...) and sum(...) of summed inputs grow with the days like their inputs
        shapes = {_shape(catalogue, arg, seen) for arg in expr.args}
        return "summed" if shapes <= {"summed", "constant"} and "summed" in shapes else "other"
    if isinstance(expr, Reading | Call):
        return "other"
    if isinstance(expr, Name):
        return _name_shape(catalogue, expr.name, seen)
    if isinstance(expr, Unary):
        return _shape(catalogue, expr.operand, seen)
    assert isinstance(expr, Binary)
    left = _shape(catalogue, expr.left, seen)
    right = _shape(catalogue, expr.right, seen)
    if "other" in (left, right):
        return "other"
    if left == right == "constant":
        return "constant"
    if expr.op in "+-":
        return "summed" if left == right == "summed" else "other"
    if expr.op == "*":
        return "summed" if "constant" in (left, right) else "other"
    return "summed" if right == "constant" else "other"


def _name_shape(catalogue: Catalogue, name: str, seen: frozenset[str]) -> _Shape:
    if name == "days":
        return "summed"
    if name in catalogue.metrics:
        return "summed" if catalogue.metrics[name].aggregation is Aggregation.SUM else "other"
    if name in catalogue.kpis and name not in seen:
        return _shape(catalogue, catalogue.kpis[name].formula.expr, seen | {name})
    return "other"


__all__ = ["GOAL_PERIODS", "MIN_WHOLE_DAYS", "ON_TRACK", "Goal", "Pace", "goal_period", "is_summed", "pace"]
