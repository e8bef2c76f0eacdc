"""Like for like and noise (kpi-catalogue.md section 5): the worked examples, and properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kpis import compare as compare_module
from kpis.catalogue import DEFAULT, Better
from kpis.compare import (
    Verdict,
    compare,
    counts_differ,
    proportions_differ,
    rate_parts,
    significance,
)
from kpis.periods import Period, like_for_like, resolve

D = date.fromisoformat


@pytest.mark.parametrize(
    ("spec", "today", "period", "previous", "partial"),
    [
        # interface.md: on Wednesday 2026-12-02 the week so far against last Monday to Wednesday
        ("week", "2026-12-02", "2026-11-30..2026-12-02", "2026-11-23..2026-11-25", True),
        # kpi-catalogue.md: on 2 December, 1-2 December against 1-2 November
        ("month", "2026-12-02", "2026-12-01..2026-12-02", "2026-11-01..2026-11-02", True),
        # a longer month so far against the whole of a shorter one, never past its end
        ("month", "2026-03-31", "2026-03-01..2026-03-31", "2026-02-01..2026-02-28", True),
        ("month", "2026-03-30", "2026-03-01..2026-03-30", "2026-02-01..2026-02-28", True),
        ("today", "2026-12-02", "2026-12-02", "2026-12-01", True),
        ("30d", "2026-12-02", "2026-11-03..2026-12-02", "2026-10-04..2026-11-02", True),
        # periods that have ended are compared whole
        ("last-week", "2026-12-02", "2026-11-23..2026-11-29", "2026-11-16..2026-11-22", False),
        ("last-month", "2026-12-02", "2026-11-01..2026-11-30", "2026-10-01..2026-10-31", False),
        ("yesterday", "2026-12-02", "2026-12-01", "2026-11-30", False),
    ],
)
def test_like_for_like(spec: str, today: str, period: str, previous: str, partial: bool) -> None:
    compared = like_for_like(resolve(spec, D(today)), D(today))
    assert (str(compared.period), str(compared.previous), compared.partial) == (period, previous, partial)


@given(st.dates(date(2020, 1, 1), date(2030, 12, 31)), st.integers(0, 400), st.integers(1, 120),
       st.integers(-200, 200))
def test_like_for_like_never_compares_more_days_than_have_passed(
    start: date, offset: int, length: int, shift: int
) -> None:
    period = Period(start, start + timedelta(days=length - 1))
    today = start + timedelta(days=shift)
    compared = like_for_like(period, today)
    assert compared.partial == (today in period)
    assert compared.previous.end < compared.period.start
    assert compared.previous.days <= compared.period.days
    if compared.partial:
        assert compared.period.end == today
        assert compared.previous.start == period.previous().start
    else:
        assert compared.period == period and compared.previous == period.previous()


@pytest.mark.parametrize(
    ("hits_now", "trials_now", "hits_before", "trials_before", "significant"),
    [
        (2, 9, 3, 9, False),  # kpi-catalogue.md: noise
        (40, 100, 20, 100, True),  # kpi-catalogue.md: not noise
        (0, 5, 5, 5, True),
        (20_000, 100_000, 20_400, 100_000, True),  # large numbers: the normal approximation
        (20_000, 100_000, 20_100, 100_000, False),
        (5, 4, 1, 4, None),  # more hits than trials is not a proportion
    ],
)
def test_proportions(hits_now: int, trials_now: int, hits_before: int, trials_before: int,
                     significant: bool | None) -> None:
    assert proportions_differ(hits_now, trials_now, hits_before, trials_before) is significant


@pytest.mark.parametrize(
    ("now", "before", "days_now", "days_before", "significant"),
    [
        (1, 2, 1, 1, False),  # 1 lead against 2 is never news
        (10, 20, 7, 7, False),
        (120, 80, 7, 7, True),
        (30, 30, 3, 7, True),  # the same count in fewer days is a higher rate
        (0, 0, 7, 7, False),
        (1_000_000, 1_004_000, 7, 7, True),
    ],
)
def test_counts(now: int, before: int, days_now: int, days_before: int, significant: bool) -> None:
    assert counts_differ(now, before, days_now, days_before) is significant


def test_which_test_applies() -> None:
    catalogue = DEFAULT
    assert rate_parts(catalogue, "close_rate") == ("sales", "shows")
    assert rate_parts(catalogue, "cpl") is None  # money over a count: no test
    now, before = {"sales": 2.0, "shows": 9.0}, {"sales": 3.0, "shows": 9.0}
    assert significance(catalogue, "close_rate", now, before, 7, 7) is False
    assert significance(catalogue, "sales", {"sales": 40.0}, {"sales": 20.0}, 7, 7) is True
    assert significance(catalogue, "revenue", {"revenue": 1.0}, {"revenue": 2.0}, 7, 7) is None


@pytest.mark.parametrize(
    ("significant", "change", "colour"),
    [
        (False, (0.222, 0.333), Verdict.SAME),  # noise is not coloured
        (True, (0.40, 0.20), Verdict.BETTER),
        (None, (105.0, 100.0), Verdict.SAME),  # untestable and under 10%: not news
        (None, (150.0, 100.0), Verdict.BETTER),
    ],
)
def test_only_news_is_coloured(significant: bool | None, change: tuple[float, float],
                               colour: Verdict) -> None:
    assert compare(*change, Better.HIGHER, significant).signal is colour


@pytest.mark.parametrize(
    ("significant", "change", "moved"),
    [
        (True, (40.0, 20.0), True),  # leads from one source: a move, though no way is better
        (False, (3.0, 2.0), False),
        (None, (105.0, 100.0), False),
        (None, (150.0, 100.0), True),
        (None, (7.0, 7.0), False),
        (None, (7.0, None), False),
    ],
)
def test_a_move_beyond_noise_needs_no_better_direction(
        significant: bool | None, change: tuple[float, float | None], moved: bool) -> None:
    neutral = compare(*change, Better.NEUTRAL, significant)
    assert neutral.beyond_noise is moved and not neutral.news
    assert compare(*change, Better.HIGHER, significant).news is moved


def test_percent_changes_in_points() -> None:
    assert compare(0.30, 0.418, Better.HIGHER).points() == pytest.approx(-11.8)


def _brute_two_sided(log_pmf: Callable[[int], float], low: int, high: int, observed: int) -> float:
    """The definition: every outcome no more likely than the observed one, each term added."""
    limit = log_pmf(observed) + 1e-7
    return min(1.0, sum(math.exp(lp) for k in range(low, high + 1) if (lp := log_pmf(k)) <= limit))


def _binomial_log_pmf(n: int, p: float) -> Callable[[int], float]:
    return lambda k: (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                      + k * math.log(p) + (n - k) * math.log1p(-p))


@given(st.integers(0, 2500), st.integers(0, 2500), st.integers(1, 60), st.integers(1, 60))  # exact up to 5,000
def test_the_count_test_sums_its_tails_as_the_definition_does(a: int, b: int, days_a: int,
                                                              days_b: int) -> None:
    """Whole, the p-value is the definition's; stopped at the level, the decision is too."""
    n, p = a + b, days_a / (days_a + days_b)
    assume(n > 0)
    exact = _brute_two_sided(_binomial_log_pmf(n, p), 0, n, a)
    assert compare_module._binomial_p(a, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-15)
    stopped = compare_module._binomial_p(a, n, p, enough=compare_module.LEVEL)
    assert (stopped < compare_module.LEVEL) is (exact < compare_module.LEVEL)
    if exact < compare_module.LEVEL:
        assert stopped == pytest.approx(exact, rel=1e-9, abs=1e-15)


_HITS_OF_TRIALS = st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(_HITS_OF_TRIALS, _HITS_OF_TRIALS)
def test_fishers_test_sums_its_tails_as_the_definition_does(a: tuple[int, int],
                                                            b: tuple[int, int]) -> None:
    (x1, n1), (x2, n2) = a, b
    hits, total = x1 + x2, n1 + n2

    def log_comb(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    exact = _brute_two_sided(
        lambda k: log_comb(n1, k) + log_comb(n2, hits - k) - log_comb(total, hits),
        max(0, hits - n2), min(hits, n1), x1)
    assert compare_module._fisher_p(x1, n1, x2, n2) == pytest.approx(exact, rel=1e-9, abs=1e-15)

