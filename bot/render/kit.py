"""The Block Kit pieces every renderer builds with: one public set, within Slack's limits.

Limits (50 blocks, 3,000 characters a section, 75 a button or option, 24 a modal title,
3,000 of private metadata) are kept here by construction, so no renderer has to. The native
`table` and `data_visualization` blocks (slack-platform.md sections 10 and 11) have their own
limits, named below; `table` and `line_chart` refuse what Slack would answer with
`invalid_blocks` (a `BlockLimitError`), and `native_problems` checks a whole message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
Block = dict[str, Any]
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
#: lines a message may take on a phone before Slack folds it ("see more"); rendered_lines counts
FOLD_LINES = 12
MODAL_TITLE_LIMIT = 24

# -- `table` (slack-platform.md section 10) ---------------------------------------------------
#: rows of a table, its header row (row 0) included
TABLE_MAX_ROWS = 100
#: cells in each row
TABLE_MAX_CELLS = 20
#: entries of `column_settings`
TABLE_MAX_COLUMN_SETTINGS = 20
#: one table per message; a second fails with `only_one_table_allowed`
TABLE_MAX_PER_MESSAGE = 1
#: Slack documents no per-cell cap; this is ours, so a cell stays one line on a phone
TABLE_CELL_LIMIT = 60
#: characters across all cells: `data_table`'s documented cap, kept for `table` too
TABLE_TEXT_LIMIT = 10_000
TABLE_ALIGNS = ("left", "center", "right")

# -- `data_visualization` (slack-platform.md section 11) --------------------------------------
#: the chart's title (required)
CHART_TITLE_LIMIT = 50
#: series of a line, bar or area chart (docs and slack-go say 6; some SDKs allow 12: use 6)
CHART_MAX_SERIES = 6
#: a series' name, unique within the chart
CHART_SERIES_NAME_LIMIT = 20
#: points of a series, exactly one per category
CHART_MAX_POINTS = 20
#: a point's label, which is one of the categories
CHART_LABEL_LIMIT = 20
#: `x_label` and `y_label`
CHART_AXIS_LABEL_LIMIT = 50
#: data_visualization blocks in one message (found by vercel/chat#696 through invalid_blocks)
CHART_MAX_PER_MESSAGE = 2


def plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit]}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(text), "action_id": action_id}
    if value:
        element["value"] = value[:2000]
    if style:
        element["style"] = style
    return element


def overflow(action_id: str, options: Sequence[tuple[str, str]]) -> Block:
    """An overflow menu ("⋯"): up to five (label, value) options, each value at most 150
    characters; as a section's accessory it takes no line of its own."""
    return {"type": "overflow", "action_id": action_id,
            "options": [{"text": plain(label), "value": value[:150]} for label, value in options[:5]]}


def actions(*elements: Block) -> Block:
    return {"type": "actions", "elements": list(elements)}


def option(value: str, text: str | None = None) -> dict[str, Any]:
    return {"text": plain(text or value), "value": value}


def select(block_id: str, label: str, options: Sequence[dict[str, Any]], initial: int = 0) -> Block:
    """A required static select (an input block), its `initial`-th option chosen."""
    return {"type": "input", "block_id": block_id, "label": plain(label, 2000),
            "element": {"type": "static_select", "action_id": "value", "options": list(options),
                        "initial_option": options[initial]}}


def sections(lines: Iterable[str], limit: int = SECTION_LIMIT) -> list[Block]:
    """Lines packed into as few sections as fit the per-section character limit."""
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        if chunk and len(chunk) + 1 + len(line) > limit:
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line[:limit]
    if chunk:
        blocks.append(section(chunk))
    return blocks


class BlockLimitError(ValueError):
    """A native block that Slack would refuse with `invalid_blocks`: the message names the limit."""


Cell = dict[str, Any]


def raw_cell(text: str) -> Cell:
    """A plain table cell."""
    if len(text) > TABLE_CELL_LIMIT:
        raise BlockLimitError(f"a table cell holds at most {TABLE_CELL_LIMIT} characters "
                              f"(got {len(text)}: {text[:20]}…)")
    return {"type": "raw_text", "text": text}


def marked_cell(emoji: str, text: str, *, bold: bool = False) -> Cell:
    """A table cell that leads with an emoji (`large_green_circle`), as a rich_text block."""
    if len(text) + len(emoji) + 3 > TABLE_CELL_LIMIT:
        raise BlockLimitError(f"a table cell holds at most {TABLE_CELL_LIMIT} characters")
    words: dict[str, Any] = {"type": "text", "text": f" {text}"}
    if bold:
        words["style"] = {"bold": True}
    return {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
        {"type": "emoji", "name": emoji.strip(":")}, words]}]}


def cell_text(cell: Cell) -> str:
    """What a table cell reads as (for limits, fallbacks and line counts)."""
    if cell.get("type") in ("raw_text", "raw_number"):
        return str(cell.get("text", ""))
    parts = []
    for element in cell.get("elements", []):
        for item in element.get("elements", []):
            parts.append(f":{item['name']}:" if item.get("type") == "emoji" else str(item.get("text", "")))
    return "".join(parts)


def table(rows: Sequence[Sequence[Cell]], *, align: Sequence[str | None] = (),
          block_id: str | None = None) -> Block:
    """A `table` block; row 0 is the header. Raises BlockLimitError past section 10's limits."""
    if not rows:
        raise BlockLimitError("a table needs at least its header row")
    if len(rows) > TABLE_MAX_ROWS:
        raise BlockLimitError(f"a table holds at most {TABLE_MAX_ROWS} rows (got {len(rows)})")
    for row in rows:
        if not 1 <= len(row) <= TABLE_MAX_CELLS:
            raise BlockLimitError(f"a table row holds 1 to {TABLE_MAX_CELLS} cells (got {len(row)})")
    if len(align) > TABLE_MAX_COLUMN_SETTINGS:
        raise BlockLimitError(f"a table takes at most {TABLE_MAX_COLUMN_SETTINGS} column settings")
    if any(a is not None and a not in TABLE_ALIGNS for a in align):
        raise BlockLimitError(f"a column aligns {', '.join(TABLE_ALIGNS)}")
    texts = [cell_text(c) for row in rows for c in row]
    longest = max(texts, key=len)
    if len(longest) > TABLE_CELL_LIMIT:
        raise BlockLimitError(f"a table cell holds at most {TABLE_CELL_LIMIT} characters "
                              f"(got {len(longest)}: {longest[:20]}…)")
    total = sum(len(t) for t in texts)
    if total > TABLE_TEXT_LIMIT:
        raise BlockLimitError(f"a table holds at most {TABLE_TEXT_LIMIT} characters (got {total})")
    block: Block = {"type": "table", "rows": [list(row) for row in rows]}
    if align:
        block["column_settings"] = [None if a is None else {"align": a, "is_wrapped": False}
                                    for a in align]
    if block_id:
        block["block_id"] = block_id[:255]
    return block


#: the `data_visualization` chart types that take series over categories (section 11)
SERIES_CHARTS = ("line", "bar", "area")


def line_chart(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
               *, x_label: str | None = None, y_label: str | None = None) -> Block:
    """A `data_visualization` line chart: each series has one value per category.

    Raises BlockLimitError past section 11's limits (title, series, points, labels)."""
    return series_chart("line", title, categories, series, x_label=x_label, y_label=y_label)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
              *, x_label: str | None = None, y_label: str | None = None) -> Block:
    """A `data_visualization` bar chart: the same shape and limits as `line_chart`."""
    return series_chart("bar", title, categories, series, x_label=x_label, y_label=y_label)


def series_chart(kind: str, title: str, categories: Sequence[str],
                 series: Sequence[tuple[str, Sequence[float]]], *, x_label: str | None = None,
                 y_label: str | None = None) -> Block:
    """A line, bar or area `data_visualization` block; BlockLimitError past section 11."""
    if kind not in SERIES_CHARTS:
        raise BlockLimitError(f"a series chart is {', '.join(SERIES_CHARTS)} (got {kind!r})")
    if not title or len(title) > CHART_TITLE_LIMIT:
        raise BlockLimitError(f"a chart title is 1 to {CHART_TITLE_LIMIT} characters (got {len(title)})")
    if not 1 <= len(series) <= CHART_MAX_SERIES:
        raise BlockLimitError(f"a {kind} chart has 1 to {CHART_MAX_SERIES} series (got {len(series)})")
    if not 1 <= len(categories) <= CHART_MAX_POINTS:
        raise BlockLimitError(f"a series has 1 to {CHART_MAX_POINTS} points (got {len(categories)})")
    if len(set(categories)) != len(categories):
        raise BlockLimitError("chart categories must be unique")
    for label in categories:
        if not label or len(label) > CHART_LABEL_LIMIT:
            raise BlockLimitError(f"a point label is 1 to {CHART_LABEL_LIMIT} characters ({label!r})")
    names = [name for name, _ in series]
    if len(set(names)) != len(names):
        raise BlockLimitError("series names must be unique")
    for name, values in series:
        if not name or len(name) > CHART_SERIES_NAME_LIMIT:
            raise BlockLimitError(f"a series name is 1 to {CHART_SERIES_NAME_LIMIT} characters ({name!r})")
        if len(values) != len(categories):
            raise BlockLimitError(f"series {name!r} needs exactly one value per category")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise BlockLimitError(f"series {name!r} has a value that is not a finite number")
    axis: dict[str, Any] = {"categories": list(categories)}
    for key, axis_label in (("x_label", x_label), ("y_label", y_label)):
        if axis_label is not None:
            if len(axis_label) > CHART_AXIS_LABEL_LIMIT:
                raise BlockLimitError(f"an axis label is at most {CHART_AXIS_LABEL_LIMIT} characters")
            axis[key] = axis_label
    return {"type": "data_visualization", "title": title, "chart": {
        "type": kind,
        "series": [{"name": name, "data": [{"label": c, "value": float(v)}
                                           for c, v in zip(categories, values, strict=True)]}
                   for name, values in series],
        "axis_config": axis,
    }}


NATIVE_TYPES = ("table", "data_visualization")


def native_problems(blocks: Sequence[Block]) -> list[str]:
    """Every documented limit of section 10-11 that a message's blocks break (empty: fine)."""
    problems: list[str] = []
    tables = [b for b in blocks if b.get("type") == "table"]
    charts = [b for b in blocks if b.get("type") == "data_visualization"]
    if len(tables) > TABLE_MAX_PER_MESSAGE:
        problems.append(f"{len(tables)} tables (max {TABLE_MAX_PER_MESSAGE})")
    if len(charts) > CHART_MAX_PER_MESSAGE:
        problems.append(f"{len(charts)} data_visualization blocks (max {CHART_MAX_PER_MESSAGE})")
    for block in tables:
        try:
            table(block.get("rows") or [], align=[(s or {}).get("align") for s in
                                                  block.get("column_settings") or []])
        except BlockLimitError as problem:
            problems.append(f"table: {problem}")
    for block in charts:
        chart = block.get("chart") or {}
        axis = chart.get("axis_config")
        if chart.get("type") not in SERIES_CHARTS or not isinstance(axis, dict):
            problems.append(f"data_visualization: a {'/'.join(SERIES_CHARTS)} chart needs axis_config")
            continue
        categories = list(axis.get("categories") or [])
        series = []
        for s in chart.get("series") or []:
            data = s.get("data") or []
            if [d.get("label") for d in data] != categories:
                problems.append(f"data_visualization: series {s.get('name')!r} is not one point per category")
            series.append((str(s.get("name", "")), [d.get("value") for d in data]))
        try:
            series_chart(str(chart["type"]), str(block.get("title") or ""), categories, series,
                         x_label=axis.get("x_label"), y_label=axis.get("y_label"))
        except BlockLimitError as problem:
            problems.append(f"data_visualization: {problem}")
    return problems


# -- how tall a message is on a phone ---------------------------------------------------------

#: characters of Slack's default font in one line of a 390-point-wide phone screen
PHONE_WIDTH = 44
#: characters a section's accessory (an overflow, a button) takes from its text's width
ACCESSORY_WIDTH = 6
_EMOJI = re.compile(r":[a-z0-9_+-]+:")
_LINK = re.compile(r"<[#@!]?[^|>]*\|([^>]*)>|<([#@])[^>]*>|<([^>]*)>")


def visible(text: str) -> str:
    """mrkdwn as a reader sees it: an emoji is two characters wide, a link its label,
    `*bold*`, `_italic_`, `~strike~` and backticks without their marks."""
    text = _LINK.sub(lambda m: m.group(1) or (m.group(2) and m.group(2) + "channel") or m.group(3) or "",
                     text)
    text = _EMOJI.sub("ww", text)
    return re.sub(r"[*_~`]", "", text)


def wrapped_lines(text: str, width: int = PHONE_WIDTH) -> int:
    """Lines `text` takes at `width` characters: each line break starts a line, a long line
    wraps at word boundaries."""
    total = 0
    for line in text.split("\n"):
        words = visible(line).split()
        lines, used = 1, 0
        for word in words:
            while len(word) > width:  # a word longer than the screen breaks anywhere
                lines += 1 if used else 0
                word, used = word[width:], 0
            if used and used + 1 + len(word) > width:
                lines, used = lines + 1, len(word)
            else:
                used += (1 if used else 0) + len(word)
        total += lines
    return total


def rendered_lines(blocks: Sequence[Block], width: int = PHONE_WIDTH) -> int:
    """How many lines a message's blocks take on a phone, the count the digest's fold rule uses.

    header, section and context: their text wrapped at `width`, less ACCESSORY_WIDTH beside a
    section's accessory (a section's fields each count as their own text); table: one line per
    row, the header row included (cells do not wrap); divider and actions: one line each; data_visualization and image: nothing, as they are a
    picture beside the text, not lines of it."""
    total = 0
    for block in blocks:
        kind = block.get("type")
        if kind in ("header", "section", "markdown"):
            text = block.get("text")
            room = width - ACCESSORY_WIDTH if block.get("accessory") else width
            if isinstance(text, dict):
                total += wrapped_lines(str(text.get("text", "")), room)
            elif isinstance(text, str):
                total += wrapped_lines(text, room)
            for field_ in block.get("fields") or []:
                total += wrapped_lines(str(field_.get("text", "")), width)
        elif kind == "context":
            total += wrapped_lines(" ".join(str(e.get("text", "")) for e in block.get("elements", [])),
                                   width)
        elif kind == "table":
            total += len(block.get("rows") or [])
        elif kind in ("divider", "actions", "input"):
            total += 1
    return total


# -- what does not fit above the fold: one Show all for every message ---------------------------

#: the action of every Show all button; its value names what to answer in full
#: (bot/slack/actions.py: a command run again with `full`, or a log's numbers)
SHOW_ALL = "show_all"


def fits(blocks: Sequence[Block]) -> bool:
    """Whether a message's blocks fit above the fold on a phone."""
    return rendered_lines(blocks) <= FOLD_LINES


def show_all(label: str, value: str) -> Block:
    """The Show all button, in an actions block of its own unless `more` buttons join it."""
    return button(label, SHOW_ALL, value)


def most_that_fit(assemble: Callable[[int], list[Block]], total: int, least: int = 0) -> int:
    """How many of `total` parts `assemble(shown)` can show above the fold, at least `least`;
    `assemble` adds the Show all button itself when `shown < total`."""
    if fits(assemble(total)):
        return total
    shown = min(least, total)
    while shown + 1 < total and fits(assemble(shown + 1)):
        shown += 1
    return shown


def fold(assemble: Callable[[int], list[Block]], total: int, least: int = 0) -> list[Block]:
    """`assemble(shown)` with as many parts shown as fit above the fold (`most_that_fit`)."""
    return assemble(most_that_fit(assemble, total, least))


def listing(title: str, heading: str, rows: Sequence[str | Block], *, noun: str, more: str,
            full: bool = False, footer: str = "") -> Message:
    """A heading and one line per row, as many rows as fit above the fold (at least one) with
    "Show all N NOUN" for the rest; `full` every row. `footer` follows the rows shown. A row
    that is a block (a line with a menu beside it) stays a block of its own."""
    def assemble(shown: int) -> list[Block]:
        part = rows[:shown]
        lines = [r for r in part if isinstance(r, str)]
        body = (sections(lines) if len(lines) == len(part)
                else [section(r) if isinstance(r, str) else r for r in part])
        blocks = [section(heading), *body]
        if footer:
            blocks.append(context(footer))
        if shown < len(rows):
            blocks.append(actions(show_all(f"Show all {len(rows)} {noun}", more)))
        return blocks

    return message(title, assemble(len(rows)) if full else fold(assemble, len(rows), 1))


def in_place_of(blocks: Sequence[Block], action_id: str, answer: Message) -> Message:
    """The message `blocks` as it was clicked, its `action_id` button replaced by what the
    click answered (a context line), so the button cannot be clicked twice; `answer` alone
    when the blocks are not known, lack that button, or would no longer fit a phone."""
    out: list[Block] = []
    found = False
    for block in blocks:
        elements = block.get("elements") or [] if block.get("type") == "actions" else []
        kept = [e for e in elements if e.get("action_id") != action_id]
        if len(kept) < len(elements):
            found = True
            out.append(context(str(answer.get("text", ""))))
            if kept:
                out.append({**block, "elements": kept})
        else:
            out.append(block)
    if not found or not fits(out):
        return answer
    return message(str(answer.get("text", "")), out)


def message(text: str, blocks: list[Block] | None = None, **extra: Any) -> Message:
    """A message body with its plain-text fallback (notifications, screen readers)."""
    body: Message = {"text": text, "blocks": (blocks or [section(text)])[:MAX_BLOCKS]}
    body.update(extra)
    return body


def modal(callback_id: str, title: str, blocks: list[Block], metadata: dict[str, Any],
          submit: str = "Save") -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": callback_id,
        "title": plain(title, MODAL_TITLE_LIMIT),
        "submit": plain(submit, MODAL_TITLE_LIMIT), "close": plain("Cancel", MODAL_TITLE_LIMIT),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": blocks[:100],
    }


def error(text: str) -> Message:
    """A problem the user can fix: what is wrong and how to fix it."""
    return message(f":warning: {text}")


def apology(error_id: str) -> Message:
    return message(
        "Sorry, something went wrong on our side and nothing was changed. "
        f"If it keeps happening, give your admin this error id: `{error_id}`."
    )


def busy() -> Message:
    return message(":hourglass_flowing_sand: The database is not answering right now, so nothing "
                   "was stored. Please try again in a minute.")


# -- what a command's answer asks the front end to do ------------------------------------------


@dataclass(frozen=True)
class Modal:
    """Open this view (it needs the request's trigger id)."""

    view: dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """Share a file with a comment, then tell the asker `then`: in the asking conversation,
    or, when `private` (an export of everyone's entries), in a direct message to the asker."""

    filename: str
    title: str
    content: bytes
    comment: str | None = None
    then: Message = field(default_factory=dict)
    private: bool = False


#: a command's answer: a message only to the asker, a form to open, or a file to share
Reply = Message | Modal | Upload
