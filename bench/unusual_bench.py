"""`unusual` alerts against a fixed rule, on generated series whose truth is known.

Each of SERIES seeded series has DAYS daily counts: a level (log-uniform LEVELS), a weekly
pattern (weekdays around 1, Saturday and Sunday at WEEKEND of a weekday), a trend (TREND per
day, compounded) and noise (multiplicative log-normal of NOISE, then Poisson-like count noise).
ANOMALIES days per series, at least GAP days apart and from day MIN_HISTORY_DAYS on, are
multiplied by 1 +/- a change drawn from CHANGES (40% to 80%, up or down).

Both rules run through the real state machine of kpis/alerts.py, one evaluation per day: the
`unusual daily` rule at each sensitivity with the expectation of kpis/unusual.py, and the fixed
rule `down 30% daily` (change against the previous day). A post is a transition into firing.
A post on an injected day is a true post, any other a false post; recall is the share of
injected days that got a post, precision the share of posts that were true. False posts are
counted over the days from MIN_HISTORY_DAYS on (when `unusual` can fire at all), for both rules,
and given per series per 30 days.

Detector thresholds were tuned on TUNING_SEED; the figures printed are from SEED.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bench import Options, Row, register
from kpis.alerts import AlertState, Kind, Op, Rule, evaluate
from kpis.unusual import MIN_HISTORY_DAYS, SENSITIVITIES, expect

SEED = 20260310
TUNING_SEED = 7
SERIES = 300
DAYS = 120
LEVELS = (100.0, 1000.0)
WEEKEND = (0.4, 0.8)
TREND = (-0.004, 0.006)
NOISE = (0.04, 0.10)
CHANGES = (0.4, 0.8)
ANOMALIES = 3
GAP = 10
START = date(2026, 1, 5)  # a Monday

RECALL_TARGET = 0.9
FALSE_POSTS_TARGET = 1.0
FEWER_TARGET = 5.0


@dataclass(frozen=True)
class Series:
    values: dict[date, float]
    anomalies: frozenset[date]


@dataclass(frozen=True)
class Score:
    posts: int
    true_posts: int
    false_posts: int
    caught: int
    injected: int
    days: int
    series: int

    @property
    def recall(self) -> float:
        return self.caught / self.injected if self.injected else 0.0

    @property
    def precision(self) -> float:
        return self.true_posts / self.posts if self.posts else 1.0

    @property
    def false_per_30(self) -> float:
        return self.false_posts / self.series / (self.days / 30)


def generate(seed: int, count: int = SERIES) -> list[Series]:
    """Seeded series with a weekly pattern, a trend, noise and injected changes."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        level = math.exp(rng.uniform(math.log(LEVELS[0]), math.log(LEVELS[1])))
        pattern = [rng.uniform(0.85, 1.15) for _ in range(5)]
        pattern += [rng.uniform(*WEEKEND), rng.uniform(*WEEKEND)]
        trend = rng.uniform(*TREND)
        noise = rng.uniform(*NOISE)
        days: list[int] = []
        while len(days) < ANOMALIES:
            pick = rng.randrange(MIN_HISTORY_DAYS, DAYS)
            if all(abs(pick - d) >= GAP for d in days):
                days.append(pick)
        changes = {d: 1 + rng.choice((-1, 1)) * rng.uniform(*CHANGES) for d in days}
        values: dict[date, float] = {}
        for n in range(DAYS):
            day = START + timedelta(days=n)
            mean = level * pattern[day.weekday()] * (1 + trend) ** n
            mean *= math.exp(rng.gauss(0, noise)) * changes.get(n, 1.0)
            values[day] = float(max(0, round(rng.gauss(mean, math.sqrt(mean)))))
        out.append(Series(values, frozenset(START + timedelta(days=d) for d in days)))
    return out


def posts(rule: Rule, series: Series) -> list[date]:
    """The days on which `rule` went into firing, through the real state machine."""
    state = AlertState()
    fired: list[date] = []
    for n in range(DAYS):
        day = START + timedelta(days=n)
        value = series.values.get(day)
        previous = series.values.get(day - timedelta(days=1))
        expectation = None
        if rule.op.is_unusual:
            expectation = expect(series.values, day, rule.period, rule.sensitivity, value=value)
        now = datetime(day.year, day.month, day.day, 23, tzinfo=UTC)
        state, notes = evaluate(rule, state, day, value, previous, now, expectation=expectation)
        fired += [day for note in notes if note.kind is Kind.FIRING]
    return fired


def score(rule: Rule, data: list[Series]) -> Score:
    first = START + timedelta(days=MIN_HISTORY_DAYS)
    total = true = false = caught = injected = 0
    for series in data:
        days = [d for d in posts(rule, series) if d >= first]
        hits = [d for d in days if d in series.anomalies]
        total += len(days)
        true += len(hits)
        false += len(days) - len(hits)
        caught += len(set(hits))
        injected += len(series.anomalies)
    return Score(total, true, false, caught, injected, DAYS - MIN_HISTORY_DAYS, len(data))


def measure(seed: int, count: int = SERIES) -> tuple[dict[str, Score], Score]:
    data = generate(seed, count)
    unusual = {s: score(Rule("leads", Op.UNUSUAL, 0, sensitivity=s), data) for s in SENSITIVITIES}
    return unusual, score(Rule("leads", Op.DOWN, 30), data)


@register("unusual")
def bench_unusual(options: Options) -> Iterable[Row]:
    unusual, fixed = measure(SEED)
    where = f"{SERIES} series x {DAYS} days, seed {SEED}"
    rows = []
    for name, result in unusual.items():
        medium = name == "medium"
        rows += [  # targets are the issue's, at medium; low and high are for reference
            Row(f"unusual daily {name}: recall on changes of 40-80%", f"{result.recall:.3f}",
                f">= {RECALL_TARGET}" if medium else "—",
                f"{result.caught}/{result.injected} injected days; {where}",
                result.recall >= RECALL_TARGET or not medium),
            Row(f"unusual daily {name}: precision", f"{result.precision:.3f}", "—",
                f"{result.true_posts}/{result.posts} posts on injected days", True),
            Row(f"unusual daily {name}: false posts per series per 30 days",
                f"{result.false_per_30:.3f}", f"<= {FALSE_POSTS_TARGET:g}" if medium else "—",
                f"{result.false_posts} false posts over days {MIN_HISTORY_DAYS}-{DAYS - 1}",
                result.false_per_30 <= FALSE_POSTS_TARGET or not medium),
        ]
    base = unusual["medium"]
    fewer = fixed.false_per_30 / base.false_per_30 if base.false_posts else math.inf
    rows += [
        Row("fixed `down 30% daily`: false posts per series per 30 days",
            f"{fixed.false_per_30:.3f}", "—",
            f"{fixed.false_posts} false posts; recall {fixed.recall:.3f}, "
            f"precision {fixed.precision:.3f}", True),
        Row("false posts, fixed rule / unusual medium", f"{fewer:.1f}x",
            f">= {FEWER_TARGET:g}x", "same series, same days, same state machine",
            fewer >= FEWER_TARGET),
    ]
    return rows
