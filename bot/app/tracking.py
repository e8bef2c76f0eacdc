"""Which metrics the workspace asks people for: the ones `/kpi track` chose, else its packs'.

The log form, App Home's "still missing today" and the reminders all ask `asked_for`, so they
never disagree about what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.app.context import Context, UserError
from kpis.catalogue import Catalogue, Metric
from kpis.suggest import nearest
from storage.repository import Workspace


def asked_for(catalogue: Catalogue, workspace: Workspace) -> list[Metric]:
    """The tracked metrics that still exist, in their order; the packs' metrics when none was
    chosen (or every chosen one was removed since)."""
    chosen = [catalogue.metrics[k] for k in workspace.tracked if k in catalogue.metrics]
    return chosen or catalogue.metrics_in(workspace.packs)


@dataclass(frozen=True)
class Tracked:
    """What the workspace asks for now, and whether an admin chose it (else: its packs)."""

    metrics: tuple[Metric, ...]
    chosen: bool
    packs: tuple[str, ...]
    #: what was asked for before this change (the same as `metrics` when nothing changed)
    before: tuple[str, ...] = ()


def tracking(ctx: Context) -> Tracked:
    """`/kpi track` alone."""
    metrics = tuple(asked_for(ctx.catalogue, ctx.workspace))
    chosen = any(k in ctx.catalogue.metrics for k in ctx.workspace.tracked)
    return Tracked(metrics, chosen, tuple(ctx.workspace.packs), tuple(m.key for m in metrics))


def tracking_problems(catalogue: Catalogue, names: Sequence[str]) -> list[str]:
    """One sentence per name that is not a metric, with the nearest one (or the inputs of a
    KPI named instead); empty when all of them can be tracked."""
    problems = []
    for name in names:
        key = name.strip().lower()
        if key in catalogue.metrics:
            continue
        if key in catalogue.kpis:
            inputs = ", ".join(f"`{i}`" for i in sorted(
                {i.rpartition(":")[2] for i in catalogue.inputs_of(key)}))
            problems.append(f"`{key}` is a KPI computed from other numbers; track its inputs "
                            f"instead: {inputs}.")
            continue
        guess = nearest(key, catalogue.metrics)
        problems.append(f"I don't know a metric called `{name}`."
                        + (f" Did you mean `{guess}`?" if guess else ""))
    return problems


def track(ctx: Context, names: Sequence[str]) -> Tracked:
    """`/kpi track NAME ...`: exactly these metrics from now on, all checked before any is
    stored (one unknown name changes nothing); none: the packs' metrics again."""
    catalogue = ctx.catalogue
    before = tuple(m.key for m in asked_for(catalogue, ctx.workspace))
    if not names:
        workspace = ctx.store.update_workspace(ctx.workspace.id, tracked=())
        return Tracked(tuple(asked_for(catalogue, workspace)), False, tuple(workspace.packs), before)
    problems = tracking_problems(catalogue, names)
    if problems:
        raise UserError(" ".join(problems) + " Nothing changed; `/kpi metrics` lists the metrics.")
    keys = tuple(dict.fromkeys(n.strip().lower() for n in names))
    workspace = ctx.store.update_workspace(ctx.workspace.id, tracked=keys)
    return Tracked(tuple(catalogue.metrics[k] for k in keys), True, tuple(workspace.packs), before)
