"""The team's own vocabulary: custom metrics and KPIs (checked before they are stored) and how
each source value counts, paid or organic."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.app.context import Context, UserError
from bot.app.names import find_metric
from bot.app.tracking import asked_for
from kpis.catalogue import (
    DIMENSION_SLOTS,
    DIMENSIONS,
    ORGANIC_SOURCES,
    PAID_SOURCES,
    Catalogue,
    Dimension,
    Kpi,
    Metric,
    custom_kpi,
    custom_metric,
)
from kpis.formula import FormulaError, check_cycles, check_names
from kpis.suggest import nearest

audit = logging.getLogger("kpibot.audit")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def define_kpi(ctx: Context, key: str, formula_text: str, *, unit: str = "ratio",
               better: str = "neutral") -> Kpi:
    """A custom KPI, checked for syntax, unknown names and cycles before it is stored."""
    name = key.strip().lower()
    if not _KEY.match(name):
        raise UserError(f"`{key}` can't be a KPI name: use lower-case letters, digits and _, "
                        "starting with a letter (e.g. `big_mac_gap`).")
    catalogue = ctx.catalogue
    if name in catalogue.metrics or (name in catalogue.kpis and not catalogue.kpis[name].custom):
        raise UserError(f"`{name}` is a built-in name; choose another, e.g. `my_{name}`.")
    if catalogue.dimension(name) is not None:
        raise UserError(f"`{name}` is a dimension; choose another name for the KPI, e.g. "
                        f"`{name}_rate`.")
    _not_a_removed_dimension(catalogue, name, f"{name}_rate")
    try:
        kpi = custom_kpi(name, formula_text, unit=unit, better=better)
        check_names(kpi.formula, catalogue.names | {"days"})
        check_cycles({**{k: v.formula for k, v in catalogue.kpis.items()}, name: kpi.formula})
    except FormulaError as error:
        raise UserError(f"That formula doesn't work: {error}\n```{error.pointer()}```") from None
    ctx.store.define(ctx.workspace.id, name, formula=formula_text.strip(), unit=unit,
                     better=better, actor=ctx.actor)
    return kpi


def add_metric(ctx: Context, key: str, *, unit: str = "count", aggregation: str = "sum",
               label: str = "") -> Metric:
    """The team's own input metric; adding one it already has replaces its unit and label."""
    name = key.strip().lower()
    if not _KEY.match(name):
        raise UserError(f"`{key}` can't be a metric name: use lower-case letters, digits and _, "
                        "starting with a letter (e.g. `add_to_carts`).")
    catalogue = ctx.catalogue
    if name in catalogue.kpis:
        raise UserError(f"`{name}` is a KPI already; choose another name, e.g. `{name}_count`.")
    if catalogue.dimension(name) is not None:
        raise UserError(f"`{name}` is a dimension already; choose another name, e.g. "
                        f"`{name}_count`.")
    _not_a_removed_dimension(catalogue, name, f"{name}_count")
    if name in catalogue.metrics and catalogue.metrics[name].pack != "custom":
        raise UserError(f"`{name}` is a built-in metric; log it as it is, or choose another name, "
                        f"e.g. `my_{name}`.")
    metric = custom_metric(name, label=label, unit=unit, aggregation=aggregation)
    ctx.store.define(ctx.workspace.id, name, formula=None, unit=metric.unit.value,
                     aggregation=metric.aggregation.value, label=label, actor=ctx.actor)
    return metric


def remove_metric(ctx: Context, key: str) -> Metric:
    """Only a team's own metric, and not while a KPI uses it; its entries are kept, so adding
    it again brings them back."""
    catalogue = ctx.catalogue
    metric = find_metric(catalogue, key)
    if metric.pack != "custom":
        raise UserError(f"`{metric.key}` is built in; only metrics added with `/kpi metric add` "
                        "can be removed.")
    users = sorted(k for k in catalogue.kpis
                   if any(i.rpartition(":")[2] == metric.key for i in catalogue.inputs_of(k)))
    if users:
        raise UserError(f"`{metric.key}` is used by {', '.join(f'`{u}`' for u in users)}; "
                        "redefine or remove those KPIs first.")
    ctx.store.remove_definition(ctx.workspace.id, metric.key)
    return metric


@dataclass(frozen=True)
class Vocabulary:
    """What the workspace tracks: `/kpi metrics`."""

    catalogue: Catalogue
    packs: tuple[str, ...]
    currency: str
    #: what the log form and reminders ask for (bot.app.tracking.asked_for)
    tracked: tuple[Metric, ...] = ()
    chosen: bool = False


def vocabulary(ctx: Context) -> Vocabulary:
    return Vocabulary(ctx.catalogue, tuple(ctx.workspace.packs), ctx.workspace.currency,
                      tuple(asked_for(ctx.catalogue, ctx.workspace)),
                      any(k in ctx.catalogue.metrics for k in ctx.workspace.tracked))


@dataclass(frozen=True)
class SourceClasses:
    """Every source value the workspace logged or classified: source -> (paid, by default)."""

    sources: dict[str, tuple[bool, bool]]


def sources(ctx: Context) -> SourceClasses:
    own = ctx.store.source_classes(ctx.workspace.id)
    organic = ctx.store.organic_sources(ctx.workspace.id)
    seen = sorted(set(ctx.store.sources_logged(ctx.workspace.id)) | set(own))
    return SourceClasses({s: (s not in organic, s not in own) for s in seen})


@dataclass(frozen=True)
class Classified:
    source: str
    paid: bool
    before: bool


def classify_source(ctx: Context, source: str, paid: bool) -> Classified:
    """Refuses a source never logged and not among the defaults: a typo would otherwise be
    stored and change nothing."""
    name = source.strip().lower()
    known = (set(ctx.store.sources_logged(ctx.workspace.id)) | PAID_SOURCES | ORGANIC_SOURCES
             | set(ctx.store.source_classes(ctx.workspace.id)))
    if name not in known:
        guess = nearest(name, known)
        hint = f" Did you mean `{guess}`?" if guess else ""
        raise UserError(f"No entry has `source={name}` yet, and it is not a source I know.{hint} "
                        f"Log with `source={name}` first, then classify it.")
    before = name not in ctx.store.organic_sources(ctx.workspace.id)
    ctx.store.classify_source(ctx.workspace.id, name, paid=paid, actor=ctx.actor)
    return Classified(name, paid, before)


def _not_a_removed_dimension(catalogue: Catalogue, name: str, example: str) -> None:
    """A removed dimension whose tags entries keep still owns its name: adding it again must
    bring those tags back, not meet a metric of that name."""
    if any(d.key == name for d in catalogue.removed):
        raise UserError(f"`{name}` was a dimension, and entries keep its tags (`/kpi dimension "
                        f"add {name}` brings it back); choose another name, e.g. `{example}`.")


@dataclass(frozen=True)
class DimensionChange:
    """A dimension added (its values, empty for free text) or removed."""

    key: str
    values: tuple[str, ...] = ()
    replaced: bool = False
    #: added again after a removal, with the tags its entries kept
    restored: bool = False


def add_dimension(ctx: Context, key: str, values: Sequence[str] = ()) -> DimensionChange:
    """The team's own dimension (seed 001's warm vs cold traffic); adding one it has replaces
    its values. Its name must not be taken by a dimension, metric or KPI: `temperature=warm`
    in a log must mean one thing."""
    name = key.strip().lower()
    if not _KEY.match(name):
        raise UserError(f"`{key}` can't be a dimension name: use lower-case letters, digits and "
                        "_, starting with a letter (e.g. `temperature`).")
    catalogue = ctx.catalogue
    if name in DIMENSIONS or name == "date":
        raise UserError(f"`{name}` is a built-in dimension already; tag entries with "
                        f"`{name}=...` as they are, or choose another name, e.g. `{name}_group`.")
    if name in catalogue.names:
        kind = "KPI" if name in catalogue.kpis else "metric"
        raise UserError(f"`{name}` is a {kind} already; choose another name for the dimension, "
                        f"e.g. `{name}_type`.")
    replaced = catalogue.dimension(name) is not None
    was = next((d for d in catalogue.removed if d.key == name), None)
    added = ctx.store.add_dimension(ctx.workspace.id, name, tuple(values), actor=ctx.actor)
    if added is None:
        own = ", ".join(f"`{d.key}`" for d in catalogue.dimensions) or "none"
        kept = ", ".join(f"`{d.key}`" for d in catalogue.removed)
        why = (f" and the tags of {kept}, removed but kept on its entries (add it back with "
               f"`/kpi dimension add {catalogue.removed[0].key}`, or delete those entries "
               "from `/kpi history`, to free its place)") if kept else ""
        raise UserError(f"A workspace has at most {len(DIMENSION_SLOTS)} dimensions of its own, "
                        f"and their places are taken: by {own}{why}. Remove one with "
                        "`/kpi dimension remove NAME` first.")
    audit.info("dimension %s added to %s by %s: %s", name, ctx.workspace.id, ctx.actor,
               ",".join(values) or "free text")
    return DimensionChange(name, added.choices, replaced,
                           restored=was is not None and was.slot == added.slot)


def remove_dimension(ctx: Context, key: str) -> DimensionChange:
    """Only a team's own dimension, and not while an alert keeps one of its values; the
    entries keep their tags (history and exports name them), reports no longer read them,
    and adding the dimension again brings them back (Store.remove_dimension)."""
    name = key.strip().lower()
    catalogue = ctx.catalogue
    own = catalogue.dimension(name)
    if own is None:
        if name in DIMENSIONS:
            raise UserError(f"`{name}` is built in; only dimensions added with "
                            "`/kpi dimension add` can be removed.")
        names = [d.key for d in catalogue.dimensions]
        guess = nearest(name, names)
        hint = f" Did you mean `{guess}`?" if guess else ""
        listed = ", ".join(f"`{n}`" for n in names) or "none yet"
        raise UserError(f"`{name}` is not one of the workspace's own dimensions ({listed}).{hint}")
    users = [r for r in ctx.store.rules(ctx.workspace.id)
             if any(d[0] == name for d in json.loads(r.rule).get("dims", []))]
    if users:
        which = ", ".join(f"`{r.kpi}` (#{r.id})" for r in users)
        raise UserError(f"`{name}` is kept by the alert {which}; remove those alerts first "
                        "(`/kpi alerts` lists them).")
    ctx.store.remove_dimension(ctx.workspace.id, name)
    audit.info("dimension %s removed from %s by %s", name, ctx.workspace.id, ctx.actor)
    return DimensionChange(name, own.choices)


@dataclass(frozen=True)
class DimensionList:
    """`/kpi dimensions`: the built-in ones and the workspace's own, with their values."""

    built_in: tuple[str, ...]
    own: tuple[Dimension, ...]


def dimensions(ctx: Context) -> DimensionList:
    return DimensionList(DIMENSIONS, ctx.catalogue.dimensions)
