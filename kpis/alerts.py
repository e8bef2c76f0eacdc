"""Threshold and change alerts as a pure state machine.

A rule is checked once per period (a day, an ISO week, a month or a rolling window ending on a
day). The state moves ok -> pending -> firing -> ok, and only two moves produce a message:
into firing, and out of firing (a "resolved" message). The caller stores the state and posts
the notifications; nothing here reads a clock or talks to Slack.

Semantic choices, in one place:

- The same period may be evaluated many times (every log re-evaluates today). The state keeps
  the streak *before* the last period it saw, so a re-evaluation replaces that period's
  contribution instead of adding to it; the same value twice never moves the state.
- No data (a value of None, or a change rule without a usable previous value) is neither true
  nor false: it keeps a firing alert firing and an ok one ok, and neither extends nor breaks the
  streak. Periods never evaluated at all count the same way, so `for N` means N periods *with
  data* in a row where the condition held.
- A period older than the last one evaluated is ignored: the state only moves forward, so a late
  correction to an old day never re-opens history.
- A snooze silences messages, not evaluation: the state still changes and the notifications come
  back with `suppressed=True`.
- Datetimes (`now`, snooze ends) should all be aware, or all naive; they are only compared.
- An `unusual` rule (op UNUSUAL) judges the value against an `unusual.Expectation` the caller
  computes from the history (`unusual.expect`); without one (too little history) it is no data,
  so it neither fires nor resolves. Streaks, `for N`, snoozes and resolving work as for any rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from kpis.compare import change_pct
from kpis.periods import Comparison, Period, like_for_like
from kpis.unusual import (
    DEFAULT_SENSITIVITY,
    UNUSUAL_PERIODS,
    Expectation,
    UnusualError,
    sensitivity_of,
)

PERIOD_KINDS = ("daily", "weekly", "monthly")
MAX_FOR_PERIODS = 365
MAX_ROLLING_DAYS = 366
_ROLLING = re.compile(r"^([0-9]{1,3})d$")
_DURATION = re.compile(r"^([0-9]{1,9})\s*([hdw])$")
_DURATION_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_SNOOZE = timedelta(days=366)
#: relative tolerance under which a value counts as equal to its threshold (float noise)
_TOLERANCE = 1e-9


class RuleError(ValueError):
    """A rule that cannot be evaluated; the message says how to write a valid one."""


class DurationError(ValueError):
    """A snooze duration we cannot read; the message lists the formats that work."""


class Op(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    UP = "up"
    DOWN = "down"
    UNUSUAL = "unusual"

    @property
    def is_change(self) -> bool:
        return self in (Op.UP, Op.DOWN)

    @property
    def is_unusual(self) -> bool:
        return self is Op.UNUSUAL


class Status(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class Kind(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Rule:
    """What to watch.

    `threshold` is in the KPI's own scale for `> >= < <=` (percent KPIs are fractions), and a
    percentage for `up`/`down` (20.0 means 20%, the scale of `compare.change_pct`), measured
    against the previous period. `period` is daily, weekly, monthly or a rolling `Nd` window.
    `dims` limits the rule to entries tagged with those dimension values. An `unusual` rule
    ignores `threshold` (0 by convention), takes a daily or weekly period and a `sensitivity`
    (low, medium or high; other rules keep the default).
    """

    kpi: str
    op: Op
    threshold: float
    period: str = "daily"
    for_periods: int = 1
    dims: tuple[tuple[str, str], ...] = ()
    sensitivity: str = DEFAULT_SENSITIVITY

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "op", Op(self.op))
        except ValueError:
            raise RuleError(
                f"`{self.op}` is not a comparison; use one of > >= < <= up down unusual"
            ) from None
        try:
            object.__setattr__(self, "sensitivity", sensitivity_of(self.sensitivity))
        except UnusualError as error:
            raise RuleError(str(error)) from None
        if not math.isfinite(self.threshold):
            raise RuleError("the threshold must be a finite number")
        if self.op.is_change and self.threshold <= 0:
            raise RuleError("a change rule takes a positive percent; `up` or `down` says which way")
        if not 1 <= self.for_periods <= MAX_FOR_PERIODS:
            raise RuleError(f"`for` takes 1 to {MAX_FOR_PERIODS} periods in a row")
        object.__setattr__(self, "period", self.period.strip().lower())
        if self.op.is_unusual and self.period not in UNUSUAL_PERIODS:
            raise RuleError(
                f"`{self.period}` is not a period for an unusual alert; use daily or weekly "
                "(daily when left out)"
            )
        self.window(date(2000, 1, 1))

    def window(self, day: date) -> Period:
        """The period whose value the rule checks when `day` is the day being evaluated."""
        if self.period == "daily":
            return Period.day(day)
        if self.period == "weekly":
            return Period.iso_week(day)
        if self.period == "monthly":
            return Period.month(day)
        match = _ROLLING.match(self.period)
        if match and 1 <= int(match[1]) <= MAX_ROLLING_DAYS:
            return Period.rolling(int(match[1]), day)
        raise RuleError(
            f"`{self.period}` is not an alert period; use daily, weekly, monthly or 1d to "
            f"{MAX_ROLLING_DAYS}d"
        )

    def compared(self, day: date, today: date) -> Comparison:
        """The rule's window containing `day` and what a change rule compares it with: like
        for like while the window has not ended on `today` (a week so far against the same
        days of the week before, never against a whole week)."""
        return like_for_like(self.window(day), today)

    def waits_for_close(self, summed: bool) -> bool:
        """A `<` or `<=` threshold, or an unusual rule, on a summed value over a week or a
        month is judged once the period is over: on a Wednesday every weekly total is low."""
        low_side = self.op in (Op.LT, Op.LE) or self.op.is_unusual
        return summed and low_side and self.period in ("weekly", "monthly")

    def condition(
        self,
        value: float | None,
        previous: float | None = None,
        expectation: Expectation | None = None,
    ) -> bool | None:
        """Whether the rule's condition holds; None when there is no data to judge.

        An unusual rule reads `expectation` (None: not enough history yet, so no data).
        """
        if value is None or not math.isfinite(value):
            return None
        if self.op.is_unusual:
            return None if expectation is None else expectation.unusual
        if self.op.is_change:
            pct = change_pct(value, previous)
            if pct is None:
                return None
            if self.op is Op.UP:
                return _at_least(pct, self.threshold)
            return _at_least(-pct, self.threshold)
        if self.op is Op.GT:
            return value > self.threshold and not _close(value, self.threshold)
        if self.op is Op.GE:
            return _at_least(value, self.threshold)
        if self.op is Op.LT:
            return value < self.threshold and not _close(value, self.threshold)
        return _at_least(self.threshold, value)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE)


def _at_least(a: float, b: float) -> bool:
    return a >= b or _close(a, b)


@dataclass(frozen=True)
class AlertState:
    """What storage keeps per rule between evaluations.

    `streak` counts the periods with data in a row where the condition held, up to and including
    `last_period`; `streak_before` is the same count without `last_period`, which is what lets a
    re-evaluation of that period replace its contribution. `seq` goes up by one on every
    transition that produces a message: (rule id, seq) is the key for posting it exactly once.
    `since` is when the current status began; `fired_at` when the latest firing began.
    """

    status: Status = Status.OK
    streak: int = 0
    streak_before: int = 0
    since: datetime | None = None
    last_period: date | None = None
    last_held: bool | None = None
    last_value: float | None = None
    fired_at: datetime | None = None
    snoozed_until: datetime | None = None
    seq: int = 0

    def snoozed(self, now: datetime) -> bool:
        return self.snoozed_until is not None and now < self.snoozed_until


@dataclass(frozen=True)
class Notification:
    """A message to post (or, when `suppressed`, to record without posting).

    `duration` is how long the alert fired, on a resolved message only. `expectation` is what
    an unusual rule expected (for "Tuesdays are usually 35-45"); None for other rules.
    """

    kind: Kind
    seq: int
    period_start: date
    value: float | None
    previous: float | None
    threshold: float
    at: datetime
    duration: timedelta | None = None
    suppressed: bool = False
    expectation: Expectation | None = None


def evaluate(
    rule: Rule,
    state: AlertState,
    period_start: date,
    value: float | None,
    previous: float | None,
    now: datetime,
    *,
    expectation: Expectation | None = None,
) -> tuple[AlertState, list[Notification]]:
    """The state after seeing `value` for the period starting `period_start`, and what to post.

    `previous` is the previous period's value, used by change rules only; `expectation` is
    `unusual.expect(history, period_start, rule.period, rule.sensitivity, value=value)`, used
    by unusual rules only.
    """
    if state.last_period is not None and period_start < state.last_period:
        return state, []
    held = rule.condition(value, previous, expectation)
    before = state.streak_before if period_start == state.last_period else state.streak
    was_firing = state.status is Status.FIRING
    if held is True:
        streak = before + 1
        firing = was_firing or streak >= rule.for_periods
        status = Status.FIRING if firing else Status.PENDING
    elif held is False:
        streak = 0
        status = Status.OK
    else:
        streak = before
        status = Status.FIRING if was_firing else Status.PENDING if streak else Status.OK

    snoozed_until = state.snoozed_until if state.snoozed(now) else None
    new = replace(
        state,
        status=status,
        streak=streak,
        streak_before=before,
        since=now if status is not state.status else state.since,
        last_period=period_start,
        last_held=held,
        last_value=value,
        snoozed_until=snoozed_until,
    )
    kind: Kind | None = None
    duration: timedelta | None = None
    if status is Status.FIRING and not was_firing:
        kind = Kind.FIRING
        new = replace(new, fired_at=now)
    elif was_firing and status is not Status.FIRING:
        kind = Kind.RESOLVED
        duration = now - state.fired_at if state.fired_at is not None else None
    if kind is None:
        return new, []
    new = replace(new, seq=state.seq + 1)
    note = Notification(
        kind=kind,
        seq=new.seq,
        period_start=period_start,
        value=value,
        previous=previous,
        threshold=rule.threshold,
        at=now,
        duration=duration,
        suppressed=snoozed_until is not None,
        expectation=expectation if rule.op.is_unusual else None,
    )
    return new, [note]


def snooze(state: AlertState, until: datetime | None) -> AlertState:
    """Silence messages until `until` (None lifts the snooze); evaluation carries on."""
    return replace(state, snoozed_until=until)


def parse_duration(text: str) -> timedelta:
    """A snooze length like `12h`, `1d`, `7d` or `2w`, from one hour up to a year."""
    match = _DURATION.match(text.strip().lower())
    if match is not None:
        length = int(match[1]) * _DURATION_UNITS[match[2]]
        if timedelta(hours=1) <= length <= MAX_SNOOZE:
            return length
    raise DurationError(
        f"`{text.strip()}` is not a duration: write a whole number of hours, days or weeks, "
        "like `12h`, `1d`, `7d` or `2w`, up to a year (`366d`, `52w`)"
    )


def describe(
    rule: Rule, *, label: str | None = None, fmt: Callable[[float], str] | None = None
) -> str:
    """The rule as people typed it, e.g. `CPL > 15 daily for 2`; `fmt` shows the threshold in
    the KPI's unit (the renderer's number format) instead of a bare number."""
    name = label or rule.kpi
    if rule.op.is_unusual:
        text = f"{name} unusual"
    elif rule.op.is_change:
        text = f"{name} {rule.op} {_number(rule.threshold)}%"
    else:
        shown = fmt(rule.threshold) if fmt is not None else _number(rule.threshold)
        text = f"{name} {rule.op} {shown}"
    text += f" {rule.period}" if rule.period in PERIOD_KINDS else f" over {rule.period}"
    if rule.op.is_unusual:
        text += f" {rule.sensitivity}"
    if rule.for_periods > 1:
        text += f" for {rule.for_periods}"
    if rule.dims:
        text += " (" + ", ".join(f"{k}={v}" for k, v in rule.dims) + ")"
    return text


def trend_periods(rule: Rule, fired: Period, count: int) -> list[Period]:
    """The rule's own last `count` periods, oldest first, ending with `fired` (the one whose
    value fired it): days, ISO weeks or months, like for like when `fired` was a period so far
    (a week so far: the same days of each week before); N-day windows of N days each."""
    if rule.period not in PERIOD_KINDS:
        periods = [fired]
        while len(periods) < count:
            periods.insert(0, periods[0].previous())
        return periods
    window = rule.window(fired.start)
    whole = fired == window
    elapsed = timedelta(days=(fired.end - window.start).days)
    periods = [fired]
    while len(periods) < count:
        window = rule.window(window.start - timedelta(days=1))
        end = window.end if whole else min(window.end, window.start + elapsed)
        periods.insert(0, Period(window.start, end))
    return periods


def _number(value: float) -> str:
    return f"{value:,.10g}"


__all__ = [
    "AlertState", "DurationError", "Kind", "MAX_SNOOZE", "Notification", "Op", "PERIOD_KINDS",
    "Rule", "RuleError", "Status", "describe", "evaluate", "parse_duration", "snooze",
    "trend_periods",
]
