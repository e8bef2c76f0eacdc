"""`POST /api/v1/entries`: a batch checked entry by entry with the same rules as `/kpi log`.

Each entry goes through find_metric, parse_value, clean_dims and resolve_day, the functions
`/kpi log` and the CSV import use; the batch is then stored in one transaction by the same
writer as Store.record, so the replace-or-add rule is the one of catalogue section 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from bot.app.context import Context, UserError
from bot.app.entries import clean_dims, dims_columns, parse_value
from bot.app.names import find_metric
from kpis.catalogue import Catalogue
from kpis.periods import PeriodError, resolve_day
from storage import Write

MAX_ENTRIES = 1000
FIELDS = ("metric", "value", "date", "dims", "author")


@dataclass(frozen=True)
class Problem:
    """One reason the batch was refused; `index` is None for the body as a whole."""

    field: str
    message: str
    index: int | None = None

    def to_json(self) -> dict[str, object]:
        found: dict[str, object] = {"field": self.field, "message": self.message}
        return {"index": self.index, **found} if self.index is not None else found


class BatchTooLarge(Exception):
    pass


def writes_of(ctx: Context, body: Any, default_author: str) -> tuple[list[Write], list[Problem]]:
    """The writes of a request body, or every problem found in it (then nothing is stored)."""
    if not isinstance(body, dict) or "entries" not in body:
        return [], [Problem("entries", 'The body must be a JSON object like {"entries": '
                            '[{"metric": "leads", "value": 12}]}.')]
    extra = sorted(set(body) - {"entries"})
    if extra:
        return [], [Problem(extra[0], f"Unknown field `{extra[0]}`; the body has only `entries`.")]
    entries = body["entries"]
    if not isinstance(entries, list) or not entries:
        return [], [Problem("entries", "`entries` must be a non-empty list of entries.")]
    if len(entries) > MAX_ENTRIES:
        raise BatchTooLarge(f"That is {len(entries):,} entries; the limit is {MAX_ENTRIES:,} per "
                            "request. Split them into several requests.")
    catalogue = ctx.catalogue
    writes: list[Write] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, date, str, tuple[tuple[str, str], ...]], int] = {}
    for index, entry in enumerate(entries):
        try:
            write = _write(ctx, catalogue, entry, default_author)
        except _EntryError as error:
            problems.append(Problem(error.field, str(error), index))
            continue
        key = (write.metric, write.day, write.author, write.dims)
        if key in seen:
            problems.append(Problem("metric", f"Entry {seen[key]} already sets `{write.metric}` "
                                    f"for {write.day}, the same author and dimensions; keep one.",
                                    index))
            continue
        seen[key] = index
        writes.append(write)
    return writes, problems[:100]


class _EntryError(UserError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _write(ctx: Context, catalogue: Catalogue, entry: Any, default_author: str) -> Write:
    if not isinstance(entry, dict):
        raise _EntryError("entry", 'Each entry must be an object like {"metric": "leads", "value": 12}.')
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise _EntryError(unknown[0], f"Unknown field `{unknown[0]}`; an entry has "
                          f"{', '.join(FIELDS)}.")
    metric_name = entry.get("metric")
    if not isinstance(metric_name, str) or not metric_name.strip():
        raise _EntryError("metric", "`metric` is missing: name a metric, e.g. \"leads\".")
    try:
        metric = find_metric(catalogue, metric_name)
    except UserError as error:
        raise _EntryError("metric", str(error)) from None
    try:
        value = parse_value(metric, _number_text(entry.get("value")))
    except UserError as error:
        raise _EntryError("value", str(error)) from None
    day_text = entry.get("date")
    if day_text is not None and not isinstance(day_text, str):
        raise _EntryError("date", "`date` must be a string: YYYY-MM-DD, today or yesterday.")
    try:
        day = resolve_day(day_text, ctx.today)
    except PeriodError as error:
        raise _EntryError("date", str(error)) from None
    raw_dims = entry.get("dims") or {}
    if not isinstance(raw_dims, dict) or not all(isinstance(v, str) for v in raw_dims.values()):
        raise _EntryError("dims", '`dims` must be an object of strings, e.g. {"source": "facebook"}.')
    try:  # by name: the built-ins and the workspace's own, each value within its list
        dims = dims_columns(catalogue, clean_dims(raw_dims.items(), catalogue))
    except UserError as error:
        raise _EntryError("dims", str(error)) from None
    author = entry.get("author", default_author)
    if not isinstance(author, str) or not author.strip() or len(author.strip()) > 64:
        raise _EntryError("author", "`author` must be a name of 1 to 64 characters.")
    return Write(metric.key, day, value, author.strip(), dims)


def _number_text(value: Any) -> str:
    """A JSON number as `/kpi log` would read it typed (`80` is 80% for a percent metric);
    strings pass through, so "$1,234" and "12%" read as they do in Slack."""
    if isinstance(value, bool) or value is None:
        raise _EntryError("value", "`value` must be a number, e.g. 12 or 340.5.")
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "9" * 31
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _EntryError("value", "`value` must be a finite number.")
        return format(Decimal(repr(value)), "f")
    raise _EntryError("value", "`value` must be a number, e.g. 12 or 340.5.")
