"""Plain-text and Markdown renderings of a report, for the terminal and demo files, and any
Slack answer as the terminal reads it."""

from __future__ import annotations

import html
import re
from typing import Any

from bot.app.reports import Report
from bot.render.blocks import breakdown_lines, estimate_note
from bot.render.kit import Block, Message, cell_text
from bot.render.numbers import format_delta, format_value
from kpis.catalogue import Kpi, Metric
from kpis.compare import Change, Verdict

_MARK = {Verdict.BETTER: "▲ good", Verdict.WORSE: "▼ bad", Verdict.SAME: "", Verdict.UNKNOWN: ""}


def _mark(definition: Metric | Kpi, change: Change) -> str:
    """The verdict, and a warning when the value is bad on its own (ltv_cac below 1)."""
    mark = _MARK[change.signal]
    warning = definition.warning(change.value) if isinstance(definition, Kpi) else None
    return f"{mark}  ⚠ {warning}".strip() if warning else mark


def report_rows(report: Report) -> list[tuple[str, str, str, str, str]]:
    """(label, value, previous, change, verdict) rows: metrics first, then KPIs."""
    ws = report.workspace
    rows = []
    for section, defs in ((report.metrics, report.catalogue.metrics), (report.kpis, report.catalogue.kpis)):
        for key, change in section.items():
            d = defs[key]
            fmt: dict[str, Any] = {"currency": ws.currency, "locale": ws.locale}
            rows.append((
                d.label,
                format_value(change.value, d.unit, **fmt),
                format_value(change.previous, d.unit, **fmt),
                format_delta(change.change_pct, change.points(), d.unit, locale=ws.locale),
                _mark(d, change),
            ))
    return rows


def report_table(report: Report) -> str:
    """A fixed-width table for the terminal."""
    header = ("", f"{report.period}{' so far' if report.partial else ''}", str(report.previous), "change", "")
    rows = report_rows(report)
    if not rows:
        return f"No numbers logged for {report.period} yet.\n"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = []
    for i, row in enumerate([header, *rows]):
        cells = [row[0].ljust(widths[0])] + [row[j].rjust(widths[j]) for j in range(1, 4)] + [row[4]]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("-" * len(lines[0]))
    note = estimate_note(report)
    groups = breakdown_lines(report, slack=False)
    by = f"\nBy {report.by}:\n" + "\n".join(f"  {line}" for line in groups) + "\n" if groups else ""
    return "\n".join(lines) + "\n" + by + (f"\n{note}\n" if note else "")


_SLACK_LINK = re.compile(r"<([#@!])([^|>]*)(?:\|([^>]*))?>|<([^|>]*)(?:\|([^>]*))?>")
_SLACK_EMOJI = re.compile(r":[a-z][a-z0-9_+-]*: ?")
_ITALIC = re.compile(r"(?<!\w)_(\S(?:[^_]*\S)?)_(?!\w)")


def plain_mrkdwn(text: str) -> str:
    """mrkdwn as words: links as their label, mentions as @id or #name, no emoji codes and no
    `*`, `~` or backtick marks; `_` inside a key (`close_rate`) is kept."""

    def link(m: re.Match[str]) -> str:
        sigil, target, label, url, url_label = m.groups()
        if sigil == "!":
            return label or "@" + target
        if sigil:
            return sigil + (label or target)
        return url_label or url

    text = _SLACK_LINK.sub(link, text)
    text = _SLACK_EMOJI.sub("", text)
    text = _ITALIC.sub(r"\1", text)
    return html.unescape(re.sub(r"[*~`]", "", text))


def _table_lines(block: Block) -> list[str]:
    rows = [[plain_mrkdwn(cell_text(c)) for c in row] for row in block.get("rows", [])]
    if not rows:
        return []
    settings = block.get("column_settings") or []
    width = max(len(r) for r in rows)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(width)]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            align = (settings[i] or {}).get("align") if i < len(settings) else None
            cells.append(cell.rjust(widths[i]) if align == "right" else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def terminal_text(body: Message) -> str:
    """What a Slack message says, for a terminal: each header, section, context and table
    in order (buttons, pictures and charts left out), or the fallback text without blocks."""
    lines: list[str] = []
    for block in body.get("blocks") or []:
        kind = block.get("type")
        if kind in ("header", "section", "markdown"):
            text = block.get("text")
            if isinstance(text, dict):
                lines.append(plain_mrkdwn(str(text.get("text", ""))))
            elif isinstance(text, str):
                lines.append(plain_mrkdwn(text))
            lines += [plain_mrkdwn(str(f.get("text", ""))) for f in block.get("fields") or []]
        elif kind == "context":
            lines.append(plain_mrkdwn(" ".join(str(e.get("text", "")) for e in block.get("elements", [])
                                               if "text" in e)))
        elif kind == "table":
            lines += _table_lines(block)
    if not lines:
        lines.append(plain_mrkdwn(str(body.get("text", ""))))
    return "\n".join(line for line in lines if line.strip()) + "\n"
