"""`/kpi report` in Slack: a table that fits a phone screen, the rest behind "Show all".

The table is one row per KPI or number (or, with `by DIM`, one row per value, best first):
its value, what it was, and the change, coloured only where the change is unlikely to be noise.
By default the message stops at FOLD_LINES on a phone; "Show all" answers with every row,
the numbers logged, the goals and the notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.render.blocks import LEGEND, compared_title, estimate_note, fmt, group_name
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
    raw_cell,
    rendered_lines,
    sections,
    show_all,
    table,
)
from bot.render.numbers import format_delta
from kpis.catalogue import Catalogue, Unit
from kpis.compare import Change, Verdict

_MARK = {Verdict.BETTER: "large_green_circle", Verdict.WORSE: "red_circle"}
#: rows a report keeps on a phone whatever else it says (then notes, more rows, the legend)
MIN_ROWS = 5
#: rows of the default report at most; "Show all" has the rest
MAX_DEFAULT_ROWS = 12

Row = list[Cell]


def _cut(text: str) -> str:
    return text if len(text) <= TABLE_CELL_LIMIT else text[:TABLE_CELL_LIMIT - 1] + "…"


def _change_cell(change: Change, unit: Unit, locale: str) -> Cell:
    delta = format_delta(change.change_pct, change.points(), unit, locale=locale)
    mark = _MARK.get(change.signal)
    return marked_cell(mark, delta) if mark else raw_cell(delta)


def _figure_row(label: str, change: Change, unit: Unit, report: Any) -> Row:
    ws = report.workspace
    return [raw_cell(_cut(label)), raw_cell(fmt(change.value, unit, ws.currency, ws.locale)),
            raw_cell(fmt(change.previous, unit, ws.currency, ws.locale)),
            _change_cell(change, unit, ws.locale)]


def _figure_rows(report: Any) -> list[Row]:
    """KPIs first, in the order asked (or the catalogue's), then the numbers logged."""
    cat: Catalogue = report.catalogue
    rows = [_figure_row(cat.kpis[k].label, c, cat.kpis[k].unit, report) for k, c in report.kpis.items()]
    rows += [_figure_row(cat.metrics[k].label, c, cat.metrics[k].unit, report)
             for k, c in report.metrics.items()]
    return rows


def _group_rows(report: Any) -> tuple[Row, list[Row]]:
    """`by DIM`: a row per value, best first, with the ranked figure, its change and one more."""
    cat: Catalogue = report.catalogue
    ws = report.workspace
    keys = [report.ranked_by] if report.ranked_by else []
    others = (*report.asked, *report.kpis, *report.metrics)
    keys += [k for k in dict.fromkeys(others) if k not in keys][: 2 - len(keys)]
    definitions = [cat.kpis.get(k) or cat.metrics[k] for k in keys]
    head = [raw_cell(report.by.capitalize())]
    for i, definition in enumerate(definitions):
        head.append(raw_cell(_cut(definition.label)))
        if i == 0:
            head.append(raw_cell("Change"))
    rows = []
    for group in report.groups:
        row = [raw_cell(_cut(group_name(report.by, group.value, slack=False)))]
        for i, (key, definition) in enumerate(zip(keys, definitions, strict=True)):
            change = group.kpis.get(key) or group.metrics.get(key)
            row.append(raw_cell(fmt(change.value if change else None, definition.unit,
                                    ws.currency, ws.locale)))
            if i == 0:
                row.append(_change_cell(change, definition.unit, ws.locale) if change
                           else raw_cell("n/a"))
        rows.append(row)
    return head, rows


def _team_line(report: Any) -> str:
    """With `by DIM`: the team's figure for the ranked name, so the groups have their total."""
    cat: Catalogue = report.catalogue
    key = report.ranked_by
    change = report.kpis.get(key) or report.metrics.get(key) if key else None
    if key is None or change is None:
        return ""
    definition = cat.kpis.get(key) or cat.metrics[key]
    ws = report.workspace
    delta = format_delta(change.change_pct, change.points(), definition.unit, locale=ws.locale)
    return (f"All together: {definition.label} {fmt(change.value, definition.unit, ws.currency, ws.locale)}"
            f" ({delta}); untagged entries are their own row.")


def report_message(
    report: Any, *, share_value: str | None = None, goals: Sequence[str] = (), full: bool = False,
    shared_by: str | None = None, shared_in: str | None = None, more: str | None = None,
) -> Message:
    """The report as a table. `share_value` (what was asked) adds Share; `more` (the same
    report as a Show all value) adds Show all when rows are hidden; `full` shows every row,
    the goals and the notes; `shared_by` marks the channel's copy (no Share on it),
    `shared_in` replaces Share on the asker's private copy."""
    title = compared_title(report)
    if not report.metrics:
        return message(f"No numbers logged for {report.period} yet. Log some with "
                       "`/kpi log leads=12 spend=340`.")
    if report.by is not None:
        head, rows = _group_rows(report)
        ranked = report.ranked_by and (report.catalogue.kpis.get(report.ranked_by)
                                       or report.catalogue.metrics[report.ranked_by])
        heading = f"By {report.by}" + (f", best {ranked.label} first" if ranked else "")
        notes = [n for n in (heading + ".", _team_line(report)) if n]
    else:
        head = [raw_cell("KPI"), raw_cell("Value"), raw_cell("Was"), raw_cell("Change")]
        rows, notes = _figure_rows(report), []
    if estimate_note(report):
        notes.append(estimate_note(report))
    if shared_by:
        notes.insert(0, f"Shared by <@{shared_by}>.")
    align = ("left", "right", "right", "right")[: len(head)]

    def assemble(shown: int, notes: Sequence[str], legend: bool, goals: Sequence[str]) -> list[Block]:
        blocks: list[Block] = [header(title)]
        blocks.append(table([head, *rows[:shown]], align=align))
        if goals:
            blocks += sections(["*Goals*", *goals])
        if notes:
            blocks.append(context(" ".join(notes)))
        if legend:
            blocks.append(context(LEGEND))
        buttons = []
        if shared_in:
            blocks.append(context(f":white_check_mark: Shared in <#{shared_in}>."))
        elif share_value is not None and not shared_by:
            buttons.append(button("Share in channel", "share_report", share_value))
        if shown < len(rows) and more is not None:
            buttons.append(show_all(f"Show all {len(rows)} rows", more))
        if buttons:
            blocks.append(actions(*buttons))
        return blocks

    if full:
        return message(title, assemble(min(len(rows), TABLE_MAX_ROWS - 1), notes, True, goals))

    def fits(shown: int, notes: Sequence[str], legend: bool, goals: Sequence[str]) -> bool:
        return rendered_lines(assemble(shown, notes, legend, goals)) <= FOLD_LINES

    shown = min(len(rows), MIN_ROWS)
    kept_notes = list(notes) if fits(shown, notes, False, ()) else []
    kept_goals = list(goals) if goals and fits(shown, kept_notes, False, goals) else []
    while shown < min(len(rows), MAX_DEFAULT_ROWS) and fits(shown + 1, kept_notes, False, kept_goals):
        shown += 1
    legend = fits(shown, kept_notes, True, kept_goals)
    return message(title, assemble(shown, kept_notes, legend, kept_goals))
