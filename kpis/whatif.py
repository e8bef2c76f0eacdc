"""What-if: a baseline pushed through the funnel with some step rates changed.

Every count after a changed rate grows by the product of the (1 + p) before it, holding the
other rates, spend and impressions fixed, so untouched steps reproduce the baseline exactly.
New customers and delivery cost (cogs) follow sales; revenue follows sales and aov.

Profit here is revenue - spend - cogs: what the funnel earns after ads and delivery. Organic
spend, fixed costs, payroll and `expenses` do not move with the funnel, and `expenses` often
already holds ad spend, so subtracting them would double count without changing the delta.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kpis.catalogue import KPIS
from kpis.compare import change_pct
from kpis.explain import FUNNEL, FUNNEL_VOLUME, ORDER_VALUE
from kpis.formula import evaluate
from kpis.suggest import did_you_mean, nearest

_LABELS = {kpi.key: kpi.label for kpi in KPIS}
_FORMULAS = {kpi.key: kpi.formula for kpi in KPIS}

#: metrics that grow with sales when the funnel improves (paid customers keep their share)
FOLLOW_SALES = ("new_customers", "paid:new_customers", "cogs")
#: costs subtracted from revenue for `profit`
PROFIT_COSTS = ("spend", "cogs")
#: what a projection reports, before and after
OUTCOMES = ("leads", "sales", "revenue", "cac", "roas", "profit")


@dataclass(frozen=True)
class Step:
    """A rate a form can change; `funnel` steps count toward the compounding factor."""

    key: str
    label: str
    produces: str
    funnel: bool = True


STEPS: tuple[Step, ...] = (
    *(Step(rate, _LABELS[rate], count) for rate, count in FUNNEL),
    Step(ORDER_VALUE[0], _LABELS[ORDER_VALUE[0]], ORDER_VALUE[1], funnel=False),
)
STEP_KEYS: tuple[str, ...] = tuple(step.key for step in STEPS)


class WhatIfError(ValueError):
    """A refused change, with the valid step the user probably meant."""

    def __init__(self, message: str, step: str = "", suggestion: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.suggestion = suggestion


@dataclass(frozen=True)
class Outcome:
    key: str
    before: float | None
    after: float | None

    @property
    def change_pct(self) -> float | None:
        return change_pct(self.after, self.before)


@dataclass(frozen=True)
class Projection:
    """`changes` holds every step (0.0 when untouched); `before`/`after` the metrics moved.

    `compounding` is the product of (1 + p) over the funnel steps; `sales_factor` the same seen
    in the numbers (None without baseline sales). `over_100` lists steps whose projected rate
    passes 100%, which a form should question.
    """

    changes: Mapping[str, float]
    outcomes: tuple[Outcome, ...]
    compounding: float
    sales_factor: float | None
    before: Mapping[str, float]
    after: Mapping[str, float]
    over_100: tuple[str, ...]

    def outcome(self, key: str) -> Outcome:
        return next(o for o in self.outcomes if o.key == key)


def check_changes(changes: Mapping[str, float]) -> dict[str, float]:
    """Every step's percent change; raises WhatIfError on an unknown step or a drop past -100%."""
    checked = dict.fromkeys(STEP_KEYS, 0.0)
    given: set[str] = set()
    for name, pct in changes.items():
        key = name.strip().lower()
        if key not in checked:
            hint = did_you_mean(key, STEP_KEYS)
            valid = ", ".join(STEP_KEYS)
            raise WhatIfError(
                f"unknown step `{name}`.{hint} Valid steps: {valid}.", name, nearest(key, STEP_KEYS)
            )
        if key in given:
            raise WhatIfError(f"step `{key}` is given twice", name)
        if not math.isfinite(pct) or pct < -100.0:
            raise WhatIfError(f"`{key}` cannot change by {pct:g}%: use -100% or more", name)
        given.add(key)
        checked[key] = float(pct)
    return checked


def project(baseline: Mapping[str, float | None], changes: Mapping[str, float]) -> Projection:
    """The baseline (metric totals and readings, `formula_scope`, e.g. of the last 30 days)
    with `changes` in percent."""
    pct = check_changes(changes)
    moved = (FUNNEL_VOLUME, *(s.produces for s in STEPS), *FOLLOW_SALES, "spend")
    before = {k: float(v) for k in moved if (v := baseline.get(k)) is not None and math.isfinite(v)}
    factors: dict[str, float] = {}
    running = compounding = 1.0
    for step in STEPS:
        running *= 1.0 + pct[step.key] / 100.0
        factors[step.produces] = running
        if step.funnel:
            compounding = running
    for key in FOLLOW_SALES:
        factors[key] = compounding
    after = {k: v * factors.get(k, 1.0) for k, v in before.items()}
    old, new = _outcomes(before), _outcomes(after)
    sales = before.get("sales")
    return Projection(
        changes=pct,
        outcomes=tuple(Outcome(k, old[k], new[k]) for k in OUTCOMES),
        compounding=compounding,
        sales_factor=after["sales"] / sales if sales else None,
        before=before,
        after=after,
        over_100=_over_100(before, pct),
    )


def _outcomes(metrics: Mapping[str, float]) -> dict[str, float | None]:
    scope: Mapping[str, float | None] = metrics
    revenue, spend = metrics.get("revenue"), metrics.get("spend")
    profit = None
    if revenue is not None and spend is not None:
        profit = revenue - math.fsum(metrics.get(cost, 0.0) for cost in PROFIT_COSTS)
    return {
        "leads": metrics.get("leads"),
        "sales": metrics.get("sales"),
        "revenue": revenue,
        "cac": evaluate(_FORMULAS["cac"], scope),
        "roas": evaluate(_FORMULAS["roas"], scope),
        "profit": profit,
    }


def _over_100(before: Mapping[str, float], pct: Mapping[str, float]) -> tuple[str, ...]:
    over: list[str] = []
    previous = FUNNEL_VOLUME
    for step in STEPS:
        if step.funnel and pct[step.key] > 0:
            base, count = before.get(previous), before.get(step.produces)
            if base and count is not None and count / base * (1 + pct[step.key] / 100.0) > 1.0:
                over.append(step.key)
        previous = step.produces
    return tuple(over)


__all__ = [
    "FOLLOW_SALES",
    "OUTCOMES",
    "PROFIT_COSTS",
    "STEPS",
    "STEP_KEYS",
    "Outcome",
    "Projection",
    "Step",
    "WhatIfError",
    "check_changes",
    "project",
]
