"""Beyond dashboards: what moved a KPI and why, and what-if projections.

The math is pure and lives in kpis/explain.py and kpis/whatif.py; these use cases choose the
periods, read the store (whole periods, then one value of a dimension at a time) and raise
`UserError` with the fix for anything the user can change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.app.context import Context, UserError
from bot.app.names import period_for
from kpis.catalogue import Aggregation, Catalogue
from kpis.explain import Breakdown, ExplainError, Explanation, breakdown, explain
from kpis.numbers import NumberError, parse_number
from kpis.periods import Period, PeriodError, like_for_like
from kpis.rollup import PeriodData, formula_scope, value_of
from kpis.suggest import did_you_mean
from kpis.whatif import STEP_KEYS, Projection, WhatIfError, check_changes, project

log = logging.getLogger("kpibot.insights")

#: `/kpi why` without a range: the last seven whole days against the seven before
WHY_DAYS = 7
#: dimension values read one by one; more than this and the rest count as untagged
MAX_DIMENSION_VALUES = 12
#: the key of what no dimension value accounts for (entries logged without the dimension)
UNTAGGED = ""
WHATIF_RANGE = "30d"
#: counts a what-if needs at least one of, or it has nothing to project
WHATIF_NEEDS = ("impressions", "clicks", "leads", "sales", "revenue")


# -- what moved and why -----------------------------------------------------------------------


@dataclass(frozen=True)
class WhyResult:
    """A KPI's (or metric's) change split into its inputs, and where its counts moved."""

    key: str
    period: Period
    previous: Period
    explanation: Explanation
    breakdowns: tuple[Breakdown, ...]
    catalogue: Catalogue

    @property
    def label(self) -> str:
        item = self.catalogue.kpis.get(self.key) or self.catalogue.metrics.get(self.key)
        return item.label if item else self.key


def why_period(ctx: Context, spec: str | None) -> Period:
    """A named range as usual; none means the last seven whole days, as today is not over."""
    if spec is None:
        return Period(ctx.today - timedelta(days=WHY_DAYS), ctx.today - timedelta(days=1))
    return period_for(ctx, spec)


def why(ctx: Context, key: str, spec: str | None = None) -> WhyResult:
    """`/kpi why KPI [RANGE]`: the change against the previous period, every dimension tried."""
    return explain_change(ctx, key, why_period(ctx, spec))


def why_brief(ctx: Context, key: str, period: Period) -> WhyResult | None:
    """Why `key` moved in `period` against the one before, or None when nothing can be said.

    For the digest's movers: it tries one dimension and one input, so it stays a few queries.
    """
    return why_briefs(ctx, [key], period)[key]


def why_briefs(ctx: Context, keys: Sequence[str], period: Period) -> dict[str, WhyResult | None]:
    """`why_brief` of each key (a digest's movers), from the reads of one: both periods, the
    dimension tried and its breakdowns are read once for all the keys, not once per key."""
    names = {key: key.strip().lower() for key in keys}
    known = [name for name in dict.fromkeys(names.values()) if name in ctx.catalogue.names]
    try:
        explained = _Compared.read(ctx, period).explain(known, inputs=1, dimensions=1) if known else {}
    except PeriodError:
        explained = {}
    return {key: found if isinstance(found := explained.get(name), WhyResult) else None
            for key, name in names.items()}


def explain_change(
    ctx: Context, key: str, period: Period, *, inputs: int = 2, dimensions: int | None = None
) -> WhyResult:
    """The explanation plus, for up to `inputs` summed counts, breakdowns by up to `dimensions`
    dimensions (None: every one with values, the workspace's own included)."""
    catalogue = ctx.catalogue
    name = key.strip().lower()
    if name not in catalogue.names:
        raise UserError(f"I don't know a KPI or metric called `{key}`."
                        f"{did_you_mean(name, catalogue.names)} See `/kpi metrics` for the list.")
    found = _Compared.read(ctx, period).explain([name], inputs=inputs, dimensions=dimensions)[name]
    if isinstance(found, Exception):
        raise found
    return found


@dataclass(frozen=True)
class _Compared:
    """A period and the one before it, like for like, as read once for explaining any key."""

    ctx: Context
    period: Period
    previous: Period
    old_data: PeriodData
    new_data: PeriodData
    old: Mapping[str, float | None]
    new: Mapping[str, float | None]

    @classmethod
    def read(cls, ctx: Context, period: Period) -> _Compared:
        compared = like_for_like(period, ctx.today)
        period, previous = compared.period, compared.previous
        old_data = ctx.store.period_data(ctx.workspace.id, previous, ctx.catalogue)
        new_data = ctx.store.period_data(ctx.workspace.id, period, ctx.catalogue)
        return cls(ctx, period, previous, old_data, new_data,
                   formula_scope(ctx.catalogue, old_data), formula_scope(ctx.catalogue, new_data))

    def explain(self, keys: Sequence[str], *, inputs: int,
                dimensions: int | None) -> dict[str, WhyResult | UserError | ExplainError]:
        """Each known key's explanation with breakdowns of up to `inputs` of its counts, or
        what stops it. The dimensions are looked up once, and each period's totals by value
        in one grouped read per dimension for the counts of every key together."""
        catalogue = self.ctx.catalogue
        explained: dict[str, tuple[Explanation, list[str]] | UserError | ExplainError] = {}
        for key in keys:
            try:
                explanation = explain(catalogue, key, self.old, self.new)
            except ExplainError as error:
                explained[key] = error
                continue
            if explanation is None:
                explained[key] = UserError(_nothing_to_explain(catalogue, key, self.old_data,
                                                               self.new_data))
            else:
                explained[key] = (explanation, _summed_inputs(catalogue, key, explanation)[:inputs])
        targets = list(dict.fromkeys(metric for found in explained.values()
                                     if isinstance(found, tuple) for metric in found[1]))
        span = Period(self.previous.start, self.period.end)
        splits = [(dimension, values, self._totals_by(targets, dimension, values))
                  for dimension, values in _dimensions(self.ctx, span, dimensions)] if targets else []
        results: dict[str, WhyResult | UserError | ExplainError] = {}
        for key, found in explained.items():
            if not isinstance(found, tuple):
                results[key] = found
                continue
            explanation, metrics = found
            try:
                breakdowns = tuple(
                    split for metric in metrics for dimension, _values, totals in splits
                    if (split := _breakdown(metric, dimension, totals[metric],
                                            self.old.get(metric), self.new.get(metric))) is not None)
            except ExplainError as error:
                results[key] = error
                continue
            results[key] = WhyResult(key, self.period, self.previous, explanation, breakdowns,
                                     catalogue)
        return results

    def _totals_by(self, metrics: Sequence[str], dimension: str, values: Sequence[str],
                   ) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
        """metric -> (each value's total before, now), from one grouped read of both periods
        whatever the number of metrics and values."""
        ctx = self.ctx
        only = Catalogue(metrics={m: ctx.catalogue.metrics[m] for m in metrics}, kpis={})
        before, now = ctx.store.periods_data_by(ctx.workspace.id, (self.previous, self.period),
                                                only, ctx.catalogue.column_of(dimension))

        def totals(by_value: Mapping[str, PeriodData], metric: str) -> dict[str, float]:
            return {v: by_value[v].totals.get(metric, (0.0, 0))[0] if v in by_value else 0.0
                    for v in values}

        return {m: (totals(before.groups, m), totals(now.groups, m)) for m in metrics}


def _nothing_to_explain(catalogue: Catalogue, key: str, old: PeriodData, new: PeriodData) -> str:
    inputs = ", ".join(f"`{i}`" for i in sorted(catalogue.inputs_of(key)))
    for data, which in ((new, "this period"), (old, "the period before")):
        if value_of(catalogue, data, key) is None:
            return (f"`{key}` has no value for {which} ({data.period}), so there is no change to "
                    f"explain. Log {inputs} for it, or ask about another range, like "
                    f"`/kpi why {key} 30d`.")
    return (f"`{key}` was 0 in {old.period}, so its change has no percent to split. "
            f"Ask about another range, like `/kpi why {key} 30d`.")


def _summed(catalogue: Catalogue, name: str) -> bool:
    metric = catalogue.metrics.get(name)
    return metric is not None and metric.aggregation is Aggregation.SUM


def _summed_inputs(catalogue: Catalogue, key: str, explanation: Explanation) -> list[str]:
    """The counts worth splitting by dimension: the key itself, then its biggest movers."""
    names = [key] if _summed(catalogue, key) else []
    names += [c.name for c in explanation.contributions
              if _summed(catalogue, c.name) and c.old != c.new]
    return list(dict.fromkeys(names))


def _dimensions(ctx: Context, span: Period, limit: int | None) -> list[tuple[str, list[str]]]:
    """Up to `limit` dimensions with values in the span, the built-ins then the workspace's
    own: one query per dimension tried."""
    found: list[tuple[str, list[str]]] = []
    for dimension in ctx.catalogue.dimension_names:
        if limit is not None and len(found) >= limit:
            break
        values = ctx.store.dimension_values(ctx.workspace.id, ctx.catalogue.column_of(dimension),
                                            span)
        if values:
            found.append((dimension, values[:MAX_DIMENSION_VALUES]))
    return found


def _breakdown(
    metric: str, dimension: str, totals: tuple[dict[str, float], dict[str, float]],
    old_total: float | None, new_total: float | None,
) -> Breakdown | None:
    """`metric` per value of `dimension` (each value's total before and now); what no value
    accounts for is the UNTAGGED rest. None when no value of the dimension has any of the
    metric (it is not tagged that way)."""
    old, new = dict(totals[0]), dict(totals[1])
    if not any(old.values()) and not any(new.values()):
        return None
    old[UNTAGGED] = (old_total or 0.0) - math.fsum(old.values())
    new[UNTAGGED] = (new_total or 0.0) - math.fsum(new.values())
    return breakdown(metric, dimension, _tidy(old), _tidy(new))


def _tidy(values: Mapping[str, float]) -> dict[str, float]:
    """Drops float dust (1e-13) from the untagged rest."""
    return {k: v for k, v in values.items() if k != UNTAGGED or abs(v) > 1e-9}


# -- what if ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIfResult:
    period: Period
    projection: Projection
    catalogue: Catalogue

    @property
    def changed(self) -> list[tuple[str, float]]:
        """The steps that move, in funnel order."""
        return [(k, p) for k, p in self.projection.changes.items() if p]


def parse_changes(changes: Iterable[tuple[str, str]]) -> dict[str, float]:
    """`ctr=+10%` pairs as every step's percent; an unknown step names the nearest valid one."""
    parsed: dict[str, float] = {}
    for name, raw in changes:
        key = name.strip().lower()
        if key not in STEP_KEYS:
            _checked({key: 0.0})
        if key in parsed:
            raise UserError(f"`{key}` is given twice; keep one change per step.")
        try:
            value = parse_number(raw, "percent")
        except NumberError as error:
            raise UserError(f"`{key}={raw}`: {error}") from None
        parsed[key] = round(value * 100.0, 9)
    return _checked(parsed)


def _checked(changes: Mapping[str, float]) -> dict[str, float]:
    try:
        return check_changes(changes)
    except WhatIfError as error:
        text = str(error)
        raise UserError(text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) from None


def what_if(ctx: Context, changes: Iterable[tuple[str, str]]) -> WhatIfResult:
    """The last 30 days pushed through the funnel with some steps changed (nothing is stored)."""
    pct = parse_changes(changes)
    period = period_for(ctx, WHATIF_RANGE)
    data = ctx.store.period_data(ctx.workspace.id, period, ctx.catalogue)
    baseline = formula_scope(ctx.catalogue, data)
    if not any(k in baseline for k in WHATIF_NEEDS):
        raise UserError(f"There are no funnel numbers for {period} to project from. Log "
                        f"{', '.join(f'`{k}`' for k in WHATIF_NEEDS)} (and `spend`), then try again.")
    return WhatIfResult(period, project(baseline, pct), ctx.catalogue)
