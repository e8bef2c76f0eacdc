"""The team's own vocabulary: custom KPIs (checked before they are stored) and how each
source value counts, paid or organic."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.app.context import Context, UserError
from kpis.catalogue import ORGANIC_SOURCES, PAID_SOURCES, Catalogue, Kpi, custom_kpi
from kpis.formula import FormulaError, check_cycles, check_names
from kpis.suggest import nearest

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
    try:
        kpi = custom_kpi(name, formula_text, unit=unit, better=better)
        check_names(kpi.formula, catalogue.names | {"days"})
        check_cycles({**{k: v.formula for k, v in catalogue.kpis.items()}, name: kpi.formula})
    except FormulaError as error:
        raise UserError(f"That formula doesn't work: {error}\n```{error.pointer()}```") from None
    ctx.store.define(ctx.workspace.id, name, formula=formula_text.strip(), unit=unit,
                     better=better, actor=ctx.actor)
    return kpi


@dataclass(frozen=True)
class Vocabulary:
    """What the workspace tracks: `/kpi metrics`."""

    catalogue: Catalogue
    packs: tuple[str, ...]
    currency: str


def vocabulary(ctx: Context) -> Vocabulary:
    return Vocabulary(ctx.catalogue, tuple(ctx.workspace.packs), ctx.workspace.currency)


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
