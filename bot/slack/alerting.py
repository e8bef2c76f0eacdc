"""Alerts and goals in Slack: the `/kpi alert*` and `goal` commands, the alert form, the
Snooze and Open report buttons, and evaluation after logs (debounced) and at each day's close."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import alerts as use
from bot import grammar as g
from bot import usecases
from bot.render import blocks
from bot.render.alerts import alert_message, goal_line, rule_text, rules_message
from bot.slack.courier import Outgoing
from bot.slack.runtime import Message, Services, Who, guarded
from kpis.alerts import Notification, Op, Rule

log = logging.getLogger("kpibot.alerting")
TREND_POINTS = 7


class Alerting:
    """Evaluates rules and posts their transitions through the Courier."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.debouncer = use.Debouncer(self._after_log)
        self._closed: dict[str, date] = {}

    def logged(self, workspace_id: str, day: date, metrics: set[str]) -> None:
        """Numbers were logged: evaluate the rules they feed once the burst is over."""
        if self.services.store.rules(workspace_id):
            self.debouncer.poke(workspace_id, day, metrics)

    def _after_log(self, workspace_id: str, day: date, metrics: frozenset[str]) -> list[str]:
        return use.evaluate_workspace(self.services.store, workspace_id, day,
                                      self.services.clock(), self.post, metrics)

    def sweep(self, now: datetime) -> list[str]:
        """Every minute: the day that closed (once per local day), then today, so a transition
        whose post failed or was cut off is made again and delivered under the same key."""
        outcomes: list[str] = []
        store = self.services.store
        for workspace_id in sorted({r.workspace_id for r in store.rules()}):
            if store.workspace(workspace_id) is None:
                continue
            ctx = usecases.open_context(store, workspace_id, "kpibot", now)
            if self._closed.get(workspace_id) != ctx.today:
                self._closed[workspace_id] = ctx.today
                outcomes += use.evaluate_workspace(store, workspace_id,
                                                   ctx.today - timedelta(days=1), now, self.post)
            outcomes += use.evaluate_workspace(store, workspace_id, ctx.today, now, self.post)
        return outcomes

    def post(self, rule: use.AlertRule, note: Notification, values: use.Values) -> str:
        courier = self.services.courier
        assert courier is not None
        store = self.services.store

        def build() -> Outgoing:
            ctx = usecases.open_context(store, rule.workspace_id, "kpibot", self.services.clock())
            catalogue = ctx.catalogue
            key = rule.rule.kpi
            ws = ctx.workspace
            body = alert_message(
                rule, note, label=use.label_of(catalogue, key), unit=use.unit_of(catalogue, key),
                currency=ws.currency, locale=ws.locale, period=str(values.period),
                trend=_trend(ctx, rule, values.period.end),
                authors=store.authors_of(ws.id, catalogue.metrics_of(key), values.period),
            )
            return Outgoing(body["text"], body["blocks"])

        return courier.deliver(rule.workspace_id, f"alert:{rule.id}:{note.seq}",
                               kind=f"alert-{note.kind.value}", channel=rule.channel_id,
                               due_at=note.at, build=build)


def _trend(ctx: usecases.Context, rule: use.AlertRule, end: date) -> list[float | None]:
    """The rule's value over its last few days (daily values: a glance, not a chart)."""
    values = []
    for i in range(TREND_POINTS - 1, -1, -1):
        day = end - timedelta(days=i)
        values.append(use.rule_values(ctx, _daily(rule), day).value)
    return values


def _daily(rule: use.AlertRule) -> Rule:
    """The same watched value per day (a change rule's threshold does not matter here)."""
    return replace(rule.rule, period="daily", op=Op.GT if rule.rule.op.is_change else rule.rule.op)


# -- commands ------------------------------------------------------------------------------------


def _alert_add(services: Services, who: Who, ctx: usecases.Context, c: Any) -> Message:
    assert isinstance(c, g.AlertAdd)
    services.require_admin(who, "add alert rules")
    if not who.channel_id:
        raise usecases.UserError("Add alerts in the channel they should post to.")
    rule = use.add_rule(ctx, who.channel_id, c.kpi, c.op, c.threshold, period=c.period,
                        for_periods=c.for_periods, mention=c.mention, dims=c.dims)
    catalogue = ctx.catalogue
    text = rule_text(rule, use.label_of(catalogue, rule.rule.kpi), use.unit_of(catalogue, rule.rule.kpi),
                     ctx.workspace.currency, ctx.workspace.locale)
    evaluate_now(services, ctx.workspace.id)
    return blocks.message(f":bell: Alert #{rule.id} added: {text}. I'll post in <#{who.channel_id}> "
                          "when it starts firing and when it is back to normal, never in between.")


def evaluate_now(services: Services, workspace_id: str) -> None:
    """A new rule is judged on today's numbers at once (debounced like a log)."""
    if services.alerting is not None:
        ctx = usecases.open_context(services.store, workspace_id, "kpibot", services.clock())
        services.alerting.logged(workspace_id, ctx.today, set(ctx.catalogue.metrics))


def _alerts(services: Services, who: Who, ctx: usecases.Context, c: Any) -> Message:
    catalogue = ctx.catalogue
    rows = [(r, use.label_of(catalogue, r.rule.kpi), use.unit_of(catalogue, r.rule.kpi))
            for r in use.rules(ctx.store, ctx.workspace.id) if r.rule.kpi in catalogue.names]
    return rules_message(rows, ctx.workspace.currency, ctx.workspace.locale, ctx.now)


def _alert_remove(services: Services, who: Who, ctx: usecases.Context, c: Any) -> Message:
    assert isinstance(c, g.AlertRemove)
    services.require_admin(who, "remove alert rules")
    rule = use.remove_rule(ctx, c.rule_id)
    return blocks.message(f":wastebasket: Alert #{rule.id} on `{rule.rule.kpi}` removed.")


def _alert_snooze(services: Services, who: Who, ctx: usecases.Context, c: Any) -> Message:
    assert isinstance(c, g.AlertSnooze)
    rule, until = use.snooze_rule(ctx, c.rule_id, c.duration)
    return blocks.message(f":zzz: Alert #{rule.id} is snoozed until {until:%a %d %b %H:%M} UTC; "
                          "I keep checking, and post again after that only if its state changes.")


def _alert_form(services: Services, who: Who, ctx: usecases.Context, c: Any) -> Message:
    services.require_admin(who, "add alert rules")
    who.client.views_open(trigger_id=who.trigger_id, view=alert_modal(ctx, who.channel_id or ""))
    return {}


def _goal(services: Services, who: Who, ctx: usecases.Context, c: Any) -> Message:
    assert isinstance(c, g.Goal)
    services.require_admin(who, "set goals")
    progress = use.set_goal(ctx, c.kpi, c.value, c.period)
    return blocks.message(":dart: Goal set. " + goal_line(progress, ctx.workspace.currency, ctx.workspace.locale)
                          + "\nDigests, reports and App Home show its progress from now on.")


HANDLERS = {g.AlertAdd: _alert_add, g.Alerts: _alerts, g.AlertRemove: _alert_remove,
            g.AlertSnooze: _alert_snooze, g.AlertForm: _alert_form, g.Goal: _goal}


# -- the form and the buttons ------------------------------------------------------------------

_OPS = (">", ">=", "<", "<=", "up", "down")
_PERIODS = ("daily", "weekly", "monthly", "7d", "30d")


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text[:75]}, "value": value}


def alert_modal(ctx: usecases.Context, channel: str) -> dict[str, Any]:
    catalogue = ctx.catalogue
    kpis = [k for k in catalogue.kpis_in(ctx.workspace.packs)][:100]

    def select(block: str, label: str, options: list[dict[str, Any]], initial: int = 0) -> dict[str, Any]:
        return {"type": "input", "block_id": block, "label": {"type": "plain_text", "text": label},
                "element": {"type": "static_select", "action_id": "value", "options": options,
                            "initial_option": options[initial]}}

    return {
        "type": "modal", "callback_id": "alert_form",
        "title": {"type": "plain_text", "text": "New alert"},
        "submit": {"type": "plain_text", "text": "Add alert"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": [
            select("kpi", "KPI", [_option(f"{k.label} ({k.key})", k.key) for k in kpis]),
            select("op", "When it is", [_option(o, o) for o in _OPS]),
            {"type": "input", "block_id": "threshold", "label": {"type": "plain_text", "text": "Threshold"},
             "hint": {"type": "plain_text", "text": "In the KPI's unit (15, $15, 12%); a percent for up/down"},
             "element": {"type": "plain_text_input", "action_id": "value", "max_length": 30}},
            select("period", "Over", [_option(p, p) for p in _PERIODS]),
            {"type": "input", "block_id": "for", "label": {"type": "plain_text", "text": "Periods in a row"},
             "element": {"type": "number_input", "action_id": "value", "is_decimal_allowed": False,
                         "min_value": "1", "max_value": "30", "initial_value": "1"}},
            {"type": "input", "block_id": "channel", "label": {"type": "plain_text", "text": "Post to"},
             "element": {"type": "conversations_select", "action_id": "value",
                         **({"initial_conversation": channel} if channel else {}),
                         "filter": {"include": ["public", "private"], "exclude_bot_users": True}}},
        ],
    }


def _snooze(services: Services, who: Who, spec: dict[str, Any]) -> Message:
    rule, until = use.snooze_rule(services.context(who), int(spec.get("rule", 0)),
                                  str(spec.get("for", "1d")))
    return blocks.message(f":zzz: <@{who.user_id}> snoozed alert #{rule.id} until "
                          f"{until:%a %d %b %H:%M} UTC.")


def _report(services: Services, who: Who, spec: dict[str, Any]) -> Message:
    ctx = services.context(who)
    period = usecases.period_for(ctx, spec.get("range"), default="30d")
    return blocks.report_message(usecases.report(ctx, period, spec.get("kpis") or ()))


def register(app: App, services: Services) -> None:
    def answers(work: Callable[[Services, Who, dict[str, Any]], Message], where: str) -> Any:
        """A button listener whose JSON value goes to `work`; the answer only to the clicker."""

        def listener(ack: Any, body: dict[str, Any], respond: Any, client: WebClient, context: Any) -> None:
            ack()
            services.metrics.requests.labels(kind="action").inc()
            who = Who.of(context, body, client)

            def run() -> Message:
                spec = json.loads(body["actions"][0].get("value") or "{}")
                return work(services, who, spec if isinstance(spec, dict) else {})

            respond(replace_original=False, response_type="ephemeral", **guarded(run, where)())

        return listener

    app.action("alert_snooze")(answers(_snooze, "snooze"))
    app.action("open_report")(answers(_report, "open report"))

    @app.action("open_alert_form")
    def open_form(ack: Any, body: dict[str, Any], client: WebClient, context: Any) -> None:
        ack()
        services.metrics.requests.labels(kind="action").inc()
        who = Who.of(context, body, client)
        problem = guarded(lambda: _alert_form(services, who, services.context(who), g.AlertForm()),
                          "open alert form")()
        if problem:
            client.chat_postMessage(channel=who.user_id, **problem)

    @app.view("alert_form")
    def submit(ack: Any, body: dict[str, Any], client: WebClient, context: Any, view: dict[str, Any]) -> None:
        services.metrics.requests.labels(kind="view").inc()
        who = Who.of(context, body, client)
        values = view["state"]["values"]

        def pick(block: str) -> str:
            element = values.get(block, {}).get("value", {})
            option = element.get("selected_option") or {}
            return str(option.get("value") or element.get("value") or element.get("selected_conversation") or "")

        channel = pick("channel") or json.loads(view.get("private_metadata") or "{}").get("channel", "")
        try:
            services.require_admin(who, "add alert rules")
            ctx = services.context(who)
            rule = use.add_rule(ctx, channel, pick("kpi"), pick("op"), pick("threshold"),
                                period=pick("period") or "daily", for_periods=int(pick("for") or 1))
        except usecases.UserError as error:
            ack(response_action="errors", errors={"threshold": str(error)[:150]})
            return
        except Exception:
            log.exception("alert form failed")
            ack(response_action="errors", errors={"threshold": "Something went wrong on our side; nothing was saved."})
            return
        ack()
        evaluate_now(services, ctx.workspace.id)

        def confirm() -> None:
            client.chat_postEphemeral(channel=channel, user=who.user_id, text=(
                f":bell: Alert #{rule.id} added; it posts in <#{channel}> on state changes only."))

        guarded(confirm, "alert form reply")()


def attach(services: Services) -> None:
    """Evaluation after logs and at each day's close."""
    alerting = Alerting(services)
    services.alerting = alerting
    if services.scheduler is not None:
        services.scheduler.extra_sweeps.append(alerting.sweep)


def progress_lines(ctx: usecases.Context) -> list[str]:
    return [goal_line(p, ctx.workspace.currency, ctx.workspace.locale) for p in use.goal_progress(ctx)]

