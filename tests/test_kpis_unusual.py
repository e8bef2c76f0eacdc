"""`unusual` alerts: what a day is expected to be from the same weekday of previous weeks, and
the rule that fires when it is not, through the same state machine as threshold rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kpis.alerts import AlertState, Kind, Op, Rule, RuleError, Status, describe, evaluate, snooze
from kpis.periods import Period
from kpis.unusual import (
    MIN_HISTORY_DAYS,
    SENSITIVITIES,
    Expectation,
    UnusualError,
    expect,
    explain,
    history_needed,
    most_unusual,
    sensitivity_of,
    watching_from,
)

MONDAY = date(2026, 1, 5)
WEEKDAY = {"Mon": 0, "Tue": 1, "Wed": 2, "Thu": 3, "Fri": 4, "Sat": 5, "Sun": 6}


def daily(by_weekday: Mapping[int, float], weeks: int, start: date = MONDAY) -> dict[date, float]:
    """`weeks` whole weeks from `start` where each weekday has its own value (10 if not given)."""
    days = (start + timedelta(days=n) for n in range(7 * weeks))
    return {d: float(by_weekday.get(d.weekday(), 10)) for d in days}


def after(history: Mapping[date, float], weekday: int) -> date:
    """The first day with that weekday after the history ends."""
    day = max(history) + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


def judged(history: Mapping[date, float], day: date, value: float, **kw: object) -> Expectation:
    result = expect(history, day, value=value, **kw)  # type: ignore[arg-type]
    assert result is not None
    return result


# --- worked examples -----------------------------------------------------------------------------

TUESDAYS_40 = daily({WEEKDAY["Tue"]: 40}, weeks=6)


def test_leads_3_on_a_tuesday_says_what_tuesdays_are_usually() -> None:
    tuesday = after(TUESDAYS_40, WEEKDAY["Tue"])
    result = judged(TUESDAYS_40, tuesday, 3)
    # Six equal Tuesdays, five with a week before them to measure growth from: MAD is 0, so the
    # spread falls back to sqrt(40) (Poisson) and the band at medium is 40 -/+ 2.5 x 6.32.
    assert (result.expected, result.n_points, result.basis) == (40, 5, "Tuesdays")
    assert result.spread == pytest.approx(40**0.5)
    assert (result.low, result.high) == pytest.approx((40 - 2.5 * 40**0.5, 40 + 2.5 * 40**0.5))
    assert result.unusual and result.material and result.score < -2.5
    assert explain(result, "Leads") == "Leads 3 on a Tuesday; Tuesdays are usually 25–55"
    assert not judged(TUESDAYS_40, tuesday, 38).unusual


@pytest.mark.parametrize("sensitivity", SENSITIVITIES)
@pytest.mark.parametrize(("usual", "value"), [(2, 1), (2, 0), (2, 4), (1, 3), (0, 2)])
def test_one_lead_against_two_is_never_news(sensitivity: str, usual: int, value: int) -> None:
    history = daily({d: usual for d in range(7)}, weeks=6)
    result = judged(history, after(history, 0), value, sensitivity=sensitivity)
    assert not result.unusual
    assert not result.material


def test_a_quiet_saturday_is_usual_where_a_fixed_rule_fires() -> None:
    history = daily({0: 100, 1: 100, 2: 100, 3: 100, 4: 100, 5: 40, 6: 45}, weeks=6)
    saturday = after(history, WEEKDAY["Sat"])
    assert not judged(history, saturday, 41).unusual
    assert Rule("leads", Op.DOWN, 30).condition(41, 100) is True
    assert judged(history, saturday, 5).unusual


@pytest.mark.parametrize(
    ("sensitivity", "value", "unusual"),
    [("low", 60, False), ("medium", 60, True), ("high", 60, True),
     ("low", 72, False), ("medium", 135, True), ("high", 125, True), ("low", 40, True)],
)
def test_sensitivity_moves_the_band(sensitivity: str, value: float, unusual: bool) -> None:
    history = daily({d: 100 + 4 * (d % 3) for d in range(7)}, weeks=6)
    monday = after(history, 0)
    assert judged(history, monday, value, sensitivity=sensitivity).unusual is unusual


def test_nothing_before_28_days_and_the_date_it_starts_watching() -> None:
    since = date(2026, 3, 4)  # a Wednesday
    start = watching_from(since)
    assert start == since + timedelta(days=MIN_HISTORY_DAYS)
    history = {since + timedelta(days=n): 10.0 for n in range(60)}
    assert expect(history, start - timedelta(days=1), value=500) is None
    assert judged(history, start, 500).unusual
    # Weekly rules count whole ISO weeks: the first starts on the Monday after a Wednesday.
    first_monday = date(2026, 3, 9)
    assert watching_from(since, "weekly") == first_monday + timedelta(days=28)
    weeks = {first_monday - timedelta(days=7) + timedelta(weeks=n): 70.0 for n in range(8)}
    assert expect(weeks, date(2026, 4, 2), "weekly", value=10, since=since) is None
    assert expect(weeks, date(2026, 4, 6), "weekly", value=10, since=since) is not None


def test_missing_days_are_skipped_and_too_few_matches_wait() -> None:
    history = daily({WEEKDAY["Tue"]: 40}, weeks=6)
    tuesday = after(history, WEEKDAY["Tue"])
    for weeks_back in (1, 3):
        del history[tuesday - timedelta(weeks=weeks_back)]
    del history[tuesday - timedelta(days=2)]  # a missing Sunday: no level, plain values
    result = judged(history, tuesday, 3)
    assert result.n_points == 4 and result.expected == 40 and result.unusual
    del history[tuesday - timedelta(weeks=2)]
    assert expect(history, tuesday, value=3) is None
    assert expect(daily({}, weeks=6), after(daily({}, weeks=6), 0)) is None  # no value today


def test_a_trend_moves_what_is_expected() -> None:
    # Growing 1.5% a day: eight weeks ago is far below today, and today's level is what counts.
    history = {MONDAY + timedelta(days=n): round(100 * 1.015**n) for n in range(84)}
    day = MONDAY + timedelta(days=84)
    on_trend = float(round(100 * 1.015**84))
    result = judged(history, day, on_trend, sensitivity="high")
    assert not result.unusual
    assert result.expected == pytest.approx(on_trend, rel=0.02)
    assert judged(history, day, on_trend * 0.6).unusual
    # What a caller must load: the span history_needed names is enough.
    span = history_needed(day)
    loaded = {d: v for d, v in history.items() if d in span}
    assert judged(loaded, day, on_trend, sensitivity="high", since=MONDAY) == result


def test_weekly_rules_use_recent_whole_weeks() -> None:
    weeks = {MONDAY + timedelta(weeks=n): 300.0 + 10 * (n % 2) for n in range(6)}
    thursday = MONDAY + timedelta(weeks=6, days=3)
    result = judged(weeks, thursday, 150, period="weekly")
    assert (result.day, result.basis, result.unusual) == (thursday - timedelta(days=3),
                                                          "recent weeks", True)
    assert explain(result, "Leads").startswith("Leads 150 this week; recent weeks are usually ")
    assert not judged(weeks, thursday, 310, period="weekly").unusual
    assert history_needed(thursday, "weekly").start == MONDAY - timedelta(weeks=2)
    assert history_needed(thursday) == Period(thursday - timedelta(weeks=9), thursday)


def test_percent_kpis_are_not_counts() -> None:
    history = daily({d: 0.20 + 0.01 * (d % 2) for d in range(7)}, weeks=6)
    result = judged(history, after(history, 0), 0.10, count=None)
    assert not result.count and result.unusual
    assert explain(result, "Close rate", fmt=lambda v: f"{v:.0%}").startswith(
        "Close rate 10% on a Monday; Mondays are usually 1"
    )


def test_the_digest_names_at_most_three_most_unusual_first() -> None:
    base = {d: 100 for d in range(7)}
    day = after(daily(base, weeks=6), 0)
    series: dict[str, dict[date, float]] = {}
    for key, today in [("leads", 10), ("revenue", 400), ("shows", 101), ("sales", 60),
                       ("spend", 50), ("clicks", None)]:
        history = daily(base, weeks=6)
        if today is not None:
            history[day] = today
        series[key] = history
    picked = most_unusual(series, day)
    assert [key for key, _ in picked] == ["revenue", "leads", "spend"]
    scores = [abs(e.score) for _, e in picked]
    assert scores == sorted(scores, reverse=True)
    assert [key for key, _ in most_unusual(series, day, limit=5)][-1] == "sales"
    assert most_unusual(series, day + timedelta(days=1)) == []


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["extreme", "hgih", "", "5"])
def test_an_unknown_sensitivity_names_the_three(text: str) -> None:
    with pytest.raises(UnusualError, match="use low, medium or high"):
        sensitivity_of(text)
    with pytest.raises(RuleError, match="use low, medium or high"):
        Rule("leads", Op.UNUSUAL, 0, sensitivity=text)
    with pytest.raises(UnusualError, match="use low, medium or high"):
        expect(TUESDAYS_40, date(2026, 2, 17), sensitivity=text)


def test_sensitivity_suggestions_and_periods() -> None:
    with pytest.raises(UnusualError, match="Did you mean `high`"):
        sensitivity_of("hgih")
    assert sensitivity_of(" High ") == "high"
    assert Rule("leads", Op.UNUSUAL, 0, sensitivity="LOW").sensitivity == "low"
    for period in ("monthly", "7d"):
        with pytest.raises(RuleError, match="use daily or weekly"):
            Rule("leads", Op.UNUSUAL, 0, period=period)
    with pytest.raises(UnusualError, match="use daily or weekly"):
        watching_from(MONDAY, "monthly")


# --- the rule in the state machine ---------------------------------------------------------------


def test_unusual_rule_fires_for_two_snoozes_and_resolves_like_any_rule() -> None:
    rule = Rule("leads", Op.UNUSUAL, 0, for_periods=2)
    assert describe(rule, label="Leads") == "Leads unusual daily medium for 2"
    assert describe(Rule("leads", "unusual", 0, period="weekly", sensitivity="high")) == (  # type: ignore[arg-type]
        "leads unusual weekly high"
    )
    history = daily({d: 40 for d in range(7)}, weeks=6)
    state = snooze(AlertState(), datetime(2026, 2, 18, 21, tzinfo=UTC))
    posted: list[tuple[date, Kind, bool]] = []
    day = after(history, 0)
    for value in (40, 3, 4, 2, 41, 39):
        history[day] = value
        expectation = expect(history, day, value=value)
        now = datetime(day.year, day.month, day.day, 20, tzinfo=UTC)
        state, notes = evaluate(rule, state, day, value, None, now, expectation=expectation)
        posted += [(day, n.kind, n.suppressed) for n in notes]
        if notes and notes[0].kind is Kind.FIRING:
            assert notes[0].expectation is expectation
        day += timedelta(days=1)
    start = after(daily({}, weeks=6), 0)
    assert posted == [(start + timedelta(days=2), Kind.FIRING, True),
                      (start + timedelta(days=4), Kind.RESOLVED, False)]
    assert state.status is Status.OK and state.seq == 2


def test_without_enough_history_an_unusual_rule_has_no_data() -> None:
    rule = Rule("leads", Op.UNUSUAL, 0)
    assert rule.condition(3, None, None) is None
    state, notes = evaluate(rule, AlertState(), MONDAY, 3, None,
                            datetime(2026, 1, 5, tzinfo=UTC))
    assert notes == [] and state.status is Status.OK and state.last_held is None
    threshold = Rule("cpl", Op.GT, 15)
    tuesday = after(TUESDAYS_40, WEEKDAY["Tue"])
    assert threshold.condition(20, None, expect(TUESDAYS_40, tuesday, value=3)) is True


# --- properties ----------------------------------------------------------------------------------

_histories = st.lists(
    st.one_of(st.none(), st.integers(0, 500)), min_size=MIN_HISTORY_DAYS + 1, max_size=70
).map(lambda values: {MONDAY + timedelta(days=n): float(v)
                      for n, v in enumerate(values) if v is not None})


@settings(max_examples=300, deadline=None)
@given(history=_histories, sensitivity=st.sampled_from(SENSITIVITIES),
       where=st.floats(0, 1), outside=st.floats(1e-6, 1000))
def test_a_value_is_unusual_exactly_when_outside_its_band(
    history: dict[date, float], sensitivity: str, where: float, outside: float
) -> None:
    day = max(history) + timedelta(days=1) if history else MONDAY
    probe = expect(history, day, sensitivity=sensitivity, value=0.0)
    assume(probe is not None)
    assert probe is not None
    inside = probe.low + where * (probe.high - probe.low)
    assert not judged(history, day, inside, sensitivity=sensitivity).unusual
    above = judged(history, day, probe.high * (1 + 1e-6) + outside, sensitivity=sensitivity)
    assert above.unusual and above.score > 0
    if probe.low > outside:
        assert judged(history, day, probe.low - outside, sensitivity=sensitivity).unusual


@settings(max_examples=200, deadline=None)
@given(history=_histories, value=st.integers(0, 1000), factor=st.floats(0.001, 1000))
def test_scaling_a_series_scales_its_band(
    history: dict[date, float], value: int, factor: float
) -> None:
    day = max(history) + timedelta(days=1) if history else MONDAY
    plain = expect(history, day, value=value, count=False)
    assume(plain is not None)
    assert plain is not None
    scaled = judged({d: v * factor for d, v in history.items()}, day, value * factor, count=False)
    for field in ("expected", "low", "high", "spread"):
        assert getattr(scaled, field) == pytest.approx(getattr(plain, field) * factor,
                                                       rel=1e-6, abs=1e-9)
    if abs(plain.score) < 1e6:
        assert scaled.score == pytest.approx(plain.score, rel=1e-6, abs=1e-9)
    assume(abs(abs(plain.value - plain.expected) - (plain.high - plain.expected)) > 1e-6 * (
        1 + abs(plain.expected)))
    assert scaled.unusual == plain.unusual


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.booleans())),
                      max_size=40),
       for_periods=st.integers(1, 3))
def test_unusual_moves_the_state_exactly_like_a_threshold_rule(
    steps: list[tuple[bool, bool | None]], for_periods: int
) -> None:
    unusual = Rule("leads", Op.UNUSUAL, 0, for_periods=for_periods)
    threshold = Rule("leads", Op.GT, 0.5, for_periods=for_periods)
    a = b = AlertState()
    period = 0
    for hour, (next_period, verdict) in enumerate(steps):
        period += next_period
        day = MONDAY + timedelta(days=period)
        now = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(hours=hour)
        expectation = None if verdict is None else Expectation(
            day, "daily", 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, verdict, verdict, "Mondays", 4, "medium"
        )
        a, notes_a = evaluate(unusual, a, day, 1.0, None, now, expectation=expectation)
        value = None if verdict is None else float(verdict)
        b, notes_b = evaluate(threshold, b, day, value, None, now)
        assert (a.status, a.streak, a.seq) == (b.status, b.streak, b.seq)
        assert [n.kind for n in notes_a] == [n.kind for n in notes_b]
