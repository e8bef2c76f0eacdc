"""Alert rules and goals: the use cases around the pure state machine of kpis/alerts.py.

Evaluation loads a rule's state, lets `kpis.alerts.evaluate` decide, posts each transition
through the Courier under the key `alert:{rule}:{seq}` and only then saves the new state
(compare-and-set on its version). A crash between the two re-creates the same transition with
the same key on the next evaluation, and two processes racing produce one key: either way the
channel hears each transition once.

An alert's story stays in one place: "back to normal" is a reply in the thread of its firing
message (the Courier's `thread_of`), and the firing message itself is updated in place
(`edits`) to say whether it is firing since a day, snoozed by whom until when, or resolved
after how long. What that message should show is kept in the rule's state (`Thread`), saved
with the transition or the snooze; the updates and the snooze notes go out afterwards under
keys of their own, and whatever is not out yet (a crash, a 5xx) is sent by the next
evaluation, which the alerts timer makes within RETRY.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

from bot.app.context import SYSTEM_ACTOR, Context, UserError, open_context
from bot.app.entries import clean_dims
from bot.app.failures import Subject, tell_owner
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
    trend_periods,
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


def message_key(rule_id: int, seq: int) -> str:
    """The delivery key of a rule's transition `seq`: its message's, once it is posted."""
    return f"alert:{rule_id}:{seq}"


@dataclass(frozen=True)
class Thread:
    """The rule's latest firing message: the note and period it was posted for (so that it
    can be rendered again in full), what it should show now, and how much of that is out.

    Each change of what the message shows (a snooze, resolving) adds one to `revision`, each
    snooze one to `snoozes`; `shown` and `announced` say up to which of them went out. Only
    the latest of each is delivered: an update carries the whole message, so it stands for
    the ones before it. No `note`: the latest firing was snoozed, nothing was posted.
    `snooze_ended`: the snooze ran out while the alert was still firing, and the message
    says it is firing again (a new snooze starts it over).
    """

    note: Notification | None = None
    period: Period | None = None
    resolved_at: datetime | None = None
    snoozed_by: str | None = None
    snoozed_until: datetime | None = None
    snoozes: int = 0
    announced: int = 0
    revision: int = 0
    shown: int = 0
    snooze_ended: bool = False

    @property
    def owes(self) -> bool:
        """Something the message or its thread should say is not out yet."""
        return self.note is not None and (self.snoozes > self.announced or self.revision > self.shown)


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
    thread: Thread = field(default_factory=Thread)
    #: a removed rule, kept until its firing message says so (`finish_removal`)
    removed_by: str | None = None
    removed_at: datetime | None = None

    @classmethod
    def load(cls, stored: StoredRule) -> AlertRule:
        spec = json.loads(stored.rule)
        rule = Rule(spec["kpi"], spec["op"], float(spec["threshold"]), spec["period"],
                    int(spec["for_periods"]), tuple(tuple(d) for d in spec.get("dims", ())),
                    spec.get("sensitivity", DEFAULT_SENSITIVITY))
        state, thread = _stored_state(stored.state)
        return cls(stored.id, stored.workspace_id, stored.channel_id, rule, state,
                   spec.get("mention"), stored.version, stored.created_by, thread,
                   stored.removed_by, stored.removed_at)


# -- state as JSON ----------------------------------------------------------------------------


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _state_to_json(state: AlertState, thread: Thread | None = None) -> str:
    data = asdict(state)
    for key, value in data.items():
        if isinstance(value, date | datetime):
            data[key] = value.isoformat()
    data["status"] = state.status.value
    if thread is not None and thread.note is not None:
        data["thread"] = _thread_to_json(thread, thread.note)
    return json.dumps(data)


def _thread_to_json(thread: Thread, note: Notification) -> dict[str, Any]:
    usual = None
    if note.expectation is not None:
        usual = {**asdict(note.expectation), "day": note.expectation.day.isoformat()}
    period = thread.period or Period.day(note.period_start)
    return {
        "note": {"kind": note.kind.value, "seq": note.seq, "period_start": note.period_start.isoformat(),
                 "value": note.value, "previous": note.previous, "threshold": note.threshold,
                 "at": note.at.isoformat(), "expectation": usual},
        "period": [period.start.isoformat(), period.end.isoformat()],
        "resolved_at": _iso(thread.resolved_at), "snoozed_by": thread.snoozed_by,
        "snoozed_until": _iso(thread.snoozed_until), "snoozes": thread.snoozes,
        "announced": thread.announced, "revision": thread.revision, "shown": thread.shown,
        "snooze_ended": thread.snooze_ended,
    }


def _thread_from_json(data: dict[str, Any] | None) -> Thread:
    if not data:
        return Thread()
    n = data["note"]
    usual = n.get("expectation")
    expectation = Expectation(**{**usual, "day": date.fromisoformat(usual["day"])}) if usual else None
    note = Notification(Kind(n["kind"]), int(n["seq"]), date.fromisoformat(n["period_start"]),
                        n["value"], n["previous"], float(n["threshold"]),
                        datetime.fromisoformat(n["at"]), expectation=expectation)
    start, end = (date.fromisoformat(d) for d in data["period"])
    return Thread(note, Period(start, end), _moment(data.get("resolved_at")),
                  data.get("snoozed_by"), _moment(data.get("snoozed_until")),
                  int(data.get("snoozes", 0)), int(data.get("announced", 0)),
                  int(data.get("revision", 0)), int(data.get("shown", 0)),
                  bool(data.get("snooze_ended", False)))


def _stored_state(text: str) -> tuple[AlertState, Thread]:
    data: dict[str, Any] = json.loads(text or "{}")
    thread = _thread_from_json(data.pop("thread", None))
    if not data:
        return AlertState(), thread
    for key in ("since", "fired_at", "snoozed_until"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    if data.get("last_period"):
        data["last_period"] = date.fromisoformat(data["last_period"])
    data["status"] = Status(data.get("status", "ok"))
    return AlertState(**data), thread


def _state_from_json(text: str) -> AlertState:
    return _stored_state(text)[0]


def thread_after(thread: Thread, notes: Iterable[Notification], period: Period) -> Thread:
    """What the firing message is after these transitions: a new one for a firing that was
    posted (none for one snoozed), and the one before marked resolved when it resolves."""
    for note in notes:
        if note.kind is Kind.FIRING:
            thread = Thread() if note.suppressed else Thread(note, period)
        elif thread.note is not None and thread.resolved_at is None:
            thread = replace(thread, resolved_at=note.at, revision=thread.revision + 1)
    return thread


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
        rule = Rule(key, Op(op), value, period, for_periods, clean_dims(dims, catalogue),
                    sensitivity)
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
    """Removes the rule; its firing message, when one is still open, is updated to say who
    removed it when (without buttons). Until that update is out the rule is kept, hidden from
    everything, and the alerts timer retries it (`finish_removal`)."""
    find_rule(ctx, rule_id)
    stored = ctx.store.remove_rule(ctx.workspace.id, rule_id, ctx.actor, ctx.now,
                                   look_again_at=ctx.now + RETRY)
    if stored is None:
        raise UserError(f"Alert #{rule_id} was removed meanwhile; `/kpi alerts` lists the rules.")
    rule = AlertRule.load(stored)
    finish_removal(ctx.store, ctx.ports.poster, rule, lambda: ctx.now)
    return rule


def removal_owed(rule: AlertRule) -> bool:
    """The removed rule's firing message is still open: it has to say the rule was removed."""
    thread = rule.thread
    return thread.note is not None and thread.period is not None and thread.resolved_at is None


def finish_removal(store: Store, poster: Poster | None, rule: AlertRule,
                   clock: Callable[[], datetime]) -> Outcome | None:
    """Updates a removed rule's open firing message (under a key of its own, so once), then
    deletes the rule; while the update is not out (retry, held, uninstalled, or no poster in
    this process) the rule stays for the alerts timer to try again."""
    outcome: Outcome | None = None
    if removal_owed(rule):
        if poster is None:
            return None
        note, period = rule.thread.note, rule.thread.period
        assert note is not None and period is not None
        parent = message_key(rule.id, note.seq)

        def build() -> AlertPost:
            ctx = open_context(store, rule.workspace_id, SYSTEM_ACTOR, clock())
            return replace(_alert_post(ctx, rule, note, period, rule.thread),
                           removed_by=rule.removed_by, removed_at=rule.removed_at)

        key = f"{parent}:removed"
        outcome = poster.deliver(rule.workspace_id, key, kind="alert-update",
                                 channel=rule.channel_id, due_at=rule.removed_at or clock(),
                                 edits=parent, build=build)
        if outcome in NOT_OUT:
            if outcome in PENDING:
                store.wake(rule.workspace_id, ALERTS_TIMER,
                           at=retry_at(store, [key], clock()))
            return outcome
    store.purge_rule(rule.workspace_id, rule.id)
    return outcome


def snooze_rule(ctx: Context, rule_id: int, duration: str) -> tuple[AlertRule, datetime]:
    """Silences the rule's messages until now + duration; evaluation goes on."""
    try:
        length = parse_duration(duration)
    except DurationError as error:
        raise UserError(str(error)) from None
    until = ctx.now + length
    for _ in range(_SAVE_TRIES):
        rule = find_rule(ctx, rule_id)
        thread = rule.thread
        # a firing alert's message and thread say who snoozed it, until when
        told = (rule.state.status is Status.FIRING and thread.note is not None
                and thread.resolved_at is None)
        if told:
            thread = replace(thread, snoozed_by=ctx.actor, snoozed_until=until, snooze_ended=False,
                             snoozes=thread.snoozes + 1, revision=thread.revision + 1)
        state = _state_to_json(snooze(rule.state, until), thread)
        if ctx.store.save_rule_state(rule.id, rule.version, state):
            if told:
                # the alerts timer looks again when the snooze ends, to say it is firing again
                ctx.store.wake(ctx.workspace.id, ALERTS_TIMER, at=until)
                ctx.ports.snoozed(ctx.workspace.id, rule.id)
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
#: brings a rule's firing message and thread up to date (`Alerting.tell`)
Tell = Callable[[AlertRule], list[str]]
#: what a delivery ends as when it is not out (yet): the state that wanted it is kept
NOT_OUT = frozenset({"retry", "held", "stopped"})


def snooze_over(rule: AlertRule, now: datetime) -> bool:
    """The snooze shown on a firing message that is still open has run out by `now`."""
    thread = rule.thread
    return (thread.note is not None and thread.resolved_at is None and not thread.snooze_ended
            and thread.snoozed_until is not None and thread.snoozed_until <= now)


def end_snooze(store: Store, rule: AlertRule, now: datetime) -> AlertRule:
    """Records that the rule's firing message should say it is firing again, its snooze over
    (one new revision, whichever process gets there first); the rule as it is now."""
    for _ in range(_SAVE_TRIES):
        if not snooze_over(rule, now):
            return rule
        thread = replace(rule.thread, snooze_ended=True, revision=rule.thread.revision + 1)
        if store.save_rule_state(rule.id, rule.version, _state_to_json(rule.state, thread)):
            return replace(rule, thread=thread, version=rule.version + 1)
        stored = store.rule(rule.workspace_id, rule.id)
        if stored is None:
            return rule
        rule = AlertRule.load(stored)
    return rule


def evaluate_rule(ctx: Context, rule_id: int, day: date, post: Post,
                  tell: Tell | None = None) -> list[str]:
    """Evaluates one rule for the window containing `day`; posts transitions, saves the state,
    then (with `tell`) updates the firing message to what the new state shows.

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
        if NOT_OUT & set(posted):
            # not out yet: keep the old state, so the next evaluation makes the same
            # transition (same key) and delivers it then
            return outcomes
        thread = thread_after(rule.thread, notes, values.period)
        if ctx.store.save_rule_state(rule.id, rule.version, _state_to_json(state, thread)):
            if tell is not None and thread.owes:
                outcomes += tell(replace(rule, state=state, thread=thread, version=rule.version + 1))
            return outcomes
    log.warning("rule %d kept changing under evaluation; the next evaluation catches up", rule_id)
    return []


def evaluate_workspace(
    store: Store, workspace_id: str, day: date | None, now: datetime, post: Post,
    metrics: Iterable[str] | None = None, tell: Tell | None = None,
) -> list[str]:
    """Evaluates the workspace's rules that `metrics` feed (all when None) for `day` (today).

    With `tell`, a rule whose firing message is not up to date (an update or a snooze note
    that did not go out, a snooze that ran out) is brought up to date first, and evaluated
    only once it is, so that an old message says it resolved before a new one is posted."""
    ctx = open_context(store, workspace_id, SYSTEM_ACTOR, now)
    catalogue = ctx.catalogue
    touched = set(metrics) if metrics is not None else None
    outcomes: list[str] = []
    for stored in store.rules(workspace_id):
        try:
            if tell is not None and (loaded := end_snooze(store, AlertRule.load(stored), now)).thread.owes:
                told = tell(loaded)
                outcomes += told
                if NOT_OUT & set(told):
                    continue
            if touched is not None and not catalogue.metrics_of(stored.kpi) & touched:
                continue
            outcomes += evaluate_rule(ctx, stored.id, day or ctx.today, post, tell)
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
        self._closed = False

    def poke(self, workspace_id: str, day: date, metrics: Iterable[str]) -> None:
        key = (workspace_id, day)
        with self._lock:
            if self._closed:
                return
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

    def close(self) -> set[str]:
        """Takes no more pokes and hands back the workspaces whose evaluation was still
        pending: the process is stopping, and they are left to the next process's timers."""
        with self._lock:
            self._closed = True
            pending = {workspace_id for workspace_id, _ in self._pending}
            self._pending.clear()
            self._lock.notify_all()
        return pending


__all__ = ["AlertRule", "Debouncer", "Kind", "Values"]


# -- the evaluator --------------------------------------------------------------------------------

TREND_POINTS = 7


@dataclass(frozen=True)
class AlertPost:
    """A rule's message for the Poster to render: its firing message (posted, or its update
    with the firing's note), or the "back to normal" reply in that message's thread.

    `period` is the period the note judged (a week so far when it fired mid-week); `trend`
    the rule's value in its own last periods, `period` last. The firing message says it is
    firing since `note.at`, resolved at `resolved_at`, or snoozed by `snoozed_by` until
    `snoozed_until` (firing again since then when `snooze_ended`), or that its rule was removed
    by `removed_by` at `removed_at`, in the workspace's `timezone`.
    """

    rule: AlertRule
    note: Notification
    label: str
    unit: Unit
    currency: str
    locale: str
    period: Period
    trend: tuple[float | None, ...]
    authors: tuple[str, ...]
    timezone: str = "UTC"
    resolved_at: datetime | None = None
    snoozed_by: str | None = None
    snoozed_until: datetime | None = None
    snooze_ended: bool = False
    removed_by: str | None = None
    removed_at: datetime | None = None


@dataclass(frozen=True)
class SnoozePost:
    """Said in a firing message's thread: who snoozed the alert, until when."""

    rule_id: int
    by: str
    until: datetime
    timezone: str


class Alerting:
    """Evaluates rules after logs (debounced) and every minute, and posts their transitions."""

    def __init__(self, store: Store, poster: Poster, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock
        self.debouncer = Debouncer(self._after_log)

    def snoozed(self, workspace_id: str, rule_id: int) -> list[Outcome]:
        """A firing rule was snoozed: its thread and message say so now (the alerts timer
        retries what does not go out)."""
        stored = self.store.rule(workspace_id, rule_id)
        if stored is None or not _installed(self.store, workspace_id):
            return []
        return self.tell(AlertRule.load(stored))

    def tell(self, rule: AlertRule) -> list[Outcome]:
        """Brings the rule's firing message up to date: the latest snooze said in its thread,
        the message updated to its whole present state, each under a key of its own; once
        both are out, the rule's state records it."""
        thread = rule.thread
        if thread.note is None or not thread.owes:
            return []
        workspace_id = rule.workspace_id
        parent = message_key(rule.id, thread.note.seq)
        now = self.clock()
        # should this process die while posting, the workspace's timer tells it again
        self.store.wake(workspace_id, ALERTS_TIMER, at=now + RETRY)
        sent: dict[str, Outcome] = {}
        by, until = thread.snoozed_by, thread.snoozed_until
        if thread.snoozes > thread.announced and by is not None and until is not None:
            key = f"{parent}:snooze:{thread.snoozes}"
            sent[key] = self.poster.deliver(
                workspace_id, key, kind="alert-snoozed", channel=rule.channel_id, due_at=now,
                thread_of=parent,
                build=lambda: SnoozePost(rule.id, by, until, self._zone(workspace_id)))
        if thread.revision > thread.shown:
            key = f"{parent}:update:{thread.revision}"
            sent[key] = self.poster.deliver(
                workspace_id, key, kind="alert-update", channel=rule.channel_id, due_at=now,
                edits=parent, build=lambda: self._message_now(workspace_id, rule.id))
        for key, outcome in sent.items():
            self._failed(rule, key, outcome)
        outcomes = list(sent.values())
        if NOT_OUT & set(outcomes):
            pending = [k for k, o in sent.items() if o in PENDING]
            if pending:
                self.store.wake(workspace_id, ALERTS_TIMER,
                                at=retry_at(self.store, pending, self.clock()))
            return outcomes
        self._told(rule, thread)
        return outcomes

    def _told(self, rule: AlertRule, thread: Thread) -> None:
        """Records that the message shows `thread`'s revision and said its snooze."""
        assert thread.note is not None
        for _ in range(_SAVE_TRIES):
            stored = self.store.rule(rule.workspace_id, rule.id)
            if stored is None:
                return
            now = AlertRule.load(stored)
            if now.thread.note is None or now.thread.note.seq != thread.note.seq:
                return  # a newer firing message has a story of its own
            done = replace(now.thread, announced=max(now.thread.announced, thread.snoozes),
                           shown=max(now.thread.shown, thread.revision))
            if done == now.thread or self.store.save_rule_state(
                    stored.id, stored.version, _state_to_json(now.state, done)):
                return

    def _zone(self, workspace_id: str) -> str:
        workspace = self.store.workspace(workspace_id)
        return workspace.timezone if workspace is not None else "UTC"

    def _message_now(self, workspace_id: str, rule_id: int) -> AlertPost:
        """The firing message as it should read now, from the rule's stored state: an update
        carries it whole, so a repeated or late one never shows less than the present."""
        ctx = open_context(self.store, workspace_id, SYSTEM_ACTOR, self.clock())
        stored = self.store.rule(workspace_id, rule_id)
        if stored is None:
            raise LookupError(f"alert rule {rule_id} is gone")
        rule = AlertRule.load(stored)
        thread = rule.thread
        if thread.note is None or thread.period is None:
            raise LookupError(f"alert rule {rule_id} has no firing message")
        return _alert_post(ctx, rule, thread.note, thread.period, thread)

    def logged(self, workspace_id: str, day: date, metrics: Iterable[str]) -> None:
        """Numbers were logged: evaluate the rules they feed once the burst is over. Whether
        there are rules is looked up then, once per burst, not on every log."""
        self.debouncer.poke(workspace_id, day, metrics)

    def close(self) -> None:
        """Stopping: the evaluations still waiting out a burst are made due on the workspaces'
        alert timers, so whichever process runs next makes them (none is lost with the thread)."""
        now = self.clock()
        for workspace_id in self.debouncer.close():
            self.store.wake(workspace_id, ALERTS_TIMER, at=now)

    def rules_changed(self, workspace_id: str) -> None:
        """A new rule is judged on today's numbers at once (debounced like a log)."""
        ctx = open_context(self.store, workspace_id, SYSTEM_ACTOR, self.clock())
        self.logged(workspace_id, ctx.today, set(ctx.catalogue.metrics))

    def _after_log(self, workspace_id: str, day: date, metrics: frozenset[str]) -> list[str]:
        """Not while the app is uninstalled from the workspace: nothing could be posted."""
        if not self.store.rules(workspace_id) or not _installed(self.store, workspace_id):
            return []
        return evaluate_workspace(self.store, workspace_id, day, self.clock(), self.post, metrics,
                                  self.tell)

    def wake(self, timer: Timer, now: datetime) -> Woken:
        """The workspace's alert timer, due at the close of its day: the day that closed, then
        today; sooner while a transition is not out yet, so it is made again under the same key."""
        workspace_id = timer.workspace_id
        if not _installed(self.store, workspace_id):
            return Woken(None)
        removals = [finish_removal(self.store, self.poster, AlertRule.load(r), self.clock)
                    for r in self.store.removed_rules(workspace_id)]
        told = tuple(o for o in removals if o is not None)
        if not self.store.rules(workspace_id):
            return Woken(now + RETRY if PENDING & set(told) else None, told)
        ctx = open_context(self.store, workspace_id, SYSTEM_ACTOR, now)
        yesterday = ctx.today - timedelta(days=1)
        outcomes: list[str] = list(told)
        for day in sorted(self._pending_days(ctx) - {yesterday, ctx.today}):
            outcomes += evaluate_workspace(self.store, workspace_id, day, now, self.post,
                                           tell=self.tell)
        outcomes += evaluate_workspace(self.store, workspace_id, yesterday, now, self.post,
                                       tell=self.tell)
        outcomes += evaluate_workspace(self.store, workspace_id, ctx.today, now, self.post,
                                       tell=self.tell)
        if PENDING & set(outcomes):
            return Woken(now + RETRY, tuple(outcomes))
        tomorrow = local_instant(ctx.today + timedelta(days=1), time(0, 0), ctx.workspace.timezone)
        return Woken(min([tomorrow, *self._snoozes_ending(workspace_id, now)]), tuple(outcomes))

    def _snoozes_ending(self, workspace_id: str, now: datetime) -> list[datetime]:
        """When the snoozes shown on open firing messages end (the message then says so)."""
        ends = []
        for stored in self.store.rules(workspace_id):
            rule = AlertRule.load(stored)
            until = rule.thread.snoozed_until
            if until is not None and until > now and snooze_over(rule, until):
                ends.append(until)
        return ends

    def _pending_days(self, ctx: Context) -> set[date]:
        """The days a transition that is not out yet was made from (the day before and the
        day of its making, as `wake` evaluates them): evaluated again so it is made again
        under its key, even once the workspace's day has moved on past them."""
        zone = ZoneInfo(ctx.workspace.timezone)
        days: set[date] = set()
        for stored in self.store.rules(ctx.workspace.id):
            rule = AlertRule.load(stored)
            pending = self.store.delivery(message_key(rule.id, rule.state.seq + 1))
            if pending is not None and not (pending.delivered_at or pending.failed_at):
                made = pending.due_at.astimezone(zone).date()
                days |= {made - timedelta(days=1), made}
        return days

    def post(self, rule: AlertRule, note: Notification, values: Values) -> Outcome:
        """A firing at the top of the channel; "back to normal" in the firing message's
        thread (at the top when that firing was snoozed and never posted)."""
        def build() -> AlertPost:
            ctx = open_context(self.store, rule.workspace_id, SYSTEM_ACTOR, self.clock())
            return _alert_post(ctx, rule, note, values.period)

        # should this process die while posting, the workspace's timer makes it again
        self.store.wake(rule.workspace_id, ALERTS_TIMER, at=self.clock() + RETRY)
        key = message_key(rule.id, note.seq)
        firing = message_key(rule.id, note.seq - 1) if note.kind is Kind.RESOLVED else None
        outcome = self.poster.deliver(rule.workspace_id, key, kind=f"alert-{note.kind.value}",
                                      channel=rule.channel_id, due_at=note.at, build=build,
                                      thread_of=firing)
        if outcome in PENDING:  # paced or held: look again as soon as it may go
            now = self.clock()
            self.store.wake(rule.workspace_id, ALERTS_TIMER, at=retry_at(self.store, [key], now))
        self._failed(rule, key, outcome)
        return outcome

    def _failed(self, rule: AlertRule, key: str, outcome: Outcome) -> None:
        """A message of the rule failed for good: one DM to whoever made the rule, per
        episode of the rule (bot/app/failures.py)."""
        if outcome not in ("failed", "skipped"):
            return
        tell_owner(self.store, self.poster, key, failure_subject(rule), self.clock)


def failure_subject(rule: AlertRule) -> Subject:
    """The rule as its failure DM names it (its id is never reused)."""
    return Subject(f"alert:{rule.id}", rule.workspace_id,
                   f"{message_key(rule.id, 0).rpartition(':')[0]}:", rule.created_by,
                   f"alert #{rule.id} on {rule.rule.kpi} ({rule.rule.period})")


def rule_subject(store: Store, workspace_id: str, rule_id: int) -> Subject | None:
    """The failure-DM timer's subject `alert:{id}` now; None once the rule is removed."""
    stored = store.rule(workspace_id, rule_id)
    return None if stored is None else failure_subject(AlertRule.load(stored))


def _installed(store: Store, workspace_id: str) -> bool:
    workspace = store.workspace(workspace_id)
    return workspace is not None and workspace.installed


def _alert_post(ctx: Context, rule: AlertRule, note: Notification, period: Period,
                thread: Thread | None = None) -> AlertPost:
    """What a rule's message shows: for a firing note, its trend and who logged its inputs,
    and what `thread` says of it since (nothing yet when it is first posted)."""
    catalogue = ctx.catalogue
    key = rule.rule.kpi
    ws = ctx.workspace
    firing = note.kind is Kind.FIRING
    trend = tuple(_trend(ctx, rule, period, note.value)) if firing else ()
    authors = tuple(ctx.store.authors_of(ws.id, catalogue.metrics_of(key), period)) if firing else ()
    thread = thread or Thread()
    return AlertPost(rule, note, label_of(catalogue, key), unit_of(catalogue, key), ws.currency,
                     ws.locale, period, trend, authors, ws.timezone, thread.resolved_at,
                     thread.snoozed_by, thread.snoozed_until, thread.snooze_ended)


def _trend(ctx: Context, rule: AlertRule, fired: Period, value: float | None) -> list[float | None]:
    """The rule's value in each of its own last periods (days, weeks so far, months), the one
    that fired last with the value it fired on: a glance, not a chart."""
    catalogue = ctx.catalogue
    before = trend_periods(rule.rule, fired, TREND_POINTS)[:-1]
    return [*(value_of(catalogue, ctx.store.period_data(ctx.workspace.id, p, catalogue, rule.rule.dims),
                       rule.rule.kpi) for p in before), value]


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
