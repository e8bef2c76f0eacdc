"""The one place a number is formatted for people (Babel: currency, percent, separators)."""

from __future__ import annotations

from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, format_decimal, format_percent

from kpis.catalogue import Unit

NA = "n/a"
_SUFFIX = {Unit.DAYS: " days", Unit.HOURS: " h", Unit.MONTHS: " months"}


@lru_cache(maxsize=32)
def _locale(name: str) -> Locale:
    try:
        return Locale.parse(name)
    except (ValueError, TypeError):
        return Locale.parse("en_US")


def format_value(
    value: float | None, unit: Unit | str, *, currency: str = "USD", locale: str = "en_US"
) -> str:
    """`value` as a person reads it: $1,234.50, 12.5%, 1,234, 3.75x, 4.2 days; None is n/a."""
    if value is None:
        return NA
    unit = Unit(unit)
    loc = _locale(locale)
    if unit is Unit.CURRENCY:
        pattern = "¤#,##0" if abs(value) >= 10_000 else None
        return format_currency(value, currency, format=pattern, locale=loc, currency_digits=pattern is None)
    if unit is Unit.PERCENT:
        return format_percent(value, "#,##0.0%", locale=loc)
    if unit is Unit.COUNT:
        return format_decimal(value, "#,##0" if value == int(value) else "#,##0.##", locale=loc)
    if unit is Unit.RATIO:
        return format_decimal(value, "#,##0.00", locale=loc) + "x"
    return format_decimal(value, "#,##0.0", locale=loc) + _SUFFIX.get(unit, "")


def format_change(change_pct: float | None, *, locale: str = "en_US") -> str:
    """+20.0% / −20.0% / n/a: the change against the previous period."""
    if change_pct is None:
        return NA
    sign = "+" if change_pct > 0 else "−" if change_pct < 0 else "±"
    return sign + format_decimal(abs(change_pct), "#,##0.0", locale=_locale(locale)) + "%"
