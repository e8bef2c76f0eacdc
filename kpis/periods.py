"""Periods of calendar days in a workspace's time zone.

A period is an inclusive range of local calendar days. Time never comes from a clock here:
callers pass `today` (or an instant and a zone) in.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from kpis.suggest import did_you_mean

NAMED_RANGES = ("today", "yesterday", "week", "last-week", "month", "last-month", "7d", "30d", "90d")
_ROLLING = re.compile(r"^(\d{1,3})d$")
_EXPLICIT = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class PeriodError(ValueError):
    """A period or time zone the user asked for does not exist; the message says why."""


@dataclass(frozen=True, order=True)
class Period:
    """Local calendar days from `start` to `end`, both included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"a period cannot end ({self.end}) before it starts ({self.start})")

    @classmethod
    def day(cls, d: date) -> Period:
        return cls(d, d)

    @classmethod
    def iso_week(cls, d: date) -> Period:
        monday = d - timedelta(days=d.weekday())
        return cls(monday, monday + timedelta(days=6))

    @classmethod
    def month(cls, d: date) -> Period:
        first = d.replace(day=1)
        next_first = (first + timedelta(days=32)).replace(day=1)
        return cls(first, next_first - timedelta(days=1))

    @classmethod
    def rolling(cls, days: int, today: date) -> Period:
        return cls(today - timedelta(days=days - 1), today)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def is_calendar_month(self) -> bool:
        return self == Period.month(self.start)

    def previous(self) -> Period:
        """The previous calendar month for a month, else the same number of days just before."""
        if self.is_calendar_month:
            return Period.month(self.start - timedelta(days=1))
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def __contains__(self, d: object) -> bool:
        return isinstance(d, date) and self.start <= d <= self.end

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def ended(self, today: date) -> bool:
        return self.end < today

    def __str__(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True)
class Comparison:
    """What a report shows (`period`) and what it is compared with (`previous`).

    `partial` says the period has not ended: `period` then stops at today and `previous` is
    the same elapsed part of the period before, so an unfinished week is never compared with
    a whole one.
    """

    period: Period
    previous: Period
    partial: bool


def like_for_like(period: Period, today: date) -> Comparison:
    """`period` against the one before it, like for like when `today` falls inside it.

    On Wednesday 2026-12-02 this week is 2026-11-30..12-02 against 2026-11-23..11-25; on
    2 December this month is 1-2 December against 1-2 November (cut at the end of a shorter
    month: 31 March so far against all of February).
    """
    before = period.previous()
    if period.end < today or period.start > today:
        return Comparison(period, before, False)
    so_far = Period(period.start, today)
    elapsed_end = min(before.end, before.start + timedelta(days=so_far.days - 1))
    return Comparison(so_far, Period(before.start, elapsed_end), True)


def resolve(spec: str | None, today: date, default: str = "week") -> Period:
    """The period a user means by `spec` (a named range, `Nd`, or `YYYY-MM-DD..YYYY-MM-DD`)."""
    text = (spec or default).strip().lower()
    named = {
        "today": lambda: Period.day(today),
        "yesterday": lambda: Period.day(today - timedelta(days=1)),
        "week": lambda: Period.iso_week(today),
        "last-week": lambda: Period.iso_week(today - timedelta(days=7)),
        "month": lambda: Period.month(today),
        "last-month": lambda: Period.month(today.replace(day=1) - timedelta(days=1)),
    }
    if text in named:
        return named[text]()
    if match := _ROLLING.match(text):
        n = int(match.group(1))
        if not 1 <= n <= 366:
            raise PeriodError(f"`{spec}`: a rolling range is 1d to 366d")
        return Period.rolling(n, today)
    if match := _EXPLICIT.match(text):
        start, end = (parse_date(g) for g in match.groups())
        return Period(start, end)
    if _DAY.match(text):
        return Period.day(parse_date(text))
    raise PeriodError(
        f"I don't know the period `{spec}`.{did_you_mean(text, NAMED_RANGES)} Use one of "
        f"{', '.join(NAMED_RANGES)}, a day (YYYY-MM-DD) or YYYY-MM-DD..YYYY-MM-DD."
    )


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        pass
    if match := _DAY.match(text.strip()):
        year, month, day = (int(g) for g in match.groups())
        if year >= 1 and 1 <= month <= 12:
            length = calendar.monthrange(year, month)[1]
            nearest = date(year, month, 1 if day < 1 else length)
            raise PeriodError(
                f"`{text.strip()}` is not a date: {nearest:%B %Y} has {length} days; "
                f"the nearest valid day is {nearest.isoformat()}"
            )
    raise PeriodError(f"`{text}` is not a date; write it as YYYY-MM-DD, e.g. 2026-03-31")


def resolve_day(text: str | None, today: date) -> date:
    """The day a log is for: `today`, `yesterday` or a date, never in the future."""
    spec = (text or "today").strip().lower()
    if spec == "today":
        return today
    if spec == "yesterday":
        return today - timedelta(days=1)
    day = parse_date(spec)
    if day > today:
        raise PeriodError(f"{day} is in the future (today is {today}); numbers can be logged up to today")
    return day


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or a PeriodError suggesting the nearest real one."""
    try:
        if "/" in name or name.upper() == "UTC":
            return ZoneInfo(name if name.upper() != "UTC" else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise PeriodError(
        f"`{name}` is not a time zone.{did_you_mean(name, available_timezones())} "
        "Use an IANA name such as America/Bogota or Europe/Madrid."
    )


def local_date(instant: datetime, zone_name: str) -> date:
    """The calendar day `instant` falls on in the zone; a naive instant is read as UTC (never
    as the server's own time zone, which would make the answer depend on the machine)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(zone(zone_name)).date()
