"""Alert messages, the rule list and goal progress lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.alerts import AlertRule, GoalProgress, since_text
from bot.render.blocks import Message, _button, context, message, section, sections
from bot.render.numbers import format_value
from kpis.alerts import Kind, Notification, describe
from kpis.catalogue import Unit

_SPARK = "▁▂▃▄▅▆▇█"


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
        _button("Snooze 1 day", "alert_snooze", value_of("1d")),
        _button("Snooze 7 days", "alert_snooze", value_of("7d")),
        _button("Open report", "open_report", json.dumps({"range": "30d", "kpis": [rule.rule.kpi]})),
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
    """Month to date 32,000 of 50,000 = 64% · projected 48,500 = 97%, on pace."""
    p = progress.pace
    def fmt(v: float | None) -> str:
        return format_value(v, progress.unit, currency=currency, locale=locale)

    def pct(v: float | None) -> str:
        return format_value(v, Unit.PERCENT, locale=locale)

    so_far = "Month to date" if progress.period_kind == "monthly" else "Week to date"
    text = f"*{progress.label}* goal {fmt(p.goal)} ({progress.period_kind}): {so_far} {fmt(p.actual)}"
    if p.progress is not None and p.summed:
        text += f" = {pct(p.progress)}"
    if p.projected is not None:
        verdict = "on pace" if p.on_pace else "behind"
        projected = f"projected {fmt(p.projected)}" if p.summed else "currently"
        ratio = f" = {pct(p.projected_ratio)}" if p.projected_ratio is not None and p.summed else ""
        text += f" · {projected}{ratio}, {':white_check_mark:' if p.on_pace else ':warning:'} {verdict}"
    return text
