"""What moved and why: a change between two periods split into the contributions of its inputs.

A product or quotient splits with logarithms: ln(new/old) is the sum of each factor's signed
ln(factor_new/factor_old), so scaling each log by total_pct / sum(logs) gives percentage points
that add up to the total percent change. Where logs cannot work (a sum, a factor crossing
zero) the split is a Shapley value over the formula's names, which adds up just as exactly.
Results are plain data; words come from `sentence`, numbers from the caller's formatter.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kpis.catalogue import Catalogue
from kpis.compare import change_pct
from kpis.formula import Binary, Call, Expr, Formula, Name, Number, Reading, Unary, evaluate
from kpis.suggest import did_you_mean

#: each funnel rate, with the count it turns the previous count into
FUNNEL: tuple[tuple[str, str], ...] = (
    ("ctr", "clicks"),
    ("view_rate", "page_views"),
    ("landing_cvr", "leads"),
    ("booking_rate", "bookings"),
    ("show_rate", "shows"),
    ("close_rate", "sales"),
)
#: the volume the funnel starts from: sales = impressions x every rate above
FUNNEL_VOLUME = "impressions"
#: money per sale, which turns the funnel's sales into revenue
ORDER_VALUE: tuple[str, str] = ("aov", "revenue")
FUNNEL_TARGETS: tuple[str, ...] = (*(count for _, count in FUNNEL), ORDER_VALUE[1])

#: 2^n evaluations of the formula; past this a change is reported without a split
MAX_SHAPLEY_NAMES = 10
_TINY_LOG = 1e-12

Values = Mapping[str, float | None]
Percent = Callable[[float], str]


class Method(StrEnum):
    LOG = "log"
    SHAPLEY = "shapley"
    NONE = "none"


class ExplainError(ValueError):
    """A key that names no KPI or metric: a caller's mistake, never a data problem."""


@dataclass(frozen=True)
class Contribution:
    """One input's share of the change, in percentage points of the total percent change.

    `change_pct` is the input's own change (None when it started from 0); `points` has the sign
    of its effect on the result, so leads -11% gives CPL positive points.
    """

    name: str
    old: float
    new: float
    change_pct: float | None
    points: float


@dataclass(frozen=True)
class Explanation:
    """`contributions` add up to `total_pct`, largest effect first; empty when `method` is NONE."""

    key: str
    old: float
    new: float
    total_pct: float
    contributions: tuple[Contribution, ...]
    method: Method


@dataclass(frozen=True)
class Driver:
    """One dimension value's part in the change of a summed metric.

    `share` is its fraction of the total change (shares add up to 1; None when the total did
    not move); `points` are percentage points of the total percent change.
    """

    value: str
    old: float
    new: float
    change: float
    change_pct: float | None
    share: float | None
    points: float | None


@dataclass(frozen=True)
class Breakdown:
    metric: str
    dimension: str
    old: float
    new: float
    total_pct: float | None
    drivers: tuple[Driver, ...]


@dataclass(frozen=True)
class _Term:
    name: str
    old: float
    new: float
    power: int


def explain(catalogue: Catalogue, key: str, old: Values, new: Values) -> Explanation | None:
    """Why `key` moved from the `old` to the `new` period.

    `old` and `new` are metric values such as `metric_values(...)` returns; KPIs the formula
    reads are taken from there when given, else computed (`key` itself always is), and
    `opening:<gauge>` and `days` may be added for the KPIs that read them. None when the change has no percent (a missing
    value or a start at 0). A funnel count (leads, sales...) splits into funnel steps; any
    other metric is logged, not computed, so its change comes back unsplit.
    """
    wanted = key.strip().lower()
    if wanted in catalogue.kpis:
        return _explain_kpi(catalogue, wanted, old, new)
    if wanted in FUNNEL_TARGETS:
        return explain_funnel(catalogue, old, new, wanted)
    if wanted in catalogue.metrics:
        return _unsplit(wanted, _finite(old.get(wanted)), _finite(new.get(wanted)))
    raise ExplainError(f"unknown KPI or metric `{key}`.{did_you_mean(wanted, catalogue.names)}")


def explain_funnel(
    catalogue: Catalogue, old: Values, new: Values, target: str = "sales"
) -> Explanation | None:
    """The change in a funnel count split into impressions and each rate that leads to it.

    sales = impressions x ctr x view_rate x landing_cvr x booking_rate x show_rate x close_rate
    (and revenue = sales x aov). None when the target has no percent change or when the
    catalogue's rates (a team may redefine them) do not multiply out to the target.
    """
    target = target.strip().lower()
    steps = funnel_steps(target)
    if not funnel_holds(catalogue, target):
        return None
    before, after = _scope(catalogue, old), _scope(catalogue, new)
    old_total, new_total = before.get(target), after.get(target)
    total = change_pct(new_total, old_total)
    if total is None or old_total is None or new_total is None:
        return None
    names = (FUNNEL_VOLUME, *steps)
    olds, news = [before.get(n) for n in names], [after.get(n) for n in names]
    if any(v is None for v in (*olds, *news)):
        return _unsplit(target, old_total, new_total)
    terms = _plain_terms(names, olds, news)
    logged = _log_split(target, old_total, new_total, total, terms)
    if logged is not None:
        return logged

    def product(chosen: Sequence[float]) -> float | None:
        return math.prod(chosen)

    return _shapley_split(target, old_total, new_total, total, terms, product)


def funnel_steps(target: str) -> tuple[str, ...]:
    """The rates between impressions and `target`, in funnel order."""
    steps: list[str] = []
    for rate, count in (*FUNNEL, ORDER_VALUE):
        steps.append(rate)
        if count == target:
            return tuple(steps)
    choices = ", ".join(FUNNEL_TARGETS)
    raise ExplainError(
        f"`{target}` is not a funnel count.{did_you_mean(target, FUNNEL_TARGETS)}"
        f" Choose one of {choices}."
    )


def funnel_holds(catalogue: Catalogue, target: str) -> bool:
    """Whether impressions times the catalogue's rates cancel down to exactly `target`."""
    powers: Counter[str] = Counter({FUNNEL_VOLUME: 1})
    for step in funnel_steps(target):
        kpi = catalogue.kpis.get(step)
        if kpi is None:
            return False
        constant, factors = _factors(kpi.formula.expr)
        if constant != 1.0 or not all(isinstance(e, Name) for e, _ in factors):
            return False
        for expr, power in factors:
            powers[_name(expr)] += power
    return {k: v for k, v in powers.items() if v} == {target: 1}


def breakdown(metric: str, dimension: str, old: Values, new: Values) -> Breakdown:
    """Which values of a dimension (sources, reps...) drove the change of a summed metric.

    A value missing from one period counts as 0 there: a source with no leads had none.
    Drivers come largest absolute change first.
    """
    keys = sorted(set(old) | set(new))
    olds = {k: _number(old.get(k)) for k in keys}
    news = {k: _number(new.get(k)) for k in keys}
    old_total, new_total = math.fsum(olds.values()), math.fsum(news.values())
    moved = new_total - old_total
    drivers = []
    for k in keys:
        change = news[k] - olds[k]
        drivers.append(
            Driver(
                k,
                olds[k],
                news[k],
                change,
                change_pct(news[k], olds[k]),
                change / moved if moved else None,
                change / abs(old_total) * 100.0 if old_total else None,
            )
        )
    drivers.sort(key=lambda d: -abs(d.change))
    total = change_pct(new_total, old_total)
    return Breakdown(metric, dimension, old_total, new_total, total, tuple(drivers))


def signed_percent(value: float) -> str:
    """+24%, -11%, 0%: whole percents, which is what a one-liner needs."""
    rounded = round(value)
    return "0%" if rounded == 0 else f"{rounded:+d}%"


def signed_number(value: float) -> str:
    rounded = round(value)
    return "0" if rounded == 0 else f"{rounded:+,d}"


def sentence(
    explanation: Explanation,
    labels: Mapping[str, str] | None = None,
    percent: Percent = signed_percent,
    limit: int = 3,
) -> str:
    """A one-liner such as "CPL +24%: spend +10%, leads -11%", biggest effects first.

    Inputs whose change shows as zero are left out; so is the colon when nothing is left.
    """
    names = labels or {}
    head = f"{names.get(explanation.key, explanation.key)} {percent(explanation.total_pct)}"
    parts: list[str] = []
    for c in explanation.contributions:
        label = names.get(c.name, c.name)
        if c.change_pct is None:
            parts.append(f"{label} from 0")
        elif percent(c.change_pct) != percent(0.0):
            parts.append(f"{label} {percent(c.change_pct)}")
        if len(parts) == limit:
            break
    return f"{head}: {', '.join(parts)}" if parts else head


def breakdown_sentence(
    result: Breakdown,
    labels: Mapping[str, str] | None = None,
    percent: Percent = signed_percent,
    number: Percent = signed_number,
    limit: int = 3,
) -> str:
    """A one-liner such as "Leads -12%: facebook -30, google +5"."""
    names = labels or {}
    head = names.get(result.metric, result.metric)
    if result.total_pct is not None:
        head = f"{head} {percent(result.total_pct)}"
    parts = [
        f"{names.get(d.value, d.value)} {number(d.change)}"
        for d in result.drivers
        if number(d.change) != number(0.0)
    ][:limit]
    return f"{head}: {', '.join(parts)}" if parts else head


def _explain_kpi(catalogue: Catalogue, key: str, old: Values, new: Values) -> Explanation | None:
    formula = catalogue.kpis[key].formula
    before, after = _scope(catalogue, old), _scope(catalogue, new)
    old_value, new_value = evaluate(formula, before), evaluate(formula, after)
    total = change_pct(new_value, old_value)
    if total is None or old_value is None or new_value is None:
        return None
    constant, factors = _factors(formula.expr)
    if len(factors) > 1 or (factors and isinstance(factors[0][0], Name | Reading)):
        terms = _product_terms(factors, before, after)
        logged = None if terms is None else _log_split(key, old_value, new_value, total, terms)
        if logged is not None:
            return logged
    names = list(dict.fromkeys(_names_in(formula.expr)))
    olds, news = [before.get(n) for n in names], [after.get(n) for n in names]
    if any(v is None for v in (*olds, *news)):
        return _unsplit(key, old_value, new_value)
    terms = _plain_terms(names, olds, news)

    def value_with(chosen: Sequence[float]) -> float | None:
        return evaluate(formula, {**before, **dict(zip(names, chosen, strict=True))})

    return _shapley_split(key, old_value, new_value, total, terms, value_with)


def _plain_terms(
    names: Sequence[str], olds: Sequence[float | None], news: Sequence[float | None]
) -> list[_Term]:
    return [
        _Term(n, o, w, 1)
        for n, o, w in zip(names, olds, news, strict=True)
        if o is not None and w is not None
    ]


def _product_terms(
    factors: list[tuple[Expr, int]], before: Values, after: Values
) -> list[_Term] | None:
    """Factors merged by name (x * x is x squared), each evaluated in both periods."""
    powers: dict[str, int] = {}
    exprs: dict[str, Expr] = {}
    for expr, power in factors:
        name = _name(expr)
        powers[name] = powers.get(name, 0) + power
        exprs.setdefault(name, expr)
    terms: list[_Term] = []
    for name, expr in exprs.items():
        formula = Formula(name, expr)
        old, new = evaluate(formula, before), evaluate(formula, after)
        if old is None or new is None:
            return None
        terms.append(_Term(name, old, new, powers[name]))
    return terms


def _log_split(
    key: str, old: float, new: float, total: float, terms: list[_Term]
) -> Explanation | None:
    """None when some factor is zero or changes sign, where logarithms say nothing."""
    if any(t.old == 0 or t.new / t.old <= 0 for t in terms if t.power):
        return None
    logs = [t.power * math.log(t.new / t.old) if t.power else 0.0 for t in terms]
    log_sum = math.fsum(logs)
    scale = total / log_sum if abs(log_sum) > _TINY_LOG else math.copysign(100.0, old)
    points = [scale * log for log in logs]
    return _result(key, old, new, total, terms, points, Method.LOG)


def _shapley_split(
    key: str,
    old: float,
    new: float,
    total: float,
    terms: list[_Term],
    value_with: Callable[[Sequence[float]], float | None],
) -> Explanation:
    """Each term's average effect over every order of switching terms from old to new."""
    moving = [i for i, t in enumerate(terms) if t.old != t.new]
    count = len(moving)
    unsplit = Explanation(key, old, new, total, (), Method.NONE)
    if count > MAX_SHAPLEY_NAMES:
        return unsplit
    values: list[float] = []
    for mask in range(1 << count):
        chosen = [t.old for t in terms]
        for bit, i in enumerate(moving):
            if mask >> bit & 1:
                chosen[i] = terms[i].new
        value = value_with(chosen)
        if value is None:
            return unsplit
        values.append(value)
    weights = [
        math.factorial(size) * math.factorial(count - size - 1) / math.factorial(count)
        for size in range(count)
    ]
    points = [0.0] * len(terms)
    for bit, i in enumerate(moving):
        gains = (
            weights[mask.bit_count()] * (values[mask | 1 << bit] - values[mask])
            for mask in range(1 << count)
            if not mask >> bit & 1
        )
        points[i] = math.fsum(gains) / abs(old) * 100.0
    return _result(key, old, new, total, terms, points, Method.SHAPLEY)


def _result(
    key: str,
    old: float,
    new: float,
    total: float,
    terms: list[_Term],
    points: list[float],
    method: Method,
) -> Explanation:
    contributions = [
        Contribution(t.name, t.old, t.new, change_pct(t.new, t.old), p)
        for t, p in zip(terms, points, strict=True)
    ]
    contributions.sort(key=lambda c: -abs(c.points))
    return Explanation(key, old, new, total, tuple(contributions), method)


def _unsplit(key: str, old: float | None, new: float | None) -> Explanation | None:
    total = change_pct(new, old)
    if total is None or old is None or new is None:
        return None
    return Explanation(key, old, new, total, (), Method.NONE)


def _scope(catalogue: Catalogue, values: Values) -> dict[str, float | None]:
    scope: dict[str, float | None] = {
        k: _finite(v) for k, v in values.items() if _finite(v) is not None
    }
    for key in catalogue.order:
        if key not in scope:
            scope[key] = evaluate(catalogue.kpis[key].formula, scope)
    return scope


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _number(value: float | None) -> float:
    """A summed metric's value, where nothing logged means 0."""
    finite = _finite(value)
    return 0.0 if finite is None else finite


def _factors(expr: Expr) -> tuple[float, list[tuple[Expr, int]]]:
    """The formula as constant x product of factor^power; anything not * or / is a factor."""
    constant = 1.0
    factors: list[tuple[Expr, int]] = []
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        node, power = stack.pop()
        if isinstance(node, Binary) and node.op in ("*", "/"):
            stack.append((node.right, power if node.op == "*" else -power))
            stack.append((node.left, power))
        elif isinstance(node, Unary):
            constant = -constant if node.op == "-" else constant
            stack.append((node.operand, power))
        elif isinstance(node, Number):
            constant = constant * node.value**power if node.value else math.nan
        else:
            factors.append((node, power))
    return constant, factors


def _names_in(expr: Expr) -> Iterator[str]:
    if isinstance(expr, Name | Reading):
        yield _name(expr)
    elif isinstance(expr, Unary):
        yield from _names_in(expr.operand)
    elif isinstance(expr, Binary):
        yield from _names_in(expr.left)
        yield from _names_in(expr.right)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from _names_in(arg)


def _name(expr: Expr) -> str:
    """A factor's name: the key it reads, or its text in brackets for a sum or a call."""
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Reading):
        return f"{expr.kind}:{expr.name}"
    text = _text(expr)
    return f"({text})" if isinstance(expr, Binary) else text


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _text(expr: Expr) -> str:
    if isinstance(expr, Number):
        return f"{expr.value:g}"
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Reading):
        return f"{expr.kind}({expr.name})"
    if isinstance(expr, Unary):
        return f"{expr.op}{_operand_text(expr.operand, 3, False)}"
    if isinstance(expr, Binary):
        level = _PRECEDENCE[expr.op]
        left = _operand_text(expr.left, level, False)
        right = _operand_text(expr.right, level, expr.op in ("-", "/"))
        return f"{left} {expr.op} {right}"
    return f"{expr.func}({', '.join(_text(arg) for arg in expr.args)})"


def _operand_text(expr: Expr, level: int, strict: bool) -> str:
    text = _text(expr)
    if isinstance(expr, Binary):
        inner = _PRECEDENCE[expr.op]
        if inner < level or (strict and inner == level):
            return f"({text})"
    return text


__all__ = [
    "FUNNEL",
    "FUNNEL_TARGETS",
    "FUNNEL_VOLUME",
    "MAX_SHAPLEY_NAMES",
    "ORDER_VALUE",
    "Breakdown",
    "Contribution",
    "Driver",
    "ExplainError",
    "Explanation",
    "Method",
    "breakdown",
    "breakdown_sentence",
    "explain",
    "explain_funnel",
    "funnel_holds",
    "funnel_steps",
    "sentence",
    "signed_number",
    "signed_percent",
]
