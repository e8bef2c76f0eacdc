"""Alert rules and goals: the use cases around the pure state machine of kpis/alerts.py.

Evaluation loads a rule's state, lets `kpis.alerts.evaluate` decide, posts each transition
through the Courier under the key `alert:{rule}:{seq}` and only then saves the new state
(compare-and-set on its version). A crash between the two re-creates the same transition with
the same key on the next evaluation, and two processes racing produce one key: either way the
channel hears each transition once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any

from bot.app.context import SYSTEM_ACTOR, Context, UserError, open_context
from bot.app.entries import clean_dims
from bot.app.names import label_of, unit_of, watched_key
from bot.app.ports import Outcome, Poster
from bot.app.timers import PENDING, RETRY, Woken, retry_at
from kpis.alerts import (
    AlertState,
    DurationError,
    Kind,
    Notification,
    Op,
    Rule,
    RuleError,
    Status,
    evaluate,
    parse_duration,
    snooze,
)
from kpis.catalogue import Aggregation, Catalogue, Unit
from kpis.compare import change_pct
from kpis.goals import is_summed
from kpis.numbers import NumberError, parse_number
from kpis.periods import Period
from kpis.rollup import Dims, bucket_data, kpi_values, value_of
from kpis.schedule import local_instant
from kpis.unusual import DEFAULT_SENSITIVITY, Expectation, expect, history_needed, watching_from
from storage import Store
from storage.repository import StoredRule
from storage.timers import ALERTS_TIMER, Timer

log = logging.getLogger("kpibot.alerts")
DEBOUNCE_SECONDS = 2.0
_SAVE_TRIES = 4


@dataclass(frozen=True)
class AlertRule:
    """A stored rule read back: the pure rule, its state, where it posts and whom it mentions."""

    id: int
    workspace_id: str
    channel_id: str
    rule: Rule
    state: AlertState
    mention: str | None
    version: int
    created_by: str

    @classmethod
    def load(cls, stored: StoredRule) -> AlertRule:
        spec = json.loads(stored.rule)
        rule = Rule(spec["kpi"], spec["op"], float(spec["threshold"]), spec["period"],
                    int(spec["for_periods"]), tuple(tuple(d) for d in spec.get("dims", ())),
                    spec.get("sensitivity", DEFAULT_SENSITIVITY))
        return cls(stored.id, stored.workspace_id, stored.channel_id, rule,
                   _state_from_json(stored.state), spec.get("mention"), stored.version,
                   stored.created_by)


# -- state as JSON ----------------------------------------------------------------------------


def _state_to_json(state: AlertState) -> str:
    data = asdict(state)
    for key, value in data.items():
        if isinstance(value, date | datetime):
            data[key] = value.isoformat()
    data["status"] = state.status.value
    return json.dumps(data)


def _state_from_json(text: str) -> AlertState:
    data: dict[str, Any] = json.loads(text or "{}")
    if not data:
        return AlertState()
    for key in ("since", "fired_at", "snoozed_until"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    if data.get("last_period"):
        data["last_period"] = date.fromisoformat(data["last_period"])
    data["status"] = Status(data.get("status", "ok"))
    return AlertState(**data)


# -- rules --------------------------------------------------------------------------------------


def add_rule(
    ctx: Context, channel_id: str, kpi: str, op: str, threshold: str, *, period: str = "daily",
    for_periods: int = 1, mention: str | None = None, dims: Iterable[tuple[str, str]] = (),
    sensitivity: str = DEFAULT_SENSITIVITY,
) -> AlertRule:
    """Checks everything, then stores the rule (posting to `channel_id`) in state ok."""
    catalogue = ctx.catalogue
    key = watched_key(catalogue, kpi)
    change_rule = op in ("up", "down")
    try:
        if op == Op.UNUSUAL:
            value = 0.0
        elif change_rule:
            value = parse_number(threshold if threshold.endswith("%") else threshold + "%", "percent") * 100
        else:
            value = parse_number(threshold, unit_of(catalogue, key).value)
    except NumberError as error:
        raise UserError(f"The threshold {error}") from None
    try:
        rule = Rule(key, Op(op), value, period, for_periods, clean_dims(dims), sensitivity)
    except (RuleError, ValueError) as error:
        raise UserError(f"That rule doesn't work: {error}.") from None
    spec = {"kpi": key, "op": str(rule.op), "threshold": rule.threshold, "period": rule.period,
            "for_periods": rule.for_periods, "dims": [list(d) for d in rule.dims],
            "sensitivity": rule.sensitivity, "mention": mention}
    stored = ctx.store.add_rule(ctx.workspace.id, channel_id, key, json.dumps(spec),
                                _state_to_json(AlertState()), ctx.actor)
    ctx.ports.rules_changed(ctx.workspace.id)
    return AlertRule.load(stored)


def rules(store: Store, workspace_id: str) -> list[AlertRule]:
    return [AlertRule.load(r) for r in store.rules(workspace_id)]


def find_rule(ctx: Context, rule_id: int) -> AlertRule:
    stored = ctx.store.rule(ctx.workspace.id, rule_id)
    if stored is None:
        known = ", ".join(f"#{r.id}" for r in ctx.store.rules(ctx.workspace.id)) or "none yet"
        raise UserError(f"There is no alert #{rule_id} in this workspace (rules: {known}). "
                        "`/kpi alerts` lists them.")
    return AlertRule.load(stored)


def remove_rule(ctx: Context, rule_id: int) -> AlertRule:
    rule = find_rule(ctx, rule_id)
    ctx.store.remove_rule(ctx.workspace.id, rule_id)
    return rule


def snooze_rule(ctx: Context, rule_id: int, duration: str) -> tuple[AlertRule, datetime]:
    """Silences the rule's messages until now + duration; evaluation goes on."""
    try:
        length = parse_duration(duration)
    except DurationError as error:
        raise UserError(str(error)) from None
    until = ctx.now + length
    for _ in range(_SAVE_TRIES):
        rule = find_rule(ctx, rule_id)
        if ctx.store.save_rule_state(rule.id, rule.version, _state_to_json(snooze(rule.state, until))):
            return find_rule(ctx, rule_id), until
    raise UserError("The rule is being updated right now; try the snooze again.")


# -- evaluation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Values:
    """The watched value of a rule's window, what a change rule compares it with, and what an
    unusual rule expected of it (None: another kind of rule, no value, or too little history)."""

    value: float | None
    previous: float | None
    period: Period
    expectation: Expectation | None = None


def rule_values(ctx: Context, rule: Rule, day: date, *, judging: bool = True) -> Values:
    """The watched value over the rule's window containing `day` (so far, while it runs) and
    the same part of the window before; no value while a rule waits for its period to end
    (unless not `judging`: `/kpi alerts` shows the value so far all the same)."""
    catalogue = ctx.catalogue
    compared = rule.compared(day, ctx.today)

    def value(period: Period) -> float | None:
        data = ctx.store.period_data(ctx.workspace.id, period, catalogue, rule.dims)
        return value_of(catalogue, data, rule.kpi)

    if judging and compared.partial and rule.waits_for_close(is_summed(catalogue, rule.kpi)):
        return Values(None, None, compared.period)
    previous = value(compared.previous) if rule.op.is_change else None
    current = value(compared.period)
    expectation = None
    if rule.op.is_unusual and current is not None:
        expectation = rule_expectation(ctx, rule, compared.period, current)[0]
    return Values(current, previous, compared.period, expectation)


# -- what is usual: the history kpis.unusual judges by, for rules and the digest ---------------


def unusual_history(
    ctx: Context, keys: Sequence[str], grain: str, period: Period, dims: Dims = (),
) -> tuple[dict[str, dict[date, float]], frozenset[str]]:
    """Each key's value in every day (daily) or ISO week (weekly, by its Monday) that
    `kpis.unusual.expect` reads to judge `period`, `period` included; and the inputs logged
    within `period`. One read of daily totals; per period when filtered by dimension values."""
    catalogue = ctx.catalogue
    span = history_needed(period.start, grain)
    if grain == "daily":
        buckets = [Period.day(span.start + timedelta(days=i)) for i in range(span.days)]
    else:
        buckets = [Period.iso_week(span.start + timedelta(weeks=i))
                   for i in range((period.start - span.start).days // 7 + 1)]
        span = Period(buckets[0].start, buckets[-1].end)
    inputs = set().union(*(catalogue.metrics_of(k) for k in keys))
    if dims:
        data = [ctx.store.period_data(ctx.workspace.id, b, catalogue, dims) for b in buckets]
        logged = frozenset(k for k in inputs if k in data[-1].totals)
    else:
        daily = ctx.store.daily_series(ctx.workspace.id, inputs, span)
        gauges = [k for k in inputs if catalogue.metrics[k].aggregation is Aggregation.LAST]
        opening = (ctx.store.period_data(ctx.workspace.id, Period.day(span.start), catalogue).opening
                   if gauges else {})
        data = bucket_data(daily, buckets, gauges, opening)
        logged = frozenset(k for k in inputs
                           if any(period.start <= d <= period.end for d in daily.get(k, {})))
    kpis = [k for k in keys if k in catalogue.kpis]
    history: dict[str, dict[date, float]] = {}
    for bucket, bucket_values in zip(buckets, data, strict=True):
        values = kpi_values(catalogue, bucket_values, kpis)
        for key in keys:
            if key in catalogue.kpis:
                value = values.get(key)
            elif key in bucket_values.totals or key in bucket_values.closing:
                value = value_of(catalogue, bucket_values, key)
            else:
                value = None
            if value is not None:
                history.setdefault(key, {})[bucket.start] = value
    return history, logged


def counted(catalogue: Catalogue, key: str) -> bool:
    """Whether `key` has count noise: only summed counts do (an order value of 3,000 is money)."""
    metric = catalogue.metrics.get(key)
    return metric is not None and metric.unit is Unit.COUNT and metric.aggregation is Aggregation.SUM


def rule_expectation(
    ctx: Context, rule: Rule, period: Period, value: float,
) -> tuple[Expectation | None, date | None]:
    """What an unusual rule expects of `value` for `period` (None: too little history yet),
    and the first day of its history (from which `unusual.watching_from` counts)."""
    key = rule.kpi
    history, _ = unusual_history(ctx, [key], rule.period, rule.window(period.start), rule.dims)
    series = history.get(key, {})
    expectation = expect(series, period.start, rule.period, rule.sensitivity, value=value,
                         count=counted(ctx.catalogue, key))
    return expectation, min(series) if series else None


Post = Callable[[AlertRule, Notification, Values], str]


def evaluate_rule(ctx: Context, rule_id: int, day: date, post: Post) -> list[str]:
    """Evaluates one rule for the window containing `day`; posts transitions, saves the state.

    A newer period with no data yet does not move the rule on: numbers logged late for the
    period before still count.
    """
    outcomes: list[str] = []
    for _ in range(_SAVE_TRIES):
        stored = ctx.store.rule(ctx.workspace.id, rule_id)
        if stored is None:
            return outcomes
        rule = AlertRule.load(stored)
        values = rule_values(ctx, rule.rule, day)
        last = rule.state.last_period
        if values.value is None and (last is None or values.period.start > last):
            return outcomes
        state, notes = evaluate(rule.rule, rule.state, values.period.start, values.value,
                                values.previous, ctx.now, expectation=values.expectation)
        if state == rule.state:
            return outcomes
        posted = [post(rule, note, values) for note in notes if not note.suppressed]
        outcomes += posted
        if any(outcome in ("retry", "held", "stopped") for outcome in posted):
            # not out yet: keep the old state, so the next evaluation makes the same
            # transition (same key) and delivers it then
            return outcomes
        if ctx.store.save_rule_state(rule.id, rule.version, _state_to_json(state)):
            return outcomes
    log.warning("rule %d kept changing under evaluation; the next evaluation catches up", rule_id)
    return []


def evaluate_workspace(
    store: Store, workspace_id: str, day: date | None, now: datetime, post: Post,
    metrics: Iterable[str] | None = None,
) -> list[str]:
    """Evaluates the workspace's rules that `metrics` feed (all when None) for `day` (today)."""
    ctx = open_context(store, workspace_id, SYSTEM_ACTOR, now)
    catalogue = ctx.catalogue
    touched = set(metrics) if metrics is not None else None
    outcomes: list[str] = []
    for stored in store.rules(workspace_id):
        if touched is not None and not catalogue.metrics_of(stored.kpi) & touched:
            continue
        try:
            outcomes += evaluate_rule(ctx, stored.id, day or ctx.today, post)
        except Exception:
            log.exception("alert rule %d could not be evaluated", stored.id)
    return outcomes


class Debouncer:
    """Coalesces a burst of logs into one evaluation a couple of seconds after the last.

    A log only moves its burst's deadline: one thread, alive while bursts are pending, waits
    for the earliest deadline and starts each due evaluation on its own thread (a thread per
    burst, not one started and cancelled per log)."""

    def __init__(self, run: Callable[[str, date, frozenset[str]], Any],
                 delay: float = DEBOUNCE_SECONDS) -> None:
        self.run = run
        self.delay = delay
        #: key -> (deadline, metrics), in deadline order: a poke moves its key to the end
        self._pending: dict[tuple[str, date], tuple[float, frozenset[str]]] = {}
        self._lock = threading.Condition()
        self._waiting = False

    def poke(self, workspace_id: str, day: date, metrics: Iterable[str]) -> None:
        key = (workspace_id, day)
        with self._lock:
            _, seen = self._pending.pop(key, (0.0, frozenset()))
            self._pending[key] = (monotonic() + self.delay, seen | frozenset(metrics))
            if not self._waiting:
                self._waiting = True
                threading.Thread(target=self._wait, name="alerts-debounce", daemon=True).start()

    def _wait(self) -> None:
        """Until nothing is pending: sleeps to the earliest deadline, then starts what is due
        (a later poke of a key only moves its deadline on, which the next look finds)."""
        while True:
            with self._lock:
                while True:
                    if not self._pending:
                        self._waiting = False
                        return
                    left = next(iter(self._pending.values()))[0] - monotonic()
                    if left <= 0:
                        break
                    self._lock.wait(left)
                now = monotonic()
                due = [(key, touched) for key, (deadline, touched) in self._pending.items()
                       if deadline <= now]
                for key, _ in due:
                    del self._pending[key]
            for key, touched in due:
                threading.Thread(target=self._fire, args=(key, touched), name="alerts-evaluate",
                                 daemon=True).start()

    def _fire(self, key: tuple[str, date], touched: frozenset[str]) -> None:
        try:
            self.run(key[0], key[1], touched)
        except Exception:
            log.exception("alert evaluation after a log failed")

    def flush(self) -> None:
        """Runs every pending evaluation now (shutdown and tests)."""
        with self._lock:
            pending = sorted(self._pending.items(), key=lambda item: item[0][1])
            self._pending.clear()
            self._lock.notify_all()
        for key, (_, touched) in pending:
            self.run(key[0], key[1], touched)


__all__ = ["AlertRule", "Debouncer", "Kind", "Values"]


# -- the evaluator --------------------------------------------------------------------------------

TREND_POINTS = 7


@dataclass(frozen=True)
class AlertPost:
    """One transition of a rule, with what its message shows, for the Poster to render and post."""

    rule: AlertRule
    note: Notification
    label: str
    unit: Unit
    currency: str
    locale: str
    period: str
    trend: tuple[float | None, ...]
    authors: tuple[str, ...]


class Alerting:
    """Evaluates rules after logs (debounced) and every minute, and posts their transitions."""

    def __init__(self, store: Store, poster: Poster, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock
        self.debouncer = Debouncer(self._after_log)

    def logged(self, workspace_id: str, day: date, metrics: Iterable[str]) -> None:
        """Numbers were logged: evaluate the rules they feed once the burst is over. Whether
        there are rules is looked up then, once per burst, not on every log."""
        self.debouncer.poke(workspace_id, day, metrics)

    def rules_changed(self, workspace_id: str) -> None:
        """A new rule is judged on today's numbers at once (debounced like a log)."""
        ctx = open_context(self.store, workspace_id, SYSTEM_ACTOR, self.clock())
        self.logged(workspace_id, ctx.today, set(ctx.catalogue.metrics))

    def _after_log(self, workspace_id: str, day: date, metrics: frozenset[str]) -> list[str]:
        """Not while the app is uninstalled from the workspace: nothing could be posted."""
        if not self.store.rules(workspace_id) or not _installed(self.store, workspace_id):
            return []
        return evaluate_workspace(self.store, workspace_id, day, self.clock(), self.post, metrics)

    def wake(self, timer: Timer, now: datetime) -> Woken:
        """The workspace's alert timer, due at the close of its day: the day that closed, then
        today; sooner while a transition is not out yet, so it is made again under the same key."""
        workspace_id = timer.workspace_id
        if not self.store.rules(workspace_id) or not _installed(self.store, workspace_id):
            return Woken(None)
        ctx = open_context(self.store, workspace_id, SYSTEM_ACTOR, now)
        outcomes = evaluate_workspace(self.store, workspace_id, ctx.today - timedelta(days=1),
                                      now, self.post)
        outcomes += evaluate_workspace(self.store, workspace_id, ctx.today, now, self.post)
        if PENDING & set(outcomes):
            return Woken(now + RETRY, tuple(outcomes))
        tomorrow = local_instant(ctx.today + timedelta(days=1), time(0, 0), ctx.workspace.timezone)
        return Woken(tomorrow, tuple(outcomes))

    def post(self, rule: AlertRule, note: Notification, values: Values) -> Outcome:
        def build() -> AlertPost:
            ctx = open_context(self.store, rule.workspace_id, SYSTEM_ACTOR, self.clock())
            catalogue = ctx.catalogue
            key = rule.rule.kpi
            ws = ctx.workspace
            return AlertPost(
                rule, note, label_of(catalogue, key), unit_of(catalogue, key), ws.currency,
                ws.locale, str(values.period), tuple(_trend(ctx, rule, values.period.end)),
                tuple(self.store.authors_of(ws.id, catalogue.metrics_of(key), values.period)),
            )

        # should this process die while posting, the workspace's timer makes it again
        self.store.wake(rule.workspace_id, ALERTS_TIMER, at=self.clock() + RETRY)
        key = f"alert:{rule.id}:{note.seq}"
        outcome = self.poster.deliver(rule.workspace_id, key, kind=f"alert-{note.kind.value}",
                                      channel=rule.channel_id, due_at=note.at, build=build)
        if outcome in PENDING:  # paced or held: look again as soon as it may go
            now = self.clock()
            self.store.wake(rule.workspace_id, ALERTS_TIMER, at=retry_at(self.store, [key], now))
        return outcome


def _installed(store: Store, workspace_id: str) -> bool:
    workspace = store.workspace(workspace_id)
    return workspace is not None and workspace.installed


def _trend(ctx: Context, rule: AlertRule, end: date) -> list[float | None]:
    """The rule's value over its last few days (daily values: a glance, not a chart)."""
    plain = rule.rule.op.is_change or rule.rule.op.is_unusual
    daily = replace(rule.rule, period="daily", op=Op.GT if plain else rule.rule.op)
    return [rule_values(ctx, daily, end - timedelta(days=i)).value
            for i in range(TREND_POINTS - 1, -1, -1)]


@dataclass(frozen=True)
class Listed:
    """A rule with the label and unit of what it watches."""

    rule: AlertRule
    label: str
    unit: Unit


@dataclass(frozen=True)
class Watched(Listed):
    """A rule as `/kpi alerts` shows it: its value so far, what it is held against, and when
    it is next checked.

    `period` is the window so far (today, this week so far, like for like); `previous` the
    same part of the window before (change rules), `change_pct` the change between them.
    `expectation` is the band an unusual rule judges by, from `rule_values` like the
    evaluation's; `watching_from` the first day it can judge while its history is too short
    (None with no history at all). `next_check` is the next midnight of the workspace's
    zone (an instant) at which the alert timer checks it, or for a rule that `waits` to be
    judged until its window closes, that close; `closes` is the window's last day (numbers
    logged are checked at once besides). `fires_then` says the rule fires at `next_check` if
    its numbers stay as they are (the evaluation's state machine run on them).
    """

    period: Period
    value: float | None
    previous: float | None
    change_pct: float | None
    expectation: Expectation | None
    watching_from: date | None
    next_check: datetime
    closes: date
    closes_today: bool
    waits: bool
    fires_then: bool


def listed(ctx: Context) -> list[Watched]:
    """Every rule whose KPI or metric still exists, with its value so far and next check."""
    catalogue = ctx.catalogue
    return [watched(ctx, r) for r in rules(ctx.store, ctx.workspace.id) if r.rule.kpi in catalogue.names]


def watched(ctx: Context, stored: AlertRule) -> Watched:
    rule = stored.rule
    catalogue = ctx.catalogue
    window = rule.window(ctx.today)
    waits = window.end >= ctx.today and rule.waits_for_close(is_summed(catalogue, rule.kpi))
    values = rule_values(ctx, rule, ctx.today, judging=False)
    expectation, since = values.expectation, None
    if rule.op.is_unusual and expectation is None:
        # the band does not depend on the value judged: without a value yet, any shows it
        expectation, since = rule_expectation(ctx, rule, values.period, values.value or 0.0)
    close = local_instant((window.end if waits else ctx.today) + timedelta(days=1), time(0, 0),
                          ctx.workspace.timezone)
    # what the close makes of the numbers as they are, by the evaluation's own state machine
    # (a rule judged as numbers come in is already in that state; one that waits is not)
    after, _ = evaluate(rule, stored.state, values.period.start, values.value, values.previous,
                        close, expectation=values.expectation)
    fires_then = after.status is Status.FIRING and stored.state.status is not Status.FIRING
    return Watched(
        stored, label_of(catalogue, rule.kpi), unit_of(catalogue, rule.kpi), values.period,
        values.value, values.previous, change_pct(values.value, values.previous), expectation,
        watching_from(since, rule.period) if expectation is None and since is not None else None,
        close, window.end, window.end == ctx.today, waits, fires_then,
    )


def describe_rule(ctx: Context, rule: AlertRule) -> Listed:
    return Listed(rule, label_of(ctx.catalogue, rule.rule.kpi), unit_of(ctx.catalogue, rule.rule.kpi))


@dataclass(frozen=True)
class AlertForm:
    """What the alert form offers: the KPIs of the tracked packs, and the channel it posts to."""

    kpis: tuple[tuple[str, str], ...]
    channel: str


def alert_form(ctx: Context) -> AlertForm:
    kpis = [(k.key, k.label) for k in ctx.catalogue.kpis_in(ctx.workspace.packs)][:100]
    return AlertForm(tuple(kpis), ctx.channel or "")
