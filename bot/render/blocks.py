"""Block Kit renderers: one function per kind of message or view, each with a text fallback.

Everything returned here is a plain dict ready for chat.postMessage, an ack body, a
response_url post, views.open or views.publish. Limits (50 blocks, 3,000 characters per
section, 24-character modal titles) are respected by construction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.app.context import UserError
from bot.app.failures import FailureNotice
from bot.app.home import Home, RepCard
from bot.app.settings import LOCALES
from bot.app.setup import SETUP_GOALS, SetupForm
from bot.grammar import MAX_TRACKED
from bot.render.alerts import goal_line
from bot.render.kit import (
    Block,
    Message,
    actions,
    context,
    fold,
    header,
    listing,
    message,
    modal,
    most_that_fit,
    option,
    overflow,
    plain,
    section,
    sections,
    show_all,
)
from bot.render.kit import button as _button
from bot.render.numbers import format_delta, format_moment, format_ordinal, format_value
from kpis.catalogue import Catalogue, Dimension, Metric, Unit
from kpis.compare import Change, Verdict
from kpis.schedule import WEEKDAYS

_ARROW = {Verdict.BETTER: ":large_green_circle:", Verdict.WORSE: ":red_circle:",
          Verdict.SAME: ":white_circle:", Verdict.UNKNOWN: ":white_circle:"}


def fmt(value: float | None, unit: Unit, currency: str, locale: str) -> str:
    return format_value(value, unit, currency=currency, locale=locale)


# -- /kpi help ------------------------------------------------------------------------------

HELP_LINES = (
    "*Log numbers*: `/kpi log leads=12 spend=340` · `/kpi log bookings=4 date=yesterday source=facebook` · `/kpi` opens the form",
    "*Reports*: `/kpi report` (this week) · `/kpi report last-month` · `/kpi report 30d cpl cac` · `/kpi report 2026-11-01..2026-11-15`",
    "*Charts and digests*: `/kpi chart cpl 30d` · `/kpi chart leads 30d by source` · `/kpi digest now` · `/kpi digest daily 09:00` · `/kpi digest weekly monday 09:00` · `/kpi digest daily 09:00 by source` · `/kpi digest off`",
    "*Alerts and goals*: `/kpi alert cpl > 15 daily for 2` · `/kpi alert leads unusual` · `/kpi alerts` · `/kpi alert remove 3` · `/kpi goal revenue 50000 monthly` · `/kpi goals` · `/kpi goal remove revenue`",
    "*Why and what if*: `/kpi why cpl` · `/kpi why leads last-week` · `/kpi whatif ctr=+10% close_rate=+5% aov=+25%` · `/kpi whatif` opens the form",
    "*Reminders*: `/kpi remind off` · `/kpi remind on` · `/kpi remind 17:00` (admins: the workspace's time)",
    "*Definitions*: `/kpi metrics` · `/kpi track leads spend sales` (what the form and reminders ask for) · `/kpi define big_mac_gap = (official_rate - implied_rate) / official_rate` · `/kpi sources` · `/kpi source webinar organic`",
    "*Corrections*: `/kpi history leads` (its ⋯ menu edits or deletes your entries) · `/kpi undo` (logging the same metric for the same day again replaces your value)",
    "*Data and settings*: `/kpi export 90d` · `/kpi tz America/Bogota` · `/kpi settings` · `/kpi token create zapier` (API tokens)",
    "Numbers: `1234.5`, `1,234.5`, `$1,234`, `1.5k`, `2m`, `12%` for percent metrics.",
)


#: what `/kpi help` says above the fold: the commands people use most; Show all has the rest
SHORT_HELP = (
    "`/kpi log leads=12 spend=340` (`/kpi` opens the form)",
    "`/kpi report` · `/kpi report last-month`",
    "`/kpi why cpl` · `/kpi whatif ctr=+10%`",
    "`/kpi alerts` · `/kpi goals` · `/kpi digest now`",
    "`/kpi history` · `/kpi undo` · `/kpi metrics`",
)


def help_message(*, full: bool = False, more: str = "") -> Message:
    """The usage: by default the commands used most and Show all; `full` every command."""
    head = header("KPI bot: how to use /kpi")
    if full:
        return message("How to use /kpi", [head, *sections(HELP_LINES)])
    return message("How to use /kpi", [head, *sections(SHORT_HELP),
                                       actions(show_all("Show all commands", more))])


# -- logging --------------------------------------------------------------------------------

#: a number in a button's value: enough digits for every format, no more
_DIGITS = "{:.10g}"
#: room a Show all value leaves of a button value's 2,000 characters
_VALUE_ROOM = 1990
Figure = tuple[str, float | None, float | None]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _figures(raw: Any) -> tuple[Figure, ...]:
    """`[[key, a, b], ...]` from a button's value, keeping only well-formed entries."""
    return tuple((str(item[0]), _number(item[1]), _number(item[2])) for item in raw or ()
                 if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str))


def _moved_most(moved: Sequence[Any]) -> list[Figure]:
    """The KPIs a log moved, the biggest relative change first (from or to n/a first of all)."""
    def size(m: Any) -> float:
        if m.before is None or m.after is None or m.before == 0:
            return float("inf")
        return float(abs(m.after - m.before) / abs(m.before))

    return [(m.key, m.before, m.after) for m in sorted(moved, key=size, reverse=True)]


@dataclass(frozen=True)
class Logged:
    """A log's reply as data: the numbers stored (metric, new, old) and the KPIs they moved
    (key, before, after), most first. Its Show all button carries it, as the log cannot be run
    again (that would store it twice); `cut` counts the figures that did not fit in it."""

    day: date
    batch_id: str
    stored: tuple[Figure, ...]
    dims: tuple[tuple[str, str], ...] = ()
    moved: tuple[Figure, ...] = ()
    cut: int = 0
    #: the metrics stored with rep = the person logging, who named no rep
    as_rep: tuple[str, ...] = ()

    @classmethod
    def of(cls, result: Any) -> Logged:
        changes = result.batch.changes
        return cls(result.day, result.batch.id, tuple((c.metric, c.new, c.old) for c in changes),
                   tuple(result.dims), tuple(_moved_most(result.moved)), 0,
                   tuple(m for m in result.as_rep if any(c.metric == m for c in changes)))

    def value(self) -> str:
        """The Show all value, within a button's 2,000 characters: when the figures are too
        many, the least moved KPIs are left out first, then the last numbers, and counted."""
        def short(figures: Sequence[Figure]) -> list[list[Any]]:
            return [[k, *(None if v is None else float(_DIGITS.format(v)) for v in (a, b))]
                    for k, a, b in figures]

        stored, moved = list(self.stored), list(self.moved)
        while True:
            left_out = len(self.stored) + len(self.moved) - len(stored) - len(moved)
            text = json.dumps({"log": {"day": self.day.isoformat(), "batch": self.batch_id,
                                       "dims": [list(d) for d in self.dims],
                                       "stored": short(stored), "moved": short(moved),
                                       "cut": self.cut + left_out, "as_rep": list(self.as_rep)}},
                              separators=(",", ":"))
            if len(text) <= _VALUE_ROOM or not (stored or moved):
                return text
            (moved or stored).pop()

    @classmethod
    def of_value(cls, raw: dict[str, Any]) -> Logged:
        """A Show all button's log; a value that is not one is refused as a stale button."""
        try:
            day = date.fromisoformat(str(raw.get("day")))
        except ValueError:
            raise UserError("That button no longer works. `/kpi history` shows your entries.") from None
        dims = tuple((str(d[0]), str(d[1])) for d in raw.get("dims") or ()
                     if isinstance(d, list) and len(d) == 2)
        cut = raw.get("cut")
        as_rep = tuple(str(m) for m in raw.get("as_rep") or () if isinstance(m, str))
        return cls(day, str(raw.get("batch") or ""), _figures(raw.get("stored")), dims,
                   _figures(raw.get("moved")), cut if isinstance(cut, int) else 0, as_rep)


def log_reply(logged: Logged, catalogue: Catalogue, currency: str, locale: str, *,
              full: bool = False) -> Message:
    """What was stored, the KPIs it moved most and an Undo button (ephemeral), within the fold
    on a phone; Show all (or `full`) has every number and every KPI it moved."""
    def unit(key: str) -> Unit:
        item = catalogue.metrics.get(key) or catalogue.kpis.get(key)
        return item.unit if item else Unit.COUNT

    stored = [f"*{m}* {fmt(new, unit(m), currency, locale)}"
              + (f" (was {fmt(old, unit(m), currency, locale)})" if old is not None else "")
              for m, new, old in logged.stored]
    tags = " · ".join(f"{k}={v}" for k, v in logged.dims)
    if logged.as_rep:
        which = "" if len(logged.as_rep) == len(logged.stored) else f"{', '.join(logged.as_rep)} "
        tags = " · ".join(t for t in (tags, f"{which}for you as rep") if t)
    moved = [f"• {catalogue.kpis[k].label if k in catalogue.kpis else k}: "
             f"{fmt(before, unit(k), currency, locale)} → *{fmt(after, unit(k), currency, locale)}*"
             for k, before, after in logged.moved]
    if full and logged.cut:
        moved.append(f"…and {logged.cut} more than a button can carry: `/kpi history` and "
                     f"`/kpi report {logged.day}` show them.")

    def first_line(shown: int) -> str:
        rest = f" and {len(stored) - shown} more" if shown < len(stored) else ""
        return (f":white_check_mark: Stored for {logged.day:%a %d %b %Y}: {', '.join(stored[:shown])}"
                f"{rest}" + (f" ({tags})" if tags else ""))

    def assemble(shown: int, kpis: int) -> list[Block]:
        buttons = [_button("Undo", "undo_last", logged.batch_id)]
        if shown < len(stored) or kpis < len(moved):
            label = f"Show all {len(moved)} KPIs" if shown == len(stored) else "Show all numbers"
            buttons.append(show_all(label, logged.value()))
        return [*sections([first_line(shown), *moved[:kpis]]), actions(*buttons)]

    text = first_line(len(stored)).replace("*", "")
    if full:
        return message(text, assemble(len(stored), len(moved)))
    # what was stored first, leaving room for the KPI that moved most
    shown = most_that_fit(lambda n: assemble(n, min(len(moved), 1)), len(stored), least=1)
    return message(text, fold(lambda kpis: assemble(shown, kpis), len(moved)))


def deleted_reply(logged: Logged, catalogue: Catalogue, currency: str, locale: str) -> Message:
    """A history line's Delete: what was removed, the KPIs it moved most and an Undo button,
    within the fold."""
    def unit(key: str) -> Unit:
        item = catalogue.metrics.get(key) or catalogue.kpis.get(key)
        return item.unit if item else Unit.COUNT

    removed = ", ".join(f"*{m}* {fmt(old, unit(m), currency, locale)}" for m, _, old in logged.stored)
    tags = " · ".join(f"{k}={v}" for k, v in logged.dims)
    first = (f":wastebasket: Deleted for {logged.day:%a %d %b %Y}: {removed}"
             + (f" ({tags})" if tags else ""))
    moved = [f"• {catalogue.kpis[k].label if k in catalogue.kpis else k}: "
             f"{fmt(before, unit(k), currency, locale)} → *{fmt(after, unit(k), currency, locale)}*"
             for k, before, after in logged.moved]

    def assemble(kpis: int) -> list[Block]:
        return [*sections([first, *moved[:kpis]]), actions(_button("Undo", "undo_last", logged.batch_id))]

    return message(first.replace("*", ""), fold(assemble, len(moved)))


def entry_modal(form: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """A history line's Edit form: the entry named, its value filled in to change."""
    entry = form.entry
    owner = f"<@{entry.author}>" if entry.author.startswith("U") else f"`{entry.author}`"
    tags = "".join(f" · {k}={v}" for k, v in entry.dims)
    about = section(f"*{form.metric.label}* (`{entry.metric}`) for {entry.day:%a %d %b %Y}{tags}, "
                    f"logged by {owner}")
    field = {**_number_input(form.metric, form.currency, form.value), "optional": False}
    return modal("entry_form", "Edit entry", [about, field], metadata)


def undo_reply(batch: Any) -> Message:
    """What an Undo put back, each entry with its tags by their names (`temperature=warm`)."""
    parts = [f"{c.metric}{''.join(f' {k}={v}' for k, v in c.dims)} for {c.day} back to "
             f"{c.new if c.new is not None else 'nothing'}" for c in batch.changes]
    return message(":leftwards_arrow_with_hook: Undone: " + "; ".join(parts[:20]))


#: the action of a history line's menu; its options' values are `edit:ID` and `delete:ID`
ENTRY_MENU = "history_entry"


def history_message(lines: Sequence[Any], catalogue: Catalogue, currency: str, locale: str, *,
                    full: bool = False, more: str = "",
                    changeable: frozenset[int] = frozenset()) -> Message:
    """The latest entries, newest first, as many as fit above the fold; Show all (`full`)
    every one of them. A line in `changeable` carries an Edit and Delete menu beside it."""
    if not lines:
        return message("No entries yet. Log some with `/kpi log leads=12 spend=340`.")
    rows = []
    for h in lines:
        unit = catalogue.metrics[h.metric].unit if h.metric in catalogue.metrics else Unit.COUNT
        old = fmt(h.old, unit, currency, locale) if h.old is not None else "—"
        new = fmt(h.new, unit, currency, locale) if h.new is not None else "removed"
        who = f"<@{h.actor}>" if h.actor.startswith("U") else h.actor
        tags = "".join(f" {k}={v}" for k, v in h.dims)
        undone = " _(undone)_" if h.undone else ""
        row = section(f"`{h.day}` *{h.metric}*{tags}: {old} → {new} by {who} via {h.origin}{undone}")
        if h.id in changeable:
            row["accessory"] = overflow(ENTRY_MENU, [("Edit", f"edit:{h.id}"),
                                                     ("Delete", f"delete:{h.id}")])
        rows.append(row)

    return listing("Recent entries", "*Recent entries*", rows, noun="entries", more=more,
                   full=full)


# -- reports --------------------------------------------------------------------------------


def _change_line(label: str, change: Change, unit: Unit, currency: str, locale: str) -> str:
    now = fmt(change.value, unit, currency, locale)
    was = fmt(change.previous, unit, currency, locale)
    delta = format_delta(change.change_pct, change.points(), unit, locale=locale)
    return f"{_ARROW[change.signal]} *{label}*: {now}  _(was {was}, {delta})_"


def compared_title(report: Any) -> str:
    """`KPIs 2026-11-30..2026-12-02 so far vs 2026-11-23..2026-11-25`: an unfinished period
    says so, and names the same elapsed part it is compared with; filters are named too."""
    kept = "".join(f" · {name}={value}" for name, value in getattr(report, "dims", ()))
    return f"KPIs {report.period}{' so far' if report.partial else ''} vs {report.previous}{kept}"


#: a breakdown shows this many values; the rest are counted
MAX_GROUPS = 8


def group_name(dimension: str, value: str | None, *, slack: bool = True) -> str:
    if value is None:
        return f"no {dimension} (untagged)"
    return f"<@{value}>" if dimension == "rep" and slack else value


def breakdown_lines(report: Any, *, slack: bool = True) -> list[str]:
    """One line per value of `by DIM`, best first by the first name asked for: the ranked
    figure with its change, then up to two more figures of the same group."""
    if report.by is None:
        return []
    ws, cat = report.workspace, report.catalogue
    keys = [report.ranked_by] if report.ranked_by else []
    others = (*report.asked, *report.kpis, *report.metrics)
    keys += [k for k in dict.fromkeys(others) if k not in keys][: 3 - len(keys)]
    lines = []
    for rank, group in enumerate(report.groups[:MAX_GROUPS], start=1):
        parts = []
        for i, key in enumerate(keys):
            change = group.kpis.get(key) or group.metrics.get(key)
            if change is None:
                continue
            definition = cat.kpis.get(key) or cat.metrics[key]
            value = fmt(change.value, definition.unit, ws.currency, ws.locale)
            if i == 0:
                delta = format_delta(change.change_pct, change.points(), definition.unit, locale=ws.locale)
                mark = f"{_ARROW[change.signal]} " if slack else ""
                parts.append(f"{mark}{definition.label} {value} ({delta})")
            else:
                parts.append(f"{definition.label} {value}")
        name = group_name(report.by, group.value, slack=slack)
        shown = f"*{name}*" if slack else name
        lines.append(f"{rank}. {shown}: " + " · ".join(parts or ["no figures"]))
    if len(report.groups) > MAX_GROUPS:
        lines.append(f"…and {len(report.groups) - MAX_GROUPS} more (`/kpi report … {report.by}=VALUE` "
                     "shows one)")
    return lines


LEGEND = (":large_green_circle: better · :red_circle: worse, only where the change is unlikely to be "
          "noise (:white_circle: within noise) · pts: percentage points · n/a: no data or nothing to divide by")


def estimate_note(report: Any) -> str:
    """What a figure was computed from where that is not its usual formula: frequency over
    several days (a lower bound), a KPI computed its fallback way (LTV without churn)."""
    notes = []
    if "frequency" in report.kpis and report.period.days > 1:
        notes.append("Frequency over several days divides impressions by the sum of daily reach, "
                     "which counts a person seen on two days twice: the true frequency is at least this.")
    cat: Catalogue = report.catalogue
    for key, method in getattr(report, "methods", {}).items():
        if key in report.kpis and method != cat.kpis[key].methods[0]:
            notes.append(f"{cat.kpis[key].label}: {method}.")
    return " ".join(notes)


def metrics_message(catalogue: Catalogue, packs: Sequence[str], currency: str,
                    chosen: Sequence[Metric] | None = None, *, full: bool = False,
                    more: str = "") -> Message:
    """What can be logged and what is computed: by default their keys, as many as fit above
    the fold; Show all (`full`) each with its label, unit and formula, and the other packs'.
    `chosen` is the list `/kpi track` set, when one was."""
    tracked = list(chosen) if chosen else catalogue.metrics_in(packs)
    why = "chosen with `/kpi track`" if chosen else f"packs: {', '.join(packs)}"
    if not full:
        return _metric_keys(catalogue, packs, tracked, why, more)
    lines = [f"*Tracked metrics* ({why}; log with `/kpi log KEY=VALUE`)"]
    lines += [f"`{m.key}` {m.label} ({_unit_name(m, currency)}, {m.aggregation.value})" for m in tracked]
    lines.append("*KPIs*")
    lines += [f"`{k.key}` {k.label} = `{k.formula.text}`" for k in catalogue.kpis_in(packs)]
    others = [m.key for m in catalogue.metrics.values() if m not in tracked]
    if others:
        lines.append("*Also available* (an admin can add packs in `/kpi settings`): " + ", ".join(f"`{k}`" for k in others))
    return message("Metrics and KPIs", sections(lines))


def _metric_keys(catalogue: Catalogue, packs: Sequence[str], tracked: Sequence[Metric], why: str,
                 more: str) -> Message:
    metrics = [f"`{m.key}`" for m in tracked]
    kpis = [f"`{k.key}`" for k in catalogue.kpis_in(packs)]

    def listed(keys: Sequence[str], total: int) -> str:
        return ", ".join(keys) + (f" and {total - len(keys)} more" if len(keys) < total else "")

    def assemble(shown: int) -> list[Block]:
        lines = [f"*Tracked metrics* ({why}; log with `/kpi log KEY=VALUE`): "
                 + listed(metrics[:shown], len(metrics))]
        if shown > len(metrics):
            lines.append("*KPIs*: " + listed(kpis[:shown - len(metrics)], len(kpis)))
        # the labels and formulas are below the fold even when every key is above it
        return [*sections(lines), actions(show_all("Show all, with labels and formulas", more))]

    return message("Metrics and KPIs", fold(assemble, len(metrics) + len(kpis), 1))


def _unit_name(metric: Metric, currency: str) -> str:
    return currency if metric.unit is Unit.CURRENCY else metric.unit.value


# -- views ----------------------------------------------------------------------------------


def _number_input(metric: Metric, currency: str, value: str | None = None) -> dict[str, Any]:
    decimals = metric.unit not in (Unit.COUNT,)
    element: dict[str, Any] = {"type": "number_input", "action_id": "value",
                               "is_decimal_allowed": decimals}
    if value is not None:
        element["initial_value"] = value
    if metric.minimum is not None:
        element["min_value"] = str(int(metric.minimum)) if not decimals else str(metric.minimum)
    if metric.maximum is not None and metric.unit is not Unit.PERCENT:
        element["max_value"] = str(metric.maximum)
    suffix = {Unit.CURRENCY: f" ({currency})", Unit.PERCENT: " (%)"}.get(metric.unit, "")
    return {"type": "input", "block_id": f"m:{metric.key}", "optional": True,
            "label": {"type": "plain_text", "text": (metric.label + suffix)[:2000]}, "element": element}


#: a view's blocks (Slack's limit), and the number fields the log form shows at most
VIEW_BLOCKS = 100
LOG_FORM_METRICS = 90
#: the value of a dimension picker's "none" option; a value's own option is `v:VALUE`
NO_VALUE = "-"


def picked_dimension(raw: str, picker: bool) -> str | None:
    """A dimension field of the log form as its value: None for "none" or nothing picked.
    A picker's option names its value as `v:VALUE`; any other value (a stale or forged form)
    is passed on as typed, for clean_dims to refuse on the field."""
    if not picker:
        return raw if raw.strip() else None
    if raw == NO_VALUE or not raw:
        return None
    return raw.removeprefix("v:")


def _dimension_input(own: Dimension) -> dict[str, Any]:
    """A picker of the dimension's values plus "none" when it has a list, else a text field."""
    label = own.key.replace("_", " ").capitalize()
    element: dict[str, Any]
    if own.choices:
        element = {"type": "static_select", "action_id": "value",
                   "placeholder": plain(f"Pick a {own.key.replace('_', ' ')}"),
                   "options": [*(option(f"v:{v}", v) for v in own.choices),
                               option(NO_VALUE, f"no {own.key.replace('_', ' ')}")]}
    else:
        element = {"type": "plain_text_input", "action_id": "value", "max_length": 64}
    return {"type": "input", "block_id": f"d:{own.key}", "optional": True,
            "label": plain(label, 2000), "element": element}


def log_modal(metrics: Sequence[Metric], today: date, currency: str, metadata: dict[str, str],
              prefilled: dict[str, str] | None = None,
              dimensions: Sequence[Dimension] = ()) -> dict[str, Any]:
    """The log form: date, one number per tracked metric (filled with what the asker already
    logged for the day), optional dimensions: the built-in ones, then a picker or text field
    per dimension of the workspace's own. Within a view's 100 blocks, the dimensions first."""
    prefilled = prefilled or {}
    tags: list[dict[str, Any]] = [
        {"type": "input", "block_id": "d:source", "optional": True,
         "label": {"type": "plain_text", "text": "Source (e.g. facebook)"},
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 64}},
        {"type": "input", "block_id": "d:rep", "optional": True,
         "label": {"type": "plain_text", "text": "Rep"},
         "element": {"type": "users_select", "action_id": "value"}},
        {"type": "input", "block_id": "d:campaign", "optional": True,
         "label": {"type": "plain_text", "text": "Campaign"},
         "element": {"type": "plain_text_input", "action_id": "value", "max_length": 64}},
        *(_dimension_input(d) for d in dimensions),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "input", "block_id": "day", "label": {"type": "plain_text", "text": "Day"},
         "element": {"type": "datepicker", "action_id": "value", "initial_date": today.isoformat()}},
    ]
    room = min(LOG_FORM_METRICS, VIEW_BLOCKS - len(blocks) - len(tags))
    blocks += [_number_input(m, currency, prefilled.get(m.key)) for m in metrics[:room]]
    return modal("log_form", "Log today's numbers", [*blocks, *tags], metadata, submit="Log")


def settings_modal(workspace: Any, packs: Sequence[str], metadata: dict[str, str]) -> dict[str, Any]:
    currencies = ("USD", "EUR", "GBP", "COP", "MXN", "ARS", "CLP", "PEN", "BRL", "CAD", "AUD")
    current_packs = [option(p, p.title()) for p in workspace.packs if p in packs]
    pack_element: dict[str, Any] = {"type": "checkboxes", "action_id": "value",
                                    "options": [option(p, p.title()) for p in packs]}
    if current_packs:
        pack_element["initial_options"] = current_packs
    return modal("settings_form", "KPI bot settings", [
            {"type": "input", "block_id": "packs", "label": {"type": "plain_text", "text": "Tracked packs"},
             "element": pack_element},
            {"type": "input", "block_id": "currency", "label": {"type": "plain_text", "text": "Currency"},
             "element": {"type": "static_select", "action_id": "value",
                         "options": [option(c) for c in currencies],
                         "initial_option": option(workspace.currency if workspace.currency in currencies else "USD")}},
            {"type": "input", "block_id": "locale", "label": {"type": "plain_text", "text": "Language and number format"},
             "element": {"type": "static_select", "action_id": "value",
                         "options": [option(code, name) for code, name in LOCALES.items()],
                         "initial_option": option(workspace.locale if workspace.locale in LOCALES else "en_US",
                                                  LOCALES.get(workspace.locale, LOCALES["en_US"]))}},
            {"type": "input", "block_id": "timezone", "label": {"type": "plain_text", "text": "Time zone (IANA name)"},
             "element": {"type": "plain_text_input", "action_id": "value", "initial_value": workspace.timezone,
                         "max_length": 64}},
    ], metadata)


def setup_modal(form: SetupForm, metadata: dict[str, str]) -> dict[str, Any]:
    """`/kpi setup`: the metrics to track (picked one by one), the daily digest's channel and
    time, and up to three goals written as `/kpi goal` takes them."""
    by_pack: dict[str, list[dict[str, Any]]] = {}
    for m in form.metrics:
        by_pack.setdefault(m.pack, []).append(option(m.key, f"{m.label} ({m.key})"))
    groups: list[dict[str, Any]] = [
        {"label": {"type": "plain_text", "text": pack.title()[:75]}, "options": options[:100]}
        for pack, options in by_pack.items()][:100]
    offered = {o["value"]: o for g in groups for o in g["options"]}
    metrics: dict[str, Any] = {"type": "multi_static_select", "action_id": "value",
                               "option_groups": groups, "max_selected_items": MAX_TRACKED,
                               "placeholder": {"type": "plain_text", "text": "Pick a metric"}}
    chosen = [offered[k] for k in form.tracked if k in offered][:MAX_TRACKED]
    if chosen:
        metrics["initial_options"] = chosen
    channel: dict[str, Any] = {"type": "conversations_select", "action_id": "value",
                               "filter": {"include": ["public", "private"], "exclude_bot_users": True}}
    if form.digest_channel or form.channel:
        channel["initial_conversation"] = form.digest_channel or form.channel
    blocks: list[dict[str, Any]] = [
        section("Choose what the team logs, where the daily digest goes, and goals to aim for. "
                "Each part does what `/kpi track`, `/kpi digest daily HH:MM` and `/kpi goal` do."),
        {"type": "input", "block_id": "metrics", "label": {"type": "plain_text", "text": "Metrics to track"},
         "hint": {"type": "plain_text", "text": "The log form, App Home and reminders ask for exactly these."},
         "element": metrics},
        {"type": "input", "block_id": "digest_channel", "optional": True,
         "label": {"type": "plain_text", "text": "Daily digest in"},
         "hint": {"type": "plain_text", "text": "Leave empty for no daily digest change."},
         "element": channel},
        {"type": "input", "block_id": "digest_time", "optional": True,
         "label": {"type": "plain_text", "text": "Daily digest at"},
         "element": {"type": "timepicker", "action_id": "value", "initial_time": form.digest_time}},
    ]
    for n in range(SETUP_GOALS):
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "max_length": 80,
                                   "placeholder": {"type": "plain_text", "text": "revenue 50000 monthly"}}
        if n < len(form.goals):
            element["initial_value"] = form.goals[n]
        blocks.append({"type": "input", "block_id": f"goal:{n + 1}", "optional": True,
                       "label": {"type": "plain_text", "text": f"Goal {n + 1}"},
                       "hint": {"type": "plain_text", "text": "A KPI or metric, a target, then weekly "
                                                              "or monthly (monthly if left out)."},
                       "element": element})
    return modal("setup_form", "Set up KPI bot", blocks, metadata, submit="Save")


#: how an admin fixes a delivery that failed for good (App Home and the DM to its creator)
FIXES = {
    "channel_not_found": "The channel is gone: set it up again in another channel.",
    "not_in_channel": "Invite me with `/invite @KPI Bot` in that channel.",
    "method_not_supported_for_channel_type": "Invite me with `/invite @KPI Bot` in that channel.",
    "is_archived": "The channel is archived: unarchive it, or set it up again in another channel.",
    "account_inactive": "My Slack access ended: reinstall KPI Bot, and it goes out again.",
    "token_revoked": "My Slack access ended: reinstall KPI Bot, and it goes out again.",
    "invalid_auth": "My Slack access ended: reinstall KPI Bot, and it goes out again.",
    "restricted_action": "Only some members may post there: let me post, or pick another channel.",
}


def failure_notice_message(notice: FailureNotice) -> dict[str, Any]:
    """The one DM to whoever set up a delivery that failed for good: what, where, the fix."""
    fix = FIXES.get(notice.error, "See App Home for what failed.")
    text = (f":warning: I couldn't post {notice.what} in <#{notice.channel_id}>: Slack said "
            f"`{notice.error}`. {fix}")
    return {"text": text, "blocks": [
        section(text),
        context("I tell you once; App Home lists what failed. "
                "The next ones go out as scheduled once it is fixed."),
    ]}


def home_view(home: Home, admin_hint: str) -> dict[str, Any]:
    """App Home: this week against last week, what is still missing today, and actions."""
    report, missing, is_admin = home.report, home.missing, home.is_admin
    ws = report.workspace
    schedules = [
        f"{s.kind} at {s.at_time}" + (f" on {WEEKDAYS[s.weekday].title()}s" if s.weekday is not None else "")
        + (f" by {s.breakdown}" if s.breakdown else "") + f" in <#{s.channel_id}>"
        for s in home.schedules
    ]
    problems = [
        f"• {d.kind.replace('-', ' ')} to <#{d.channel_id}>: `{d.error}` "
        f"({d.failed_at:%d %b %H:%M} UTC)" + (f" {FIXES[d.error]}" if d.error in FIXES else "")
        for d in home.problems
    ]
    goals = [goal_line(p, ws.currency, ws.locale) for p in home.goals]
    cat: Catalogue = report.catalogue
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "This week"}},
        {"type": "actions", "elements": [_button("Log today's numbers", "open_log_form", style="primary")]},
    ]
    lines = [_change_line(cat.kpis[k].label, c, cat.kpis[k].unit, ws.currency, ws.locale)
             for k, c in report.kpis.items()]
    blocks += sections(lines or ["No KPIs this week yet: log today's numbers to get started."])[:20]
    blocks.append(context(f"{report.period}{' so far' if report.partial else ''} against {report.previous}"))
    if home.reps is not None:
        blocks += rep_card_blocks(home.reps, ws.currency, ws.locale)
    if goals:
        blocks += sections(["*Goals*", *goals])[:5]
    if missing:
        blocks.append(section("*Still missing today:* " + ", ".join(f"`{m.key}`" for m in missing)))
    else:
        blocks.append(section(":tada: Everything tracked has been logged today."))
    if schedules:
        blocks.append(context("Digests: " + " · ".join(schedules)))
    if is_admin:
        blocks.append({"type": "divider"})
        if problems:
            blocks += sections([":warning: *Messages I could not post* (once fixed, the next "
                                "ones go out as scheduled)", *problems])[:5]
        if home.notices:
            blocks += sections([":warning: *Numbers I refused* (nothing was stored for these)",
                                *(f"• {format_moment(n.created_at, ws.timezone)}: {n.message}"
                                  for n in home.notices)])[:5]
        setup = [_button("Set up", "open_setup", style="primary")] if home.needs_setup else []
        blocks.append({"type": "actions", "elements": [*setup, _button("Settings", "open_settings"),
                                                       _button("Add an alert", "open_alert_form")]})
    else:
        blocks.append(context(admin_hint))
    return {"type": "home", "blocks": blocks[:100]}


def rep_card_blocks(card: RepCard, currency: str, locale: str) -> list[dict[str, Any]]:
    """`Your numbers as a rep`: each figure against the same days of last month, and the
    viewer's place among the reps with that figure (`2nd of 5 reps`)."""
    lines = ["*Your numbers as a rep* (this month)"]
    lines += [f"{_change_line(f.label, f.change, f.unit, currency, locale)} · "
              f"*{format_ordinal(f.place)} of {f.of}* rep{'s' if f.of > 1 else ''}"
              for f in card.figures]
    return [*sections(lines),
            context(f"{card.period}{' so far' if card.partial else ''} against {card.previous}; "
                    f"`/kpi report month {card.figures[0].key} by rep` is the whole leaderboard")]


def scheduled_text(done: Any, ctx: Any) -> str:
    """`/kpi digest daily 09:00`: where, when, and the next post in the workspace's zone."""
    sub = done.subscription
    when = f"every {WEEKDAYS[sub.weekday].title()}" if sub.weekday is not None else "every day"
    with_sources = (f", with the biggest move of each {sub.breakdown}" if sub.breakdown else "")
    return (f":calendar: The {sub.kind} digest will be posted in <#{sub.channel_id}> {when} at "
            f"{sub.at_time} ({done.timezone}){with_sources}. Next: {done.next_post:%a %d %b %H:%M}. "
            f"`/kpi digest now {sub.kind}` shows it now; `/kpi digest off` stops it.")


_UNIT_WORDS = {"score": "number"}


def metric_added_text(metric: Any) -> str:
    """`/kpi metric add`: what was added and how to log it."""
    unit = _UNIT_WORDS.get(metric.unit.value, metric.unit.value)
    return (f":white_check_mark: Added the metric `{metric.key}` ({metric.label}: {unit}, "
            f"{metric.aggregation.value} over a period). Log it like `/kpi log {metric.key}=12`; "
            "formulas in `/kpi define` can use it.")


def metric_removed_text(metric: Any) -> str:
    return (f":wastebasket: Removed the metric `{metric.key}`. Its entries are kept: "
            f"`/kpi metric add {metric.key}` brings them back.")


def source_classified_text(done: Any) -> str:
    """`/kpi source NAME paid|organic`: what changed and what it changes."""
    kind = "paid" if done.paid else "organic"
    was = "" if done.before != done.paid else " (it already counted that way)"
    return (f":white_check_mark: `source={done.source}` counts as {kind}{was}. Paid CAC and "
            "cost per paid lead count only paid sources and untagged entries; "
            "`/kpi sources` lists them all.")


def sources_message(found: Any, *, full: bool = False, more: str = "") -> Message:
    """`/kpi sources`: every source seen, paid or organic, and whether that is the default;
    as many as fit above the fold, Show all (`full`) every one."""
    if not found.sources:
        return message("No entry has a source yet. Tag numbers with `source=NAME` (e.g. `/kpi log "
                       "leads=12 source=facebook`) to see CAC and cost per lead for paid sources "
                       "apart.")
    rows = [f"• `{source}`: {'paid' if paid else 'organic'}{' (default)' if default else ''}"
            for source, (paid, default) in found.sources.items()]
    return listing("Sources", "*Sources* (paid ones count for paid CAC and cost per paid lead; "
                   "so do untagged entries)", rows, noun="sources", more=more, full=full,
                   footer="Change one with `/kpi source NAME paid|organic`.")


def dimension_added_text(done: Any) -> str:
    """`/kpi dimension add`: what was added and how to tag entries with it."""
    allowed = (f"values {', '.join(f'`{v}`' for v in done.values)}" if done.values
               else "any value")
    example = done.values[0] if done.values else "warm"
    verb = "Changed" if done.replaced else "Added"
    again = (" again: the entries tagged with it before it was removed count in it once more"
             if done.restored else "")
    return (f":white_check_mark: {verb} the dimension `{done.key}` ({allowed}){again}. Tag "
            f"numbers like `/kpi log leads=12 {done.key}={example}`, then "
            f"`/kpi report week by {done.key}`.")


def dimension_removed_text(done: Any) -> str:
    return (f":wastebasket: Removed the dimension `{done.key}`. Entries keep their tags "
            "(`/kpi history` and `/kpi export` show them), but reports no longer break down by "
            f"it; `/kpi dimension add {done.key}` brings it back with them.")


def dimensions_text(found: Any) -> str:
    """`/kpi dimensions`: the built-in dimensions and the workspace's own, with their values."""
    lines = [f"*Dimensions*: {', '.join(f'`{d}`' for d in found.built_in)} (built in)"]
    for own in found.own:
        values = ", ".join(own.choices) if own.choices else "any value"
        lines.append(f"• `{own.key}`: {values}")
    if not found.own:
        lines.append("None of your own yet: add one with "
                     "`/kpi dimension add temperature warm cold`.")
    lines.append("Filter with `DIM=VALUE` and break down with `by DIM` in `/kpi report`.")
    return "\n".join(lines)


#: metric names a track answer lists before "and N more", so it fits on a phone
_TRACKED_SHOWN = 12


def tracked_text(tracked: Any, *, changed: bool = False) -> str:
    """`/kpi track`: what the log form, App Home and reminders ask for, and how to change it."""
    shown = _TRACKED_SHOWN if len(tracked.metrics) > _TRACKED_SHOWN + 2 else len(tracked.metrics)
    keys = ", ".join(f"`{m.key}`" for m in tracked.metrics[:shown]) + (
        f" and {len(tracked.metrics) - shown} more (`/kpi metrics` lists them)"
        if shown < len(tracked.metrics) else "")
    count = f"{len(tracked.metrics)} metric{'' if len(tracked.metrics) == 1 else 's'}"
    if changed:
        dropped = [k for k in tracked.before if k not in {m.key for m in tracked.metrics}]
        gone = (f" No longer asked for: {', '.join(f'`{k}`' for k in dropped[:6])}"
                f"{f' and {len(dropped) - 6} more' if len(dropped) > 6 else ''} (their numbers "
                "are kept)."
                if dropped else "")
        if not tracked.chosen:
            return (f":white_check_mark: Back to the {count} of the packs "
                    f"{', '.join(tracked.packs)}: {keys}. The log form, App Home and reminders "
                    f"ask for these.{gone}")
        return (f":white_check_mark: Tracking {count}: {keys}. The log form, App Home and "
                f"reminders ask for exactly these.{gone}")
    if tracked.chosen:
        return (f"Tracking {count}, chosen with `/kpi track`: {keys}. The log form, App Home and "
                "reminders ask for these; `/kpi track NAME ...` changes the list, `/kpi track packs` "
                "goes back to the packs' metrics.")
    return (f"Tracking the {count} of the packs {', '.join(tracked.packs)}: {keys}. An admin can "
            "choose exactly which with `/kpi track leads spend sales`.")


def unsubscribed_text(stopped: int, kind: str | None) -> str:
    what = f"{kind} digest" if kind else "digests"
    if not stopped:
        return f"There was no {what} scheduled in this channel, so nothing changed."
    return f":no_bell: Stopped the {what} in this channel."
