"""The digest in its three forms: the Block Kit message, Markdown for files, and its charts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot.app.digests import DAILY, Digest, Line, SourceMove, Trend, Unusual
from bot.render.alerts import goal_line
from bot.render.blocks import group_name
from bot.render.insights import why_sentence
from bot.render.kit import (
    CHART_MAX_POINTS,
    FOLD_LINES,
    MAX_BLOCKS,
    Block,
    Message,
    context,
    header,
    marked_cell,
    raw_cell,
    rendered_lines,
    section,
    sections,
    table,
)
from bot.render.native import day_label, kpi_chart
from bot.render.numbers import format_change, format_points, format_value
from kpis.alerts import describe
from kpis.catalogue import Unit
from kpis.compare import Verdict
from kpis.unusual import explain

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


# -- the message: header, unusual lines, one chart, the headline table -----------------------

#: headline KPIs the table keeps whatever else the message says
MIN_TABLE_ROWS = 3
#: points of the native line chart: the last two weeks of a daily digest, 12 weeks of a weekly
CHART_DAYS = 14
_MARK = {Verdict.BETTER: "large_green_circle", Verdict.WORSE: "red_circle"}


def _change_text(digest: Digest, line: Line) -> str:
    c = line.change
    if line.unit is Unit.PERCENT:
        return format_points(c.points(), locale=digest.locale)
    return format_change(c.change_pct, locale=digest.locale)


def _since(digest: Digest) -> str:
    if digest.kind == DAILY:
        return f"{digest.previous.start:%a %d %b}"
    return "week before"


def headline_table(digest: Digest, lines: Sequence[Line]) -> Block:
    """KPI, value, change: only news is marked (green better, red worse); noise stays plain."""
    rows = [[raw_cell("KPI"), raw_cell("Value"), raw_cell(f"vs {_since(digest)}")]]
    for line in lines:
        change = _change_text(digest, line)
        mark = _MARK.get(line.change.signal)
        rows.append([raw_cell(line.label), raw_cell(_value(digest, line.change.value, line.unit)),
                     marked_cell(mark, change) if mark else raw_cell(change)])
    return table(rows, align=("left", "right", "right"))


def _table_as_lines(digest: Digest, lines: Sequence[Line]) -> list[str]:
    """The table for a message that cannot carry one (the text fallback)."""
    out = []
    for line in lines:
        mark = _MARK.get(line.change.signal)
        out.append(f"{f':{mark}: ' if mark else ''}*{line.label}* "
                   f"{_value(digest, line.change.value, line.unit)} {_change_text(digest, line)}")
    return out


def trend_block(digest: Digest, trend: Trend) -> Block | None:
    """The main KPI as a native line chart over the recent days (or weeks); None without data."""
    points = [(d, v) for d, v in trend.points if v is not None]
    points = points[-(CHART_DAYS if digest.kind == DAILY else CHART_MAX_POINTS):][-CHART_MAX_POINTS:]
    if not points:
        return None
    span = "days" if digest.kind == DAILY else "weeks"
    return kpi_chart("line", f"{trend.label}, last {len(points)} {span}",
                     [day_label(d) for d, _ in points], [(trend.label, [v for _, v in points])],
                     trend.unit, digest.currency,
                     x_label="Week of" if digest.kind != DAILY else "Day")


def unusual_text(digest: Digest, item: Unusual) -> str:
    """`Leads 3 on a Tuesday; Tuesdays are usually 35–45`."""
    return explain(item.expectation, item.label, lambda v: format_value(
        v, item.unit, currency=digest.currency, locale=digest.locale,
        cents=False if abs(v) >= 100 else None))


def _alerts_line(digest: Digest) -> list[str]:
    """The firing alerts in one line (their details are in the thread)."""
    if not digest.firing:
        return []
    names = ", ".join(f"#{r.id} {describe(r.rule)}" for r in digest.firing[:2])
    more = f" and {len(digest.firing) - 2} more" if len(digest.firing) > 2 else ""
    return [f":red_circle: {len(digest.firing)} alert{'s' if len(digest.firing) > 1 else ''} "
            f"firing: {names}{more}"]


def _goals_line(digest: Digest) -> list[str]:
    """The goals in one line: how many are on track, which are behind."""
    if not digest.goals:
        return []
    behind = [g for g in digest.goals if g.pace.on_pace is False]
    on_track = sum(1 for g in digest.goals if g.pace.on_pace)
    parts = [f"{on_track} on track"] if on_track else []
    if behind:
        parts.append(f"{len(behind)} behind ({', '.join(g.label for g in behind[:2])})")
    return [f"*Goals*: {', '.join(parts) if parts else 'too early for a pace'}"]


#: sources the message names, the untagged entries' line among them; the thread has every one
SOURCE_LINES = 3


def source_text(digest: Digest, move: SourceMove, *, full: bool = False) -> str:
    """`:red_circle: *google* Cost per lead $18.29 +30.1%`: a source's biggest move, coloured
    only when it is news; a source whose numbers moved within noise says so, and `full` (the
    thread) adds what moved most all the same."""
    name = f"*{group_name(digest.by or 'source', move.source)}*"
    line = move.line
    if line is None:
        return f"{name}: no headline KPI or tracked metric"
    c = line.change
    now = _value(digest, c.value, line.unit)
    if c.previous is None:
        return f"{name}: first numbers, {line.label} {now}"
    if c.change_pct is None:
        return f"{name} {line.label} {now} (was {_value(digest, c.previous, line.unit)})"
    if not move.moved:
        biggest = f" (biggest: {line.label} {now}, {_change_text(digest, line)})" if full else ""
        return f"{name}: nothing moved beyond noise{biggest}"
    if full:
        return f"{name} {_line_text(digest, line, bold='')}"
    mark = _MARK.get(c.signal)
    return f"{f':{mark}: ' if mark else ''}{name} {line.label} {now} {_change_text(digest, line)}"


def _signal(move: SourceMove) -> Verdict:
    """A source's colour: its move's verdict when the move is news, else none."""
    return move.line.change.signal if move.moved and move.line is not None else Verdict.SAME


def source_section(digest: Digest, room: int = SOURCE_LINES) -> list[str]:
    """The message's "By source" lines: a title, then at most `room` sources, movers first,
    the untagged entries' line always among them; the title says when the thread has more."""
    if not digest.sources or room < 1:
        return []
    untagged = [m for m in digest.sources if m.source is None]
    named = [m for m in digest.sources if m.source is not None]
    shown = [*named[:max(room - len(untagged), 0)], *untagged][:room]
    title = "*By source*, the biggest move of each"
    if len(shown) < len(digest.sources):
        title = f"*By source*: {len(shown)} of {len(digest.sources)}, all in the thread"
    return [title, *(source_text(digest, m) for m in shown)]


def _legend(digest: Digest) -> str:
    return ":large_green_circle: better · :red_circle: worse, only beyond noise · more in the thread"


def _assemble(digest: Digest, rows: Sequence[Line], notes: Sequence[str], legend: bool,
              by_source: Sequence[str] = (), *, native: bool) -> list[Block]:
    blocks: list[Block] = [header(digest.title)]
    if notes:
        blocks.append(section("\n".join(notes)))
    if legend:
        blocks.append(context(_legend(digest)))
    if native:
        chart = trend_block(digest, digest.trends[0]) if digest.trends else None
        if chart is not None:
            blocks.append(chart)
        if rows:
            blocks.append(headline_table(digest, rows))
    elif rows:
        blocks += sections(_table_as_lines(digest, rows))
    if by_source:
        blocks.append(section("\n".join(by_source)))
    return blocks


def _fitted(digest: Digest, *, native: bool) -> list[Block]:
    """The message within FOLD_LINES: the title and three headline KPIs always; then, while
    they fit, the alerts, the "by source" lines the subscription asked for, the unusual lines,
    goals, the other headline KPIs and the legend. Whatever does not fit is in the thread's
    details (digest_details)."""
    rows = list(digest.headline[:MIN_TABLE_ROWS])
    notes: list[str] = []
    by_source: list[str] = []
    legend = False

    def fits(rows: Sequence[Line], notes: Sequence[str], legend: bool,
             by_source: Sequence[str]) -> bool:
        blocks = _assemble(digest, rows, notes, legend, by_source, native=native)
        return rendered_lines(blocks) <= FOLD_LINES

    alerts, goals = _alerts_line(digest), _goals_line(digest)
    for note in alerts:
        if fits(rows, [*notes, note], legend, by_source):
            notes.append(note)
    for room in range(SOURCE_LINES, 0, -1):  # as many sources as fit, at least one
        wanted = source_section(digest, room)
        if fits(rows, notes, legend, wanted):
            by_source = wanted
            break
    # then the unusual numbers, then goals; kept in that order
    for note in [*(f":eyes: {unusual_text(digest, u)}" for u in digest.unusual), *goals]:
        if fits(rows, [*notes, note], legend, by_source):
            notes.append(note)
    for line in digest.headline[MIN_TABLE_ROWS:]:
        if not fits([*rows, line], notes, legend, by_source):
            break
        rows.append(line)
    legend = fits(rows, notes, True, by_source)
    return _assemble(digest, rows, notes, legend, by_source, native=native)


def digest_message(digest: Digest) -> Message:
    """The one top-level message of a digest: its title, up to three unusual numbers, alerts
    and goals in a line each, the main KPI as a native line chart and the headline KPIs as a
    table, within FOLD_LINES on a phone. The charts and the details go in the thread."""
    if not digest.has_data:
        blocks = [header(digest.title),
                  section("No numbers were logged for this period. Log them with "
                          "`/kpi log leads=12 spend=340`, or open the form with `/kpi`.")]
        return {"text": fallback_text(digest), "blocks": blocks}
    return {"text": fallback_text(digest), "blocks": _fitted(digest, native=True)[:MAX_BLOCKS]}


def fallback_blocks(digest: Digest) -> list[Block]:
    """The same message without native blocks (no table, no data_visualization), for a
    workspace whose Slack refuses them with `invalid_blocks`: the table as lines of text; the
    charts are the PNG images in the thread."""
    if not digest.has_data:
        return list(digest_message(digest)["blocks"])
    return _fitted(digest, native=False)[:MAX_BLOCKS]


def digest_details(digest: Digest) -> str:
    """What the thread says next to the charts: funnel, movers, goals, alerts, every unusual
    line and headline KPI, every source's biggest move, and who logged nothing."""
    lines: list[str] = []
    if digest.headline:
        lines += ["*Headline KPIs*", *(f"{_EMOJI[line.change.signal]} {_line_text(digest, line)}"
                                       for line in digest.headline)]
    if digest.unusual:
        lines += ["*Unusual*", *(unusual_text(digest, u) for u in digest.unusual)]
    if digest.has_funnel:
        lines += ["*Funnel*", " → ".join(_funnel_lines(digest))]
    if digest.movers:
        lines += ["*Biggest movers*", *(f"{_EMOJI[line.change.signal]} {_line_text(digest, line)}"
                                        for line in digest.movers)]
    lines += _alert_and_goal_lines(digest)
    if digest.sources:  # after the alerts and goals: a long list must not push them out
        lines += ["*By source*, the biggest move of each",
                  *(f"{_EMOJI[_signal(m)]} {source_text(digest, m, full=True)}"
                    for m in digest.sources)]
    if digest.missing and digest.has_data:
        lines.append("Nobody logged: " + ", ".join(digest.missing))
    if lines:
        lines.append(f"_Compared with {digest.previous}; :large_green_circle: better · "
                     ":red_circle: worse only where the change is unlikely to be noise._")
    return "\n".join(lines)[:DETAILS_LIMIT]


#: the thread's comment next to the charts stays a readable size
DETAILS_LIMIT = 3000


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
    if digest.unusual:
        out += ["## Unusual", "", *(f"- {unusual_text(digest, u)}" for u in digest.unusual), ""]
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
    if digest.sources:
        out += ["## By source", ""]
        for move in digest.sources:
            word = _WORD[_signal(move)]
            out.append(f"- {source_text(digest, move, full=True).replace('*', '**')}"
                       f"{f' {word}' if word else ''}")
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


def has_charts(digest: Digest) -> bool:
    """Whether `digest_charts` gives any, without drawing them."""
    return bool(digest.trends) or digest.has_funnel


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
