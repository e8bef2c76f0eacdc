"""Alert messages, the rule list and goal progress lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.app.alerts import AlertForm, AlertPost, AlertRule, SnoozePost, Watched
from bot.app.goals import GoalProgress
from bot.app.names import label_of, unit_of
from bot.render.kit import (
    FOLD_LINES,
    TABLE_CELL_LIMIT,
    TABLE_MAX_ROWS,
    Block,
    Cell,
    Message,
    actions,
    button,
    context,
    header,
    marked_cell,
    message,
    modal,
    option,
    plain,
    raw_cell,
    rendered_lines,
    section,
    sections,
    select,
    show_all,
    table,
)
from bot.render.numbers import format_change, format_day, format_local, format_value
from kpis.alerts import Kind, Op, Status, describe
from kpis.catalogue import Catalogue, Unit
from kpis.unusual import (
    DEFAULT_SENSITIVITY,
    MIN_HISTORY_DAYS,
    SENSITIVITIES,
    Expectation,
    band_text,
)
from storage.repository import StoredGoal

_SPARK = "▁▂▃▄▅▆▇█"


def since_text(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    elapsed = now - moment
    if elapsed < timedelta(hours=1):
        return f"{max(int(elapsed.total_seconds() // 60), 1)} min"
    if elapsed < timedelta(days=2):
        return f"{int(elapsed.total_seconds() // 3600)} h"
    return f"{elapsed.days} days"


def sparkline(values: Sequence[float | None]) -> str:
    """The values as a small trend; a period without numbers is a dot."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    span = hi - lo or 1.0
    return "".join("·" if v is None else _SPARK[int((v - lo) / span * (len(_SPARK) - 1))] for v in values)


def rule_text(rule: AlertRule, label: str, unit: Unit, currency: str, locale: str) -> str:
    return describe(rule.rule, label=label,
                    fmt=lambda v: format_value(v, unit, currency=currency, locale=locale))


def _against(post: AlertPost, fmt: Callable[[float | None], str]) -> str:
    rule, note = post.rule.rule, post.note
    if rule.op.is_unusual:
        usual = note.expectation
        return f"{usual.basis} are usually {_band(usual, fmt)}" if usual else "no usual band yet"
    if rule.op.is_change:
        return f"previous period {fmt(note.previous)}"
    return f"threshold {fmt(rule.threshold)}"


def alert_message(post: AlertPost) -> Message:
    """An alert's message: the firing one (what crossed what, its state now, the trend of the
    rule's own periods, who logged, the buttons), or the "back to normal" reply in its thread."""
    def fmt(v: float | None) -> str:
        return format_value(v, post.unit, currency=post.currency, locale=post.locale)

    rule, note, label = post.rule, post.note, post.label
    text_rule = rule_text(rule, label, post.unit, post.currency, post.locale)
    value, against = fmt(note.value), _against(post, fmt)
    mention = f"{rule.mention} " if rule.mention else ""
    if note.kind is Kind.RESOLVED:
        lasted = f" after {since_text(note.at - note.duration, note.at)}" if note.duration else ""
        head = (f"{mention}:white_check_mark: *{label}* is back to normal{lasted}: {value} for "
                f"{post.period} ({against}, rule #{rule.id})")
        return message(f"Resolved: {label} is {value}{lasted} ({text_rule})", [section(head)])
    head = (f"{mention}:rotating_light: *{label}* is {value} for {post.period}: {against} "
            f"(rule #{rule.id}: {text_rule})")
    state, said = _firing_state(post)
    details = [d for d in (_trend_text(post, fmt), _authors_text(post.authors)) if d]
    blocks: list[Block] = [section(head), context(state)]
    if details:
        blocks.append(context(" · ".join(details)))
    if post.removed_at is not None:  # nothing left to snooze or to open it for
        return message(f"Alert: {label} is {value} ({text_rule}), {said}", blocks)
    buttons = [] if post.resolved_at is not None else [
        button("Snooze 1 day", "alert_snooze", json.dumps({"rule": rule.id, "for": "1d"})),
        button("Snooze 7 days", "alert_snooze", json.dumps({"rule": rule.id, "for": "7d"})),
    ]
    blocks.append(actions(*buttons, button("Open report", "open_report", report_value(post))))
    return message(f"Alert: {label} is {value} ({text_rule}), {said}", blocks)


def _firing_state(post: AlertPost) -> tuple[str, str]:
    """What the firing message says of its alert now, with its mark and without."""
    fired = post.note.at
    if post.removed_by is not None and post.removed_at is not None:
        said = (f"firing since {format_local(fired, post.timezone, with_time=False)}; rule removed "
                f"by {_person(post.removed_by)} {format_local(post.removed_at, post.timezone)}")
        return f":wastebasket: {said[:1].upper()}{said[1:]}", said
    if post.resolved_at is not None:
        said = f"resolved after {since_text(fired, post.resolved_at)}"
        when = format_local(post.resolved_at, post.timezone, with_time=False)
        return f":white_check_mark: {said[:1].upper()}{said[1:]} ({when})", said
    said = f"firing since {format_local(fired, post.timezone, with_time=False)}"
    if post.snooze_ended and post.snoozed_until is not None:
        said += f", again since its snooze ended {format_local(post.snoozed_until, post.timezone)}"
        return f":red_circle: {said[:1].upper()}{said[1:]}", said
    if post.snoozed_by is not None and post.snoozed_until is not None:
        said += (f", snoozed by {_person(post.snoozed_by)} until "
                 f"{format_local(post.snoozed_until, post.timezone)}")
        return f":zzz: {said[:1].upper()}{said[1:]}", said
    return f":red_circle: {said[:1].upper()}{said[1:]}", said


_PLURALS = {"daily": "days", "weekly": "weeks", "monthly": "months"}


def _trend_text(post: AlertPost, fmt: Callable[[float | None], str]) -> str:
    """`Last 7 weeks, Mon–Wed of each: ▂▃▃▂▄▃█ ◀ fired at 65`: the rule's own periods, like
    for like, from the first with numbers; the one that fired last and marked."""
    values = list(post.trend)
    while values and values[0] is None:
        values.pop(0)
    if len(values) < 2:
        return ""
    rule, period = post.rule.rule, post.period
    units = _PLURALS.get(rule.period) or f"{rule.period[:-1]}-day windows"
    each = ""
    if rule.period in ("weekly", "monthly") and period != rule.window(period.start):
        if rule.period == "monthly":
            each = f", days 1–{period.end.day} of each"
        elif period.start == period.end:
            each = f", the {period.start:%A} of each"
        else:
            each = f", {period.start:%a}–{period.end:%a} of each"
    return f"Last {len(values)} {units}{each}: `{sparkline(values)}` ◀ fired at {fmt(values[-1])}"


def _authors_text(authors: Sequence[str]) -> str:
    return "Inputs logged by " + ", ".join(_person(a) for a in authors[:8]) if authors else ""


def report_value(post: AlertPost) -> str:
    """What "Open report" opens: the period that fired, like for like (a day; a week or a
    month, or the part of it up to the day it fired, compared with the same part before)."""
    rule, period = post.rule.rule, post.period
    spec: dict[str, Any] = {"range": str(period), "kpis": [rule.kpi]}
    if rule.period in ("weekly", "monthly"):
        whole = rule.window(period.start)
        spec["range"] = str(whole)
        if period != whole:
            spec["as_of"] = period.end.isoformat()
    return json.dumps(spec)


def snooze_note_message(post: SnoozePost) -> Message:
    """Said in the firing message's thread when someone snoozes the alert."""
    text = f":zzz: {_person(post.by)} snoozed this until {format_local(post.until, post.timezone)}."
    return message(text)


def _person(author: str) -> str:
    return f"<@{author}>" if author[:1] in ("U", "W") and author.isalnum() else author


#: rows `/kpi alerts` keeps on a phone whatever else it says; "Show all" has the rest
MIN_RULE_ROWS = 5
#: rows of the default listing at most
MAX_RULE_ROWS = 12
_SIDE = {Op.GT: "above", Op.GE: "at or above", Op.LT: "below", Op.LE: "at or below",
         Op.UP: "up", Op.DOWN: "down", Op.UNUSUAL: "outside the band"}
_WHEN = {"daily": "today", "weekly": "this week", "monthly": "this month"}
_UNITS = {"daily": "day", "weekly": "week", "monthly": "month"}


def _cut(text: str) -> str:
    return text if len(text) <= TABLE_CELL_LIMIT else text[:TABLE_CELL_LIMIT - 1] + "…"


def _band(expectation: Expectation, fmt: Callable[[float | None], str]) -> str:
    return band_text(expectation, fmt)


def _fires(w: Watched, fmt: Callable[[float | None], str], locale: str, today: date) -> str:
    """What fires the rule: `above $15.00`, `down 20.0% from 90`, `outside 35–45`."""
    rule = w.rule.rule
    if rule.op.is_unusual:
        if w.expectation is not None:
            return f"outside {_band(w.expectation, fmt)}"
        if w.watching_from is not None and w.watching_from > today:
            return f"watching from {format_day(w.watching_from)}"
        return "watching: too little history yet" if w.watching_from else "watching: no numbers yet"
    if rule.op.is_change:
        pct = format_value(rule.threshold / 100, Unit.PERCENT, locale=locale)
        return f"{_SIDE[rule.op]} {pct}" + (f" from {fmt(w.previous)}" if w.previous is not None else "")
    return f"{_SIDE[rule.op]} {fmt(rule.threshold)}"


def watching_note(w: Watched, currency: str, locale: str) -> str:
    """For a new unusual rule: the band it judges by, or from when it can judge."""
    def fmt(v: float | None) -> str:
        return format_value(v, w.unit, currency=currency, locale=locale)

    if w.expectation is not None:
        return f" {w.expectation.basis} are usually {_band(w.expectation, fmt)}."
    if w.watching_from is not None:
        return (f" It needs {MIN_HISTORY_DAYS} days of history to know what is usual: it starts "
                f"watching on {format_day(w.watching_from)}.")
    return (f" There are no numbers for {w.label} yet: it starts watching {MIN_HISTORY_DAYS} "
            "days after the first day logged.")


def _state(w: Watched, zone: str, now: datetime) -> Cell:
    """ok, pending n of N, firing since a day, or snoozed until a time (the workspace's zone)."""
    state, rule = w.rule.state, w.rule.rule
    if state.status is Status.FIRING:
        mark, said = "red_circle", "firing"
        if state.fired_at is not None and not state.snoozed(now):
            said += f" since {format_local(state.fired_at, zone, with_time=False)}"
    elif state.status is Status.PENDING:
        mark, said = "large_yellow_circle", f"pending {state.streak} of {rule.for_periods}"
    else:
        mark, said = "white_circle", "ok"
    if state.snoozed(now) and state.snoozed_until is not None:
        mark, said = "zzz", f"{said}, snoozed until {format_local(state.snoozed_until, zone)}"
    return marked_cell(mark, _cut(said))


def next_text(w: Watched) -> str:
    """When the rule is next checked, and whether it fires then if nothing changes."""
    rule, state = w.rule.rule, w.rule.state
    side = _SIDE[rule.op]
    close = "today" if w.closes_today else format_day(w.closes)
    if w.fires_then:
        return f"fires if still {side} at the close of {close}"
    if w.waits:
        return f"judged at the close of {close}"
    if state.status is Status.PENDING and state.streak < rule.for_periods:
        more = rule.for_periods - state.streak
        unit = _UNITS.get(rule.period, "day")
        return f"fires after {more} more {unit}{'' if more == 1 else 's'} {side}"
    return "checked at midnight"


def rule_cells(w: Watched, currency: str, locale: str, zone: str, now: datetime) -> list[Cell]:
    """One rule's row: the rule, its value so far, what fires it, its state, its next check."""
    rule = w.rule.rule

    def fmt(v: float | None) -> str:
        return format_value(v, w.unit, currency=currency, locale=locale)

    when = _WHEN.get(rule.period) or f"last {rule.period[:-1]} days"
    so_far = " so far" if rule.period in _WHEN else ""
    shown = f"{fmt(w.value)} {when}{so_far}" if w.value is not None else f"no numbers {when}"
    if rule.op.is_change and w.value is not None and w.change_pct is not None:
        shown += f" ({format_change(w.change_pct, locale=locale)})"
    today = now.astimezone(ZoneInfo(zone)).date()
    return [raw_cell(_cut(f"#{w.rule.id} {rule_text(w.rule, w.label, w.unit, currency, locale)}")),
            raw_cell(_cut(shown)), raw_cell(_cut(_fires(w, fmt, locale, today))),
            _state(w, zone, now), raw_cell(_cut(next_text(w)))]


def rules_message(
    rules: Sequence[Watched], currency: str, locale: str, zone: str, now: datetime, *,
    full: bool = False, more: str = "",
) -> Message:
    """`/kpi alerts`: a table, one rule a row (its value so far, what fires it, its state and
    next check), within FOLD_LINES on a phone; "Show all" (or `full`) has every rule."""
    if not rules:
        return message("No alert rules yet. Add one with `/kpi alert cpl > 15 daily for 2` "
                       "(or `/kpi alert` for the form).")
    head = [raw_cell(h) for h in ("Rule", "Now", "Fires", "State", "Next")]
    rows = [rule_cells(w, currency, locale, zone, now) for w in rules]
    firing = sum(w.rule.state.status is Status.FIRING for w in rules)
    title = f"{len(rules)} alert rule{'' if len(rules) == 1 else 's'}" + \
        (f", {firing} firing" if firing else "")

    def notes(shown: int) -> list[str]:
        channels = list(dict.fromkeys(w.rule.channel_id for w in rules[:shown]))
        posts = f"Posts to <#{channels[0]}>." if len(channels) == 1 else "Posts to " + ", ".join(
            f"#{w.rule.id} <#{w.rule.channel_id}>" for w in rules[:shown]) + "."
        return [posts, f"Checked as numbers are logged and at midnight ({zone}).",
                "`/kpi alert remove ID` · `/kpi alert snooze ID 1d`"]

    def assemble(shown: int, kept: int) -> list[Block]:
        blocks: list[Block] = [header(title), table([head, *rows[:shown]],
                                                     align=("left", "right", "left", "left", "left"))]
        if kept:
            blocks.append(context(" ".join(notes(shown)[:kept])))
        if shown < len(rows):
            blocks.append(actions(show_all(f"Show all {len(rows)} rules", more)))
        return blocks

    if full:
        return message(title, assemble(min(len(rows), TABLE_MAX_ROWS - 1), 3))

    def fits(shown: int, kept: int) -> bool:
        return rendered_lines(assemble(shown, kept)) <= FOLD_LINES

    shown = min(len(rows), MIN_RULE_ROWS)
    kept = next((k for k in (3, 2, 1) if fits(shown, k)), 0)
    while shown < min(len(rows), MAX_RULE_ROWS) and fits(shown + 1, kept):
        shown += 1
    return message(title, assemble(shown, kept))


def goal_line(progress: GoalProgress, currency: str, locale: str) -> str:
    """Month to date 32,000 of 50,000 = 64% · projected 48,500 = 97%, on track (from whole
    days; too early to say before a few whole days)."""
    p = progress.pace
    def fmt(v: float | None) -> str:
        return format_value(v, progress.unit, currency=currency, locale=locale)

    def pct(v: float | None) -> str:
        return format_value(v, Unit.PERCENT, locale=locale)

    so_far = "Month to date" if progress.period_kind == "monthly" else "Week to date"
    text = f"*{progress.label}* goal {fmt(p.goal)} ({progress.period_kind}): {so_far} {fmt(p.actual)}"
    if p.progress is not None and p.summed:
        text += f" = {pct(p.progress)}"
    if p.projected is not None and p.on_pace is not None:
        verdict = "on track" if p.on_pace else "behind"
        projected = f"projected {fmt(p.projected)}" if p.summed else "currently"
        ratio = f" = {pct(p.projected_ratio)}" if p.projected_ratio is not None and p.summed else ""
        text += f" · {projected}{ratio}, {':white_check_mark:' if p.on_pace else ':warning:'} {verdict}"
    elif p.days_elapsed < p.days_total:
        days = f"{p.days_elapsed} whole day{'' if p.days_elapsed == 1 else 's'}"
        text += f" · too early for a pace ({days} so far)"
    return text


_OPS = (">", ">=", "<", "<=", "up", "down")
_SENSITIVITY_HINTS = {"low": "fewer alerts, big moves only", "medium": "the default",
                      "high": "more alerts, smaller moves too"}
_PERIODS = ("daily", "weekly", "monthly", "7d", "30d")


def alert_modal(form: AlertForm) -> dict[str, Any]:
    """The alert form: a threshold or change rule, or an unusual one (no threshold; daily or
    weekly, and how sensitive), each made by the command it stands for."""
    return modal("alert_form", "New alert", [
        select("kpi", "KPI", [option(key, f"{label} ({key})") for key, label in form.kpis]),
        select("op", "When it is", [*(option(o) for o in _OPS),
                                    option("unusual", "unusual for the weekday or week")]),
        {"type": "input", "block_id": "threshold", "label": plain("Threshold"), "optional": True,
         "hint": plain("In the KPI's unit (15, $15, 12%); a percent for up/down; "
                       "none for unusual", 150),
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 30}},
        select("period", "Over", [option(p) for p in _PERIODS]),
        select("sensitivity", "Sensitivity (unusual only)",
               [option(s, f"{s}: {_SENSITIVITY_HINTS[s]}") for s in SENSITIVITIES],
               initial=SENSITIVITIES.index(DEFAULT_SENSITIVITY)),
        {"type": "input", "block_id": "for", "label": plain("Periods in a row"),
         "element": {"type": "number_input", "action_id": "value", "is_decimal_allowed": False,
                     "min_value": "1", "max_value": "30", "initial_value": "1"}},
        {"type": "input", "block_id": "channel", "label": plain("Post to"),
         "element": {"type": "conversations_select", "action_id": "value",
                     **({"initial_conversation": form.channel} if form.channel else {}),
                     "filter": {"include": ["public", "private"], "exclude_bot_users": True}}},
    ], {"channel": form.channel}, submit="Add alert")


def snoozed_text(snoozed: tuple[AlertRule, datetime], ctx: Any) -> str:
    rule, until = snoozed
    return (f":zzz: Alert #{rule.id} is snoozed until {format_local(until, ctx.workspace.timezone)}; "
            "I keep checking, and post again after that only if its state changes.")


def snooze_clicked_text(user_id: str, rule: AlertRule, until: datetime, zone: str) -> str:
    """The clicker's confirmation, in the workspace's zone like the thread's note."""
    return f":zzz: <@{user_id}> snoozed alert #{rule.id} until {format_local(until, zone)}."


def goals_message(progress: Sequence[GoalProgress], currency: str, locale: str, *,
                  full: bool = False, more: str = "") -> Message:
    """`/kpi goals`: one line per goal, progress and pace, within FOLD_LINES on a phone;
    "Show all" (or `full`) has every goal."""
    if not progress:
        return message("No goals yet. Set one with `/kpi goal revenue 50000 monthly`.")
    lines = [goal_line(p, currency, locale) for p in progress]
    title = f"Goals: {len(progress)}"
    note = context("`/kpi goal revenue 50000 monthly` sets one · `/kpi goal remove revenue` "
                   "removes one")

    def assemble(shown: int, noted: bool) -> list[Block]:
        blocks = [*sections(["*Goals*", *lines[:shown]])]
        if noted:
            blocks.append(note)
        if shown < len(lines):
            blocks.append(actions(show_all(f"Show all {len(lines)} goals", more)))
        return blocks

    if full:
        return message(title, assemble(len(lines), True))
    shown, noted = 1, False
    while shown < len(lines) and rendered_lines(assemble(shown + 1, False)) <= FOLD_LINES:
        shown += 1
    noted = rendered_lines(assemble(shown, True)) <= FOLD_LINES
    return message(title, assemble(shown, noted))


def goal_removed_text(removed: Sequence[StoredGoal], catalogue: Catalogue, currency: str,
                      locale: str) -> str:
    """`/kpi goal remove NAME`: which goals went, with their targets."""
    def target(goal: StoredGoal) -> str:
        unit = unit_of(catalogue, goal.key) if goal.key in catalogue.names else Unit.SCORE
        return format_value(goal.value, unit, currency=currency, locale=locale)

    label = label_of(catalogue, removed[0].key)
    which = " and ".join(f"the {g.period} goal of {target(g)}" for g in removed)
    return (f":wastebasket: Removed {which} on {label} (`{removed[0].key}`). Digests, reports "
            "and App Home no longer show it; `/kpi goals` lists the others.")
