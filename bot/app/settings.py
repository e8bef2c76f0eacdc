"""Workspace settings: time zone, packs, currency and language."""

from __future__ import annotations

from collections.abc import Sequence

from bot.app.context import Context, UserError
from kpis.catalogue import PACKS
from kpis.periods import PeriodError, zone
from storage.repository import Workspace

#: what the settings form offers: KPI names in the language, numbers and dates in the format
LOCALES = {
    "en_US": "English (US): 1,234.50", "en_GB": "English (UK): 1,234.50",
    "es_419": "Español (Latinoamérica): 1,234.50", "es_CO": "Español (Colombia): 1.234,50",
    "es_MX": "Español (México): 1,234.50", "es_AR": "Español (Argentina): 1.234,50",
    "es_ES": "Español (España): 1234,50", "pt_BR": "Português (Brasil): 1.234,50",
    "de_DE": "Deutsch: 1.234,50", "fr_FR": "Français: 1 234,50",
}


def _checked_zone(name: str) -> str:
    try:
        zone(name.strip())
    except PeriodError as error:
        raise UserError(str(error)) from None
    return name.strip()


def set_timezone(ctx: Context, name: str) -> Workspace:
    workspace = ctx.store.update_workspace(ctx.workspace.id, timezone=_checked_zone(name))
    ctx.ports.schedule_changed()
    return workspace


def settings_problems(packs: Sequence[str], timezone: str, locale: str | None) -> dict[str, str]:
    """Each problem of a settings form on its own field, so nothing half-valid is saved."""
    problems: dict[str, str] = {}
    if locale is not None and locale not in LOCALES:
        problems["locale"] = "Choose one of the listed languages."
    if not [p for p in packs if p in PACKS]:
        problems["packs"] = "Choose at least one pack."
    try:
        _checked_zone(timezone)
    except UserError as error:
        problems["timezone"] = str(error)[:2000]
    return problems


def save_settings(ctx: Context, packs: Sequence[str], timezone: str, currency: str,
                  locale: str | None) -> Workspace:
    problems = settings_problems(packs, timezone, locale)
    if problems:
        raise UserError(" ".join(problems.values()))
    workspace = ctx.store.update_workspace(
        ctx.workspace.id, packs=[p for p in packs if p in PACKS], timezone=timezone.strip(),
        currency=currency or "USD", **({"locale": locale} if locale else {}))
    ctx.ports.schedule_changed()
    return workspace
