"""Alert rules as a state machine, and goal pacing: the pure part, no database or Slack."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpis.alerts import (
    AlertState,
    DurationError,
    Kind,
    Notification,
    Op,
    Rule,
    RuleError,
    Status,
    describe,
    evaluate,
    parse_duration,
    snooze,
    trend_periods,
)
from kpis.catalogue import Better, Catalogue, custom_kpi
from kpis.goals import MIN_WHOLE_DAYS, Goal, Pace, goal_period, is_summed, pace
from kpis.periods import Period, PeriodError

DAY1 = date(2026, 3, 2)
NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)


def day(n: int) -> date:
    return DAY1 + timedelta(days=n)


def at(n: int, hours: int = 0) -> datetime:
    return NOON + timedelta(days=n, hours=hours)


class Run:
    """Feeds one rule a sequence of evaluations and keeps what it posted."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.state = AlertState()
        self.notes: list[Notification] = []

    def feed(
        self, n: int, value: float | None, previous: float | None = None, hours: int = 0
    ) -> list[Notification]:
        self.state, notes = evaluate(self.rule, self.state, day(n), value, previous, at(n, hours))
        self.notes += notes
        return notes


# --- worked scenarios ---------------------------------------------------------------------------


def test_fires_once_stays_quiet_resolves_once_and_fires_again() -> None:
    run = Run(Rule("cpl", Op.GT, 15))
    assert run.feed(0, 10) == []
    assert run.state == AlertState(
        Status.OK, last_period=day(0), last_held=False, last_value=10
    )

    [fired] = run.feed(1, 20)
    assert (fired.kind, fired.value, fired.threshold, fired.seq) == (Kind.FIRING, 20, 15, 1)
    assert not fired.suppressed
    assert (run.state.status, run.state.fired_at) == (Status.FIRING, at(1))

    assert run.feed(2, 22) == []
    assert run.feed(2, 25, hours=3) == []
    assert (run.state.status, run.state.seq) == (Status.FIRING, 1)

    [resolved] = run.feed(3, 12)
    assert resolved.kind is Kind.RESOLVED and resolved.seq == 2
    assert resolved.duration == timedelta(days=2)
    assert run.state.status is Status.OK

    assert run.feed(4, 11) == []
    [again] = run.feed(5, 18)
    assert again.kind is Kind.FIRING and again.seq == 3
    assert [n.kind for n in run.notes] == [Kind.FIRING, Kind.RESOLVED, Kind.FIRING]


def test_for_two_needs_two_consecutive_periods() -> None:
    run = Run(Rule("cpl", Op.GT, 15, for_periods=2))
    assert run.feed(0, 20) == []
    assert (run.state.status, run.state.streak) == (Status.PENDING, 1)
    assert run.feed(1, 10) == []
    assert (run.state.status, run.state.streak) == (Status.OK, 0)
    assert run.feed(2, 20) == []
    assert run.state.status is Status.PENDING
    [fired] = run.feed(3, 21)
    assert fired.kind is Kind.FIRING and run.state.streak == 2


def test_re_evaluating_today_replaces_its_contribution() -> None:
    run = Run(Rule("cpl", Op.GT, 15, for_periods=2))
    for hours in range(5):
        assert run.feed(0, 20 + hours, hours=hours) == []
    assert (run.state.status, run.state.streak) == (Status.PENDING, 1)

    # Day 2, first log leaves cpl low, a later log the same day pushes it over: today counts.
    assert run.feed(1, 10) == []
    assert (run.state.status, run.state.streak) == (Status.OK, 0)
    [fired] = run.feed(1, 20, hours=2)
    assert fired.kind is Kind.FIRING
    assert run.state.streak == 2
    assert run.feed(1, 30, hours=4) == []
    assert run.state.streak == 2


def test_a_correction_within_the_period_can_resolve_and_fire_again_once_each() -> None:
    run = Run(Rule("cpl", Op.GT, 15))
    [fired] = run.feed(0, 20)
    [resolved] = run.feed(0, 10, hours=1)
    assert resolved.kind is Kind.RESOLVED and resolved.duration == timedelta(hours=1)
    assert run.feed(0, 10, hours=2) == []
    [again] = run.feed(0, 20, hours=3)
    assert [fired.seq, resolved.seq, again.seq] == [1, 2, 3]


def test_change_rule_up_20_percent() -> None:
    run = Run(Rule("leads", Op.UP, 20, period="weekly"))
    assert run.feed(0, 119, previous=100) == []
    [fired] = run.feed(7, 120, previous=100)
    assert fired.kind is Kind.FIRING and fired.previous == 100
    [resolved] = run.feed(14, 121, previous=120)
    assert resolved.kind is Kind.RESOLVED

    rule = Rule("leads", Op.UP, 20)
    assert rule.condition(1.2, 1.0) is True  # 19.999999999999996% is 20% to anyone reading it
    assert rule.condition(130, None) is None
    assert rule.condition(130, 0) is None
    down = Rule("leads", Op.DOWN, 20)
    assert down.condition(80, 100) is True
    assert down.condition(81, 100) is False
    assert down.condition(150, 100) is False


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        (Op.GT, 15.000000000000002, False), (Op.GT, 15.1, True), (Op.GE, 15, True),
        (Op.GE, 14.999999999999998, True), (Op.LT, 15, False), (Op.LT, 14, True),
        (Op.LE, 15, True), (Op.LE, 16, False), (Op.GT, None, None),
    ],
)
def test_threshold_conditions(op: Op, value: float | None, expected: bool | None) -> None:
    assert Rule("cpl", op, 15).condition(value) is expected


def test_no_data_keeps_status_and_does_not_count() -> None:
    run = Run(Rule("cpl", Op.GT, 15, for_periods=2))
    run.feed(0, 20)
    assert run.feed(1, None) == []
    assert (run.state.status, run.state.streak) == (Status.PENDING, 1)
    [fired] = run.feed(2, 20)
    assert fired.kind is Kind.FIRING and run.state.streak == 2
    assert run.feed(3, None) == []
    assert run.state.status is Status.FIRING
    # An unevaluated gap behaves like no data.
    assert run.feed(9, 30) == []
    [resolved] = run.feed(10, 1)
    assert resolved.kind is Kind.RESOLVED

    fresh = Run(Rule("cpl", Op.GT, 15))
    assert fresh.feed(0, None) == []
    assert fresh.state.status is Status.OK and fresh.state.last_held is None


def test_an_older_period_is_ignored() -> None:
    run = Run(Rule("cpl", Op.GT, 15))
    run.feed(5, 20)
    before = run.state
    assert run.feed(3, 1) == []
    assert run.state == before


def test_snooze_suppresses_posts_but_not_evaluation() -> None:
    run = Run(Rule("cpl", Op.GT, 15))
    run.state = snooze(run.state, at(2))
    [fired] = run.feed(0, 20)
    assert fired.suppressed and run.state.status is Status.FIRING
    [resolved] = run.feed(1, 10)
    assert resolved.suppressed
    [again] = run.feed(2, 20)
    assert not again.suppressed
    assert run.state.snoozed_until is None
    run.state = snooze(run.state, at(10))
    run.state = snooze(run.state, None)
    [resolved] = run.feed(3, 10)
    assert not resolved.suppressed


def test_rules_validate_and_describe_themselves() -> None:
    assert describe(Rule("cpl", Op.GT, 15, for_periods=2), label="CPL") == "CPL > 15 daily for 2"
    assert describe(Rule("leads", Op.DOWN, 20, period="weekly")) == "leads down 20% weekly"
    rule = Rule("revenue", Op.LT, 15000, period="7d", dims=(("source", "facebook"),))
    assert describe(rule) == "revenue < 15,000 over 7d (source=facebook)"
    assert describe(Rule("ctr", Op.LT, 0.02), fmt=lambda v: f"{v:.0%}") == "ctr < 2% daily"
    assert Rule("cpl", ">=", 1).op is Op.GE  # type: ignore[arg-type]
    assert rule.window(day(0)) == Period(day(-6), day(0))
    monthly = Rule("cpl", Op.GT, 1, period="monthly")
    assert monthly.compared(date(2026, 3, 15), date(2026, 4, 2)).previous == Period(
        date(2026, 2, 1), date(2026, 2, 28)
    )
    # like for like while the month runs: 1-15 March against 1-15 February
    assert monthly.compared(date(2026, 3, 15), date(2026, 3, 15)).previous == Period(
        date(2026, 2, 1), date(2026, 2, 15)
    )
    assert Rule("leads", Op.LT, 100, period="weekly").waits_for_close(summed=True)
    assert not Rule("cpl", Op.LT, 10, period="weekly").waits_for_close(summed=False)
    assert not Rule("leads", Op.LT, 10, period="daily").waits_for_close(summed=True)
    refused: list[Callable[[], Rule]] = [
        lambda: Rule("cpl", "=", 1),  # type: ignore[arg-type]
        lambda: Rule("cpl", Op.GT, 1, period="hourly"),
        lambda: Rule("cpl", Op.GT, 1, period="400d"),
        lambda: Rule("cpl", Op.GT, 1, for_periods=0),
        lambda: Rule("cpl", Op.UP, -5),
        lambda: Rule("cpl", Op.GT, float("nan")),
    ]
    for bad in refused:
        with pytest.raises(RuleError):
            bad()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1d", timedelta(days=1)), ("7d", timedelta(days=7)), ("12h", timedelta(hours=12)),
     ("2w", timedelta(weeks=2)), (" 3D ", timedelta(days=3)), ("52w", timedelta(weeks=52))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "1", "1m", "1.5d", "-1d", "400d", "9000h", "soon"])
def test_parse_duration_refuses_with_the_formats(text: str) -> None:
    with pytest.raises(DurationError, match=r"`12h`, `1d`, `7d` or `2w`"):
        parse_duration(text)


# --- properties ---------------------------------------------------------------------------------

# One step: move to the next period or stay on the same one, a value (None is no data), and
# maybe a snooze of some hours starting now.
_steps = st.lists(
    st.tuples(
        st.booleans(),
        st.one_of(st.none(), st.integers(0, 30).map(float)),
        st.one_of(st.none(), st.integers(1, 72)),
    ),
    max_size=60,
)
_rules = st.builds(
    Rule,
    kpi=st.just("cpl"),
    op=st.sampled_from([Op.GT, Op.GE, Op.LT, Op.LE]),
    threshold=st.integers(5, 25).map(float),
    for_periods=st.integers(1, 4),
)


@settings(max_examples=300, deadline=None)
@given(rule=_rules, steps=_steps)
def test_notifications_match_transitions_and_respect_snoozes(
    rule: Rule, steps: list[tuple[bool, float | None, int | None]]
) -> None:
    state = AlertState()
    period = 0
    snoozed_until: datetime | None = None
    transitions = 0
    notes: list[Notification] = []
    for hour, (next_period, value, snooze_hours) in enumerate(steps, start=1):
        period += next_period
        moment = NOON + timedelta(hours=hour)
        if snooze_hours is not None:
            snoozed_until = moment + timedelta(hours=snooze_hours)
            state = snooze(state, snoozed_until)
        new, out = evaluate(rule, state, day(period), value, None, moment)
        into_firing = new.status is Status.FIRING and state.status is not Status.FIRING
        out_of_firing = state.status is Status.FIRING and new.status is not Status.FIRING
        transitions += into_firing + out_of_firing
        assert len(out) == into_firing + out_of_firing
        for note in out:
            assert note.kind is (Kind.FIRING if into_firing else Kind.RESOLVED)
            during_snooze = snoozed_until is not None and moment < snoozed_until
            assert note.suppressed == during_snooze
        notes += out
        again, repeat = evaluate(rule, new, day(period), value, None, moment + timedelta(minutes=1))
        assert repeat == []
        assert (again.status, again.streak, again.seq) == (new.status, new.streak, new.seq)
        state = new
    assert len(notes) == transitions
    assert [n.seq for n in notes] == list(range(1, len(notes) + 1))
    kinds = [n.kind for n in notes]
    assert all(a is not b for a, b in zip(kinds, kinds[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(
    rule=_rules,
    history=st.lists(st.one_of(st.none(), st.integers(0, 30).map(float)), max_size=10),
    first=st.one_of(st.none(), st.integers(0, 30).map(float)),
    last=st.one_of(st.none(), st.integers(0, 30).map(float)),
)
def test_re_evaluation_replaces_the_periods_contribution(
    rule: Rule, history: list[float | None], first: float | None, last: float | None
) -> None:
    state = AlertState()
    for n, value in enumerate(history):
        state, _ = evaluate(rule, state, day(n), value, None, at(n))
    today = day(len(history))
    once, _ = evaluate(rule, state, today, last, None, at(len(history)))
    twice, _ = evaluate(rule, state, today, first, None, at(len(history)))
    twice, _ = evaluate(rule, twice, today, last, None, at(len(history), 1))
    assert once.streak == twice.streak
    held = rule.condition(last)
    if held is not None:
        assert (once.status is Status.FIRING) == (twice.status is Status.FIRING)


# --- goals and pace ------------------------------------------------------------------------------

APRIL = Period.month(date(2026, 4, 1))  # 30 days
MAY = Period.month(date(2026, 5, 1))  # 31 days


def test_pace_counts_whole_days_only() -> None:
    # 1 April: no whole day yet, so no projection and no verdict, only progress
    first = pace(50_000, 1_000, APRIL, date(2026, 4, 1), summed=True, settled=None)
    assert (first.days_elapsed, first.days_total) == (0, 30)
    assert first.progress == pytest.approx(0.02)
    assert first.projected is None and first.on_pace is None


def test_pace_ignores_the_unfinished_day() -> None:
    # kpi-catalogue.md section 5: on 2 December 1 whole day has passed; today's early numbers
    # (100 of a usual 1,000) do not make the month "behind"
    december = Period.month(date(2026, 12, 1))
    result = pace(31_000, 1_100, december, date(2026, 12, 2), summed=True, settled=1_000,
                  min_whole_days=1)
    assert result.days_elapsed == 1
    assert result.projected == pytest.approx(31_000)
    assert result.on_pace is True


@pytest.mark.parametrize(
    ("kind", "today", "whole_days", "verdict"),
    [
        ("monthly", date(2026, 5, 3), 2, None),  # no verdict before 3 whole days of a month
        ("monthly", date(2026, 5, 4), 3, False),
        ("weekly", date(2026, 5, 5), 1, None),  # nor before 2 of a week (Monday 4 May)
        ("weekly", date(2026, 5, 6), 2, False),
    ],
)
def test_no_verdict_before_a_few_whole_days(kind: str, today: date, whole_days: int,
                                            verdict: bool | None) -> None:
    period = goal_period(kind, today)
    result = pace(50_000, 1, period, today, summed=True, settled=1,
                  min_whole_days=MIN_WHOLE_DAYS[kind])
    assert result.days_elapsed == whole_days
    assert result.on_pace is verdict


def test_pace_in_the_middle_of_the_month() -> None:
    # 20 May: 19 whole days with 31,000 logged project to 31,000 / 19 * 31 = 50,578.95
    result = pace(50_000, 32_000, MAY, date(2026, 5, 20), summed=True, settled=31_000)
    assert result.progress == pytest.approx(0.64)
    assert result.projected == pytest.approx(31_000 / 19 * 31)
    assert result.on_pace is True


@pytest.mark.parametrize(
    ("settled", "ratio", "on_track"),
    [(30_000 * 0.996, 0.996, True), (30_000 * 0.98, 0.98, True), (30_000 * 0.97, 0.97, False)],
)
def test_on_track_from_98_percent_of_pace(settled: float, ratio: float, on_track: bool) -> None:
    # 16 April: 15 whole days of 30, on a goal of 60,000 the pace is 30,000 by now
    result = pace(60_000, settled, APRIL, date(2026, 4, 16), summed=True, settled=settled)
    assert result.projected_ratio == pytest.approx(ratio)
    assert result.on_pace is on_track


def test_pace_after_the_last_day_is_the_value_itself() -> None:
    result = pace(50_000, 51_000, APRIL, date(2026, 5, 1), summed=True)
    assert result.days_elapsed == result.days_total == 30
    assert result.projected == pytest.approx(51_000)
    assert result.on_pace is True


def test_pace_in_a_28_day_february() -> None:
    february = goal_period("monthly", date(2026, 2, 15))
    assert february.days == 28
    result = pace(50_000, 26_000, february, date(2026, 2, 15), summed=True, settled=25_000)
    assert result.projected == pytest.approx(50_000)
    assert result.projected_ratio == pytest.approx(1.0)
    assert result.on_pace is True


def test_a_ratio_projects_as_its_whole_days_value() -> None:
    result = pace(0.25, 0.1, APRIL, date(2026, 4, 4), summed=False, settled=0.2)
    assert result.projected == pytest.approx(0.2)
    assert result.projected_ratio == pytest.approx(0.8)
    assert result.progress == pytest.approx(0.4)
    assert result.on_pace is False


def test_a_lower_is_better_goal() -> None:
    def cpl(value: float) -> Pace:
        return pace(10, value, APRIL, date(2026, 4, 10), better=Better.LOWER, summed=False,
                    settled=value)

    behind = cpl(12)
    assert behind.projected == pytest.approx(12)
    assert behind.progress == pytest.approx(10 / 12)
    assert behind.on_pace is False
    met = cpl(8)
    assert met.progress == pytest.approx(1.25)
    assert met.on_pace is True
    exact = cpl(10)
    assert exact.on_pace is True and exact.progress == pytest.approx(1.0)
    free = cpl(0)
    assert free.progress is None and free.on_pace is True


def test_pace_without_data_or_before_the_period() -> None:
    empty = pace(50_000, None, APRIL, date(2026, 4, 5), summed=True)
    assert empty == Pace(50_000, None, None, None, None, None, 4, 30, Better.HIGHER, True)
    early = pace(50_000, 100, APRIL, date(2026, 3, 31), summed=True)
    assert early.days_elapsed == 0 and early.projected is None and early.on_pace is None


def test_goal_periods() -> None:
    assert goal_period("weekly", date(2026, 4, 1)) == Period(date(2026, 3, 30), date(2026, 4, 5))
    assert Goal("revenue", 50_000).window(date(2026, 4, 9)) == APRIL
    with pytest.raises(PeriodError):
        Goal("revenue", 1, period="daily")


def test_which_numbers_accumulate() -> None:
    catalogue = Catalogue.build(kpis=[
        custom_kpi("double_revenue", "revenue * 2"),
        custom_kpi("net_of_refunds", "revenue - refunds"),
        custom_kpi("revenue_plus_fee", "revenue + 100"),
    ])
    summed = {"revenue", "leads", "gross_profit", "ad_profit", "double_revenue", "net_of_refunds"}
    other = {"cpl", "close_rate", "mrr", "days_to_close", "retention_rate", "revenue_plus_fee"}
    assert all(is_summed(catalogue, key) for key in summed)
    assert not any(is_summed(catalogue, key) for key in other)
    assert not is_summed(catalogue, "no_such_key")


def test_a_rule_trends_its_own_periods_like_for_like() -> None:
    """A weekly rule that fired on a week so far trends the same days of earlier weeks; one
    that fired on a whole week, whole weeks; a month so far the same days of earlier months
    (cut at a shorter month's end); a rolling window the windows of as many days before."""
    wednesday = date(2026, 3, 11)
    weekly = Rule("leads", Op.GT, 100, "weekly")
    assert trend_periods(weekly, Period(date(2026, 3, 9), wednesday), 3) == [
        Period(date(2026, 2, 23), date(2026, 2, 25)), Period(date(2026, 3, 2), date(2026, 3, 4)),
        Period(date(2026, 3, 9), wednesday)]
    assert trend_periods(weekly, Period.iso_week(date(2026, 3, 2)), 2) == [
        Period.iso_week(date(2026, 2, 23)), Period.iso_week(date(2026, 3, 2))]
    monthly = Rule("leads", Op.GT, 100, "monthly")
    assert trend_periods(monthly, Period(date(2026, 3, 1), date(2026, 3, 30)), 3) == [
        Period(date(2026, 1, 1), date(2026, 1, 30)), Period(date(2026, 2, 1), date(2026, 2, 28)),
        Period(date(2026, 3, 1), date(2026, 3, 30))]
    assert trend_periods(monthly, Period.month(date(2026, 2, 1)), 2) == [
        Period.month(date(2026, 1, 1)), Period.month(date(2026, 2, 1))]
    rolling = Rule("leads", Op.GT, 100, "7d")
    assert trend_periods(rolling, Period.rolling(7, wednesday), 2) == [
        Period.rolling(7, wednesday - timedelta(days=7)), Period.rolling(7, wednesday)]
    daily = Rule("leads", Op.GT, 100)
    assert trend_periods(daily, Period.day(wednesday), 7)[0] == Period.day(date(2026, 3, 5))
