"""`/kpi chart` as the Courier posts it: a short text, the native chart (a `data_visualization`
line chart, or bars for a breakdown of one day), and the PNG for its thread.

The fallback (when Slack answers `invalid_blocks`) is the same text with each line's value as
text: the PNG is in the thread either way. A native chart needs a number at every point: a sum
with nothing logged is 0; a ratio or a gauge with no value at some point leaves that point out
for every line (the PNG, which can show a gap, keeps it), and the message says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.app.charts import Charted, ChartLine
from bot.render.kit import Block, context, section, sections
from bot.render.native import kpi_chart, span_label
from bot.render.numbers import format_value

#: what the untagged line is called in the charts (the text says "no source (untagged)")
UNTAGGED = "untagged"


@dataclass(frozen=True)
class ChartMessage:
    text: str
    blocks: list[Block]
    fallback_blocks: list[Block]
    filename: str
    title: str
    png: bytes


def line_name(chart: Charted, line: ChartLine) -> str:
    """What a line is called in the charts: the value, `other (N)`, `untagged`, or the label."""
    if chart.by is None:
        return chart.label
    if line.others:
        return f"other ({len(line.others)})"
    return UNTAGGED if line.value is None else line.value


def line_kind(line: ChartLine) -> str:
    if line.others:
        return "other"
    return "untagged" if line.value is None else "value"


def _said(chart: Charted, line: ChartLine) -> str:
    """A line as the text says it: `<@U1>` for a rep, `no source (untagged)`, `other (…)`."""
    if chart.by is None:
        return chart.label
    if line.others:
        return f"other ({', '.join(line.others[:3])}{'…' if len(line.others) > 3 else ''})"
    if line.value is None:
        return f"no {chart.by} (untagged)"
    return f"<@{line.value}>" if chart.by == "rep" else line.value


def _value(chart: Charted, value: float | None) -> str:
    return format_value(value, chart.unit, currency=chart.currency, locale=chart.locale)


def chart_title(chart: Charted) -> str:
    return f"{chart.label} by {chart.by}" if chart.by else chart.label


def native_block(chart: Charted) -> tuple[Block | None, bool]:
    """The data_visualization block, and whether points were left out (a ratio's empty
    buckets); None when no point has a value for every line."""
    title = f"{chart_title(chart)}, {span_label(chart.period)}"
    if chart.bars:
        bars = [(line_name(chart, line), line.total) for line in chart.lines]
        kept = [(name, v if v is not None else 0.0) for name, v in bars
                if v is not None or chart.summed]
        if not kept:
            return None, True
        return kpi_chart("bar", title, [name for name, _ in kept],
                         [(chart.label, [v for _, v in kept])], chart.unit, chart.currency,
                         x_label=chart.by.capitalize() if chart.by else None), len(kept) < len(bars)
    columns = []
    for i, bucket in enumerate(chart.buckets):
        values = [line.points[i] for line in chart.lines]
        if chart.summed:
            columns.append((span_label(bucket), [v or 0.0 for v in values]))
        elif all(v is not None for v in values):
            columns.append((span_label(bucket), [float(v or 0.0) for v in values]))
    if not columns:
        return None, True
    size = chart.buckets[-1].days
    x_label = "Day" if size == 1 else f"{size} days"
    series = [(line_name(chart, line), [values[j] for _, values in columns])
              for j, line in enumerate(chart.lines)]
    block = kpi_chart("line", title, [label for label, _ in columns], series, chart.unit,
                      chart.currency, x_label=x_label)
    return block, len(columns) < len(chart.buckets)


def chart_png(chart: Charted) -> bytes:
    from bot.render.charts import breakdown_chart
    from bot.render.digest import trend_png

    if chart.trend is not None:
        return trend_png(chart.trend, chart.currency, chart.locale)
    return breakdown_chart(
        f"{chart_title(chart)}, {chart.period}", chart.unit, [b.start for b in chart.buckets],
        [(line_name(chart, line), line_kind(line),
          [line.total] if chart.bars else list(line.points)) for line in chart.lines],
        bars=chart.bars, currency=chart.currency, locale=chart.locale)


def chart_message(chart: Charted) -> ChartMessage:
    """The message, its text-only fallback, and the PNG for its thread."""
    head = f"*{chart_title(chart)}*, {chart.period} · asked by <@{chart.asker}>"
    totals = [f"{_said(chart, line)} *{_value(chart, line.total)}*" for line in chart.lines]
    text = f"{chart_title(chart)}, {chart.period}: " + "; ".join(
        t.replace("*", "") for t in totals)
    block, thinned = native_block(chart)
    note = "The picture is in the thread."
    if thinned and block is not None:
        note = ("Points without a value for every line are left out here; the picture in the "
                "thread has them.")
    over = "the whole range" if chart.by is None or not chart.bars else str(chart.period)
    summary = f"Over {over}: " + " · ".join(totals)
    blocks: list[Block] = [section(head)]
    if block is not None:
        blocks += [block, context(summary), context(note)]
    else:
        blocks += [section(summary), context("The picture is in the thread.")]
    fallback = [section(head), *sections([summary]), context("The picture is in the thread.")]
    start, end = chart.period.start, chart.period.end
    by = f"-by-{chart.by}" if chart.by else ""
    return ChartMessage(text[:3000], blocks, fallback, f"{chart.key}{by}-{start}-{end}.png",
                        f"{chart_title(chart)}, {chart.period}", chart_png(chart))
