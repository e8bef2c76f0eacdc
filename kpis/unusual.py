"""What is usual for a number, so an alert can say "that is not normal for a Tuesday".

A fixed rule (`down 30% daily`) fires every Saturday on a business that is quiet at weekends.
This detector compares a day with the same weekday of previous weeks (a week with recent whole
weeks) instead: the expected value is their median and the spread a robust one (MAD), so one
odd week in the history does not move the band. For daily rules each matching day is first
rescaled by how much the business grew since (the median ratio of same-weekday pairs of the
weeks before), so a trend neither shifts the median nor widens the spread. A value is unusual only when it is both far
outside that spread (the robust score beyond the sensitivity) and a material change (a minimum
relative change, and for counts a minimum absolute one, so 1 lead against 2 is never news).

History is a mapping from each period's first day (the day itself, or the Monday of an ISO
week) to its value; missing periods are simply absent and are skipped. Nothing fires before
`MIN_HISTORY_DAYS` of history and `MIN_POINTS` matching periods.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from kpis.periods import Period
from kpis.suggest import did_you_mean

SENSITIVITIES = ("low", "medium", "high")
UNUSUAL_PERIODS = ("daily", "weekly")
DEFAULT_SENSITIVITY = "medium"
#: days of history before anything can fire
MIN_HISTORY_DAYS = 28
#: matching periods (same weekdays, or whole weeks) needed for a median worth trusting
MIN_POINTS = 4
#: how many matching periods back the expectation looks (older ones describe another business)
LOOKBACK = 8
#: MAD times this estimates the standard deviation of normal noise
_MAD_TO_SIGMA = 1.4826
#: the spread is never taken below this fraction of the median: four equal Tuesdays are luck
_SPREAD_FLOOR = 0.05
#: a change of a count smaller than this is never news, whatever the history says
MIN_COUNT_CHANGE = 3.0
_TOLERANCE = 1e-9
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class UnusualError(ValueError):
    """A sensitivity or period an unusual rule does not take; the message names those it does."""


@dataclass(frozen=True)
class Sensitivity:
    """How far out a value must be: robust score, and the smallest relative change that counts."""

    score: float
    relative: float


#: low fires rarely (only large, clear breaks), high fires on smaller changes
THRESHOLDS: Mapping[str, Sensitivity] = {
    "low": Sensitivity(score=3.5, relative=0.4),
    "medium": Sensitivity(score=2.5, relative=0.3),
    "high": Sensitivity(score=2.0, relative=0.2),
}


def sensitivity_of(name: str) -> str:
    """The sensitivity `name` (case and blanks ignored), or an error naming the three."""
    cleaned = name.strip().lower()
    if cleaned in SENSITIVITIES:
        return cleaned
    raise UnusualError(
        f"`{name.strip()}` is not a sensitivity; use low, medium or high "
        f"(medium when left out).{did_you_mean(cleaned, SENSITIVITIES)}"
    )


def unusual_period(name: str) -> str:
    """`daily` or `weekly`, or an error saying that those are the two an unusual rule takes."""
    cleaned = name.strip().lower()
    if cleaned in UNUSUAL_PERIODS:
        return cleaned
    raise UnusualError(
        f"`{name.strip()}` is not a period for an unusual alert; use daily or weekly "
        "(daily when left out)"
    )


@dataclass(frozen=True)
class Expectation:
    """What a period's value was expected to be, and whether the actual one is news.

    `low`..`high` is the band inside which the value is not unusual at the rule's sensitivity
    (it is wide enough for both the score and the material-change test). `score` is the signed
    robust score (value - expected) / spread. `basis` says what the expectation comes from, in
    words ("Tuesdays", "recent weeks"), over `n_points` periods. `count` says the values are
    counts, so the band reads in whole numbers.
    """

    day: date
    period: str
    value: float
    expected: float
    low: float
    high: float
    spread: float
    score: float
    material: bool
    unusual: bool
    basis: str
    n_points: int
    sensitivity: str
    count: bool = False


def is_count(values: list[float]) -> bool:
    """Whole, non-negative numbers: counts, whose noise is at least Poisson."""
    return all(v >= 0 and float(v).is_integer() for v in values)


def _matching(period: str, day: date) -> list[date]:
    step = timedelta(days=7)
    start = Period.iso_week(day).start if period == "weekly" else day
    return [start - step * k for k in range(1, LOOKBACK + 1)]


def _first_whole(period: str, since: date) -> date:
    """The first period start whose period lies wholly inside the history."""
    if period == "weekly":
        monday = Period.iso_week(since).start
        return monday if monday == since else monday + timedelta(days=7)
    return since


def _growth(history: Mapping[date, float], day: date, then: date, first: date) -> float | None:
    """How much the business grew from the week before `then` to the week before `day`: the
    median ratio of the 7 same-weekday pairs, so the weekly pattern cancels and up to 3 odd days
    (an outage, a launch) do not move it; None without 4 usable pairs."""
    ratios = []
    for k in range(1, 8):
        now, before = day - timedelta(days=k), then - timedelta(days=k)
        if before < first or now not in history or before not in history:
            continue
        a, b = history[now], history[before]
        if math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0:
            ratios.append(a / b)
    return statistics.median(ratios) if len(ratios) >= MIN_POINTS else None


def _at_todays_level(
    history: Mapping[date, float], day: date, dates: list[date], first: date
) -> list[float] | None:
    """The matching days' values rescaled by the growth since then, so a trend neither shifts
    the median nor widens the spread; None when the growth is unknown for too many of them
    (missing days, zeros), and the caller uses the plain values."""
    scaled = []
    for d in dates:
        growth = _growth(history, day, d, first)
        if growth is not None:
            scaled.append(history[d] * growth)
    return scaled if len(scaled) >= MIN_POINTS else None


def watching_from(since: date, period: str = "daily") -> date:
    """The first day an unusual rule can judge, for a metric whose history starts on `since`.

    Daily: 28 days after the first day with data. Weekly: the Monday of the fifth whole ISO week.
    Missing days in the history can delay it further (4 matching periods are needed).
    """
    period = unusual_period(period)
    first = _first_whole(period, since)
    return first + timedelta(days=MIN_HISTORY_DAYS)


def history_needed(day: date, period: str = "daily") -> Period:
    """The days (or week starts) whose values `expect` reads to judge `day`: the matching
    periods and, for daily rules, the week before the oldest one (to measure growth)."""
    period = unusual_period(period)
    oldest = _matching(period, day)[-1]
    return Period(oldest - timedelta(days=7) if period == "daily" else oldest, day)


def expect(
    history: Mapping[date, float],
    day: date,
    period: str = "daily",
    sensitivity: str = DEFAULT_SENSITIVITY,
    *,
    value: float | None = None,
    since: date | None = None,
    count: bool | None = None,
) -> Expectation | None:
    """The expectation for `day`'s value (`value`, else `history[day]`), or None when there is
    no value or not yet enough history to judge it.

    For a weekly rule, `history` maps each ISO week's Monday to the week's value and `day` may
    be any day of the week. `since` is the first day with data (the earliest key when left out):
    a week starting before it is partial and not used. `count` says whether the values are
    counts; left out, it is inferred from the history (whole non-negative numbers), so the band
    never depends on the value being judged.
    """
    period = unusual_period(period)
    named = sensitivity_of(sensitivity)
    level = THRESHOLDS[named]
    start = Period.iso_week(day).start if period == "weekly" else day
    current = value if value is not None else history.get(start)
    if current is None or not math.isfinite(current) or not history:
        return None
    first = _first_whole(period, since if since is not None else min(history))
    if start - first < timedelta(days=MIN_HISTORY_DAYS):
        return None
    dates = [
        d for d in _matching(period, day)
        if d >= first and d in history and math.isfinite(history[d])
    ]
    if len(dates) < MIN_POINTS:
        return None
    raw = [history[d] for d in dates]
    counts = is_count(raw) if count is None else count
    points = _at_todays_level(history, start, dates, first) if period == "daily" else None
    if points is None:
        points = raw
    expected = statistics.median(points)
    mad = statistics.median(abs(p - expected) for p in points)
    spread = max(
        mad * _MAD_TO_SIGMA,
        _SPREAD_FLOOR * abs(expected),
        math.sqrt(max(expected, 1.0)) if counts else 0.0,
    )
    change = current - expected
    smallest = max(level.relative * abs(expected), MIN_COUNT_CHANGE if counts else 0.0)
    margin = max(level.score * spread, smallest)
    if spread > 0:
        score = change / spread
    else:
        score = 0.0 if change == 0 else math.copysign(math.inf, change)
    material = abs(change) >= smallest - _TOLERANCE * max(1.0, abs(expected)) and change != 0
    unusual = abs(change) > margin * (1 + _TOLERANCE) and material
    return Expectation(
        day=start,
        period=period,
        value=current,
        expected=expected,
        low=max(expected - margin, 0.0) if counts else expected - margin,
        high=expected + margin,
        spread=spread,
        score=score,
        material=material,
        unusual=unusual,
        basis=_basis(period, day),
        n_points=len(points),
        sensitivity=named,
        count=counts,
    )


def _basis(period: str, day: date) -> str:
    if period == "weekly":
        return "recent weeks"
    return _WEEKDAYS[day.weekday()] + "s"


def band_text(expectation: Expectation, show: Callable[[float], str]) -> str:
    """The usual band as people read it, `35–45`: a count's in whole numbers."""
    low, high = expectation.low, expectation.high
    if expectation.count:
        low, high = math.ceil(low - _TOLERANCE), math.floor(high + _TOLERANCE)
    return f"{show(low)}–{show(high)}"


def explain(
    expectation: Expectation, label: str, fmt: Callable[[float], str] | None = None
) -> str:
    """The sentence an alert or digest shows, e.g. `Leads 3 on a Tuesday; Tuesdays are usually
    35–45`; `fmt` shows numbers in the KPI's unit."""
    show = fmt if fmt is not None else _number
    band = band_text(expectation, show)
    if expectation.period == "weekly":
        return (
            f"{label} {show(expectation.value)} this week; "
            f"recent weeks are usually {band}"
        )
    weekday = _WEEKDAYS[expectation.day.weekday()]
    return (
        f"{label} {show(expectation.value)} on a {weekday}; "
        f"{expectation.basis} are usually {band}"
    )


def _number(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def most_unusual(
    series_by_key: Mapping[str, Mapping[date, float]],
    day: date,
    period: str = "daily",
    sensitivity: str = DEFAULT_SENSITIVITY,
    limit: int = 3,
) -> list[tuple[str, Expectation]]:
    """The digest's "unusual" lines: the keys whose value on `day` is outside its band, most
    unusual (largest robust score) first, at most `limit`. No rule is needed."""
    found: list[tuple[str, Expectation]] = []
    for key, series in series_by_key.items():
        expectation = expect(series, day, period, sensitivity)
        if expectation is not None and expectation.unusual:
            found.append((key, expectation))
    found.sort(key=lambda item: (-abs(item[1].score), item[0]))
    return found[:max(limit, 0)]


__all__ = [
    "DEFAULT_SENSITIVITY", "Expectation", "LOOKBACK", "MIN_COUNT_CHANGE", "MIN_HISTORY_DAYS",
    "MIN_POINTS", "SENSITIVITIES", "Sensitivity", "UnusualError", "THRESHOLDS",
    "UNUSUAL_PERIODS", "expect", "explain", "history_needed", "is_count", "most_unusual",
    "sensitivity_of", "unusual_period", "watching_from",
]
