"""The digest in its three forms: the Block Kit message, Markdown for files, and its charts."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.app.digests import DAILY, Digest, Line, Trend
from bot.render.alerts import goal_line
from bot.render.insights import why_sentence
from bot.render.kit import MAX_BLOCKS, Message, context, section, sections
from bot.render.numbers import format_change, format_value
from kpis.alerts import describe
from kpis.catalogue import Unit
from kpis.compare import Verdict

_EMOJI = {Verdict.BETTER: ":large_green_circle:", Verdict.WORSE: ":red_circle:",
          Verdict.SAME: ":white_circle:", Verdict.UNKNOWN: ":white_circle:"}
_WORD = {Verdict.BETTER: "better", Verdict.WORSE: "worse", Verdict.SAME: "", Verdict.UNKNOWN: ""}


@dataclass(frozen=True)
class ChartFile:
    filename: str
    title: str
    png: bytes


def _value(digest: Digest, value: float | None, unit: Unit) -> str:
    return format_value(value, unit, currency=digest.currency, locale=digest.locale)


def _line_text(digest: Digest, line: Line, *, bold: str = "*") -> str:
    c = line.change
    now = _value(digest, c.value, line.unit)
    if c.previous is None:
        return f"{bold}{line.label}{bold} {now}"
    was = _value(digest, c.previous, line.unit)
    text = f"{bold}{line.label}{bold} {now} ({format_change(c.change_pct, locale=digest.locale)}, was {was})"
    reason = _reason(digest, line)
    return text + (f": {reason}" if reason else "")


def _reason(digest: Digest, line: Line) -> str:
    """Why a mover moved, without the "KPI +x%:" that the digest line already says."""
    if line.why is None:
        return ""
    said = why_sentence(line.why, digest.locale)
    return said.split(": ", 1)[1] if ": " in said else said


def _funnel_lines(digest: Digest) -> list[str]:
    lines = []
    for step in digest.funnel:
        value = _value(digest, step.value, Unit.COUNT)
        conversion = (f" ({format_value(step.conversion, Unit.PERCENT, locale=digest.locale)})"
                      if step.conversion is not None else "")
        lines.append(f"{step.label} {value}{conversion}")
    return lines


def fallback_text(digest: Digest) -> str:
    """The notification and screen-reader text: title plus the three headline numbers."""
    top = "; ".join(_line_text(digest, line, bold="") for line in digest.headline[:3])
    return f"{digest.title}. {top}" if top else f"{digest.title}: no numbers were logged."


def digest_message(digest: Digest) -> Message:
    """The one top-level message of a digest; its charts go in the thread."""
    previous = "the day before" if digest.kind == DAILY else "the week before"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": digest.title[:150]}},
    ]
    if not digest.has_data:
        blocks.append(section("No numbers were logged for this period. Log them with "
                              "`/kpi log leads=12 spend=340`, or open the form with `/kpi`."))
    if digest.headline:
        blocks += sections(["*Headline KPIs*"] + [f"{_EMOJI[line.change.signal]} {_line_text(digest, line)}"
                                                   for line in digest.headline])
    if digest.has_funnel:
        blocks += sections(["*Funnel*", " → ".join(_funnel_lines(digest))])
    if digest.movers:
        blocks += sections(["*Biggest movers*"] + [f"{_EMOJI[line.change.signal]} {_line_text(digest, line)}"
                                                    for line in digest.movers])
    blocks += sections(_alert_and_goal_lines(digest))
    if digest.missing and digest.has_data:
        blocks.append(context("Nobody logged: " + ", ".join(digest.missing)))
    blocks.append(context(f":large_green_circle: better · :red_circle: worse than {previous} "
                           f"({digest.previous}) · charts in the thread"))
    return {"text": fallback_text(digest), "blocks": blocks[:MAX_BLOCKS]}


def _alert_and_goal_lines(digest: Digest) -> list[str]:
    lines = []
    if digest.goals:
        lines += ["*Goals*", *(goal_line(g, digest.currency, digest.locale) for g in digest.goals)]
    if digest.firing:
        lines.append("*Alerts firing*")
        lines += [f":red_circle: #{r.id} {describe(r.rule)} → <#{r.channel_id}>"
                  for r in digest.firing]
    if digest.no_data:
        lines.append("No data for alert " + ", ".join(f"#{r.id} ({r.rule.kpi})" for r in digest.no_data))
    return lines


def digest_markdown(digest: Digest) -> str:
    """The digest as a Markdown file, for `kpibot digest --out` and the demo."""
    out = [f"# {digest.title}", "", f"Compared with {digest.previous}.", ""]
    if not digest.has_data:
        out += ["No numbers were logged for this period.", ""]
    if digest.headline:
        out += ["## Headline KPIs", "", "| KPI | Value | Previous | Change | |", "|---|---:|---:|---:|---|"]
        for line in digest.headline:
            c = line.change
            out.append(f"| {line.label} | {_value(digest, c.value, line.unit)} | "
                       f"{_value(digest, c.previous, line.unit)} | "
                       f"{format_change(c.change_pct, locale=digest.locale)} | {_WORD[c.signal]} |")
        out.append("")
    if digest.has_funnel:
        out += ["## Funnel", "", " → ".join(_funnel_lines(digest)), ""]
    if digest.movers:
        out += ["## Biggest movers", ""]
        for line in digest.movers:
            text = _line_text(digest, replace(line, why=None), bold="**")
            word = _WORD[line.change.signal]
            reason = _reason(digest, line)
            out.append(f"- {text}{f' {word}' if word else ''}{f': {reason}' if reason else ''}")
        out.append("")
    lines = _alert_and_goal_lines(digest)
    if lines:
        out += [line.replace("*", "**") for line in lines] + [""]
    if digest.missing and digest.has_data:
        out += [f"Nobody logged: {', '.join(digest.missing)}.", ""]
    out += [f"![{t.label}]({chart_filename(digest, t.key)})" for t in digest.trends]
    if digest.has_funnel:
        out.append(f"![Funnel]({chart_filename(digest, 'funnel')})")
    return "\n".join(out).rstrip() + "\n"


def chart_filename(digest: Digest, key: str) -> str:
    return f"{digest.kind}-{digest.period.start.isoformat()}-{key}.png"


def trend_png(trend: Trend, currency: str, locale: str) -> bytes:
    from bot.render.charts import trend_chart

    return trend_chart(trend.label, trend.unit, trend.points, previous=trend.previous,
                       goal=trend.goal, currency=currency, locale=locale,
                       smoothed=trend.smoothed, threshold=trend.threshold,
                       unfinished=trend.unfinished)


def digest_charts(digest: Digest) -> list[ChartFile]:
    """A trend per headline KPI with data, and the funnel when any step has data."""
    from bot.render.charts import funnel_chart

    files = [ChartFile(chart_filename(digest, t.key), t.label,
                       trend_png(t, digest.currency, digest.locale)) for t in digest.trends]
    if digest.has_funnel:
        png = funnel_chart(f"Funnel, {digest.period}",
                           [(s.label, s.value) for s in digest.funnel], locale=digest.locale)
        files.append(ChartFile(chart_filename(digest, "funnel"), "Funnel", png))
    return files


def write_digest_files(digest: Digest, directory: Path) -> list[Path]:
    """The charts (PNG), the digest as Markdown and the exact Block Kit JSON it would post."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in digest_charts(digest):
        path = directory / chart.filename
        path.write_bytes(chart.png)
        written.append(path)
    markdown = directory / f"{digest.kind}-digest.md"
    markdown.write_text(digest_markdown(digest), encoding="utf-8")
    blocks = directory / f"{digest.kind}-digest.json"
    blocks.write_text(json.dumps(digest_message(digest), indent=2, ensure_ascii=False) + "\n",
                      encoding="utf-8")
    return [markdown, blocks, *written]
