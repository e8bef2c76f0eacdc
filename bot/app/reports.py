"""Reports: metrics and KPIs of a period against the previous one, and finding names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial

from bot.app.context import Context, UserError
from bot.app.entries import checked_dimension, clean_dims
from bot.app.goals import GoalProgress, goal_progress
from bot.app.names import find_name, period_for
from kpis.catalogue import Better, Catalogue
from kpis.compare import Change, compare, significance
from kpis.periods import Period, PeriodError, like_for_like, parse_date
from kpis.rollup import Dims, PeriodData, kpi_values, methods_used, metric_values
from storage.repository import Workspace


@dataclass(frozen=True)
class Group:
    """One value of a breakdown (`by source`): its own metrics and KPIs against the previous
    period; `value` None holds the entries without that dimension."""

    value: str | None
    metrics: dict[str, Change]
    kpis: dict[str, Change]


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
    #: only entries with these dimension values (`source=facebook`)
    dims: Dims = ()
    #: the dimension of `groups`, best first by `ranked_by` (the first name asked for)
    by: str | None = None
    groups: tuple[Group, ...] = ()
    ranked_by: str | None = None
    #: the KPIs and metrics asked for, in the order given
    asked: tuple[str, ...] = ()

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

        shown: dict[str, object] = {
            "workspace": self.workspace.id,
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "previous": {"start": self.previous.start.isoformat(), "end": self.previous.end.isoformat()},
            "partial": self.partial,
            "metrics": block(self.metrics),
            "kpis": block(self.kpis),
        }
        if self.dims:
            shown["dims"] = dict(self.dims)
        if self.by is not None:
            shown["by"] = self.by
            shown["groups"] = [{"value": g.value, "metrics": block(g.metrics), "kpis": block(g.kpis)}
                               for g in self.groups]
        return shown


def report(
    ctx: Context, period: Period, kpis: Sequence[str] = (), dims: Dims = (), by: str | None = None,
    as_of: date | None = None,
) -> Report:
    """Metrics and KPIs of `period` against the previous period, like for like while
    `period` has not ended (on `as_of`, when given: the week an alert fired in, as it stood
    that day); with `by`, the same for each value of that dimension."""
    catalogue = ctx.catalogue
    keys = [find_name(catalogue, k) for k in kpis]
    dims = clean_dims(dims, catalogue)
    if by is not None:
        by = checked_dimension(by, catalogue)
        if by in dict(dims):
            raise UserError(f"The report already keeps only `{by}={dict(dims)[by]}`; break it "
                            f"down by another dimension, or drop the filter.")
    compared = like_for_like(period, min(as_of, ctx.today) if as_of else ctx.today)
    period, previous = compared.period, compared.previous
    workspace_id = ctx.workspace.id
    groups: tuple[Group, ...] = ()
    ranked_by = None
    if by is None:
        current_data = ctx.store.period_data(workspace_id, period, catalogue, dims)
        previous_data = ctx.store.period_data(workspace_id, previous, catalogue, dims)
        metric_changes, kpi_changes = _compared(catalogue, keys, current_data, previous_data)
    else:
        column = catalogue.column_of(by)
        # both periods, each value's data and the team's, from one grouped read
        current_by, previous_by = ctx.store.periods_data_by(
            workspace_id, (period, previous), catalogue, column, dims)
        current_data = current_by.team
        metric_changes, kpi_changes = _compared(catalogue, keys, current_data, previous_by.team)
        # the values with entries in the period, the filter aside: without one, those with
        # sums in the period's grouped read
        logged = (ctx.store.dimension_values(workspace_id, column, period) if dims
                  else [v for v, data in current_by.groups.items() if v and data.totals])
        found = []
        for value in [*logged, None]:
            m, k = _compared(catalogue, keys,
                             current_by.groups.get(value or "", PeriodData(period)),
                             previous_by.groups.get(value or "", PeriodData(previous)))
            if m:
                found.append(Group(value, m, k))
        ranked_by = keys[0] if keys else next(iter(kpi_changes), None)
        groups = tuple(_ranked(catalogue, found, ranked_by))
    return Report(ctx.workspace, period, previous, metric_changes, kpi_changes, catalogue,
                  compared.partial, methods_used(catalogue, current_data, kpi_changes), dims, by,
                  groups, ranked_by, tuple(keys))


def _compared(
    catalogue: Catalogue, keys: Sequence[str], current_data: PeriodData, previous_data: PeriodData,
) -> tuple[dict[str, Change], dict[str, Change]]:
    """The metrics and KPIs (those of `keys`, or all) of one period's data against another's."""
    period, previous = current_data.period, previous_data.period
    wanted_kpis = [k for k in keys if k in catalogue.kpis]
    wanted_metrics = {k for k in keys if k in catalogue.metrics}
    now_m, before_m = metric_values(catalogue, current_data), metric_values(catalogue, previous_data)
    now_k = kpi_values(catalogue, current_data, wanted_kpis if keys else None, now_m)
    before_k = kpi_values(catalogue, previous_data, wanted_kpis if keys else None, before_m)

    def tested(key: str) -> bool | None:
        """Run only when the change's significance is asked (compare's lazy test)."""
        return significance(catalogue, key, now_m, before_m, period.days, previous.days)

    metric_changes = {
        k: compare(now_m.get(k), before_m.get(k), Better.NEUTRAL, partial(tested, k))
        for k in catalogue.metrics
        if k in now_m and (not keys or k in wanted_metrics or _feeds(catalogue, k, wanted_kpis))
    }
    kpi_changes = {
        k: compare(now_k[k], before_k.get(k), catalogue.kpis[k].better, partial(tested, k))
        for k in catalogue.order if k in now_k
    }
    return metric_changes, kpi_changes


def _ranked(catalogue: Catalogue, groups: list[Group], key: str | None) -> list[Group]:
    """Best first by `key` (the leaderboard of `by rep`); groups without it, then untagged, last."""
    better = catalogue.kpis[key].better if key is not None and key in catalogue.kpis else Better.HIGHER

    def order(group: Group) -> tuple[int, float, str]:
        change = (group.kpis.get(key) or group.metrics.get(key)) if key else None
        value = change.value if change is not None else None
        if group.value is None or value is None:
            return (2 if group.value is None else 1, 0.0, group.value or "")
        return (0, value if better is Better.LOWER else -value, group.value)

    return sorted(groups, key=order)


def standing(catalogue: Catalogue, groups: Sequence[Group], key: str,
             value: str) -> tuple[int, int] | None:
    """Where `value`'s group stands by `key` in the breakdown's leaderboard (`_ranked`): its
    place among the tagged groups with a figure for `key`, and how many there are; groups
    with the same figure share the better place. None when `value` has no figure."""
    def figure(group: Group) -> float | None:
        change = group.kpis.get(key) or group.metrics.get(key)
        return change.value if change is not None else None

    board = [g for g in _ranked(catalogue, list(groups), key)
             if g.value is not None and figure(g) is not None]
    mine = next((g for g in board if g.value == value), None)
    if mine is None:
        return None
    place = next(i for i, g in enumerate(board, start=1) if figure(g) == figure(mine))
    return place, len(board)


def _feeds(catalogue: Catalogue, metric: str, kpis: Sequence[str]) -> bool:
    return any(metric in catalogue.metrics_of(k) for k in kpis)


@dataclass(frozen=True)
class Requested:
    """`/kpi report [RANGE] [NAME ...]`: the report, what the range was called, and the goals."""

    report: Report
    range: str
    names: tuple[str, ...]
    goals: tuple[GoalProgress, ...]
    dims: Dims = ()
    by: str | None = None


def requested(
    ctx: Context, range_spec: str | None, names: Sequence[str] = (), dims: Dims = (),
    by: str | None = None, as_of: str | None = None,
) -> Requested:
    period = period_for(ctx, range_spec)
    try:
        day = parse_date(as_of) if as_of else None
    except PeriodError as error:
        raise UserError(str(error)) from None
    done = report(ctx, period, names, dims, by, day)
    # goals are the team's: a filtered or broken-down report does not repeat them
    goals = () if done.dims or done.by else tuple(goal_progress(ctx))
    return Requested(done, str(period), tuple(names), goals, done.dims, done.by)
