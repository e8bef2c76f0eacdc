"""Numbers as people type them, read the same way in Slack, the log form, the CLI and CSV.

One function decides what `1,234.5`, `$1.5k` or `12%` means, so a value never depends on which
front end it came through. The metric's unit is an argument because it changes the meaning:
`12` is twelve leads but 12% of a percent metric, and `$` only makes sense for money.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

UNITS = ("currency", "count", "percent", "days", "hours", "score", "ratio", "months")
MAX_LENGTH = 40

_CURRENCY = "$€£"
_POWERS = {"": 0, "k": 3, "m": 6, "b": 9}
# The overall shape: sign, currency prefix, digits, k/m/b, then a trailing symbol or `%`.
_SHAPE = re.compile(
    r"""(?P<sign>[+-]?)\s*
        (?P<prefix>[$€£]?)\s*
        (?P<inner_sign>[+-]?)
        (?P<digits>[0-9.,]+)
        (?P<suffix>[kmb]?)\s*
        (?P<postfix>[$€£%]?)""",
    re.VERBOSE | re.IGNORECASE,
)
# What the digits may look like: `1234.5`, `1,234.5`, `.5`; commas only between groups of three.
_DIGITS = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+")
_LOOSE_GROUPS = re.compile(r"[0-9]+(?:,[0-9]+)+(?:\.[0-9]+)?")
_DESCRIPTIONS = {
    "currency": "an amount of money",
    "count": "a count",
    "percent": "a percent",
    "days": "a number of days",
    "hours": "a number of hours",
    "score": "a score",
    "ratio": "a ratio",
    "months": "a number of months",
}
_EXAMPLES = {"currency": "`1234.5`, `$1,234` or `1.5k`", "percent": "`12%` or `12.5`"}
_PLAIN_EXAMPLES = "`1234`, `1,234.5` or `1.5k`"


class NumberError(ValueError):
    """A number we cannot read; `str()` is the message for the user, with the fix in it."""


#: far beyond any business's numbers, and well inside what every formatter and database handles
MAX_MAGNITUDE = 1e15


def parse_number(text: str, unit: str) -> float:
    """The value of `text` for a metric measured in `unit`; percents come back as fractions.

    Range checks (a negative count, a percent above 100) belong to the metric, not here.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    if len(text) > MAX_LENGTH:
        raise NumberError(
            f"That number is too long ({len(text):,} characters; the limit is {MAX_LENGTH})."
        )
    cleaned = text.strip().replace("\u2212", "-")
    if not cleaned:
        raise NumberError(f"A number is missing; write one like {_example(unit)}.")
    shape = _SHAPE.fullmatch(cleaned)
    if shape is None or (shape["sign"] and shape["inner_sign"]):
        raise _unreadable(cleaned, unit)
    digits = shape["digits"]
    if not _DIGITS.fullmatch(digits):
        if _LOOSE_GROUPS.fullmatch(digits):
            raise NumberError(
                f"`{cleaned}` has a comma in the wrong place: commas separate thousands, "
                f"like `1,234`, and decimals take a point, like `1.5`."
            )
        raise _unreadable(cleaned, unit)
    _check_symbols(cleaned, shape, unit)

    value = Decimal(digits.replace(",", "")).scaleb(_POWERS[shape["suffix"].lower()])
    if unit == "percent":
        value /= 100
    if "-" in (shape["sign"], shape["inner_sign"]):
        value = -value
    result = float(value)
    if not math.isfinite(result) or abs(result) > MAX_MAGNITUDE:
        raise NumberError(f"`{cleaned}` is too large: numbers go up to a thousand trillion "
                          "(1,000,000,000,000,000); check for extra digits.")
    return result


def _check_symbols(cleaned: str, shape: re.Match[str], unit: str) -> None:
    """Refuse a `%` or a currency symbol that does not fit the metric's unit."""
    plain = f"{shape['sign']}{shape['inner_sign']}{shape['digits']}{shape['suffix']}"
    postfix = shape["postfix"]
    if postfix == "%" and unit != "percent":
        raise NumberError(
            f"`{cleaned}` is a percent, but this metric is {_DESCRIPTIONS[unit]}; "
            f"write a plain number like `{plain}`"
        )
    has_prefix = bool(shape["prefix"])
    has_postfix = bool(postfix) and postfix in _CURRENCY
    if has_prefix and has_postfix:
        raise NumberError(f"`{cleaned}` has two currency symbols; write it like `$1,234`.")
    if (has_prefix or has_postfix) and unit != "currency":
        raise NumberError(
            f"`{cleaned}` has a currency symbol, but this metric is {_DESCRIPTIONS[unit]}; "
            f"write a plain number like `{plain}`"
        )


def _unreadable(cleaned: str, unit: str) -> NumberError:
    return NumberError(f"`{cleaned}` is not a number I can read; write it like {_example(unit)}.")


def _example(unit: str) -> str:
    return _EXAMPLES.get(unit, _PLAIN_EXAMPLES)
