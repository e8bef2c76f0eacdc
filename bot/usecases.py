"""The use cases of the product, one function each, shared by Slack, the CLI and the scheduler.

They speak in domain terms, take the clock and store as arguments, and raise `UserError`
(a message for the person, naming the problem and the fix) for anything the user caused.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property

from kpis.catalogue import DIMENSIONS, Better, Catalogue, Kpi, Metric, custom_kpi
from kpis.compare import Change, compare
from kpis.formula import FormulaError, check_cycles, check_names
from kpis.numbers import NumberError, parse_number
from kpis.periods import NAMED_RANGES, Period, PeriodError, local_date, resolve, resolve_day, zone
from kpis.rollup import Dims, kpi_values, metric_values
from kpis.suggest import did_you_mean, nearest
from storage.repository import ChangeBatch, HistoryLine, Store, UndoConflict, Workspace, Write

Clock = Callable[[], datetime]
MAX_VALUES_PER_LOG = 60
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class UserError(ValueError):
    """Input the user can fix; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Context:
    """Who is asking, about which workspace, and when."""

    store: Store
    workspace: Workspace
    actor: str
    now: datetime

    @property
    def today(self) -> date:
        return local_date(self.now, self.workspace.timezone)

    @cached_property
    def catalogue(self) -> Catalogue:
        """Read once per request (a use case reads it several times), in the workspace's language."""
        return self.store.catalogue(self.workspace.id).localized(self.workspace.locale)


def open_context(
    store: Store, workspace_id: str, actor: str, now: datetime, *, timezone: str = "UTC",
    enterprise_id: str | None = None, locale: str = "en_US",
) -> Context:
    """The context of `workspace_id`, created (with these settings) when it is new."""
    workspace, _ = store.ensure_workspace(workspace_id, timezone=timezone,
                                          enterprise_id=enterprise_id, locale=locale)
    return Context(store, workspace, actor, now)


# -- logging ------------------------------------------------------------------------------


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


def clean_dims(pairs: Iterable[tuple[str, str]]) -> Dims:
    """Dimension values as stored: known names only, trimmed and case-folded (rep kept as is)."""
    dims: dict[str, str] = {}
    for name, value in pairs:
        key = name.strip().lower()
        if key not in DIMENSIONS:
            raise UserError(f"`{name}` is not a dimension.{did_you_mean(key, DIMENSIONS)} "
                            f"Dimensions are {', '.join(DIMENSIONS)}.")
        text = value.strip() if key == "rep" else value.strip().casefold()
        if not text:
            raise UserError(f"`{name}=` needs a value, e.g. `{name}=facebook`")
        if len(text) > 64:
            raise UserError(f"the {key} `{text[:20]}…` is too long (at most 64 characters)")
        dims[key] = text
    return tuple(sorted(dims.items()))


def parse_value(metric: Metric, raw: str) -> float:
    try:
        value = parse_number(raw, metric.unit.value)
    except NumberError as error:
        raise UserError(f"{metric.key}: {error}") from None
    problem = metric.check(value)
    if problem:
        raise UserError(problem)
    return value


def find_metric(catalogue: Catalogue, key: str) -> Metric:
    name = key.strip().lower()
    if name in catalogue.metrics:
        return catalogue.metrics[name]
    if name in catalogue.kpis:
        raise UserError(f"`{name}` is a KPI computed from other numbers, so it can't be logged. "
                        f"Log its inputs instead: {', '.join(sorted(catalogue.inputs_of(name)))}.")
    raise UserError(f"I don't track a metric called `{key}`.{did_you_mean(name, catalogue.metrics)} "
                    "See `/kpi metrics` for the list.")


def log_numbers(
    ctx: Context, values: Sequence[tuple[str, str]], *, day: str | None = None,
    dims: Iterable[tuple[str, str]] = (), author: str | None = None, origin: str = "slack",
) -> LogResult:
    """Validates everything first, then stores it all in one transaction."""
    if not values:
        raise UserError("Nothing to log. Write it like `log leads=12 spend=340`.")
    if len(values) > MAX_VALUES_PER_LOG:
        raise UserError(f"That is {len(values)} numbers in one log; the limit is "
                        f"{MAX_VALUES_PER_LOG}. Split it into several logs, or import a CSV.")
    catalogue = ctx.catalogue
    try:
        the_day = resolve_day(day, ctx.today)
    except PeriodError as error:
        raise UserError(str(error)) from None
    dimensions = clean_dims(dims)
    seen: set[str] = set()
    writes = []
    for key, raw in values:
        metric = find_metric(catalogue, key)
        if metric.key in seen:
            raise UserError(f"`{metric.key}` appears twice in one log; keep one value.")
        seen.add(metric.key)
        writes.append(Write(metric.key, the_day, parse_value(metric, raw), author or ctx.actor, dimensions))
    period = Period.day(the_day)
    before = kpi_values(catalogue, ctx.store.period_data(ctx.workspace.id, period, catalogue))
    batch = ctx.store.record(ctx.workspace.id, writes, actor=ctx.actor, origin=origin)
    after = kpi_values(catalogue, ctx.store.period_data(ctx.workspace.id, period, catalogue))
    moved = tuple(
        Moved(k, before.get(k), after.get(k))
        for k in catalogue.kpis_using(seen) if k in after and before.get(k) != after.get(k)
    )
    return LogResult(batch, the_day, moved)


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
    return batch


def history(ctx: Context, metric: str | None = None, limit: int = 15) -> list[HistoryLine]:
    if metric is not None:
        metric = find_metric(ctx.catalogue, metric).key
    return ctx.store.history(ctx.workspace.id, metric, limit)


# -- reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    workspace: Workspace
    period: Period
    previous: Period
    metrics: dict[str, Change]
    kpis: dict[str, Change]
    catalogue: Catalogue

    def to_json(self) -> dict[str, object]:
        """The `kpibot report --json` object of interface.md."""

        def block(changes: dict[str, Change]) -> dict[str, dict[str, float | None]]:
            return {
                key: {"value": c.value, "previous": c.previous, "change_pct": c.change_pct}
                for key, c in changes.items()
            }

        return {
            "workspace": self.workspace.id,
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "previous": {"start": self.previous.start.isoformat(), "end": self.previous.end.isoformat()},
            "metrics": block(self.metrics),
            "kpis": block(self.kpis),
        }


def period_for(ctx: Context, spec: str | None, default: str = "week") -> Period:
    try:
        return resolve(spec, ctx.today, default)
    except PeriodError as error:
        raise UserError(str(error)) from None


def report(
    ctx: Context, period: Period, kpis: Sequence[str] = (), dims: Dims = ()
) -> Report:
    """Metrics and KPIs of `period` against the previous period."""
    catalogue = ctx.catalogue
    wanted = [find_kpi(catalogue, k).key for k in kpis] or None
    previous = period.previous()
    current_data = ctx.store.period_data(ctx.workspace.id, period, catalogue, dims)
    previous_data = ctx.store.period_data(ctx.workspace.id, previous, catalogue, dims)
    now_m, before_m = metric_values(catalogue, current_data), metric_values(catalogue, previous_data)
    now_k = kpi_values(catalogue, current_data, wanted)
    before_k = kpi_values(catalogue, previous_data, wanted)
    metric_changes = {
        k: compare(now_m.get(k), before_m.get(k), Better.NEUTRAL)
        for k in catalogue.metrics if k in now_m and (wanted is None or _feeds(catalogue, k, wanted))
    }
    kpi_changes = {
        k: compare(now_k[k], before_k.get(k), catalogue.kpis[k].better)
        for k in catalogue.order if k in now_k
    }
    return Report(ctx.workspace, period, previous, metric_changes, kpi_changes, catalogue)


def _feeds(catalogue: Catalogue, metric: str, kpis: Sequence[str]) -> bool:
    return any(metric in catalogue.metrics_of(k) for k in kpis)


def find_kpi(catalogue: Catalogue, key: str) -> Kpi:
    name = key.strip().lower()
    if name in catalogue.kpis:
        return catalogue.kpis[name]
    kpi_guess = nearest(name, catalogue.kpis)
    period_guess = nearest(name, NAMED_RANGES)
    if period_guess and (kpi_guess is None or _closeness(name, period_guess) > _closeness(name, kpi_guess)):
        raise UserError(f"`{key}` is neither a KPI nor a period. Did you mean the period "
                        f"`{period_guess}`? Periods: {', '.join(NAMED_RANGES)} or YYYY-MM-DD..YYYY-MM-DD.")
    raise UserError(f"I don't know a KPI called `{key}`.{did_you_mean(name, catalogue.kpis)} "
                    "See `/kpi metrics` for the list.")


def _closeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b.lower()).ratio()


# -- definitions and settings ---------------------------------------------------------------


def define_kpi(ctx: Context, key: str, formula_text: str, *, unit: str = "ratio",
               better: str = "neutral") -> Kpi:
    """A custom KPI, checked for syntax, unknown names and cycles before it is stored."""
    name = key.strip().lower()
    if not _KEY.match(name):
        raise UserError(f"`{key}` can't be a KPI name: use lower-case letters, digits and _, "
                        "starting with a letter (e.g. `big_mac_gap`).")
    catalogue = ctx.catalogue
    if name in catalogue.metrics or (name in catalogue.kpis and not catalogue.kpis[name].custom):
        raise UserError(f"`{name}` is a built-in name; choose another, e.g. `my_{name}`.")
    try:
        kpi = custom_kpi(name, formula_text, unit=unit, better=better)
        check_names(kpi.formula, catalogue.names | {"days"})
        check_cycles({**{k: v.formula for k, v in catalogue.kpis.items()}, name: kpi.formula})
    except FormulaError as error:
        raise UserError(f"That formula doesn't work: {error}\n```{error.pointer()}```") from None
    ctx.store.define(ctx.workspace.id, name, formula=formula_text.strip(), unit=unit,
                     better=better, actor=ctx.actor)
    return kpi


def set_timezone(ctx: Context, name: str) -> Workspace:
    try:
        zone(name.strip())
    except PeriodError as error:
        raise UserError(str(error)) from None
    return ctx.store.update_workspace(ctx.workspace.id, timezone=name.strip())


# -- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = ("date", "metric", "value", "author", *DIMENSIONS)


def export_csv(ctx: Context, period: Period | None = None) -> str:
    """Every entry as `date,metric,value,author,source,rep,campaign,product`."""
    catalogue = ctx.catalogue
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    start, end = (period.start, period.end) if period else (None, None)
    for entry in ctx.store.entries_between(ctx.workspace.id, start, end):
        dims = dict(entry.dims)
        metric = catalogue.metrics.get(entry.metric)
        exact = Decimal(repr(entry.value))
        percent = metric is not None and metric.unit.value == "percent"
        value = _plain_number(exact * 100) + "%" if percent else _plain_number(exact)
        writer.writerow([entry.day.isoformat(), entry.metric, value, entry.author,
                         *(dims.get(name, "") for name in DIMENSIONS)])
    return out.getvalue()


def _plain_number(value: Decimal) -> str:
    """`0.00001`, never `1e-05`: a number parse_number reads back to the same float."""
    return format(value.normalize(), "f")


def import_csv(ctx: Context, text: str, *, origin: str = "csv") -> ChangeBatch:
    """All or nothing: any bad row refuses the whole file, naming its line and column."""
    catalogue = ctx.catalogue
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header[:3] != ["date", "metric", "value"]:
        raise UserError("line 1: the CSV must start with the header `date,metric,value` "
                        f"(optionally `,author,{','.join(DIMENSIONS)}`); got `{','.join(header)}`")
    for column in header[3:]:
        if column != "author" and column not in DIMENSIONS:
            raise UserError(f"line 1: unknown column `{column}`."
                            f"{did_you_mean(column, ('author', *DIMENSIONS))}")
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
        dims = clean_dims((n, cells[n]) for n in DIMENSIONS if cells.get(n, "").strip())
    except UserError as error:
        raise _CellError("dimensions", str(error)) from None
    author = cells.get("author", "").strip() or ctx.actor
    return Write(metric.key, day, value, author, dims)
