"""KPI formulas typed by users, parsed by hand so that nothing but arithmetic can ever run.

Positions are 0-based in `FormulaError.position` and 1-based in messages, which people read.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple, TypeAlias

from kpis.suggest import nearest

MAX_LENGTH = 500
MAX_DEPTH = 40

# name -> (fewest, most) arguments; None means no upper limit.
#: `first` is its first argument with data, `sum` the sum of those with data: for numbers
#: logged in parts (total costs: expenses when logged, else the sum of the parts that are).
_FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "first": (1, None),
    "sum": (1, None),
    "max": (1, None),
    "min": (1, None),
    "opening": (1, 1),
    "paid": (1, 1),
    "year": (1, 1),
}

#: functions that read a stored aggregate of one metric other than its period value, each
#: looked up as "<function>:<metric>": `opening` a gauge's value before the period starts,
#: `paid` the sum of entries from paid sources (and untagged ones), `year` the sum over the
#: 365 days ending with the period
READINGS = ("opening", "paid", "year")

#: functions that need only some of their arguments to have data
PARTIAL_FUNCTIONS = frozenset({"first", "sum"})

_TOKEN = re.compile(
    r"""
      (?P<space>[ \t]+)
    | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>[-+*/(),])
    """,
    re.VERBOSE,
)


class FormulaError(ValueError):
    """A refused formula that knows where it went wrong, so the bot can point at the spot."""

    def __init__(
        self, message: str, text: str = "", position: int = -1, suggestion: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.position = position
        self.suggestion = suggestion

    def __str__(self) -> str:
        return self.message

    def pointer(self) -> str:
        """The formula with a caret under the problem, for a code block in Slack."""
        shown = "".join(c if c.isprintable() else " " for c in self.text)
        if self.position < 0:
            return shown
        return f"{shown}\n{' ' * self.position}^"


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Name:
    name: str
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Reading:
    """A stored aggregate of one metric (see READINGS), looked up as "<kind>:<name>"."""

    name: str
    pos: int = field(default=-1, compare=False)
    kind: str = "opening"


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]


Expr: TypeAlias = Number | Name | Reading | Unary | Binary | Call


@dataclass(frozen=True)
class Formula:
    text: str
    expr: Expr

    @cached_property
    def names(self) -> frozenset[str]:
        """Worked out once per formula: a log asks every KPI's names."""
        return frozenset(_key(node) for node in _references(self.expr))

    @cached_property
    def run(self) -> Callable[[Mapping[str, float | None]], float | None]:
        """The formula as nested functions, built once: what `evaluate` calls, computing
        exactly what `_value` does without walking the tree on every evaluation."""
        return _compiled(self.expr)

    def __getstate__(self) -> dict[str, object]:
        """The fields only: what is worked out once (`names`, `run`) is made again on use."""
        return {"text": self.text, "expr": self.expr}


def parse(text: str) -> Formula:
    """Check syntax only, so formulas can be stored before their inputs exist."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(
            _message(f"formula is longer than {MAX_LENGTH} characters", MAX_LENGTH),
            text,
            MAX_LENGTH,
        )
    if not text.strip():
        raise FormulaError(_message("empty formula", 0), text, 0)
    return Formula(text, _Parser(text).parse())


def check_names(formula: Formula, known: Collection[str]) -> None:
    """Refuse typos at definition time rather than showing n/a forever."""
    lowered = {name.lower() for name in known}
    for node in _references(formula.expr):
        if node.name not in lowered:
            guess = nearest(node.name, known)
            message = _message(f"unknown name `{node.name}`", node.pos, guess)
            raise FormulaError(message, formula.text, node.pos, guess)


def evaluate(formula: Formula, values: Mapping[str, float | None]) -> float | None:
    """None means "no value" (shown as n/a): a missing input must not look like a zero."""
    return formula.run(values)


def evaluate_expr(expr: Expr, values: Mapping[str, float | None]) -> float | None:
    """One part of a formula, as `evaluate` computes it."""
    return _value(expr, values)


def check_cycles(definitions: Mapping[str, Formula]) -> None:
    dependency_order(definitions)


def dependency_order(definitions: Mapping[str, Formula]) -> list[str]:
    """Keys in an order that lets each formula use the ones before it.

    Keys are lower-case metric names; names that are not keys are inputs. `opening(x)` is
    not a dependency: it is last period's value, so `x = opening(x) + 1` is no cycle.
    An explicit stack keeps long definition chains clear of the recursion limit.
    """
    order: list[str] = []
    done: set[str] = set()
    for root in definitions:
        if root in done:
            continue
        path = [root]
        pending = [_dependencies(root, definitions)]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                pending.pop()
                done.add(path[-1])
                order.append(path.pop())
            elif dep in path:
                cycle = [*path[path.index(dep) :], dep]
                message = f"circular definition: {' -> '.join(cycle)}"
                raise FormulaError(message, definitions[dep].text)
            elif dep not in done:
                path.append(dep)
                pending.append(_dependencies(dep, definitions))
    return order


def _dependencies(key: str, definitions: Mapping[str, Formula]) -> Iterator[str]:
    for node in _references(definitions[key].expr):
        if isinstance(node, Name) and node.name in definitions:
            yield node.name


def _message(what: str, position: int, suggestion: str | None = None, tail: str = "") -> str:
    hint = f" (did you mean `{suggestion}`?)" if suggestion else ""
    return f"{what} at position {position + 1}{hint}{tail}"


def _key(node: Name | Reading) -> str:
    return f"{node.kind}:{node.name}" if isinstance(node, Reading) else node.name


def reading_of(key: str) -> tuple[str, str] | None:
    """(kind, metric) of a "<kind>:<metric>" scope key, None for a plain name."""
    kind, sep, name = key.partition(":")
    return (kind, name) if sep and kind in READINGS else None


def _references(expr: Expr) -> Iterator[Name | Reading]:
    """Names in source order, so the first unknown one reported is the leftmost."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Name | Reading):
            yield node
        elif isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack += [node.right, node.left]
        elif isinstance(node, Call):
            stack += reversed(node.args)


def _divide(a: float, b: float) -> float:
    return a / b if b else math.nan


_BINARY: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
}


def _value(expr: Expr, values: Mapping[str, float | None]) -> float | None:
    """Division by zero and overflow become nan/inf, which the final check turns into None."""
    result: float | None
    if isinstance(expr, Number):
        result = expr.value
    elif isinstance(expr, Name | Reading):
        result = values.get(_key(expr))
    elif isinstance(expr, Unary):
        operand = _value(expr.operand, values)
        result = None if operand is None else (-operand if expr.op == "-" else operand)
    elif isinstance(expr, Binary):
        left, right = _value(expr.left, values), _value(expr.right, values)
        result = None if left is None or right is None else _BINARY[expr.op](left, right)
    else:
        args = [_value(arg, values) for arg in expr.args]
        numbers = [arg for arg in args if arg is not None]
        if expr.func in PARTIAL_FUNCTIONS:
            if not numbers:
                result = None
            else:
                result = numbers[0] if expr.func == "first" else math.fsum(numbers)
        elif len(numbers) < len(args):
            result = None
        elif expr.func == "abs":
            result = abs(numbers[0])
        else:
            result = min(numbers) if expr.func == "min" else max(numbers)
    return float(result) if result is not None and math.isfinite(result) else None


Compiled: TypeAlias = Callable[[Mapping[str, float | None]], float | None]


def _finite(result: float | None) -> float | None:
    return float(result) if result is not None and math.isfinite(result) else None


def _compiled(expr: Expr) -> Compiled:
    """`_value(expr, ...)` as a function of the values, node by node the same rules."""
    if isinstance(expr, Number):
        constant = _finite(expr.value)
        return lambda values: constant
    if isinstance(expr, Name | Reading):
        key = _key(expr)
        return lambda values: _finite(values.get(key))
    if isinstance(expr, Unary):
        operand = _compiled(expr.operand)
        negate = expr.op == "-"

        def unary(values: Mapping[str, float | None]) -> float | None:
            found = operand(values)
            return None if found is None else _finite(-found if negate else found)
        return unary
    if isinstance(expr, Binary):
        left, right, apply = _compiled(expr.left), _compiled(expr.right), _BINARY[expr.op]

        def binary(values: Mapping[str, float | None]) -> float | None:
            a, b = left(values), right(values)
            return None if a is None or b is None else _finite(apply(a, b))
        return binary
    parts = tuple(_compiled(arg) for arg in expr.args)
    func = expr.func

    def call(values: Mapping[str, float | None]) -> float | None:
        args = [part(values) for part in parts]
        numbers = [arg for arg in args if arg is not None]
        if func in PARTIAL_FUNCTIONS:
            if not numbers:
                return None
            return _finite(numbers[0] if func == "first" else math.fsum(numbers))
        if len(numbers) < len(args):
            return None
        if func == "abs":
            return _finite(abs(numbers[0]))
        return _finite(min(numbers) if func == "min" else max(numbers))
    return call


class _Token(NamedTuple):
    kind: str  # "number", "name", "op" or "end"
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            shown = f"`{char}`" if char.isprintable() and char != "`" else f"U+{ord(char):04X}"
            raise FormulaError(_message(f"unexpected character {shown}", pos), text, pos)
        if match.lastgroup != "space":
            tokens.append(_Token(str(match.lastgroup), match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent; `depth` bounds the recursion so hostile input cannot blow the stack.

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("+" | "-")? primary        -- one sign only: "--x" is a typo, not a trick
    primary    := number | name | name "(" arguments ")" | "(" expression ")"
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def parse(self) -> Expr:
        expr = self.expression()
        token = self.peek()
        if token.text == ")":
            raise self.error("unmatched `)`", token.pos)
        if token.kind != "end":
            raise self.error(f"unexpected `{token.text}`", token.pos, tail="; expected an operator")
        return expr

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def error(
        self, what: str, pos: int, suggestion: str | None = None, tail: str = ""
    ) -> FormulaError:
        return FormulaError(_message(what, pos, suggestion, tail), self.text, pos, suggestion)

    def expression(self) -> Expr:
        expr = self.term()
        while self.peek().text in ("+", "-"):
            op = self.take().text
            expr = Binary(op, expr, self.term())
        return expr

    def term(self) -> Expr:
        expr = self.unary()
        while self.peek().text in ("*", "/"):
            op = self.take().text
            expr = Binary(op, expr, self.unary())
        return expr

    def unary(self) -> Expr:
        if self.peek().text in ("+", "-"):
            op = self.take().text
            return Unary(op, self.primary())
        return self.primary()

    def primary(self) -> Expr:
        token = self.take()
        if token.kind == "number":
            value = float(token.text)
            if not math.isfinite(value):
                raise self.error("number too large", token.pos)
            return Number(value)
        if token.kind == "name":
            if self.peek().text == "(":
                return self.call(token)
            return Name(token.text.lower(), token.pos)
        if token.text == "(":
            self.enter(token)
            expr = self.expression()
            self.close(token, "`)`")
            return expr
        expected = "; expected a number, a name or `(`"
        if token.kind == "end":
            raise self.error("formula ends too early", token.pos, tail=expected)
        raise self.error(f"unexpected `{token.text}`", token.pos, tail=expected)

    def call(self, name: _Token) -> Expr:
        func = name.text.lower()
        if func not in _FUNCTIONS:
            available = "; available: " + ", ".join(sorted(_FUNCTIONS))
            guess = nearest(func, _FUNCTIONS)
            raise self.error(f"unknown function `{func}`", name.pos, guess, available)
        opening = self.take()
        self.enter(opening)
        if func in READINGS:
            return self.reading_argument(func, opening)
        args: list[Expr] = []
        if self.peek().text != ")":
            args.append(self.expression())
            while self.peek().text == ",":
                self.take()
                args.append(self.expression())
        self.close(opening, "`,` or `)`")
        fewest, most = _FUNCTIONS[func]
        if len(args) < fewest or (most is not None and len(args) > most):
            expected = f"{fewest}" if fewest == most else f"at least {fewest}"
            what = f"wrong number of arguments for `{func}`"
            raise self.error(what, name.pos, tail=f": expected {expected}, got {len(args)}")
        return Call(func, tuple(args))

    def reading_argument(self, func: str, opening: _Token) -> Expr:
        """Only a bare name: a reading is stored, not something computed."""
        arg = self.take()
        after = self.peek()
        if arg.kind != "name" or (after.kind != "end" and after.text != ")"):
            raise self.error(f"`{func}` takes exactly one metric name", arg.pos)
        self.close(opening, "`)`")
        return Reading(arg.text.lower(), arg.pos, func)

    def enter(self, opening: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep", opening.pos)

    def close(self, opening: _Token, expected: str) -> None:
        token = self.take()
        if token.kind == "end":
            raise self.error("unclosed `(`", opening.pos)
        if token.text != ")":
            raise self.error(f"unexpected `{token.text}`", token.pos, tail=f"; expected {expected}")
        self.depth -= 1
