"""Numbers are read the same way everywhere: the formats of interface.md, and nothing else."""

from __future__ import annotations

import math

import pytest
from babel.numbers import format_currency, parse_pattern
from hypothesis import given
from hypothesis import strategies as st

from bot.app.settings import LOCALES
from bot.render.numbers import _locale, _plain, _whole_currency, format_value
from kpis.catalogue import Unit
from kpis.numbers import UNITS, NumberError, parse_number


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("1234.5", "count", 1234.5),
        ("1,234.5", "count", 1234.5),
        ("1,234,567", "count", 1234567),
        (".5", "hours", 0.5),
        ("$1,234", "currency", 1234),
        ("€1,234.50", "currency", 1234.5),
        ("£99", "currency", 99),
        ("1,234 €", "currency", 1234),
        ("$1.5k", "currency", 1500),
        ("1.5k", "count", 1500),
        ("1.5K", "count", 1500),
        ("0.1k", "count", 100),
        ("2m", "count", 2_000_000),
        ("2M", "currency", 2_000_000),
        ("1b", "currency", 1_000_000_000),
        ("-5", "count", -5),
        ("+5", "count", 5),
        ("-$5", "currency", -5),
        ("$-5", "currency", -5),
        ("  42  ", "score", 42),
        ("12%", "percent", 0.12),
        ("12.5%", "percent", 0.125),
        ("12", "percent", 0.12),
        ("12.5", "percent", 0.125),
        ("100", "percent", 1.0),
        ("3", "months", 3),
        ("0.75", "ratio", 0.75),
    ],
)
def test_accepted(text: str, unit: str, expected: float) -> None:
    assert parse_number(text, unit) == expected


@pytest.mark.parametrize(
    ("text", "unit", "message"),
    [
        ("", "count", "A number is missing"),
        ("   ", "count", "A number is missing"),
        ("abc", "count", "`abc` is not a number"),
        ("1,23", "count", "comma in the wrong place"),
        ("1,2345", "count", "comma in the wrong place"),
        ("1..2", "count", "`1..2` is not a number"),
        ("1.2.3", "count", "not a number"),
        ("nan", "count", "not a number"),
        ("inf", "currency", "not a number"),
        ("-inf", "currency", "not a number"),
        ("1e400", "count", "not a number"),
        ("1e3", "count", "not a number"),
        ("--5", "count", "not a number"),
        ("-$-5", "currency", "not a number"),
        ("12 34", "count", "not a number"),
        ("1.5x", "count", "not a number"),
        (
            "12%",
            "count",
            "`12%` is a percent, but this metric is a count; write a plain number like `12`",
        ),
        ("12%", "currency", "this metric is an amount of money"),
        ("$5", "count", "`$5` has a currency symbol, but this metric is a count"),
        ("5€", "percent", "currency symbol"),
        ("£5", "days", "currency symbol"),
        ("$5$", "currency", "two currency symbols"),
        ("1" * 41, "count", "too long (41 characters; the limit is 40)"),
    ],
)
def test_refused(text: str, unit: str, message: str) -> None:
    with pytest.raises(NumberError) as refused:
        parse_number(text, unit)
    assert message in str(refused.value)


def test_an_unknown_unit_is_a_programming_error_not_a_user_error() -> None:
    with pytest.raises(ValueError, match="unknown unit") as raised:
        parse_number("1", "furlongs")
    assert not isinstance(raised.value, NumberError)


NUMBERISH = st.text(alphabet="0123456789,.$€£%kKmMbBeE+-− \u00a0naif", max_size=45)


@given(text=st.one_of(st.text(max_size=60), NUMBERISH), unit=st.sampled_from(UNITS))
def test_any_text_is_a_finite_number_or_a_number_error(text: str, unit: str) -> None:
    try:
        value = parse_number(text, unit)
    except NumberError as refused:
        assert str(refused)
    else:
        assert isinstance(value, float)
        assert math.isfinite(value)


# Up to a quadrillion the formatted text stays under the 40-character limit.
@given(st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_formatted_money_reads_back_as_its_rounded_value(value: float) -> None:
    assert parse_number(f"{value:,.2f}", "currency") == round(value, 2)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_whole_numbers_read_back_with_or_without_thousands_separators(value: int) -> None:
    assert parse_number(str(value), "count") == value
    assert parse_number(f"{value:,}", "count") == value


MONEY_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "BHD", "COP", "BRL", "MXN", "CHF", "INR", "XYZ")
MONEY_LOCALES = (*LOCALES, "en_IN", "de_CH", "ar_EG", "ja_JP", "not_a_locale")


@pytest.mark.parametrize("locale", MONEY_LOCALES)
@pytest.mark.parametrize("currency", MONEY_CURRENCIES)
def test_money_is_formatted_exactly_as_babel_formats_it(locale: str, currency: str) -> None:
    """format_value skips Babel's currency-name lookup; the text must not change for it."""
    loc = _locale(locale)
    for value in (0.0, -0.0, 0.005, 1.005, 2.675, 12.5, 1234.5, -1234.5, 9999.995, 10_000.0,
                  123_456.789, -98_765.4321, 1e15):
        assert format_value(value, Unit.CURRENCY, currency=currency, locale=locale) == (
            format_currency(value, currency, format=_whole_currency(loc), locale=loc,
                            currency_digits=False) if abs(value) >= 10_000
            else format_currency(value, currency, locale=loc)), value
        assert format_value(value, Unit.CURRENCY, currency=currency, locale=locale,
                            cents=False) == format_currency(
            value, currency, format=_whole_currency(loc), locale=loc, currency_digits=False)


PLAIN_PATTERNS = ("#,##0.0%", "#,##0", "#,##0.##", "#,##0.00", "#,##0.0")
FINITE = st.one_of(
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 0.005, 0.05, 1.005, 2.675, 0.125, 9999.995, -0.0004, 1e-9]),
)


@given(value=FINITE, pattern=st.sampled_from(PLAIN_PATTERNS),
       locale=st.sampled_from(MONEY_LOCALES))
def test_numbers_render_exactly_as_babel_renders_them(value: float, pattern: str, locale: str) -> None:
    """The symbols are looked up once per locale; the text is Babel's, to the character."""
    loc = _locale(locale)
    assert _plain(pattern, loc).render(value) == parse_pattern(pattern).apply(value, loc)
