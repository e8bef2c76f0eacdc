"""The formula language as users meet it: what is accepted, what it computes, what is refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kpis.formula import (
    Binary,
    FormulaError,
    Name,
    Number,
    Reading,
    check_cycles,
    check_names,
    dependency_order,
    evaluate,
    evaluate_expr,
    parse,
)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("spend / leads", {"spend": 1000, "leads": 100}, 10),
        ("(revenue - cogs) / revenue", {"revenue": 200, "cogs": 150}, 0.25),
        (
            "(nps_promoters - nps_detractors) / (nps_promoters + nps_passives + nps_detractors)"
            " * 100",
            {"nps_promoters": 60, "nps_passives": 30, "nps_detractors": 10},
            50,
        ),
        (
            "fixed_costs / ((revenue - variable_costs) / revenue)",
            {"fixed_costs": 300, "revenue": 1000, "variable_costs": 400},
            500,
        ),
        (
            "customers_lost / opening(active_customers)",
            {"customers_lost": 5, "opening:active_customers": 200, "active_customers": 1},
            0.025,
        ),
        (
            "cash_balance / (expenses / days * 30)",
            {"cash_balance": 9000, "expenses": 3100, "days": 31},
            3,
        ),
        ("1 + 2 * 3", {}, 7),
        ("(1 + 2) * 3", {}, 9),
        ("-2 * 3", {}, -6),
        ("10 / 4 / 5", {}, 0.5),
        ("10 - 4 - 5", {}, 1),
        ("2 - -3", {}, 5),
        ("+2", {}, 2),
        ("0.91 + .5 + 1e3 + 2.5E-1", {}, 1001.66),
        ("min(3, a, 5) + max(a) + abs(-4)", {"a": 2}, 8),
        ("MAX(Spend, 1)", {"spend": 7}, 7),
    ],
)
def test_formulas_evaluate(text: str, values: dict[str, float], expected: float) -> None:
    assert evaluate(parse(text), values) == pytest.approx(expected)


def test_names_are_lower_case_and_opening_is_prefixed() -> None:
    formula = parse("Churned / opening(Active) + churned")
    assert formula.names == {"churned", "opening:active"}


def test_ast_shape() -> None:
    assert parse("a - 1 - opening(b)").expr == Binary(
        "-", Binary("-", Name("a"), Number(1.0)), Reading("b")
    )


def test_big_mac_index_custom_kpis() -> None:
    definitions = {
        "gap": parse("(official_rate - implied) / official_rate"),
        "implied": parse("local_price / us_price"),
    }
    values: dict[str, float | None] = {"local_price": 4, "us_price": 5, "official_rate": 0.91}
    order = dependency_order(definitions)
    assert order == ["implied", "gap"]
    for key in order:
        values[key] = evaluate(definitions[key], values)
    assert values["implied"] == pytest.approx(0.8)
    assert round(values["gap"] or 0, 4) == 0.1209


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("spend / leads", {"spend": 1000, "leads": 0}),
        ("spend / (leads - leads)", {"spend": 1000, "leads": 3}),
        ("spend / leads", {"spend": 1000}),
        ("spend / leads", {"spend": 1000, "leads": None}),
        ("churned / opening(active)", {"churned": 3, "active": 100}),
        ("max(a, b)", {"a": 1, "b": None}),
        ("abs(a)", {}),
        ("-a", {}),
        ("a * a", {"a": 1e200}),
    ],
)
def test_no_value(text: str, values: dict[str, float | None]) -> None:
    assert evaluate(parse(text), values) is None


@pytest.mark.parametrize(
    ("text", "position", "fragments"),
    [
        ("", 0, ["empty formula"]),
        ("   ", 0, ["empty formula"]),
        ("spend +", 7, ["ends too early"]),
        ("spend + * leads", 8, ["unexpected `*`", "position 9"]),
        ("spend ** 2", 7, ["unexpected `*`"]),
        ("--spend", 1, ["unexpected `-`"]),
        ("(spend / leads", 0, ["unclosed `(`"]),
        ("min(a, (b)", 3, ["unclosed `(`"]),
        ("spend / leads)", 13, ["unmatched `)`"]),
        ("()", 1, ["unexpected `)`"]),
        ("spend leads", 6, ["unexpected `leads`", "expected an operator"]),
        ("2x", 1, ["unexpected `x`"]),
        ("1.2.3", 3, ["unexpected `.3`"]),
        ("a, b", 1, ["unexpected `,`"]),
        ("min(a b)", 6, ["unexpected `b`", "expected `,` or `)`"]),
        ("sqrt(x)", 0, ["unknown function `sqrt`", "; available: abs, first, max, min, opening, paid, sum, year"]),
        ("mn(a, b)", 0, ["unknown function `mn`", "did you mean `min`?"]),
        ("__import__('os')", 11, ["unexpected character `'`"]),
        ("__import__(os)", 0, ["unknown function `__import__`"]),
        ("abs(a, b)", 0, ["wrong number of arguments for `abs`", "expected 1, got 2"]),
        ("min()", 0, ["expected at least 1, got 0"]),
        ("opening()", 8, ["`opening` takes exactly one metric name"]),
        ("opening(a + b)", 8, ["`opening` takes exactly one metric name"]),
        ("opening(1)", 8, ["`opening` takes exactly one metric name"]),
        ("opening(a, b)", 8, ["`opening` takes exactly one metric name"]),
        ("a.b", 1, ["unexpected character `.`"]),
        ("a[0]", 1, ["unexpected character `[`"]),
        ("'spend'", 0, ["unexpected character `'`"]),
        ("a; b", 1, ["unexpected character `;`"]),
        ("a\nb", 1, ["unexpected character U+000A"]),
        ("a ` b", 2, ["unexpected character U+0060"]),
        ("prix_é", 5, ["unexpected character `é`"]),
        ("1e999", 0, ["number too large"]),
        ("x" * 501, 500, ["longer than 500 characters"]),
        ("(" * 41 + "1" + ")" * 41, 40, ["nested more than 40 levels deep"]),
        ("abs(" * 41 + "1" + ")" * 41, 163, ["nested more than 40 levels deep"]),
    ],
)
def test_refused(text: str, position: int, fragments: list[str]) -> None:
    with pytest.raises(FormulaError) as caught:
        parse(text)
    error = caught.value
    assert (error.position, error.text) == (position, text)
    for fragment in fragments:
        assert fragment in str(error)
    assert "\n" not in str(error)


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert evaluate(parse("(" * 40 + "1" + ")" * 40), {}) == 1
    assert evaluate(parse("-(" * 40 + "1" + ")" * 40), {}) == 1


def test_unknown_name_suggests_a_known_one() -> None:
    formula = parse("spnd / leads")
    with pytest.raises(FormulaError) as caught:
        check_names(formula, {"spend", "leads"})
    error = caught.value
    assert str(error) == "unknown name `spnd` at position 1 (did you mean `spend`?)"
    assert (error.position, error.suggestion) == (0, "spend")
    assert error.pointer() == "spnd / leads\n^"


def test_unknown_name_inside_opening() -> None:
    formula = parse("lost / opening(active_customer)")
    with pytest.raises(FormulaError) as caught:
        check_names(formula, {"lost", "active_customers"})
    assert (caught.value.position, caught.value.suggestion) == (15, "active_customers")
    assert caught.value.pointer().splitlines()[1] == " " * 15 + "^"


def test_first_unknown_name_is_the_leftmost() -> None:
    with pytest.raises(FormulaError) as caught:
        check_names(parse("known + (zzz * min(yyy, 1))"), {"known"})
    assert (caught.value.position, caught.value.suggestion) == (9, None)
    assert str(caught.value) == "unknown name `zzz` at position 10"


def test_known_names_pass() -> None:
    check_names(parse("Spend / opening(leads)"), ["spend", "leads"])


@pytest.mark.parametrize(
    ("definitions", "cycle"),
    [
        ({"a": "b + 1", "b": "a * 2"}, "a -> b -> a"),
        ({"a": "a + 1"}, "a -> a"),
        ({"x": "1", "a": "x + b", "b": "c", "c": "a"}, "a -> b -> c -> a"),
    ],
)
def test_cycles_are_refused(definitions: dict[str, str], cycle: str) -> None:
    parsed = {key: parse(text) for key, text in definitions.items()}
    for check in (check_cycles, dependency_order):
        with pytest.raises(FormulaError, match=f"circular definition: {cycle}$"):
            check(parsed)


def test_opening_of_itself_is_not_a_cycle() -> None:
    definitions = {"balance": parse("opening(balance) + inflow - outflow")}
    check_cycles(definitions)
    assert dependency_order(definitions) == ["balance"]


def test_dependency_order_puts_inputs_first() -> None:
    definitions = {
        key: parse(text)
        for key, text in {"d": "b + c", "c": "a * 2", "b": "a + input", "a": "input"}.items()
    }
    order = dependency_order(definitions)
    assert sorted(order) == ["a", "b", "c", "d"]
    for key, formula in definitions.items():
        assert all(order.index(dep) < order.index(key) for dep in formula.names & {*order})


def test_long_definition_chains_do_not_recurse() -> None:
    definitions = {f"m{i}": parse(f"m{i + 1} + 1") for i in range(5000)}
    assert dependency_order(definitions)[0] == "m4999"


def _parse_or_refuse(text: str) -> None:
    try:
        formula = parse(text)
    except FormulaError as error:
        assert "\n" not in str(error)
        assert -1 <= error.position <= len(text)
    else:
        evaluate(formula, {})


@given(st.text())
def test_any_text_parses_or_is_refused(text: str) -> None:
    _parse_or_refuse(text)


_PIECES = [
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    ",",
    " ",
    "1",
    ".5",
    "2e3",
    "0",
    "a",
    "B_2",
    "min",
    "max",
    "abs",
    "opening",
    "sqrt",
    ".",
]


@given(st.lists(st.sampled_from(_PIECES), max_size=80).map("".join))
def test_grammar_soup_parses_or_is_refused(text: str) -> None:
    _parse_or_refuse(text)


@given(st.sampled_from("(-+m"), st.integers(min_value=41, max_value=10_000))
def test_deep_nesting_is_refused(char: str, depth: int) -> None:
    opener = "min(" if char == "m" else "(" if char == "(" else char + "("
    with pytest.raises(FormulaError):
        parse(opener * depth + "1" + ")" * depth)


def test_huge_nesting_is_refused() -> None:
    with pytest.raises(FormulaError):
        parse("(" * 10_000)


_NAMES = ["a", "b", "c"]
_leaves = st.one_of(
    st.sampled_from(_NAMES),
    st.sampled_from(["opening(a)", "opening(c)", "0", "1", "0.91", ".5", "1e3", "2.5e-3"]),
    st.integers(min_value=0, max_value=10**6).map(str),
)


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(" ".join),
        inner.map(lambda text: f"-({text})"),
        inner.map(lambda text: f"({text})"),
        st.tuples(st.sampled_from(["min", "max", "first", "sum"]),
                  st.lists(inner, min_size=1, max_size=3)).map(
            lambda call: f"{call[0]}({', '.join(call[1])})"
        ),
        inner.map(lambda text: f"abs({text})"),
    )


_formulas = st.recursive(_leaves, _combine, max_leaves=12)
_values = st.one_of(st.none(), st.just(0.0), st.floats(allow_nan=False, allow_infinity=False))


@given(
    _formulas,
    st.dictionaries(st.sampled_from([*_NAMES, "opening:a", "opening:c"]), _values),
)
def test_evaluate_never_raises(text: str, values: dict[str, float | None]) -> None:
    assume(len(text) <= 500)
    result = evaluate(parse(text), values)
    assert result is None or math.isfinite(result)


@given(
    _formulas,
    st.dictionaries(st.sampled_from([*_NAMES, "opening:a", "opening:c"]), _values),
)
def test_a_formula_computes_what_walking_its_tree_computes(
    text: str, values: dict[str, float | None],
) -> None:
    """`evaluate` runs the formula built once into functions; `evaluate_expr` walks the tree."""
    assume(len(text) <= 500)
    formula = parse(text)
    assert evaluate(formula, values) == evaluate_expr(formula.expr, values)
