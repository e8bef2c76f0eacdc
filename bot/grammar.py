"""The one parser of `/kpi` command text.

Slack, the CLI and the tests all read command text through `parse_command`, so a command means
the same thing everywhere. It is pure: it knows the shape of each command, not which metrics,
KPIs or alert rules exist. Names and numbers are checked against the workspace's data later,
where that data is; raw value strings are kept as typed for that reason.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TypeAlias

from kpis.catalogue import DIMENSIONS
from kpis.numbers import NumberError, parse_number
from kpis.periods import NAMED_RANGES
from kpis.suggest import did_you_mean
from kpis.unusual import DEFAULT_SENSITIVITY, SENSITIVITIES, UNUSUAL_PERIODS

MAX_LENGTH = 4000
MAX_LOG_PAIRS = 60
#: a log form submits one value per tracked metric, and a log takes at most MAX_LOG_PAIRS
MAX_TRACKED = MAX_LOG_PAIRS
RANGES = NAMED_RANGES
LOG_DATES = ("today", "yesterday")
DIGEST_KINDS = ("daily", "weekly")
ALERT_PERIODS = ("daily", "weekly", "monthly")
GOAL_PERIODS = ("weekly", "monthly")
ALERT_OPS = (">", ">=", "<", "<=")
CHANGE_OPS = ("up", "down")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_RANGE_DAYS = 366


# --- The commands -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Help:
    """`help`: short usage with examples; `full` (its Show all) every command."""

    full: bool = False


@dataclass(frozen=True, kw_only=True)
class LogForm:
    """Empty text or `log` alone: open the log form."""


@dataclass(frozen=True, kw_only=True)
class Log:
    """`log leads=12 spend=$340 date=yesterday source=facebook`; values are parsed later."""

    values: tuple[tuple[str, str], ...]
    date: str | None = None
    dims: tuple[tuple[str, str], ...] = ()
    via: str = "slack"


@dataclass(frozen=True, kw_only=True)
class Report:
    """`report [RANGE] [NAME ...] [DIM=VALUE ...] [by DIM]`: names are KPIs or metrics."""

    range: str | None = None
    kpis: tuple[str, ...] = ()
    dims: tuple[tuple[str, str], ...] = ()
    by: str | None = None
    #: the day a button's report stood on (an alert's week so far); never typed
    as_of: str | None = None
    full: bool = False


@dataclass(frozen=True, kw_only=True)
class Chart:
    """`chart NAME [RANGE] [by DIM]`: NAME is a KPI or a metric; `by` draws a line per value."""

    kpi: str
    range: str | None = None
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class DigestNow:
    """`digest now [daily|weekly] [by source]`; without `by`, as the channel's schedule says."""

    kind: str = "daily"
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class DigestSchedule:
    """`digest daily HH:MM [by source]` or `digest weekly DAY HH:MM [by source]`; weekday 0
    is Monday; `by source` adds each source's biggest mover."""

    kind: str
    weekday: int | None
    time: str
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class DigestOff:
    """`digest off [daily|weekly]`; no kind stops both."""

    kind: str | None = None


@dataclass(frozen=True, kw_only=True)
class AlertAdd:
    """`alert KPI OP VALUE [PERIOD] [for N] [@mention] [DIM=VALUE ...]`, or
    `alert KPI unusual [daily|weekly] [low|medium|high] [for N] [@mention] [DIM=VALUE ...]`.

    `op` is one of `> >= < <=`, `up`/`down` for a change rule whose threshold is a percent, or
    `unusual` (no threshold: the band comes from the same weekday or recent weeks).
    `mention` is kept in the form Slack expands when posting: `<@U1>`, `<!subteam^S1>`,
    `<!channel>`.
    """

    kpi: str
    op: str
    threshold: str
    period: str = "daily"
    for_periods: int = 1
    mention: str | None = None
    dims: tuple[tuple[str, str], ...] = ()
    sensitivity: str = DEFAULT_SENSITIVITY


@dataclass(frozen=True, kw_only=True)
class AlertForm:
    """`alert` alone: open the alert form."""


@dataclass(frozen=True, kw_only=True)
class Alerts:
    """`alerts`: list the rules; `full` (the Show all button) every one of them."""

    full: bool = False


@dataclass(frozen=True, kw_only=True)
class AlertRemove:
    """`alert remove ID`."""

    rule_id: int


@dataclass(frozen=True, kw_only=True)
class AlertSnooze:
    """`alert snooze ID DURATION`, the duration normalised like `12h`, `7d`, `2w`."""

    rule_id: int
    duration: str


@dataclass(frozen=True, kw_only=True)
class Goal:
    """`goal KPI VALUE [weekly|monthly]`."""

    kpi: str
    value: str
    period: str = "monthly"


@dataclass(frozen=True, kw_only=True)
class Goals:
    """`goals`: every goal with its progress and pace; `full` (the Show all button) every one."""

    full: bool = False


@dataclass(frozen=True, kw_only=True)
class GoalRemove:
    """`goal remove NAME [weekly|monthly]`; no period removes every goal on NAME."""

    key: str
    period: str | None = None


@dataclass(frozen=True, kw_only=True)
class Track:
    """`track NAME ...` (spaces or commas between names): exactly these metrics are asked
    for in the log form, App Home and reminders; whether each exists is checked later.
    `track packs` (no metrics) goes back to asking for the packs' metrics."""

    metrics: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Setup:
    """`setup`: open the set-up form (metrics to track, the daily digest, goals)."""


@dataclass(frozen=True, kw_only=True)
class Tracking:
    """`track` alone: which metrics the workspace asks for, and why (chosen, or its packs)."""


@dataclass(frozen=True, kw_only=True)
class Metrics:
    """`metrics`: what the workspace tracks; `full` (its Show all) with every label and formula."""

    full: bool = False


@dataclass(frozen=True, kw_only=True)
class Define:
    """`define KEY = FORMULA [as UNIT] [higher|lower]`; the formula is checked where the other
    names are known. `unit` is a kpis.catalogue.Unit value, `better` a Better value."""

    key: str
    formula: str
    unit: str = "ratio"
    better: str = "neutral"


@dataclass(frozen=True, kw_only=True)
class MetricAdd:
    """`metric add KEY [UNIT] [sum|last|mean] [LABEL ...]`: the team's own input metric."""

    key: str
    unit: str = "count"
    aggregation: str = "sum"
    label: str = ""


@dataclass(frozen=True, kw_only=True)
class MetricRemove:
    """`metric remove KEY`: refused while a KPI uses it; its entries are kept."""

    key: str


@dataclass(frozen=True, kw_only=True)
class DimensionAdd:
    """`dimension add KEY [VALUE ...]`: the team's own dimension, free text or limited to the
    values given (case-folded, in the order given)."""

    key: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DimensionRemove:
    """`dimension remove KEY`: refused while an alert keeps only one of its values."""

    key: str


@dataclass(frozen=True, kw_only=True)
class Dimensions:
    """`dimensions` (or `dimension` alone): the built-in and the workspace's own dimensions."""


@dataclass(frozen=True, kw_only=True)
class SourceClass:
    """`source NAME paid|organic`: how a source value counts for paid CAC and paid CPL."""

    source: str
    paid: bool


@dataclass(frozen=True, kw_only=True)
class Sources:
    """`source` or `sources`: every source value seen, and whether it counts as paid; `full`
    (its Show all) every one."""

    full: bool = False


@dataclass(frozen=True, kw_only=True)
class History:
    """`history [METRIC]`; `full` (its Show all) every line of it."""

    metric: str | None = None
    full: bool = False


@dataclass(frozen=True, kw_only=True)
class Undo:
    """`undo`: take back your last change (a reply's Undo button names its batch)."""

    batch_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Export:
    """`export [RANGE]`."""

    range: str | None = None


@dataclass(frozen=True, kw_only=True)
class Tz:
    """`tz ZONE`, kept as typed; the zone name is checked against the tz database elsewhere."""

    zone: str


@dataclass(frozen=True, kw_only=True)
class Settings:
    """`settings`: open the settings form."""


@dataclass(frozen=True, kw_only=True)
class Why:
    """`why KPI [RANGE]`: what moved the KPI against the previous period."""

    kpi: str
    range: str | None = None
    full: bool = False


@dataclass(frozen=True, kw_only=True)
class WhatIf:
    """`whatif STEP=+PCT% ...`; the values are kept as typed (`+10%`, `-5%`, `10`)."""

    changes: tuple[tuple[str, str], ...]
    full: bool = False


@dataclass(frozen=True, kw_only=True)
class WhatIfForm:
    """`whatif` alone: open the what-if form."""


@dataclass(frozen=True, kw_only=True)
class Remind:
    """`remind off|on`: one's own reminders."""

    enabled: bool


@dataclass(frozen=True, kw_only=True)
class RemindAt:
    """`remind HH:MM`: the workspace's reminder time."""

    time: str


@dataclass(frozen=True, kw_only=True)
class TokenCreate:
    """`token create [NAME]`: a new API token, shown once."""

    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class Tokens:
    """`token` or `token list`: the workspace's API tokens; `full` (its Show all) every one."""

    full: bool = False


@dataclass(frozen=True, kw_only=True)
class TokenRevoke:
    """`token revoke ID`."""

    token_id: int


# --- Commands that forms and buttons send (no text spells them) --------------------------


@dataclass(frozen=True, kw_only=True)
class SaveSettings:
    """The settings form, submitted."""

    packs: tuple[str, ...]
    timezone: str
    currency: str
    locale: str | None = None


@dataclass(frozen=True, kw_only=True)
class EditEntry:
    """A history line's Edit: the form for that entry (`change_id`: the line's audit row)."""

    change_id: int


@dataclass(frozen=True, kw_only=True)
class SaveEntry:
    """The Edit form, submitted: the entry's new value as typed."""

    change_id: int
    value: str


@dataclass(frozen=True, kw_only=True)
class DeleteEntry:
    """A history line's Delete."""

    change_id: int


Command: TypeAlias = (
    Help
    | LogForm
    | Log
    | Report
    | Chart
    | DigestNow
    | DigestSchedule
    | DigestOff
    | AlertAdd
    | AlertForm
    | Alerts
    | AlertRemove
    | AlertSnooze
    | Goal
    | Goals
    | GoalRemove
    | Track
    | Tracking
    | Setup
    | Metrics
    | Define
    | MetricAdd
    | DimensionAdd
    | DimensionRemove
    | Dimensions
    | MetricRemove
    | SourceClass
    | Sources
    | History
    | Undo
    | Export
    | Tz
    | Settings
    | Why
    | WhatIf
    | WhatIfForm
    | Remind
    | RemindAt
    | TokenCreate
    | Tokens
    | TokenRevoke
    | SaveSettings
    | EditEntry
    | SaveEntry
    | DeleteEntry
)


class CommandError(ValueError):
    """Command text we cannot act on; `str()` is the reply, naming the problem and the fix."""


# --- Show all: a command in a button's value ------------------------------------------------

Folded: TypeAlias = (Help | Report | Alerts | Goals | Metrics | History | Why | WhatIf | Sources
                     | Tokens)
#: the commands whose answer folds on a phone, so a Show all button can ask for them in full
FOLDED: dict[str, type[Folded]] = {
    "help": Help, "report": Report, "alerts": Alerts, "goals": Goals, "metrics": Metrics,
    "history": History, "why": Why, "whatif": WhatIf, "sources": Sources, "tokens": Tokens,
}
_STALE = "That button no longer works. Run the command again."


def show_all_value(command: Folded) -> str:
    """A Show all button's value: the command, to be run again in full (`shown_in_full`)."""
    [name] = [name for name, kind in FOLDED.items() if type(command) is kind]
    said = {f.name: getattr(command, f.name) for f in fields(command)
            if f.name != "full" and getattr(command, f.name) != f.default}
    return json.dumps({"command": name, **said}, separators=(",", ":"))


def shown_in_full(value: Mapping[str, object]) -> Folded:
    """The command a Show all button names, with `full`; CommandError for a value that names
    none (a button of another version, or a made-up one)."""
    kind = FOLDED.get(str(value.get("command")))
    if kind is None:
        raise CommandError(_STALE)
    said = {f.name: _frozen(value[f.name]) for f in fields(kind)
            if f.name in value and f.name != "full"}
    try:
        return kind(**said, full=True)  # type: ignore[arg-type]
    except TypeError:
        raise CommandError(_STALE) from None


def _frozen(value: object) -> object:
    """JSON's lists back as the tuples the commands hold; only strings and None inside."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if value is None or isinstance(value, str):
        return value
    raise CommandError(_STALE)


# --- Entry point ----------------------------------------------------------------------------


def parse_command(text: str) -> Command:
    """The command meant by the text after `/kpi`; raises CommandError, never anything else."""
    if len(text) > MAX_LENGTH:
        raise CommandError(
            f"That command is too long ({len(text):,} characters; the limit is {MAX_LENGTH:,}). "
            "Split it into smaller commands."
        )
    word, _, rest = _normalise(text).partition(" ")
    if not word:
        return LogForm()
    parser = _PARSERS.get(word.lower())
    if parser is None:
        hint = " To log numbers, start with `log`, like `/kpi log leads=12`." if "=" in word else ""
        raise CommandError(
            f"I don't know {_code(word)}.{did_you_mean(word, COMMANDS)}{hint} Try `/kpi help`."
        )
    return parser(rest)


_SLACK_ESCAPES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))  # `&amp;` last, or it re-escapes
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u200b": None,
        "\u2060": None,
        "\ufeff": None,
    }
)


def _normalise(text: str) -> str:
    """Undo Slack's HTML escaping and phone/desktop typography, so people type what they see."""
    for escaped, plain in _SLACK_ESCAPES:
        text = text.replace(escaped, plain)
    return " ".join(text.translate(_TYPOGRAPHY).split())


# --- Shared pieces --------------------------------------------------------------------------

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_DEFINED_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DAYS = re.compile(r"([0-9]{1,9})d")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_DURATION = re.compile(r"([0-9]{1,9})([hdw])")
_DURATION_LIMITS = {"h": 366 * 24, "d": 366, "w": 52}
_RULE_ID = re.compile(r"#?([0-9]{1,9})")
# Not calendar.month_name: that follows the process locale, and replies are in English.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_RANGE_HELP = (
    "Periods are today, yesterday, week, last-week, month, last-month, a number of days "
    "like `30d`, or dates like `2026-01-01..2026-01-31`."
)


def _code(token: str) -> str:
    """`token` in backticks, shortened so a pasted essay is not echoed back whole."""
    return f"`{token if len(token) <= 40 else token[:39] + '…'}`"


def _listing(tokens: Iterable[str]) -> str:
    return ", ".join(_code(token) for token in tokens)


def _name(token: str, what: str, example: str) -> str:
    """A metric or KPI key, lower-cased; whether it exists is checked against the catalogue."""
    key = token.lower()
    if not _NAME.fullmatch(key):
        raise CommandError(
            f"{_code(token)} is not a {what} name: names are letters, digits and `_`, "
            f"like {example}."
        )
    return key


def _real_date(text: str) -> str:
    """`text` if it is `YYYY-MM-DD` and a day that exists; the error says what is impossible."""
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        raise CommandError(
            f"{_code(text)} is not a date; write it as YYYY-MM-DD, like `2026-03-01`."
        )
    year, month, day = (int(part) for part in match.groups())
    if not 1 <= month <= 12:
        raise CommandError(f"{text} is not a date: months go from 01 to 12.")
    if year < 1:
        raise CommandError(f"{text} is not a date: years start at 0001.")
    last_day = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last_day:
        raise CommandError(
            f"{text} is not a date: {_MONTHS[month - 1]} {year} has {last_day} days."
        )
    return text


def _range(token: str) -> str | None:
    """The normalised range `token` names, None if it does not look like a range at all."""
    low = token.lower()
    if low in RANGES:
        return low
    if days := _DAYS.fullmatch(low):
        count = int(days[1])
        if not 1 <= count <= MAX_RANGE_DAYS:
            raise CommandError(
                f"{_code(token)} is not a period I can use: give 1 to {MAX_RANGE_DAYS} days, "
                "like `30d`."
            )
        return f"{count}d"
    if ".." in low:
        start, _, end = low.partition("..")
        if not (_ISO_DATE.fullmatch(start) and _ISO_DATE.fullmatch(end)):
            raise CommandError(
                f"{_code(token)} is not a period: write two dates, like `2026-01-01..2026-01-31`."
            )
        if _real_date(start) > _real_date(end):
            raise CommandError(
                f"{_code(token)} ends before it starts: write the earlier date first, "
                f"like `{end}..{start}`."
            )
        return f"{start}..{end}"
    if _ISO_DATE.fullmatch(low):
        return f"{_real_date(low)}..{low}"
    return None


def _range_and_names(tokens: list[str], example: str) -> tuple[str | None, list[str]]:
    """Split tokens into at most one range and any number of KPI keys, in either order."""
    found: str | None = None
    names: list[str] = []
    for token in tokens:
        period = _range(token)
        if period is not None:
            if found is not None:
                raise CommandError(
                    f"Give one period, not both {_code(found)} and {_code(period)}; "
                    f"for example `{example}`."
                )
            found = period
        elif _NAME.fullmatch(token.lower()):
            if token.lower() not in names:
                names.append(token.lower())
        else:
            raise CommandError(
                f"{_code(token)} is not a period, a KPI or a metric.{did_you_mean(token, RANGES)} "
                + _RANGE_HELP
            )
    return found, names


def range_and_names(tokens: Sequence[str], example: str) -> tuple[str | None, list[str]]:
    """The same split for words that arrive already separated (`kpibot report 30d cpl`)."""
    return _range_and_names(list(tokens), example)


def _choice(token: str, choices: tuple[str, ...], what: str, example: str) -> str:
    """`token` if it is one of `choices` (any case), else an error naming the nearest one."""
    low = token.lower()
    if low not in choices:
        raise CommandError(
            f"{_code(token)} is not {what}.{did_you_mean(low, choices)} "
            f"Use {' or '.join(_code(c) for c in choices)}, like `{example}`."
        )
    return low


def _dimension_key(token: str, example: str) -> str:
    """A built-in dimension, or a name that may be the workspace's own (checked where its
    dimensions are known); a near miss of a built-in is refused naming it."""
    low = token.lower()
    if low in DIMENSIONS:
        return low
    if not _DEFINED_NAME.fullmatch(low) or did_you_mean(low, DIMENSIONS):
        raise CommandError(
            f"{_code(token)} is not a dimension.{did_you_mean(low, DIMENSIONS)} "
            f"Use {' or '.join(_code(c) for c in DIMENSIONS)} or one added with "
            f"`/kpi dimension add`, like `{example}`."
        )
    return low


def _nothing_more(command: str, extra: list[str], example: str) -> None:
    """Refuse words after a command that takes no more of them, naming the words."""
    if extra:
        raise CommandError(
            f"I don't know what to do with {_listing(extra)} after `{command}`. "
            f"Write it like `{example}`."
        )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


def _dimension(key: str, raw: str) -> str:
    """A dimension value: free text trimmed and case-folded, except `rep`, a Slack user id."""
    value = _unquote(raw).strip()
    if key == "rep":
        if mention := _USER_MENTION.fullmatch(value):
            return mention[1]
        if _USER_ID.fullmatch(value):
            return value
        raise CommandError(
            f"`rep={value}` needs a Slack user: type `rep=@` and pick them from the list."
        )
    if not value:
        raise CommandError(f"`{key}` has no value; write it like `{key}=facebook`.")
    return value.casefold()


# --- log --------------------------------------------------------------------------------------

_LOG_EXAMPLE = "/kpi log leads=12 spend=340"
# KEY = VALUE; a value is quoted, a Slack mention, or runs to a space or a comma, except that a
# comma followed by a digit belongs to a number like `$1,234`.
_PAIR = re.compile(
    r"""(?P<key>[^\s=,]+)\s*=\s*
        (?P<value>"[^"]*"|'[^']*'|<[^<>]*>|(?:[^\s,="'<>]|,(?=[0-9]))*)""",
    re.VERBOSE,
)


def _pairs(body: str) -> list[tuple[str, str]]:
    """The KEY=VALUE pairs of a log, separated by spaces and/or commas."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        if body[pos] in " ,":
            pos += 1
            continue
        match = _PAIR.match(body, pos)
        if match is None or (match.end() < len(body) and body[match.end()] not in " ,"):
            end = body.find(" ", match.end() if match else pos)
            token = body[pos:] if end < 0 else body[pos:end]
            raise CommandError(
                f"I can't read {_code(token)}: write each number as METRIC=VALUE, "
                f"like `{_LOG_EXAMPLE}`."
            )
        if not match["value"]:
            key = match["key"]
            raise CommandError(f"`{key}` has no value; write it like `{key.lower()}=12`.")
        pairs.append((match["key"], _unquote(match["value"])))
        pos = match.end()
    return pairs


def _log_date(value: str) -> str:
    low = value.lower()
    if low in LOG_DATES:
        return low
    if _ISO_DATE.fullmatch(low):
        return _real_date(low)
    raise CommandError(
        f"`date={value}` is not a date I can use.{did_you_mean(low, LOG_DATES)} "
        "Write `date=2026-03-01`, `date=today` or `date=yesterday`."
    )


def _metric(key: str, value: str) -> str:
    """A metric key; a wordy value under a name close to a dimension was meant as a dimension."""
    if not any(ch.isdigit() for ch in value):
        guess = did_you_mean(key, ("date", *DIMENSIONS))
        if guess:
            raise CommandError(
                f"I don't know `{key}`.{guess} The dimensions are "
                f"{', '.join(DIMENSIONS)}, and `date` sets the day."
            )
    return _name(key, "metric", "`leads`")


def _parse_log(rest: str) -> Log | LogForm:
    if not rest:
        return LogForm()
    values: list[tuple[str, str]] = []
    dims: list[tuple[str, str]] = []
    when: str | None = None
    seen: set[str] = set()
    for raw_key, value in _pairs(rest):
        key = raw_key.lower()
        if key in seen:
            raise CommandError(
                f"`{key}` is given twice; give each one once, like `{_LOG_EXAMPLE}`."
            )
        seen.add(key)
        if key == "date":
            when = _log_date(value)
        elif key in DIMENSIONS:
            dims.append((key, _dimension(key, value)))
        else:
            values.append((_metric(key, value), value))
    if not values:
        raise CommandError(f"Nothing to log: add at least one number, like `{_LOG_EXAMPLE}`.")
    if len(values) > MAX_LOG_PAIRS:
        raise CommandError(
            f"That is {len(values)} numbers in one log; the limit is {MAX_LOG_PAIRS}. "
            "Split them over two commands."
        )
    return Log(values=tuple(values), date=when, dims=tuple(dims))


# --- report, chart, export ------------------------------------------------------------------


def _parse_report(rest: str) -> Report:
    words, dims, by = _breakdown(rest.split(), "/kpi report week cpl by source")
    period, names = _range_and_names(words, "/kpi report week cpl")
    return Report(range=period, kpis=tuple(names), dims=dims, by=by)


def _breakdown(
    tokens: list[str], example: str
) -> tuple[list[str], tuple[tuple[str, str], ...], str | None]:
    """Takes `DIM=VALUE` filters and one `by DIM` out of a report's words."""
    rest: list[str] = []
    dims: dict[str, str] = {}
    by: str | None = None
    words = iter(tokens)
    for token in words:
        if token.lower() == "by":
            if by is not None:
                raise CommandError(f"Break it down by one dimension at a time, like `{example}`.")
            by = _dimension_key(next(words, ""), example)
        elif "=" in token:
            key, _, value = token.partition("=")
            key = _dimension_key(key, "/kpi report week source=facebook")
            if key in dims:
                raise CommandError(f"`{key}` is given twice; give each dimension once.")
            dims[key] = _dimension(key, value)
        else:
            rest.append(token)
    if by is not None and by in dims:
        raise CommandError(f"`{by}={dims[by]}` keeps one {by} already; drop it to see every "
                           f"{by}, like `{example}`.")
    return rest, tuple(sorted(dims.items())), by


def _parse_chart(rest: str) -> Chart:
    words, dims, by = _breakdown(rest.split(), "/kpi chart leads 30d by source")
    if dims:
        shown = " ".join(f"{key}={value}" for key, value in dims)
        raise CommandError(
            f"A chart shows every value of a dimension, not one: drop `{shown}` and write it "
            "like `/kpi chart leads 30d by source`."
        )
    period, names = _range_and_names(words, "/kpi chart cpl 30d")
    if not names:
        raise CommandError("Which KPI or metric should I chart? Write it like `/kpi chart cpl 30d`.")
    if len(names) > 1:
        raise CommandError(
            f"I chart one KPI or metric at a time, and you gave {_listing(names)}. "
            "Write it like `/kpi chart cpl 30d`, or `/kpi chart leads 30d by source` for a "
            "line per source."
        )
    return Chart(kpi=names[0], range=period, by=by)


def _parse_export(rest: str) -> Export:
    period, names = _range_and_names(rest.split(), "/kpi export 30d")
    _nothing_more("export", names, "/kpi export 30d")
    return Export(range=period)


# --- digest -----------------------------------------------------------------------------------

_DIGEST_ACTIONS = ("now", "daily", "weekly", "off")
_DIGEST_USAGE = (
    "Write `/kpi digest now`, `/kpi digest daily 09:00`, `/kpi digest weekly monday 09:00` "
    "(either with `by source` at the end) or `/kpi digest off`."
)
#: what a digest can break down by: each source's biggest mover
DIGEST_BREAKDOWNS = ("source",)
_WEEKDAY_NUMBERS = {name: i for i, day in enumerate(WEEKDAYS) for name in (day, day[:3])}


def _time(token: str) -> str:
    """A 24-hour HH:MM time; `9:00` becomes `09:00`."""
    match = _TIME.fullmatch(token)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise CommandError(
            f"{_code(token)} is not a time: use 24-hour HH:MM, like `09:00` or `17:30`."
        )
    return f"{int(match[1]):02d}:{match[2]}"


def _weekday(token: str) -> int:
    number = _WEEKDAY_NUMBERS.get(token.lower())
    if number is None:
        raise CommandError(
            f"{_code(token)} is not a day of the week.{did_you_mean(token, WEEKDAYS)} "
            "Write it like `/kpi digest weekly monday 09:00`."
        )
    return number


def _optional_kind(args: list[str], command: str) -> str | None:
    _nothing_more(command, args[1:], f"/kpi {command} weekly")
    return _choice(args[0], DIGEST_KINDS, "a digest", f"/kpi {command} weekly") if args else None


def _digest_by(args: list[str], example: str) -> tuple[list[str], str | None]:
    """Takes a trailing `by source` off a digest's words."""
    lowered = [a.lower() for a in args]
    if "by" not in lowered:
        return args, None
    at = lowered.index("by")
    after = args[at + 1:]
    if not after:
        raise CommandError(f"By what? A digest breaks down by source: write `{example} by source`.")
    if len(after) > 1:
        _nothing_more(f"by {after[0]}", after[1:], f"{example} by source")
    dimension = after[0].lower()
    if dimension not in DIGEST_BREAKDOWNS:
        raise CommandError(
            f"A digest breaks down by source only ({_code(after[0])} is for "
            f"`/kpi report week by {after[0]}`): write `{example} by source`.")
    return args[:at], dimension


def _digest_now(args: list[str]) -> DigestNow:
    args, by = _digest_by(args, "/kpi digest now daily")
    return DigestNow(kind=_optional_kind(args, "digest now") or "daily", by=by)


def _digest_off(args: list[str]) -> DigestOff:
    return DigestOff(kind=_optional_kind(args, "digest off"))


def _digest_daily(args: list[str]) -> DigestSchedule:
    args, by = _digest_by(args, "/kpi digest daily 09:00")
    if not args:
        raise CommandError("At what time? Write it like `/kpi digest daily 09:00`.")
    _nothing_more("digest daily", args[1:], "/kpi digest daily 09:00")
    return DigestSchedule(kind="daily", weekday=None, time=_time(args[0]), by=by)


def _digest_weekly(args: list[str]) -> DigestSchedule:
    args, by = _digest_by(args, "/kpi digest weekly monday 09:00")
    if len(args) < 2:
        raise CommandError("Which day and time? Write it like `/kpi digest weekly monday 09:00`.")
    _nothing_more("digest weekly", args[2:], "/kpi digest weekly monday 09:00")
    return DigestSchedule(kind="weekly", weekday=_weekday(args[0]), time=_time(args[1]), by=by)


_DIGEST_PARSERS: dict[str, Callable[[list[str]], Command]] = {
    "now": _digest_now,
    "daily": _digest_daily,
    "weekly": _digest_weekly,
    "off": _digest_off,
}


def _parse_digest(rest: str) -> Command:
    if not rest:
        raise CommandError(f"What should the digest do? {_DIGEST_USAGE}")
    action, *args = rest.split()
    parser = _DIGEST_PARSERS.get(action.lower())
    if parser is None:
        raise CommandError(
            f"I don't know `digest {action}`.{did_you_mean(action, _DIGEST_ACTIONS)} "
            + _DIGEST_USAGE
        )
    return parser(args)


# --- alerts -----------------------------------------------------------------------------------

_ALERT_EXAMPLE = "/kpi alert cpl > 20 daily"
_UNUSUAL_EXAMPLE = "/kpi alert leads unusual daily medium"
# KPI, then a comparison that may touch it or the value: `cpl>20`, `cpl >= 20`, `cpl ≥ 20`.
_ALERT_HEAD = re.compile(r"(?P<kpi>[^\s<>=!≥≤]+)\s*(?P<op>[<>]=?|=[<>]|[=!]=?|≥|≤)?\s*(?P<tail>.*)")
_OP_SPELLINGS = {"=>": ">=", "=<": "<=", "≥": ">=", "≤": "<="}
_MENTION = re.compile(
    r"<(?:@(?P<user>[UW][A-Z0-9]+)|!subteam\^(?P<group>[A-Z0-9]+)|!(?P<special>channel|here|everyone))"
    r"(?:\|[^<>]*)?>"
)
_MAX_FOR_PERIODS = 365


def _rule_id(token: str, example: str) -> int:
    match = _RULE_ID.fullmatch(token)
    if match is None or int(match[1]) < 1:
        raise CommandError(
            f"{_code(token)} is not an alert number; `/kpi alerts` lists them. "
            f"Write it like `{example}`."
        )
    return int(match[1])


def _duration(token: str) -> str:
    match = _DURATION.fullmatch(token.lower())
    if match is None or not 1 <= int(match[1]) <= _DURATION_LIMITS[match[2]]:
        raise CommandError(
            f"{_code(token)} is not a snooze time: write hours, days or weeks up to a year, "
            "like `12h`, `1d` or `2w`."
        )
    return f"{int(match[1])}{match[2]}"


def _alert_remove(args: list[str]) -> AlertRemove:
    example = "/kpi alert remove 3"
    if not args:
        raise CommandError(f"Which alert? Write it like `{example}`; `/kpi alerts` lists them.")
    _nothing_more("alert remove", args[1:], example)
    return AlertRemove(rule_id=_rule_id(args[0], example))


def _alert_snooze(args: list[str]) -> AlertSnooze:
    example = "/kpi alert snooze 3 1d"
    if len(args) < 2:
        raise CommandError(f"Which alert, and for how long? Write it like `{example}` (h, d or w).")
    _nothing_more("alert snooze", args[2:], example)
    return AlertSnooze(rule_id=_rule_id(args[0], example), duration=_duration(args[1]))


def _mention(token: str) -> str:
    """The mention in the form Slack expands when the bot posts it."""
    match = _MENTION.fullmatch(token)
    if match is None:
        raise CommandError(
            f"I can't tell who {_code(token)} is: type `@` and pick a person or group from "
            "Slack's list, so it becomes a mention."
        )
    if match["user"]:
        return f"<@{match['user']}>"
    if match["group"]:
        return f"<!subteam^{match['group']}>"
    return f"<!{match['special']}>"


def _operator(head: re.Match[str]) -> tuple[str, list[str]]:
    """The rule's operator and the words after it."""
    words = head["tail"].split()
    op = head["op"]
    if op is None:
        if words and words[0].lower() in CHANGE_OPS:
            return words[0].lower(), words[1:]
        raise CommandError(
            f"The alert needs a comparison (`>`, `>=`, `<`, `<=`) or `up`/`down` with a percent, "
            f"like `{_ALERT_EXAMPLE}` or `/kpi alert leads down 20%`."
        )
    op = _OP_SPELLINGS.get(op, op)
    if op not in ALERT_OPS:
        raise CommandError(
            f"{_code(op)} is not a comparison I can watch; use `>`, `>=`, `<` or `<=`, "
            f"like `{_ALERT_EXAMPLE}`."
        )
    return op, words


def _threshold(op: str, words: list[str]) -> str:
    if not words or not any(ch.isdigit() for ch in words[0]):
        raise CommandError(f"The alert needs a number to compare with, like `{_ALERT_EXAMPLE}`.")
    value = words[0]
    if op in CHANGE_OPS:
        try:
            change = parse_number(value, "percent")
        except NumberError as error:
            raise CommandError(f"{error} For example `/kpi alert leads down 20%`.") from None
        if change <= 0:
            raise CommandError(
                f"Give the change as a positive percent; `{op}` says which way, like "
                "`/kpi alert leads down 20%`."
            )
    return value


def _alert_add(rest: str) -> AlertAdd:
    head = _ALERT_HEAD.fullmatch(rest)
    if head is None:
        raise CommandError(f"Write the alert like `{_ALERT_EXAMPLE}`.")
    kpi = _name(head["kpi"], "KPI", "`cpl`")
    tail = head["tail"].split()
    unusual = head["op"] is None and bool(tail) and tail[0].lower() == "unusual"
    if unusual:
        op, threshold, words = "unusual", "", tail
    else:
        op, words = _operator(head)
        threshold = _threshold(op, words)
    period: str | None = None
    sensitivity: str | None = None
    for_periods: int | None = None
    mention: str | None = None
    dims: dict[str, str] = {}
    options = iter(words[1:])
    for word in options:
        low = word.lower()
        if unusual and low in SENSITIVITIES:
            if sensitivity is not None:
                raise CommandError(f"Give one sensitivity, not both `{sensitivity}` and `{low}`.")
            sensitivity = low
        elif unusual and (low in ALERT_PERIODS or _DAYS.fullmatch(low)) and low not in UNUSUAL_PERIODS:
            raise CommandError(
                f"`unusual` compares a day with the same weekday of recent weeks (`daily`) or a "
                f"week with recent weeks (`weekly`), not {_code(low)}. Write it like "
                f"`{_UNUSUAL_EXAMPLE}`."
            )
        elif low in ALERT_PERIODS or _DAYS.fullmatch(low):
            if period is not None:
                raise CommandError(f"Give one period, not both `{period}` and `{low}`.")
            period = low if low in ALERT_PERIODS else _range(low)
        elif low == "for":
            for_periods = _for_periods(next(options, ""))
        elif word.startswith(("<", "@")):
            if mention is not None:
                raise CommandError("An alert mentions one person or group; pick one.")
            mention = _mention(word)
        elif "=" in word:
            key, _, value = word.partition("=")
            key = _dimension_key(key, "/kpi alert cpl > 20 source=facebook")
            if key in dims:
                raise CommandError(f"`{key}` is given twice; give each dimension once.")
            dims[key] = _dimension(key, value)
        elif unusual:
            raise CommandError(
                f"I don't know what {_code(word)} means in an unusual alert."
                f"{did_you_mean(low, (*UNUSUAL_PERIODS, *SENSITIVITIES, 'for'))} The sensitivity "
                f"is `low`, `medium` (the default) or `high`; write it like `{_UNUSUAL_EXAMPLE}`."
            )
        else:
            raise CommandError(
                f"I don't know what {_code(word)} means in an alert."
                f"{did_you_mean(low, (*ALERT_PERIODS, 'for'))} Write it like "
                "`/kpi alert cpl > 20 weekly for 2 @marketing source=facebook`."
            )
    return AlertAdd(
        kpi=kpi,
        op=op,
        threshold=threshold,
        period=period or "daily",
        for_periods=for_periods or 1,
        mention=mention,
        dims=tuple(dims.items()),
        sensitivity=sensitivity or DEFAULT_SENSITIVITY,
    )


def _for_periods(token: str) -> int:
    if not token.isascii() or not token.isdigit() or not 1 <= int(token) <= _MAX_FOR_PERIODS:
        raise CommandError(
            f"`for` takes a number of periods in a row, 1 to {_MAX_FOR_PERIODS}, "
            "like `/kpi alert cpl > 20 daily for 3`."
        )
    return int(token)


def _parse_alert(rest: str) -> Command:
    if not rest:
        return AlertForm()
    first, _, after = rest.partition(" ")
    if first.lower() == "remove":
        return _alert_remove(after.split())
    if first.lower() == "snooze":
        return _alert_snooze(after.split())
    return _alert_add(rest)


# --- goal, define, history, tz --------------------------------------------------------------


def _parse_goal(rest: str) -> Goal | GoalRemove:
    example = "/kpi goal leads 500 monthly"
    words = rest.split()
    # `goal remove 500` is a goal on a metric called `remove`: a target starts with a digit or
    # a currency sign, never like a name
    if words and words[0].lower() == "remove" and (len(words) == 1 or _NAME.fullmatch(words[1].lower())):
        return _goal_remove(words[1:])
    if len(words) < 2 or not any(ch.isdigit() for ch in words[1]):
        raise CommandError(f"A goal needs a KPI and a target; write it like `{example}`.")
    _nothing_more("goal", words[3:], example)
    period = _choice(words[2], GOAL_PERIODS, "a goal period", example) if len(words) > 2 else None
    return Goal(kpi=_name(words[0], "KPI", "`leads`"), value=words[1], period=period or "monthly")


def _goal_remove(words: list[str]) -> GoalRemove:
    example = "/kpi goal remove revenue"
    if not words:
        raise CommandError(f"Which goal? Write it like `{example}` (`/kpi goals` lists them).")
    _nothing_more(f"goal remove {words[0]}", words[2:], example)
    period = _choice(words[1], GOAL_PERIODS, "a goal period", "/kpi goal remove revenue monthly") \
        if len(words) > 1 else None
    return GoalRemove(key=_name(words[0], "KPI or metric", "`revenue`"), period=period)


#: `/kpi track packs`: no chosen list any more, the packs' metrics are asked for
BACK_TO_PACKS = "packs"


def _parse_track(rest: str) -> Track | Tracking:
    example = "/kpi track leads spend sales"
    words = rest.replace(",", " ").split()
    if not words:
        return Tracking()
    if [w.lower() for w in words] == [BACK_TO_PACKS]:
        return Track(metrics=())
    if len(words) > MAX_TRACKED:
        raise CommandError(f"That is {len(words)} metrics; the log form asks for at most "
                           f"{MAX_TRACKED}. Track fewer, like `{example}`.")
    names: list[str] = []
    for word in words:
        key = _name(word, "metric", "`leads`")
        if key not in names:
            names.append(key)
    return Track(metrics=tuple(names))


#: the unit words of interface.md -> kpis.catalogue.Unit values (`number` is a plain number)
METRIC_UNITS = {"count": "count", "currency": "currency", "percent": "percent", "number": "score",
                "days": "days", "hours": "hours"}
KPI_UNITS = {**METRIC_UNITS, "ratio": "ratio"}
AGGREGATIONS = ("sum", "last", "mean")


def _defined_key(token: str, what: str, example: str) -> str:
    key = token.lower()
    if not _DEFINED_NAME.fullmatch(key):
        raise CommandError(
            f"{_code(token)} can't be a {what} name: start with a letter and use letters, digits "
            f"and `_` (up to 40), like `{example}`."
        )
    if key in ("date", BACK_TO_PACKS, *DIMENSIONS):
        raise CommandError(f"`{key}` is a reserved word; pick another name, like `{example}`.")
    return key


def _define_tail(formula: str, example: str) -> tuple[str, str, str]:
    """The formula without its trailing `as UNIT` and `higher|lower`, and those two."""
    words = formula.split()
    better = "neutral"
    if words and words[-1].lower() in ("higher", "lower"):
        better = words.pop().lower()
    unit = "ratio"
    if len(words) >= 2 and words[-2].lower() == "as":
        unit = KPI_UNITS.get(words[-1].lower(), "")
        if not unit:
            raise CommandError(f"{_code(words[-1])} is not a unit.{did_you_mean(words[-1], KPI_UNITS)} "
                               f"Use {_listing(KPI_UNITS)}, like `{example}`.")
        words = words[:-2]
    if words and words[-1].lower() in ("higher", "lower") and better == "neutral":
        better = words.pop().lower()
    return " ".join(words), unit, better


def _parse_define(rest: str) -> Define:
    example = "/kpi define big_mac = revenue / 5.58"
    raw_key, equals, formula = rest.partition("=")
    key = raw_key.strip().lower()
    formula, unit, better = _define_tail(formula, "/kpi define cost_per_sale = spend / sales as "
                                                  "currency lower")
    if not equals or not key or not formula.strip():
        raise CommandError(f"Write a definition like `{example}`.")
    return Define(key=_defined_key(key, "KPI", example), formula=formula.strip(), unit=unit,
                  better=better)


def _parse_metric(rest: str) -> MetricAdd | MetricRemove:
    example = "/kpi metric add add_to_carts count sum Add to carts"
    usage = f"Write `{example}` or `/kpi metric remove add_to_carts`."
    words = rest.split()
    action = words[0].lower() if words else ""
    if action not in ("add", "remove") or len(words) < 2:
        raise CommandError(f"Say what to do with a metric. {usage}")
    key = _defined_key(words[1], "metric", "add_to_carts")
    if action == "remove":
        _nothing_more("metric remove", words[2:], "/kpi metric remove add_to_carts")
        return MetricRemove(key=key)
    rest_words = words[2:]
    unit = "count"
    if rest_words and rest_words[0].lower() in METRIC_UNITS:
        unit = METRIC_UNITS[rest_words.pop(0).lower()]
    elif rest_words and rest_words[0].lower() not in AGGREGATIONS and (
            hint := did_you_mean(rest_words[0], (*METRIC_UNITS, *AGGREGATIONS))):
        raise CommandError(f"{_code(rest_words[0])} is not a unit or a way to add up.{hint} Units "
                           f"are {_listing(METRIC_UNITS)}; then `sum`, `last` or `mean`, like "
                           f"`{example}`.")
    aggregation = "sum"
    if rest_words and rest_words[0].lower() in AGGREGATIONS:
        aggregation = rest_words.pop(0).lower()
    return MetricAdd(key=key, unit=unit, aggregation=aggregation, label=" ".join(rest_words)[:200])


MAX_DIMENSION_VALUES = 25


def _parse_dimension(rest: str) -> DimensionAdd | DimensionRemove | Dimensions:
    example = "/kpi dimension add temperature warm cold"
    usage = f"Write `{example}` or `/kpi dimension remove temperature`."
    words = rest.replace(",", " ").split()
    if not words:
        return Dimensions()
    action = words[0].lower()
    if action not in ("add", "remove"):
        raise CommandError(f"I don't know {_code('dimension ' + words[0])}."
                           f"{did_you_mean(action, ('add', 'remove'))} {usage}")
    if len(words) < 2:
        raise CommandError(f"Name the dimension. {usage}")
    key = _defined_key(words[1], "dimension", "temperature")
    if action == "remove":
        _nothing_more("dimension remove", words[2:], "/kpi dimension remove temperature")
        return DimensionRemove(key=key)
    values: list[str] = []
    for word in words[2:]:
        value = _unquote(word).strip().casefold()
        if len(value) > 64 or not value:
            raise CommandError(f"{_code(word[:20])} can't be a value: at most 64 characters, "
                               f"like `{example}`.")
        if value in values:
            raise CommandError(f"`{value}` is given twice; give each value once.")
        values.append(value)
    if len(values) > MAX_DIMENSION_VALUES:
        raise CommandError(f"A dimension takes at most {MAX_DIMENSION_VALUES} values; leave the "
                           "list out to allow any value.")
    return DimensionAdd(key=key, values=tuple(values))


def _parse_source(rest: str) -> SourceClass | Sources:
    words = rest.split()
    usage = "Write it like `/kpi source webinar organic` or `/kpi source tiktok paid`."
    if not words:
        return Sources()
    if len(words) != 2:
        raise CommandError(f"Say a source and how it counts. {usage}")
    kind = words[1].lower()
    if kind not in ("paid", "organic"):
        raise CommandError(f"A source is `paid` or `organic`, not {_code(words[1])}."
                           f"{did_you_mean(kind, ('paid', 'organic'))} {usage}")
    return SourceClass(source=words[0].strip().lower(), paid=kind == "paid")


def _parse_history(rest: str) -> History:
    words = rest.split()
    _nothing_more("history", words[1:], "/kpi history leads")
    return History(metric=_name(words[0], "metric", "`leads`") if words else None)


def _parse_tz(rest: str) -> Tz:
    if not rest:
        raise CommandError("Which time zone? Write its IANA name, like `/kpi tz America/Bogota`.")
    if " " in rest:
        raise CommandError(
            f"Time zone names have no spaces ({_code(rest)}); write it like "
            "`/kpi tz America/New_York`."
        )
    return Tz(zone=rest)


def _bare(command: str, make: Callable[[], Command]) -> Callable[[str], Command]:
    """A parser for a command that takes nothing after its name."""

    def parse(rest: str) -> Command:
        _nothing_more(command, rest.split(), f"/kpi {command}")
        return make()

    return parse


def _parse_why(rest: str) -> Why:
    period, names = _range_and_names(rest.split(), "/kpi why cpl week")
    if len(names) != 1:
        raise CommandError("Which KPI should I explain? Write it like `/kpi why cpl` or "
                           "`/kpi why cpl last-week`.")
    return Why(kpi=names[0], range=period)


def _parse_whatif(rest: str) -> WhatIf | WhatIfForm:
    if not rest.strip():
        return WhatIfForm()
    changes = []
    for key, value in _pairs(rest):
        if not re.fullmatch(r"[+-]?\d+(\.\d+)?%?", value.strip()):
            raise CommandError(
                f"{_code(key + '=' + value)} is not a change: write it as a percent, like "
                "`/kpi whatif ctr=+10% close_rate=+5%`."
            )
        changes.append((key.lower(), value.strip()))
    return WhatIf(changes=tuple(changes))


def _parse_remind(rest: str) -> Remind | RemindAt:
    words = rest.split()
    usage = "Write `/kpi remind off`, `/kpi remind on` or `/kpi remind 17:00`."
    if len(words) != 1:
        raise CommandError(f"What should reminders do? {usage}")
    word = words[0].lower()
    if word in ("off", "on"):
        return Remind(enabled=word == "on")
    if ":" in word:
        return RemindAt(time=_time(word))
    raise CommandError(f"I don't know {_code('remind ' + word)}. {usage}")


def _parse_token(rest: str) -> TokenCreate | Tokens | TokenRevoke:
    words = rest.split()
    usage = "Write `/kpi token create zapier`, `/kpi token list` or `/kpi token revoke 3`."
    action = words[0].lower() if words else "list"
    if action == "list":
        _nothing_more("token list", words[1:], "/kpi token list")
        return Tokens()
    if action == "create":
        if len(words) > 2:
            raise CommandError(f"A token name is one word, like `zapier`. {usage}")
        return TokenCreate(name=words[1] if len(words) == 2 else None)
    if action == "revoke":
        if len(words) != 2 or not words[1].lstrip("#").isdigit():
            raise CommandError("Which token? Write its number, like `/kpi token revoke 3` "
                               "(`/kpi token list` shows them).")
        return TokenRevoke(token_id=int(words[1].lstrip("#")))
    raise CommandError(f"I don't know {_code('token ' + action)}.{did_you_mean(action, ('create', 'list', 'revoke'))} {usage}")


def _parse_help(rest: str) -> Help:
    """Help takes any words (`help alerts`): whatever was asked, the answer is the usage."""
    return Help()


_PARSERS: dict[str, Callable[[str], Command]] = {
    "log": _parse_log,
    "report": _parse_report,
    "chart": _parse_chart,
    "digest": _parse_digest,
    "alert": _parse_alert,
    "alerts": _bare("alerts", Alerts),
    "goal": _parse_goal,
    "goals": _bare("goals", Goals),
    "track": _parse_track,
    "setup": _bare("setup", Setup),
    "metrics": _bare("metrics", Metrics),
    "define": _parse_define,
    "metric": _parse_metric,
    "dimension": _parse_dimension,
    "dimensions": _bare("dimensions", Dimensions),
    "source": _parse_source,
    "sources": _bare("sources", Sources),
    "history": _parse_history,
    "undo": _bare("undo", Undo),
    "export": _parse_export,
    "tz": _parse_tz,
    "settings": _bare("settings", Settings),
    "why": _parse_why,
    "whatif": _parse_whatif,
    "remind": _parse_remind,
    "token": _parse_token,
    "help": _parse_help,
}
COMMANDS = tuple(_PARSERS)
