"""The one place a number is formatted for people (Babel: currency, percent, separators)."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import (
    NumberPattern,
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_quantum,
    get_decimal_symbol,
    get_group_symbol,
    parse_pattern,
)

from kpis.catalogue import Unit

NA = "n/a"
_SUFFIX = {Unit.DAYS: " days", Unit.HOURS: " h", Unit.MONTHS: " months"}


@lru_cache(maxsize=32)
def _locale(name: str) -> Locale:
    try:
        return Locale.parse(name)
    except (ValueError, TypeError):
        return Locale.parse("en_US")


@lru_cache(maxsize=32)
def _whole_currency(loc: Locale) -> str:
    """The locale's currency pattern with no decimals: `¤#,##0` (en_US), `#,##0 ¤` (de_DE)."""
    pattern = loc.currency_formats["standard"].pattern.split(";")[0]
    return re.sub(r"\.0+", "", pattern)


def format_value(
    value: float | None, unit: Unit | str, *, currency: str = "USD", locale: str = "en_US",
    cents: bool | None = None,
) -> str:
    """`value` as a person reads it: $1,234.50, 12.5%, 1,234, 3.75x, 4.2 days; None is n/a.

    Money has cents below 10,000 unless `cents` says otherwise (a chart axis whose ticks reach
    1,000 drops them: `$1,500`, not `$1,500.00`).
    """
    if value is None:
        return NA
    if not math.isfinite(value) or abs(value) >= 1e18:  # beyond what Babel's decimals format
        return f"{value:.6g}"
    unit = Unit(unit)
    loc = _locale(locale)
    if unit is Unit.CURRENCY:
        whole = cents is False or (cents is None and abs(value) >= 10_000)
        return _money(value, currency, loc, whole)
    if unit is Unit.PERCENT:
        return _plain("#,##0.0%", loc).render(value)
    if unit is Unit.COUNT:
        return _plain("#,##0" if value == int(value) else "#,##0.##", loc).render(value)
    if unit is Unit.RATIO:
        return _plain("#,##0.00", loc).render(value) + "x"
    return _plain("#,##0.0", loc).render(value) + _SUFFIX.get(unit, "")


@dataclass(frozen=True)
class _Plain:
    """A number pattern with its locale's symbols looked up once. `render` is Babel's
    NumberPattern.apply for patterns without exponent, significant digits or quotes, which
    are all this module uses; Babel looks the symbols up again for every number, and the log
    reply formats half a dozen (tests/test_numbers.py holds the two to the same text)."""

    pattern: NumberPattern
    group: str
    decimal: str
    quantum: Decimal

    def render(self, value: float) -> str:
        p = self.pattern
        number = Decimal(str(value))
        if p.scale:
            number = number.scaleb(p.scale)
        negative = int(number.is_signed())
        whole, _, fraction = f"{abs(number).normalize().quantize(self.quantum):f}".partition(".")
        if len(whole) < p.int_prec[0]:
            whole = "0" * (p.int_prec[0] - len(whole)) + whole
        size, grouped = p.grouping[0], ""
        while len(whole) > size:
            grouped = self.group + whole[-size:] + grouped
            whole = whole[:-size]
            size = p.grouping[1]
        least, most = p.frac_prec
        fraction = (fraction or "0").ljust(least, "0")
        if most == 0 or (least == 0 and int(fraction) == 0):
            fraction = ""
        else:
            while len(fraction) > least and fraction[-1] == "0":
                fraction = fraction[:-1]
            fraction = self.decimal + fraction
        return p.prefix[negative] + whole + grouped + fraction + p.suffix[negative]


@lru_cache(maxsize=256)
def _plain(pattern: str | NumberPattern, loc: Locale) -> _Plain | _Babel:
    parsed = parse_pattern(pattern)
    group, decimal = get_group_symbol(loc), get_decimal_symbol(loc)
    quoted = "'" in "".join((*parsed.prefix, *parsed.suffix, group, decimal))
    if parsed.exp_prec or "@" in parsed.pattern or quoted:
        return _Babel(parsed, loc)
    return _Plain(parsed, group, decimal, get_decimal_quantum(parsed.frac_prec[1]))


@dataclass(frozen=True)
class _Babel:
    """What `_Plain` does not cover, left to Babel."""

    pattern: NumberPattern
    loc: Locale

    def render(self, value: float) -> str:
        return str(self.pattern.apply(value, self.loc))


def _money(value: float, currency: str, loc: Locale, whole: bool) -> str:
    """`format_currency` (with the locale's pattern less cents when `whole`: cents add noise
    to big numbers), without the currency's plural name Babel looks up for every number even
    when the pattern shows none."""
    fast = _money_pattern(currency, loc, whole)
    if fast is None:
        if whole:
            return format_currency(value, currency, format=_whole_currency(loc), locale=loc,
                                   currency_digits=False)
        return format_currency(value, currency, locale=loc)
    pattern, symbol = fast
    text = _plain(pattern, loc).render(value)
    return text.replace("¤¤", currency.upper()).replace("¤", symbol) if "¤" in text else text


@lru_cache(maxsize=256)
def _money_pattern(currency: str, loc: Locale, whole: bool) -> tuple[NumberPattern, str] | None:
    """The currency pattern with the currency's decimals fixed in it, and its symbol: applied
    with no currency, it leaves `¤` for the symbol. None where that would not be exactly
    `format_currency`: a pattern that names the currency (`¤¤¤`), or a quote in what
    replaces `¤` (Babel replaces it before removing quotes)."""
    try:
        base = parse_pattern(_whole_currency(loc)) if whole else loc.currency_formats["standard"]
        symbol = get_currency_symbol(currency, loc)
        digits = base.frac_prec if whole else (get_currency_precision(currency),) * 2
    except (KeyError, ValueError):
        return None
    shown = "".join((*base.prefix, *base.suffix))
    if "¤¤¤" in shown or "'" in symbol or "'" in currency:
        return None
    pattern = copy.copy(base)
    pattern.frac_prec = digits
    return pattern, symbol


def format_change(change_pct: float | None, *, locale: str = "en_US") -> str:
    """+20.0% / −20.0% / n/a: the change against the previous period."""
    if change_pct is None:
        return NA
    sign = "+" if change_pct > 0 else "−" if change_pct < 0 else "±"
    return sign + _plain("#,##0.0", _locale(locale)).render(abs(change_pct)) + "%"


def format_points(points: float | None, *, locale: str = "en_US") -> str:
    """−11.8 pts: the change of a percent KPI in percentage points."""
    if points is None:
        return NA
    sign = "+" if points > 0 else "−" if points < 0 else "±"
    return sign + _plain("#,##0.0", _locale(locale)).render(abs(points)) + " pts"


def format_delta(change_pct: float | None, points: float | None, unit: Unit, *,
                 locale: str = "en_US") -> str:
    """How much a value moved: `+20.0%`, and for a percent KPI `−11.8 pts, −30.0%`."""
    relative = format_change(change_pct, locale=locale)
    if unit is Unit.PERCENT and points is not None:
        return f"{format_points(points, locale=locale)}, {relative}" if change_pct is not None \
            else format_points(points, locale=locale)
    return relative


def format_moment(moment: datetime, zone: str) -> str:
    """A moment as people of the workspace read it: `2026-12-05 09:30 CET`, in its time zone."""
    local = moment.astimezone(ZoneInfo(zone)) if moment.tzinfo else moment.replace(
        tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def format_day(day: date) -> str:
    """A day in a short line: `Sun 15 Mar`."""
    return f"{day:%a} {day.day} {day:%b}"


def format_local(moment: datetime, zone: str, *, with_time: bool = True) -> str:
    """A moment in the workspace's zone, short: `Thu 12 Mar 11:00 EDT`, or its day alone."""
    local = moment.astimezone(ZoneInfo(zone)) if moment.tzinfo else moment.replace(
        tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone))
    day = format_day(local.date())
    return f"{day} {local:%H:%M} {local.tzname()}" if with_time else day


def format_ordinal(n: int) -> str:
    """`1st`, `2nd`, `3rd`, `4th`, `11th`, `22nd`: a place in a ranking."""
    suffix = "th" if 10 <= n % 100 <= 20 else _ORDINAL_SUFFIX.get(n % 10, "th")
    return f"{n}{suffix}"


_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd"}
