"""Reports: metrics and KPIs of a period against the previous one, and finding names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.app.context import Context
from bot.app.goals import GoalProgress, goal_progress
from bot.app.names import find_kpi, period_for
from kpis.catalogue import Better, Catalogue
from kpis.compare import Change, compare, significance
from kpis.periods import Period, like_for_like
from kpis.rollup import Dims, kpi_values, methods_used, metric_values
from storage.repository import Workspace


@dataclass(frozen=True)
class Report:
    workspace: Workspace
    period: Period
    previous: Period
    metrics: dict[str, Change]
    kpis: dict[str, Change]
    catalogue: Catalogue
    #: the period has not ended: `period` stops at today, `previous` is the same elapsed part
    partial: bool = False
    #: KPI -> how it was computed, for KPIs with more than one way (LTV without churn)
    methods: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The `kpibot report --json` object of interface.md."""

        def block(changes: dict[str, Change]) -> dict[str, dict[str, str | float | bool | None]]:
            found: dict[str, dict[str, str | float | bool | None]] = {}
            for key, c in changes.items():
                found[key] = {"value": c.value, "previous": c.previous,
                              "change_pct": c.change_pct, "significant": c.significant}
                if key in self.methods:
                    found[key]["method"] = self.methods[key]
            return found

        return {
            "workspace": self.workspace.id,
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "previous": {"start": self.previous.start.isoformat(), "end": self.previous.end.isoformat()},
            "partial": self.partial,
            "metrics": block(self.metrics),
            "kpis": block(self.kpis),
        }


def report(
    ctx: Context, period: Period, kpis: Sequence[str] = (), dims: Dims = ()
) -> Report:
    """Metrics and KPIs of `period` against the previous period, like for like while
    `period` has not ended."""
    catalogue = ctx.catalogue
    wanted = [find_kpi(catalogue, k).key for k in kpis] or None
    compared = like_for_like(period, ctx.today)
    period, previous = compared.period, compared.previous
    current_data = ctx.store.period_data(ctx.workspace.id, period, catalogue, dims)
    previous_data = ctx.store.period_data(ctx.workspace.id, previous, catalogue, dims)
    now_m, before_m = metric_values(catalogue, current_data), metric_values(catalogue, previous_data)
    now_k = kpi_values(catalogue, current_data, wanted)
    before_k = kpi_values(catalogue, previous_data, wanted)

    def tested(key: str) -> bool | None:
        return significance(catalogue, key, now_m, before_m, period.days, previous.days)

    metric_changes = {
        k: compare(now_m.get(k), before_m.get(k), Better.NEUTRAL, tested(k))
        for k in catalogue.metrics if k in now_m and (wanted is None or _feeds(catalogue, k, wanted))
    }
    kpi_changes = {
        k: compare(now_k[k], before_k.get(k), catalogue.kpis[k].better, tested(k))
        for k in catalogue.order if k in now_k
    }
    return Report(ctx.workspace, period, previous, metric_changes, kpi_changes, catalogue,
                  compared.partial, methods_used(catalogue, current_data, kpi_changes))


def _feeds(catalogue: Catalogue, metric: str, kpis: Sequence[str]) -> bool:
    return any(metric in catalogue.metrics_of(k) for k in kpis)


@dataclass(frozen=True)
class Requested:
    """`/kpi report [RANGE] [NAME ...]`: the report, what the range was called, and the goals."""

    report: Report
    range: str
    names: tuple[str, ...]
    goals: tuple[GoalProgress, ...]


def requested(ctx: Context, range_spec: str | None, names: Sequence[str] = ()) -> Requested:
    period = period_for(ctx, range_spec)
    return Requested(report(ctx, period, names), str(period), tuple(names),
                     tuple(goal_progress(ctx)))
