"""Entries: logging numbers, undoing, history and its per-entry Edit and Delete, and CSV
import and export.

One validation path for every way numbers come in (text, form, CLI, CSV, API), and the
replace/add rule of kpi-catalogue.md section 4 in the store.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from bot.app.context import Context, UserError
from bot.app.names import find_metric, period_for
from bot.app.tracking import asked_for
from kpis.catalogue import DEFAULT, DIMENSIONS, Catalogue, Dimension, Metric, Unit
from kpis.numbers import NumberError, parse_number
from kpis.periods import Period, PeriodError, resolve_day
from kpis.rollup import Dims, kpi_values
from kpis.suggest import did_you_mean, nearest
from storage.repository import ChangeBatch, HistoryLine, Recorded, UndoConflict, Write

MAX_VALUES_PER_LOG = 60
#: where a log is someone typing their own numbers in Slack: a rep metric without `rep=` is theirs
SLACK_ORIGINS = ("slack", "form")


@dataclass(frozen=True)
class Moved:
    key: str
    before: float | None
    after: float | None


@dataclass(frozen=True)
class LogResult:
    batch: ChangeBatch
    day: date
    moved: tuple[Moved, ...] = field(default_factory=tuple)
    #: the dimensions typed with the log
    dims: Dims = ()
    #: the rep metrics stored with rep = the person logging, as no `rep=` was given
    as_rep: tuple[str, ...] = ()


def checked_dimension(name: str, catalogue: Catalogue = DEFAULT) -> str:
    """A dimension the workspace has: a built-in or one of its own (`/kpi dimension add`)."""
    key = name.strip().lower()
    known = catalogue.dimension_names
    if any(d.key == key for d in catalogue.removed):
        raise UserError(f"`{key}` is not a dimension any more (it was removed; its earlier tags "
                        f"are kept). An admin can bring it back with `/kpi dimension add {key}`. "
                        f"Dimensions are {', '.join(known)}.")
    if key not in known:
        raise UserError(f"`{name}` is not a dimension.{did_you_mean(key, known)} "
                        f"Dimensions are {', '.join(known)}.")
    return key


def clean_dims(pairs: Iterable[tuple[str, str]], catalogue: Catalogue = DEFAULT) -> Dims:
    """Dimension values as stored: known names only, trimmed and case-folded (rep kept as is),
    and within a dimension's allowed values when it has a list."""
    dims: dict[str, str] = {}
    for name, value in pairs:
        key = checked_dimension(name, catalogue)
        text = value.strip() if key == "rep" else value.strip().casefold()
        if not text:
            raise UserError(f"`{name}=` needs a value, e.g. `{name}=facebook`")
        if len(text) > 64:
            raise UserError(f"the {key} `{text[:20]}…` is too long (at most 64 characters)")
        own = catalogue.dimension(key)
        if own is not None and own.choices and text not in own.choices:
            guess = nearest(text, own.choices) or own.choices[0]
            raise UserError(f"`{key}={text}` is not one of its values; did you mean "
                            f"`{key}={guess}`? The values are {', '.join(own.choices)}.")
        dims[key] = text
    return tuple(sorted(dims.items()))


def dims_columns(catalogue: Catalogue, dims: Dims) -> Dims:
    """The entry columns of these dimension values: a workspace's own dimension is stored in
    its slot (Catalogue.column_of)."""
    return tuple(sorted((catalogue.column_of(k), v) for k, v in dims))


def dims_named(catalogue: Catalogue, dims: Dims) -> Dims:
    """The inverse of dims_columns, for what the store hands back."""
    return tuple(sorted((catalogue.dimension_of(k), v) for k, v in dims))


def _named_batch(catalogue: Catalogue, batch: ChangeBatch) -> ChangeBatch:
    """A stored batch with its tags named as people wrote them (`temperature`, not `dim1`)."""
    if not (catalogue.dimensions or catalogue.removed):
        return batch
    return replace(batch, changes=tuple(replace(c, dims=dims_named(catalogue, c.dims))
                                        for c in batch.changes))


def parse_value(metric: Metric, raw: str) -> float:
    try:
        value = parse_number(raw, metric.unit.value)
    except NumberError as error:
        raise UserError(f"{metric.key}: {error}") from None
    problem = metric.check(value)
    if problem:
        raise UserError(problem)
    return value


def log_numbers(
    ctx: Context, values: Sequence[tuple[str, str]], *, day: str | None = None,
    dims: Iterable[tuple[str, str]] = (), author: str | None = None, origin: str = "slack",
) -> LogResult:
    """Validates everything first, then stores it all in one transaction."""
    catalogue = ctx.catalogue
    if catalogue.dimensions or catalogue.removed:  # the grammar cannot tell `temperature=warm`
        # from a metric; a removed one is refused as a dimension, saying how to bring it back
        own = {d.key for d in (*catalogue.dimensions, *catalogue.removed)}
        dims = (*dims, *((k.lower(), v) for k, v in values if k.lower() in own))
        values = [(k, v) for k, v in values if k.lower() not in own]
    if not values:
        raise UserError("Nothing to log. Write it like `log leads=12 spend=340`.")
    if len(values) > MAX_VALUES_PER_LOG:
        raise UserError(f"That is {len(values)} numbers in one log; the limit is "
                        f"{MAX_VALUES_PER_LOG}. Split it into several logs, or import a CSV.")
    try:
        the_day = resolve_day(day, ctx.today)
    except PeriodError as error:
        raise UserError(str(error)) from None
    named = clean_dims(dims, catalogue)
    dimensions = dims_columns(catalogue, named)
    # a salesperson logging their calls in Slack logs their own: rep is them unless named
    defaulted = origin in SLACK_ORIGINS and "rep" not in dict(dimensions)
    mine = tuple(sorted((*dimensions, ("rep", ctx.actor)))) if defaulted else dimensions
    seen: set[str] = set()
    writes = []
    as_rep = []
    for key, raw in values:
        metric = find_metric(catalogue, key)
        if metric.key in seen:
            raise UserError(f"`{metric.key}` appears twice in one log; keep one value.")
        seen.add(metric.key)
        if defaulted and metric.by_rep:
            as_rep.append(metric.key)
        writes.append(Write(metric.key, the_day, parse_value(metric, raw), author or ctx.actor,
                            mine if metric.by_rep else dimensions))
    return _stored(ctx, writes, the_day, origin, named, tuple(as_rep))


def _stored(ctx: Context, writes: Sequence[Write], the_day: date, origin: str, named: Dims,
            as_rep: tuple[str, ...] = ()) -> LogResult:
    """Checked writes of one day stored in one transaction, with the KPIs they moved; alerts
    are looked at again."""
    catalogue = ctx.catalogue
    recorded = ctx.store.record_in_period(ctx.workspace.id, writes, actor=ctx.actor,
                                          origin=origin, period=Period.day(the_day),
                                          catalogue=catalogue)
    batch = _named_batch(catalogue, recorded.batch)
    ctx.ports.logged(ctx.workspace.id, the_day, {c.metric for c in batch.changes})
    ctx.ports.counted(origin, len(batch.changes))
    return LogResult(batch, the_day, _moved(catalogue, recorded, {w.metric for w in writes}),
                     named, as_rep)


def rep_metrics(catalogue: Catalogue) -> frozenset[str]:
    """The metrics a form logs with rep = the person logging (what it prefills them from)."""
    return frozenset(k for k, m in catalogue.metrics.items() if m.by_rep)


def _moved(catalogue: Catalogue, recorded: Recorded, metrics: set[str]) -> tuple[Moved, ...]:
    """The KPIs that a write of `metrics` changed for its day (to n/a when a deletion left
    one without its inputs)."""
    assert recorded.before is not None and recorded.after is not None
    moving = catalogue.kpis_using(metrics)  # only the KPIs the written metrics feed can move
    before = kpi_values(catalogue, recorded.before, moving)
    after = kpi_values(catalogue, recorded.after, moving)
    return tuple(
        Moved(k, before.get(k), after.get(k))
        for k in moving if (k in after or k in before) and before.get(k) != after.get(k)
    )


def undo(ctx: Context, batch_id: str | None = None) -> ChangeBatch:
    """Undoes the actor's last change, or the one a reply's Undo button names."""
    try:
        batch = ctx.store.undo_last(ctx.workspace.id, ctx.actor, batch_id)
    except UndoConflict as conflict:
        which = ", ".join(f"`{m}` for {d:%a %d %b}" for m, d in conflict.changed)
        raise UserError(f"Nothing was undone: {which} changed again after that log, and undoing "
                        "it would overwrite the newer number. Log the value you want instead, "
                        "or undo the newer change first.") from None
    if batch is None:
        if batch_id is not None:
            raise UserError("That log was already undone (or was logged by someone else), so "
                            "nothing changed. `/kpi history` shows the latest entries.")
        raise UserError("There is nothing of yours to undo.")
    return _named_batch(ctx.catalogue, batch)


def history(ctx: Context, metric: str | None = None, limit: int = 15) -> list[HistoryLine]:
    """The latest audit rows, their tags named as people wrote them (never `dim1=warm`)."""
    catalogue = ctx.catalogue
    if metric is not None:
        metric = find_metric(catalogue, metric).key
    lines = ctx.store.history(ctx.workspace.id, metric, limit)
    if not (catalogue.dimensions or catalogue.removed):
        return lines
    return [replace(line, dims=dims_named(catalogue, line.dims)) for line in lines]


@dataclass(frozen=True)
class Recent:
    """`/kpi history` as shown: its lines, and those whose entry the asker may edit or delete
    (by line id): the newest line of each entry still there, the asker's own, or any for admins."""

    lines: tuple[HistoryLine, ...]
    changeable: frozenset[int]


def recent(ctx: Context, metric: str | None = None) -> Recent:
    lines = history(ctx, metric)
    seen: set[tuple[object, ...]] = set()
    latest = []
    for line in lines:  # newest first: the first line of an entry is what it holds now
        key = (line.metric, line.day, line.author, line.dims)
        if key not in seen and line.new is not None and not line.undone:
            latest.append(line)
        seen.add(key)
    mine = {line.id for line in latest if line.author == ctx.actor}
    if len(mine) < len(latest) and ctx.is_admin:
        mine = {line.id for line in latest}
    return Recent(tuple(lines), frozenset(mine))


def _entry(ctx: Context, change_id: int) -> Write:
    """The entry a history line names, as it is now, if the asker may change it."""
    entry = ctx.store.entry_changed_by(ctx.workspace.id, change_id)
    if entry is None:
        raise UserError("That entry is no longer there (it was deleted or undone), so nothing "
                        "changed. `/kpi history` shows the entries as they are now.")
    if entry.author != ctx.actor and not ctx.is_admin:
        owner = f"<@{entry.author}>" if entry.author.startswith("U") else f"`{entry.author}`"
        raise UserError(f"That `{entry.metric}` entry is {owner}'s: only they or an admin can edit "
                        f"or delete it, so nothing changed. Log your own number with "
                        f"`/kpi log {entry.metric}=...`.")
    return entry


@dataclass(frozen=True)
class EntryForm:
    """What a history line's Edit form shows: the entry, its metric, its value as typed."""

    change_id: int
    entry: Write
    metric: Metric
    value: str
    currency: str


def entry_form(ctx: Context, change_id: int) -> EntryForm:
    entry = _entry(ctx, change_id)
    metric = find_metric(ctx.catalogue, entry.metric)
    named = replace(entry, dims=dims_named(ctx.catalogue, entry.dims))
    return EntryForm(change_id, named, metric, form_text(metric.unit, entry.value),
                     ctx.workspace.currency)


def correct_entry(ctx: Context, change_id: int, raw: str) -> LogResult:
    """The Edit form saved: the entry's new value, stored like a log of it (audit row, KPIs
    moved, alerts looked at again), for the entry's own day, tags and author."""
    entry = _entry(ctx, change_id)
    metric = find_metric(ctx.catalogue, entry.metric)
    if not raw.strip():
        raise UserError("Enter a number. To remove the entry, use Delete in `/kpi history`.")
    value = parse_value(metric, raw)
    if math.isclose(value, entry.value, rel_tol=1e-9, abs_tol=1e-12):
        raise UserError("That is the number the entry already has; change it to save, or Cancel.")
    # the entry's own tags as stored: a removed dimension's tag is kept, not refused
    return _stored(ctx, [replace(entry, value=value)], entry.day, "edit",
                   dims_named(ctx.catalogue, entry.dims))


def delete_entry(ctx: Context, change_id: int) -> LogResult:
    """A history line's Delete: the entry removed through the audit trail (so Undo brings it
    back), the KPIs it moved, alerts looked at again."""
    entry = _entry(ctx, change_id)
    recorded = ctx.store.delete_entry(ctx.workspace.id, entry, actor=ctx.actor, origin="delete",
                                      period=Period.day(entry.day), catalogue=ctx.catalogue)
    if recorded is None:
        raise UserError("That entry was already deleted, so nothing changed. `/kpi history` "
                        "shows the entries as they are now.")
    ctx.ports.logged(ctx.workspace.id, entry.day, {entry.metric})
    return LogResult(_named_batch(ctx.catalogue, recorded.batch), entry.day,
                     _moved(ctx.catalogue, recorded, {entry.metric}),
                     dims_named(ctx.catalogue, entry.dims))



CSV_COLUMNS = ("date", "metric", "value", "author", *DIMENSIONS)


def export_csv(ctx: Context, period: Period | None = None) -> str:
    """Every entry as `date,metric,value,author,source,rep,campaign,product`, then a column
    per dimension of the workspace's own, named by its key (and one per removed dimension
    whose tags some exported entry keeps, so no two rows read as the same entry)."""
    catalogue = ctx.catalogue
    start, end = (period.start, period.end) if period else (None, None)
    found = ctx.store.entries_between(ctx.workspace.id, start, end)
    kept = {name for entry in found for name, _ in entry.dims}
    own = [*catalogue.dimensions, *(d for d in catalogue.removed if d.slot in kept)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*CSV_COLUMNS, *(d.key for d in own)))
    columns = (*DIMENSIONS, *(d.slot for d in own))
    for entry in found:
        dims = dict(entry.dims)
        metric = catalogue.metrics.get(entry.metric)
        exact = Decimal(repr(entry.value))
        percent = metric is not None and metric.unit.value == "percent"
        value = _plain_number(exact * 100) + "%" if percent else _plain_number(exact)
        writer.writerow([entry.day.isoformat(), entry.metric, value, entry.author,
                         *(dims.get(name, "") for name in columns)])
    return out.getvalue()


def _plain_number(value: Decimal) -> str:
    """`0.00001`, never `1e-05`: a number parse_number reads back to the same float."""
    return format(value.normalize(), "f")


def import_csv(ctx: Context, text: str, *, origin: str = "csv") -> ChangeBatch:
    """All or nothing: any bad row refuses the whole file, naming its line and column."""
    catalogue = ctx.catalogue
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    known = catalogue.dimension_names
    if header[:3] != ["date", "metric", "value"]:
        raise UserError("line 1: the CSV must start with the header `date,metric,value` "
                        f"(optionally `,author,{','.join(known)}`); got `{','.join(header)}`")
    for column in header[3:]:
        if any(d.key == column for d in catalogue.removed):
            raise UserError(f"line 1: `{column}` was removed as a dimension; add it back with "
                            f"`/kpi dimension add {column}` to import its tags, or leave the "
                            "column out.")
        if column != "author" and column not in known:
            raise UserError(f"line 1: unknown column `{column}`."
                            f"{did_you_mean(column, ('author', *known))}")
    writes: list[Write] = []
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserError(f"line {line_no}: expected {len(header)} columns, found {len(row)}")
        cells = dict(zip(header, row, strict=True))
        try:
            writes.append(_csv_write(ctx, catalogue, cells))
        except (UserError, PeriodError) as error:
            column = getattr(error, "column", "")
            raise UserError(f"line {line_no}{column}: {error}") from None
    if not writes:
        raise UserError("the CSV has a header but no rows; nothing was imported")
    return ctx.store.record(ctx.workspace.id, writes, actor=ctx.actor, origin=origin)


class _CellError(UserError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = f", column {column}"


def _csv_write(ctx: Context, catalogue: Catalogue, cells: dict[str, str]) -> Write:
    try:
        day = resolve_day(cells["date"], ctx.today)
    except PeriodError as error:
        raise _CellError("date", str(error)) from None
    try:
        metric = find_metric(catalogue, cells["metric"])
    except UserError as error:
        raise _CellError("metric", str(error)) from None
    try:
        value = parse_value(metric, cells["value"])
    except UserError as error:
        raise _CellError("value", str(error)) from None
    try:
        dims = clean_dims(((n, cells[n]) for n in catalogue.dimension_names
                           if cells.get(n, "").strip()), catalogue)
    except UserError as error:
        raise _CellError("dimensions", str(error)) from None
    dims = dims_columns(catalogue, dims)
    author = cells.get("author", "").strip() or ctx.actor
    return Write(metric.key, day, value, author, dims)


@dataclass(frozen=True)
class LogForm:
    """What the log form asks for: the tracked metrics, for the workspace's today, each filled
    with what the asker already logged for it that day (metric -> the number as typed)."""

    metrics: tuple[Metric, ...]
    today: date
    currency: str
    prefilled: dict[str, str] = field(default_factory=dict)
    #: the workspace's own dimensions, a picker each
    dimensions: tuple[Dimension, ...] = ()


def log_form(ctx: Context) -> LogForm:
    metrics = tuple(asked_for(ctx.catalogue, ctx.workspace))
    own = ctx.store.own_values_on(ctx.workspace.id, ctx.actor, ctx.today, rep_metrics(ctx.catalogue))
    return LogForm(metrics, ctx.today, ctx.workspace.currency,
                   {m.key: form_text(m.unit, own[m.key]) for m in metrics if m.key in own},
                   ctx.catalogue.dimensions)


def form_text(unit: Unit, value: float) -> str:
    """`value` as a form's field shows it and parse_number reads it back in `unit`: a percent
    as its number of percent (0.125 -> `12.5`)."""
    exact = Decimal(repr(value))
    return _plain_number(exact * 100 if unit is Unit.PERCENT else exact)


def changed_values(ctx: Context, day: str | None, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The form's values that differ from what the asker already has for the day without a
    dimension (a prefilled field left alone is not logged again, so adding a source to the
    form cannot count the numbers already logged twice)."""
    try:
        the_day = resolve_day(day, ctx.today)
    except PeriodError as error:
        raise UserError(str(error)) from None
    catalogue = ctx.catalogue
    own = ctx.store.own_values_on(ctx.workspace.id, ctx.actor, the_day, rep_metrics(catalogue))
    return [(key, raw) for key, raw in pairs
            if key not in own or not math.isclose(parse_value(find_metric(catalogue, key), raw),
                                                  own[key], rel_tol=1e-9, abs_tol=1e-12)]


@dataclass(frozen=True)
class Export:
    period: Period
    content: str

    @property
    def rows(self) -> int:
        return self.content.count("\n") - 1

    @property
    def filename(self) -> str:
        return f"kpi-export-{self.period.start}-{self.period.end}.csv"


def export(ctx: Context, range_spec: str | None) -> Export:
    """`/kpi export [RANGE]`: the entries of the range (90 days by default) as CSV."""
    period = period_for(ctx, range_spec, default="90d")
    return Export(period, export_csv(ctx, period))
