"""Plain-text and Markdown renderings of a report, for the terminal and demo files."""

from __future__ import annotations

from typing import Any

from bot.app.reports import Report
from bot.render.blocks import breakdown_lines, estimate_note
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
