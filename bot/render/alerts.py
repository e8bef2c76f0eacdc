"""Alert messages, the rule list and goal progress lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.app.alerts import AlertForm, AlertRule
from bot.app.goals import GoalProgress
from bot.render.kit import (
    Message,
    button,
    context,
    message,
    modal,
    option,
    plain,
    section,
    sections,
    select,
)
from bot.render.numbers import format_value
from kpis.alerts import Kind, Notification, describe
from kpis.catalogue import Unit

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
    """The last values as a small trend; a gap is a space."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    span = hi - lo or 1.0
    return "".join(" " if v is None else _SPARK[int((v - lo) / span * (len(_SPARK) - 1))] for v in values)


def rule_text(rule: AlertRule, label: str, unit: Unit, currency: str, locale: str) -> str:
    return describe(rule.rule, label=label,
                    fmt=lambda v: format_value(v, unit, currency=currency, locale=locale))


def alert_message(
    rule: AlertRule, note: Notification, *, label: str, unit: Unit, currency: str, locale: str,
    period: str, trend: Sequence[float | None], authors: Sequence[str],
) -> Message:
    """A firing or resolved alert: what crossed what, the trend, who logged, and buttons."""
    def fmt(v: float | None) -> str:
        return format_value(v, unit, currency=currency, locale=locale)

    text_rule = rule_text(rule, label, unit, currency, locale)
    value = fmt(note.value)
    if rule.rule.op.is_change:
        against = f"previous period {fmt(note.previous)}"
    else:
        against = f"threshold {fmt(rule.rule.threshold)}"
    if note.kind is Kind.FIRING:
        head = f":rotating_light: *{label}* is {value} for {period}: {against} (rule #{rule.id}: {text_rule})"
        fallback = f"Alert: {label} is {value} ({text_rule})"
    else:
        lasted = f" after {since_text(note.at - note.duration, note.at)}" if note.duration else ""
        head = f":white_check_mark: *{label}* is back to normal{lasted}: {value} for {period} ({against}, rule #{rule.id})"
        fallback = f"Resolved: {label} is {value}{lasted} ({text_rule})"
    if rule.mention:
        head = f"{rule.mention} {head}"
    details = []
    line = sparkline(trend)
    if line:
        details.append(f"Last {len(trend)} values: `{line}`  latest {fmt(trend[-1]) if trend[-1] is not None else 'n/a'}")
    if authors:
        details.append("Inputs logged by " + ", ".join(_person(a) for a in authors[:8]))
    blocks: list[dict[str, Any]] = [section(head)]
    if details:
        blocks.append(context(" · ".join(details)))
    def value_of(duration: str) -> str:
        return json.dumps({"rule": rule.id, "for": duration})

    blocks.append({"type": "actions", "elements": [
        button("Snooze 1 day", "alert_snooze", value_of("1d")),
        button("Snooze 7 days", "alert_snooze", value_of("7d")),
        button("Open report", "open_report", json.dumps({"range": "30d", "kpis": [rule.rule.kpi]})),
    ]})
    return message(fallback, blocks)


def _person(author: str) -> str:
    return f"<@{author}>" if author[:1] in ("U", "W") and author.isalnum() else author


def rules_message(
    rules: Sequence[tuple[AlertRule, str, Unit]], currency: str, locale: str, now: datetime,
) -> Message:
    """`/kpi alerts`: every rule with its state, channel and id."""
    if not rules:
        return message("No alert rules yet. Add one with `/kpi alert cpl > 15 daily for 2` "
                       "(or `/kpi alert` for the form).")
    lines = []
    for rule, label, unit in rules:
        state = rule.state
        status = {"ok": ":white_circle: ok", "pending": ":large_yellow_circle: pending",
                  "firing": ":red_circle: firing"}[state.status.value]
        if state.status.value == "firing" and state.fired_at:
            status += f" for {since_text(state.fired_at, now)}"
        if state.last_held is None and state.last_period is not None:
            status += " · no data"
        if state.snoozed(now) and state.snoozed_until:
            status += f" · snoozed until {state.snoozed_until:%d %b %H:%M} UTC"
        lines.append(f"*#{rule.id}* {rule_text(rule, label, unit, currency, locale)} → <#{rule.channel_id}>  {status}")
    blocks = [section("*Alert rules*"), *sections(lines),
              context("`/kpi alert remove ID` · `/kpi alert snooze ID 1d`")]
    return message(f"{len(rules)} alert rules", blocks)


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
_PERIODS = ("daily", "weekly", "monthly", "7d", "30d")


def alert_modal(form: AlertForm) -> dict[str, Any]:
    return modal("alert_form", "New alert", [
        select("kpi", "KPI", [option(key, f"{label} ({key})") for key, label in form.kpis]),
        select("op", "When it is", [option(o) for o in _OPS]),
        {"type": "input", "block_id": "threshold", "label": plain("Threshold"),
         "hint": plain("In the KPI's unit (15, $15, 12%); a percent for up/down", 150),
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 30}},
        select("period", "Over", [option(p) for p in _PERIODS]),
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
    return (f":zzz: Alert #{rule.id} is snoozed until {until:%a %d %b %H:%M} UTC; "
            "I keep checking, and post again after that only if its state changes.")


def snooze_clicked_text(user_id: str, rule: AlertRule, until: datetime) -> str:
    return f":zzz: <@{user_id}> snoozed alert #{rule.id} until {until:%a %d %b %H:%M} UTC."


def goals_message(progress: Sequence[GoalProgress], currency: str, locale: str) -> Message:
    """`/kpi goals`: one line per goal, progress and pace."""
    if not progress:
        return message("No goals yet. Set one with `/kpi goal revenue 50000 monthly`.")
    lines = ["*Goals*", *(goal_line(p, currency, locale) for p in progress)]
    return message(f"Goals: {len(progress)}", sections(lines))
