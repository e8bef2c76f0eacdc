"""Comparisons between two periods, judged by which direction is better for the KPI, and
whether the change is unlikely to be noise.

Significance: counts (leads, sales) are compared as Poisson counts over the days they were
counted in; rates of two counts (close rate = sales / shows) as proportions. Both tests are
exact for small numbers (a conditional binomial test and Fisher's exact test) and normal
approximations once the numbers are large, two-sided at `LEVEL`. Values no test applies to
(money, averages, gauges) have `significant` None and count as news only when they moved by
at least `MATERIAL_PCT`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from kpis.catalogue import Aggregation, Better, Catalogue, Unit
from kpis.formula import Binary, Name

#: two-sided significance level of both tests
LEVEL = 0.05
#: a change that no test applies to is news from this relative size (percent)
MATERIAL_PCT = 10.0
#: above this many outcomes the exact sums give way to their normal approximations
_EXACT_LIMIT = 5000


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    SAME = "same"
    UNKNOWN = "unknown"


#: whether a change is beyond noise: True or False when a test applies (see the module
#: docstring), else None; or the test itself, run when first asked
Tested = bool | None | Callable[[], bool | None]


@dataclass(frozen=True, eq=False, slots=True)  # slots: a breakdown builds thousands
class Change:
    value: float | None
    previous: float | None
    change_pct: float | None
    verdict: Verdict
    test: Tested = None

    @property
    def significant(self) -> bool | None:
        """The test's answer, run once when first asked: a breakdown of fifty groups shows two
        figures of each, and testing every figure of every group was most of its cost."""
        found = self.test
        if callable(found):
            found = found()
            object.__setattr__(self, "test", found)
        return found

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def _compared(self) -> tuple[object, ...]:
        return (self.value, self.previous, self.change_pct, self.verdict, self.significant)

    @property
    def beyond_noise(self) -> bool:
        """Whether the value moved by more than noise, whichever way is better (a metric with
        no better direction, leads from one source, moves too)."""
        if self.value is None or self.previous is None or self.value == self.previous:
            return False
        if self.significant is not None:
            return self.significant
        return self.change_pct is None or abs(self.change_pct) >= MATERIAL_PCT

    @property
    def news(self) -> bool:
        """Whether the change deserves the good/bad colour (and a place among movers)."""
        return self.verdict in (Verdict.BETTER, Verdict.WORSE) and self.beyond_noise

    @property
    def signal(self) -> Verdict:
        """The verdict to colour: the real one when the change is news, else SAME."""
        return self.verdict if self.news or self.verdict is Verdict.UNKNOWN else Verdict.SAME

    def points(self) -> float | None:
        """The change of a fraction in percentage points (0.40 -> 0.30 is -10 points)."""
        if self.value is None or self.previous is None:
            return None
        return (self.value - self.previous) * 100.0


def change_pct(value: float | None, previous: float | None) -> float | None:
    """Percent change from `previous` to `value`; None when either is missing or previous is 0."""
    if value is None or previous is None or previous == 0:
        return None
    return (value - previous) / abs(previous) * 100.0


def compare(value: float | None, previous: float | None, better: Better,
            significant: Tested = None) -> Change:
    """`significant` may be the test, to be run only if the change's significance is asked."""
    pct = change_pct(value, previous)
    if value is None or previous is None:
        verdict = Verdict.UNKNOWN
    elif value == previous or better is Better.NEUTRAL:
        verdict = Verdict.SAME
    elif (value > previous) == (better is Better.HIGHER):
        verdict = Verdict.BETTER
    else:
        verdict = Verdict.WORSE
    if value is not None and previous is not None and value == previous:
        significant = _never_news(significant)
    return Change(value, previous, pct, verdict, significant)


def _never_news(significant: Tested) -> Tested:
    """No move at all is never beyond noise (False), where a test applies (else None)."""
    if callable(significant):
        test = significant
        return lambda: None if test() is None else False
    return None if significant is None else False


# -- what test applies ----------------------------------------------------------------------


def is_count(catalogue: Catalogue, key: str) -> bool:
    metric = catalogue.metrics.get(key)
    return metric is not None and metric.unit is Unit.COUNT and metric.aggregation is Aggregation.SUM


def rate_parts(catalogue: Catalogue, key: str) -> tuple[str, str] | None:
    """(numerator, denominator) of a KPI that is one count over another, else None."""
    kpi = catalogue.kpis.get(key)
    if kpi is None or kpi.unit is not Unit.PERCENT:
        return None
    expr = kpi.formula.expr
    if (isinstance(expr, Binary) and expr.op == "/" and isinstance(expr.left, Name)
            and isinstance(expr.right, Name) and is_count(catalogue, expr.left.name)
            and is_count(catalogue, expr.right.name)):
        return expr.left.name, expr.right.name
    return None


def significance(
    catalogue: Catalogue, key: str,
    now: Mapping[str, float], before: Mapping[str, float],
    days_now: int, days_before: int,
) -> bool | None:
    """Whether `key` (a metric or KPI) changed by more than noise between the two periods,
    given each period's metric values and lengths; None when no test applies."""
    if is_count(catalogue, key):
        if key not in now or key not in before:
            return None
        return counts_differ(now[key], before[key], days_now, days_before)
    parts = rate_parts(catalogue, key)
    if parts is None:
        return None
    hits, trials = parts
    if any(k not in values for k in parts for values in (now, before)):
        return None
    return proportions_differ(now[hits], now[trials], before[hits], before[trials])


# -- the tests ------------------------------------------------------------------------------


def counts_differ(a: float, b: float, exposure_a: float = 1.0, exposure_b: float = 1.0) -> bool | None:
    """Two Poisson counts over their exposures (days): the conditional binomial test."""
    if a < 0 or b < 0 or exposure_a <= 0 or exposure_b <= 0:
        return None
    x, n = round(a), round(a) + round(b)
    if n == 0:
        return False
    p = exposure_a / (exposure_a + exposure_b)
    return _binomial_p(x, n, p, enough=LEVEL) < LEVEL


def proportions_differ(hits_a: float, trials_a: float, hits_b: float, trials_b: float) -> bool | None:
    """Two proportions (hits of trials): Fisher's exact test, None when they are not proportions."""
    x1, n1, x2, n2 = (round(v) for v in (hits_a, trials_a, hits_b, trials_b))
    if min(x1, x2) < 0 or x1 > n1 or x2 > n2 or n1 == 0 or n2 == 0:
        return None
    return _fisher_p(x1, n1, x2, n2, enough=LEVEL) < LEVEL


def _binomial_p(x: int, n: int, p: float, enough: float = math.inf) -> float:
    """The two-sided p-value, or a value of at least `enough` once it is known to be that."""
    if p in (0.0, 1.0):
        return 1.0 if x == round(n * p) else 0.0
    if n > _EXACT_LIMIT:
        return _normal_p((x - n * p) / math.sqrt(n * p * (1 - p)))

    def log_pmf(k: int) -> float:
        return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                + k * math.log(p) + (n - k) * math.log1p(-p))

    odds = p / (1 - p)

    def ratio(k: int, direction: int) -> float:
        """pmf(k + direction) / pmf(k)"""
        return (n - k) / (k + 1) * odds if direction > 0 else k / (n - k + 1) / odds

    return _two_sided(log_pmf, ratio, 0, n, x, mode=min(n, math.floor((n + 1) * p)),
                      enough=enough)


def _fisher_p(x1: int, n1: int, x2: int, n2: int, enough: float = math.inf) -> float:
    """The two-sided p-value, or a value of at least `enough` once it is known to be that."""
    hits, total = x1 + x2, n1 + n2
    low, high = max(0, hits - n2), min(hits, n1)
    if high - low > _EXACT_LIMIT:
        pooled = hits / total
        spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return 1.0 if spread == 0 else _normal_p((x1 / n1 - x2 / n2) / spread)

    def log_comb(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    def log_pmf(k: int) -> float:
        return log_comb(n1, k) + log_comb(n2, hits - k) - log_comb(total, hits)

    def ratio(k: int, direction: int) -> float:
        """pmf(k + direction) / pmf(k)"""
        if direction > 0:
            return (n1 - k) * (hits - k) / ((k + 1) * (n2 - hits + k + 1))
        return k * (n2 - hits + k) / ((n1 - k + 1) * (hits - k + 1))

    mode = min(high, max(low, math.floor((hits + 1) * (n1 + 1) / (total + 2))))
    return _two_sided(log_pmf, ratio, low, high, x1, mode=mode, enough=enough)


#: a tail's terms are added until they are this much (in log) below the observed outcome's
#: probability: e**-45 of it, far below what could move a p-value
_NEGLIGIBLE = 45.0


def _two_sided(log_pmf: Callable[[int], float], ratio: Callable[[int, int], float], low: int,
               high: int, observed: int, mode: int, enough: float = math.inf) -> float:
    """The probability of every outcome in [low, high] no more likely than the one observed
    (`mode` the most likely, the distribution unimodal around it).

    Those outcomes are two tails: the one beyond the observed outcome, and the one on the
    mode's other side from the first outcome as unlikely (found by bisection, the
    probabilities falling away from the mode). Each tail is added outward only until its
    terms are negligible, each term from the one before by `ratio` (pmf(k + direction) /
    pmf(k)), so a test costs a few log-probabilities and tens of products, not a
    log-probability per possible outcome (up to 5,000, which made significance most of a
    report's time). Once the sum reaches `enough` (the level a caller only compares with),
    it stops there: a change well within noise is the common case and the cheapest."""
    observed_lp = log_pmf(observed)
    limit = observed_lp + 1e-7
    floor = observed_lp - _NEGLIGIBLE

    def tail(start: int, direction: int, before: float) -> float:
        """The tail from `start` outward, `before` the sum so far (it stops at `enough`)."""
        if not low <= start <= high:
            return 0.0
        first = log_pmf(start)
        if first < floor:
            return 0.0
        # terms relative to the first, until they fall below the floor
        scale = math.exp(first)
        if scale == 0.0:  # below what a float holds: the tail adds nothing
            return 0.0
        total, term, k, smallest = 0.0, 1.0, start, math.exp(floor - first)
        budget = (enough - before) / scale
        while term >= smallest and total < budget:
            total += term
            if not low <= k + direction <= high:
                break
            term *= ratio(k, direction)
            k += direction
        return total * scale

    def first_unlikely(start: int, end: int, direction: int) -> int:
        """From `start` to `end` (probabilities falling), the first outcome no more likely
        than the observed one; one past `end` when none is."""
        lo, hi = 0, abs(end - start) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if log_pmf(start + direction * mid) <= limit:
                hi = mid
            else:
                lo = mid + 1
        return start + direction * lo

    step = -1 if observed <= mode else 1  # away from the mode, on the observed side
    near = 0.0  # outcomes between the observed one and the mode as likely as it (ties)
    k = observed - step
    while (k - mode) * step > 0 and (lp := log_pmf(k)) <= limit:
        near += math.exp(lp)
        k -= step
    beyond = tail(observed, step, near)
    if near + beyond >= enough:
        return near + beyond
    if step == -1:  # the other side, falling away from the mode: up to `high`, or down to `low`
        start, end = max(mode, observed + 1), high
    else:
        start, end = mode, low
    other = (tail(first_unlikely(start, end, -step), -step, near + beyond)
             if low <= start <= high and (end - start) * -step >= 0 else 0.0)
    return min(1.0, near + beyond + other)


def _normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))
