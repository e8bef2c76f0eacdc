"""Block Kit and one-liners for `/kpi why`, `/kpi whatif` (and its form) and the nudges to log.

Numbers go through bot/render/numbers.py like every other message; each message has a plain
`text` fallback and stays within Block Kit's limits by construction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.app.insights import WhatIfResult, WhyResult
from bot.app.reminders import Missing
from bot.render.kit import (
    MAX_BLOCKS,
    Block,
    Message,
    actions,
    button,
    context,
    fold,
    header,
    message,
    modal,
    section,
    sections,
    show_all,
)
from bot.render.numbers import format_change, format_value
from kpis.catalogue import Catalogue, Unit
from kpis.explain import Breakdown, Contribution, Method, sentence
from kpis.formula import Binary, Expr, FormulaError, Name, Number, Reading, Unary, parse, reading_of
from kpis.whatif import STEPS

#: keys read as acronyms in a one-liner ("CPL +24%"); the rest read as words ("page views")
_READING_WORDS = {"opening": "at the start", "paid": "from paid sources", "year": "over 365 days"}
_ACRONYMS = {"cpl": "CPL", "cpm": "CPM", "ctr": "CTR", "cpc": "CPC", "cac": "CAC", "aov": "AOV",
             "roas": "ROAS", "nps": "NPS", "ltv": "LTV", "arpu": "ARPU", "mrr": "MRR",
             "ler": "LER", "cogs": "COGS", "mqls": "MQLs", "sqls": "SQLs", "ltv_cac": "LTV/CAC",
             "mql_rate": "MQL rate", "sql_rate": "SQL rate", "blended_cac": "blended CAC",
             "landing_cvr": "landing CVR"}
_WORD = re.compile(r"[a-z_]+")
MAX_CONTRIBUTIONS = 8
MAX_DRIVERS = 6
WHATIF_CHOICES = (-20, -15, -10, -5, 0, 5, 10, 15, 20, 25, 30, 40, 50)
_OUTCOME_LABELS = {"leads": "Leads", "sales": "Sales", "revenue": "Revenue", "cac": "CAC",
                   "roas": "ROAS", "profit": "Profit after ads and delivery"}


def short_name(key: str) -> str:
    """What a one-liner calls a metric or KPI: `CPL`, `leads`, `page views`."""
    reading = reading_of(key)
    if reading is not None:
        kind, metric = reading
        return f"{short_name(metric)} {_READING_WORDS[kind]}"
    if not _WORD.fullmatch(key):  # a bracketed part of a formula: named in words
        return _formula_words(key)
    return _ACRONYMS.get(key, key.replace("_", " "))


_OPERATOR_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "per"}


def _formula_words(text: str) -> str:
    """`(revenue - spend)` as "revenue minus spend": digests name inputs, never formula text."""
    try:
        expr = parse(text).expr
    except FormulaError:
        return text
    return _expr_words(expr)


def _expr_words(expr: Expr) -> str:
    if isinstance(expr, Number):
        return f"{expr.value:g}"
    if isinstance(expr, Name):
        return short_name(expr.name)
    if isinstance(expr, Reading):
        return short_name(f"{expr.kind}:{expr.name}")
    if isinstance(expr, Unary):
        return f"minus {_expr_words(expr.operand)}" if expr.op == "-" else _expr_words(expr.operand)
    if isinstance(expr, Binary):
        return f"{_expr_words(expr.left)} {_OPERATOR_WORDS[expr.op]} {_expr_words(expr.right)}"
    if expr.func == "first":  # what it usually is; the rest are fallbacks
        return _expr_words(expr.args[0])
    if expr.func == "sum":
        return " plus ".join(_expr_words(arg) for arg in expr.args)
    return f"{expr.func} of " + ", ".join(_expr_words(arg) for arg in expr.args)


def unit_of(catalogue: Catalogue, name: str) -> Unit:
    """The unit of a formula input; a bracketed sum like `(revenue - spend)` takes its first name's."""
    reading = reading_of(name)
    key = reading[1] if reading else name
    item = catalogue.metrics.get(key) or catalogue.kpis.get(key)
    if item is not None:
        return item.unit
    first = next((w for w in _WORD.findall(key) if w in catalogue.metrics), None)
    return catalogue.metrics[first].unit if first else Unit.RATIO


# -- why --------------------------------------------------------------------------------------


def _value_label(dimension: str, value: str) -> str:
    if not value:
        return f"no {dimension}"
    return f"<@{value}>" if dimension == "rep" else value


def _signed(value: float, unit: Unit, currency: str, locale: str) -> str:
    shown = format_value(abs(value), unit, currency=currency, locale=locale)
    return ("+" if value > 0 else "−" if value < 0 else "±") + shown


def breakdown_phrase(split: Breakdown, unit: Unit = Unit.COUNT, currency: str = "USD",
                     locale: str = "en_US") -> str:
    """"leads fell mostly from facebook", or '' when the untagged rest or nothing drove it."""
    moved = split.new - split.old
    drivers = [d for d in split.drivers if d.change * moved > 0]
    if not moved or not drivers or not drivers[0].value:
        return ""
    verb = "rose" if moved > 0 else "fell"
    name = short_name(split.metric)
    top = drivers[0]
    if top.share is not None and top.share >= 0.5:
        return f"{name} {verb} mostly from {_value_label(split.dimension, top.value)}"
    parts = ", ".join(
        f"{_value_label(split.dimension, d.value)} {_signed(d.change, unit, currency, locale)}"
        for d in drivers[:3]
    )
    return f"{name} {verb} across {split.dimension}s: {parts}"


def why_sentence(result: WhyResult, locale: str = "en_US", currency: str = "USD") -> str:
    """"CPL +24.0%: leads −11.0%, spend +10.0%; leads fell mostly from facebook"."""
    e = result.explanation
    labels = {n: short_name(n) for n in (e.key, *(c.name for c in e.contributions))}
    line = sentence(e, labels, percent=lambda p: format_change(p, locale=locale))
    phrase = next(
        (p for b in result.breakdowns
         if (p := breakdown_phrase(b, unit_of(result.catalogue, b.metric), currency, locale))),
        "",
    )
    return f"{line}; {phrase}" if phrase else line


def _points(points: float, locale: str) -> str:
    return format_change(points, locale=locale).removesuffix("%") + " pts"


def _contribution_line(result: WhyResult, rank: int, c: Contribution, currency: str,
                       locale: str) -> str:
    unit = unit_of(result.catalogue, c.name)
    e = result.explanation

    def fmt(value: float) -> str:
        return format_value(value, unit, currency=currency, locale=locale)

    return (f"{rank}. *{short_name(c.name)}*: {fmt(c.old)} → {fmt(c.new)} "
            f"({format_change(c.change_pct, locale=locale)}), {_points(c.points, locale)} of "
            f"{short_name(e.key)}'s {format_change(e.total_pct, locale=locale)}")


def _breakdown_lines(result: WhyResult, split: Breakdown, currency: str, locale: str) -> list[str]:
    unit = unit_of(result.catalogue, split.metric)

    def fmt(value: float) -> str:
        return format_value(value, unit, currency=currency, locale=locale)

    shown = [d for d in split.drivers if d.change or d.new][:MAX_DRIVERS]
    lines = [f"*{short_name(split.metric).capitalize()} by {split.dimension}*: "
             f"{fmt(split.old)} → {fmt(split.new)}"]
    lines += [f"• {_value_label(split.dimension, d.value)}: {fmt(d.old)} → {fmt(d.new)} "
              f"({_signed(d.change, unit, currency, locale)})" for d in shown]
    return lines


_METHOD_NOTES = {
    Method.LOG: "The parts add up to the total: each input's share is its log change, "
                "ln(new / old), scaled to the total change.",
    Method.SHAPLEY: "The parts add up to the total: each input's effect is averaged over every "
                    "order of changing them one at a time.",
    Method.NONE: "",
}


def _folded(title: str, first: Sequence[Block], groups: Sequence[Sequence[str]], last: Block,
            *, full: bool, more: str) -> list[Block]:
    """`title`, `first`, then the lines of `groups` (each its own sections), then `last`; by
    default only the lines that fit above the fold, the rest behind Show all (`more`)."""
    flat = [(i, line) for i, group in enumerate(groups) for line in group]

    def assemble(shown: int) -> list[Block]:  # `last` is the part after every line
        blocks: list[Block] = [header(title), *first]
        for i in range(len(groups)):
            kept = [line for g, line in flat[:shown] if g == i]
            if kept:
                blocks += sections(kept)
        if shown <= len(flat):
            return [*blocks[:MAX_BLOCKS - 1], actions(show_all("Show all", more))]
        return [*blocks[:MAX_BLOCKS - 1], last]

    return assemble(len(flat) + 1) if full else fold(assemble, len(flat) + 1)


def why_message(result: WhyResult, currency: str, locale: str, *, full: bool = False,
                more: str = "") -> Message:
    """The ranked explanation: the one-liner (its main driver), the change, each input's part,
    then where the counts moved; by default what fits above the fold, the rest behind Show all."""
    e = result.explanation
    unit = unit_of(result.catalogue, e.key)
    line = why_sentence(result, locale, currency)

    def fmt(value: float) -> str:
        return format_value(value, unit, currency=currency, locale=locale)

    groups = [[f"{result.label}: {fmt(e.old)} → *{fmt(e.new)}* "
               f"({format_change(e.total_pct, locale=locale)}) in {result.period}, "
               f"against {result.previous}."]]
    if e.contributions:
        ranked = [_contribution_line(result, i, c, currency, locale)
                  for i, c in enumerate(e.contributions[:MAX_CONTRIBUTIONS], start=1)]
        groups.append(["*What moved it*, biggest effect first:", *ranked])
    elif e.key in result.catalogue.metrics:
        groups.append([f"`{e.key}` is logged, not computed, so it has no inputs to split."])
    else:
        groups.append(["Too many of its inputs moved at once to split the change."])
    groups += [_breakdown_lines(result, split, currency, locale) for split in result.breakdowns[:6]]
    note = _METHOD_NOTES[e.method]
    last = context(f"{note} Another range: `/kpi why {e.key} last-month`.".strip())
    return message(line, _folded(f"Why {short_name(e.key)} moved"[:150], [section(f"*{line}*")],
                                 groups, last, full=full, more=more))


# -- what if ------------------------------------------------------------------------------------


def _ratio(value: float, locale: str) -> str:
    return format_value(value, Unit.RATIO, locale=locale)


def whatif_title(result: WhatIfResult, locale: str = "en_US") -> str:
    changed = ", ".join(f"{short_name(k)} {format_change(p, locale=locale)}"
                        for k, p in result.changed)
    return f"What if {changed}" if changed else "What if nothing changes"


def whatif_message(result: WhatIfResult, currency: str, locale: str, *, full: bool = False,
                   more: str = "") -> Message:
    """Leads, sales, revenue, CAC, ROAS and profit before and after, and the compounding; by
    default what fits above the fold, the rest behind Show all."""
    p = result.projection
    title = whatif_title(result, locale)

    def fmt(key: str, value: float | None) -> str:
        unit = Unit.CURRENCY if key == "profit" else unit_of(result.catalogue, key)
        return format_value(value, unit, currency=currency, locale=locale)

    lines = [f"*{_OUTCOME_LABELS[o.key]}*: {fmt(o.key, o.before)} → *{fmt(o.key, o.after)}* "
             f"({format_change(o.change_pct, locale=locale)})" for o in p.outcomes]
    funnel = {s.key for s in STEPS if s.funnel}
    steps = [(k, pct) for k, pct in result.changed if k in funnel]
    notes: list[str] = []
    if steps:
        factors = " × ".join(f"{_ratio(1 + pct / 100, locale)} ({short_name(k)})" for k, pct in steps)
        notes.append(f"*Compounding*: {factors} = *{_ratio(p.compounding, locale)}* the sales "
                     "from the same ad spend.")
    order_value = p.changes.get("aov", 0.0)
    if order_value:
        revenue = p.compounding * (1 + order_value / 100)
        notes.append(f"AOV {format_change(order_value, locale=locale)} on top makes revenue "
                     f"*{_ratio(revenue, locale)}*.")
    warnings = [f":warning: {short_name(k)} would pass 100%: check that change." for k in p.over_100]
    outcome = p.outcome("revenue")
    text = (f"{title}: revenue {fmt('revenue', outcome.before)} → {fmt('revenue', outcome.after)} "
            f"over {result.period}")
    last = context(f"Baseline: the last 30 days ({result.period}), as in `/kpi report 30d`. Ad "
                   "spend and impressions stay as they are; new customers and delivery cost "
                   "(cogs) follow sales. Profit = revenue − ad spend − delivery cost. Nothing is "
                   "stored.")
    return message(text, _folded(title[:150], [], [[*lines, *warnings, *notes]], last,
                                 full=full, more=more))


def _choice(pct: int) -> dict[str, Any]:
    text = "0% (as now)" if pct == 0 else f"{pct:+d}%"
    return {"text": {"type": "plain_text", "text": text}, "value": f"{pct:+d}" if pct else "0"}


def whatif_modal(metadata: dict[str, str]) -> dict[str, Any]:
    """One picker per funnel step (and order value), each starting at 0%."""
    blocks: list[dict[str, Any]] = [section(
        "Change any step of the funnel to see what the last 30 days would have given. "
        "Nothing is stored."
    )]
    blocks += [
        {"type": "input", "block_id": f"step:{step.key}",
         "label": {"type": "plain_text", "text": f"{step.label} ({step.key})"[:2000]},
         "element": {"type": "static_select", "action_id": "value",
                     "options": [_choice(p) for p in WHATIF_CHOICES],
                     "initial_option": _choice(0)}}
        for step in STEPS
    ]
    return modal("whatif_form", "What if…", blocks, metadata, submit="Project")


# -- reminders ----------------------------------------------------------------------------------


def nudge_message(missing: Missing, active_days: int) -> Message:
    """The daily direct message: what is still missing, and a button to the log form."""
    day = f"{missing.day:%a %d %b}"
    text = f"Time to log today's numbers ({day})"
    if not missing.logged:
        status = "Nothing is logged for today yet."
    elif missing.missing:
        shown = ", ".join(f"`{k}`" for k in missing.missing[:8])
        more = f" and {len(missing.missing) - 8} more" if len(missing.missing) > 8 else ""
        status = f"Still missing for today: {shown}{more}."
    else:
        status = "Every tracked number has a value for today; add yours if you have any."
    return message(text, [
        section(f":wave: *Time to log today's numbers* ({day}). {status}"),
        {"type": "actions", "elements": [button("Log numbers", "open_log_form", style="primary")]},
        context(f"Sent at {missing.reminder_time} your time because you logged in the last "
                f"{active_days} days and not yet today. `/kpi remind off` stops these."),
    ])


def reminders_message(enabled: bool, reminder_time: str, active_days: int) -> Message:
    if enabled:
        return message(f":bell: Reminders are on for you: a direct message at {reminder_time} your "
                       "time on days you have not logged (once you have logged in the last "
                       f"{active_days} days). `/kpi remind off` stops them.")
    return message(":no_bell: No more reminders to log for you. `/kpi remind on` brings them back.")


def reminder_time_message(reminder_time: str, active_days: int) -> Message:
    return message(f":alarm_clock: Reminders now go out at *{reminder_time}* in each person's own "
                   f"time zone, to people who logged in the last {active_days} days and not yet "
                   "that day. Anyone can opt out with `/kpi remind off`.")


__all__ = [
    "breakdown_phrase",
    "nudge_message",
    "reminder_time_message",
    "reminders_message",
    "short_name",
    "unit_of",
    "whatif_message",
    "whatif_modal",
    "why_message",
    "why_sentence",
]

