"""Button clicks: Undo, Share in channel, Show all (one for every message that folds on a
phone), Snooze, Open report, a history line's Edit and Delete, and the buttons that open
forms."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import grammar as g
from bot.app import alerts, reports
from bot.app.context import UserError
from bot.registry import show_all_report
from bot.render import alerts as alert_views
from bot.render import blocks as log_views
from bot.render import report as report_view
from bot.render.kit import SHOW_ALL, Message, error, in_place_of, message
from bot.slack.runtime import Services, Who, guarded

log = logging.getLogger("kpibot.actions")
Work = Callable[[Services, Who, dict[str, Any]], Message]


def register(app: App, services: Services) -> None:
    def answers(work: Work, where: str) -> Any:
        """A button whose JSON value goes to `work`; the answer only to the clicker, below the
        message clicked, or in its place when the answer says `replace_original`."""

        def listener(ack: Any, body: dict[str, Any], respond: Any, client: WebClient, context: Any) -> None:
            ack()
            services.metrics.requests.labels(kind="action").inc()
            who = Who.of(context, body, client)
            raw = body["actions"][0].get("value") or "{}"

            def run() -> Message:
                try:
                    spec = json.loads(raw)
                except json.JSONDecodeError:
                    spec = raw
                return work(services, who, spec if isinstance(spec, dict) else {"value": spec})

            respond(**{"replace_original": False, "response_type": "ephemeral",
                       **guarded(run, where)()})

        return listener

    def opens(command: g.Command) -> Any:
        """A button that opens a form; a refusal (a member and settings) goes to the DM."""

        def listener(ack: Any, body: dict[str, Any], client: WebClient, context: Any) -> None:
            ack()
            services.metrics.requests.labels(kind="action").inc()
            who = Who.of(context, body, client)
            problem = guarded(lambda: services.answer(who, command), "open form")()
            if problem:
                client.chat_postMessage(channel=who.user_id, **problem)

        return listener

    @app.action(log_views.ENTRY_MENU)
    def entry_menu(ack: Any, body: dict[str, Any], respond: Any, client: WebClient, context: Any) -> None:
        """A history line's menu: Edit opens the entry's form, Delete removes it (with an
        Undo); a refusal goes only to the clicker, below the history."""
        ack()
        services.metrics.requests.labels(kind="action").inc()
        who = Who.of(context, body, client)
        picked = str((body["actions"][0].get("selected_option") or {}).get("value") or "")
        verb, _, number = picked.partition(":")
        if verb not in ("edit", "delete") or not number.isdigit():
            answer = error("That menu no longer works. Run `/kpi history` again.")
        elif verb == "edit":
            answer = guarded(lambda: services.answer(who, g.EditEntry(change_id=int(number))),
                             "edit entry")()
        else:
            answer = guarded(lambda: _ran(services, who, g.DeleteEntry(change_id=int(number))),
                             "delete entry")()
        if answer:
            respond(**{"replace_original": False, "response_type": "ephemeral", **answer})

    @app.action("undo_last")
    def undo_last(ack: Any, body: dict[str, Any], respond: Any, client: WebClient, context: Any) -> None:
        """The result takes the Undo button's place in the clicked message, so it cannot be
        clicked twice; a refusal (already undone, changed since) leaves the message as it was."""
        ack()
        services.metrics.requests.labels(kind="action").inc()
        who = Who.of(context, body, client)
        batch_id = str(body["actions"][0].get("value") or "") or None

        def run() -> Message:
            reply = _ran(services, who, g.Undo(batch_id=batch_id))
            clicked = (body.get("message") or {}).get("blocks") or []
            return {**in_place_of(clicked, "undo_last", reply), "replace_original": True}

        respond(**{"replace_original": False, "response_type": "ephemeral",
                   **guarded(run, "undo")()})

    app.action("share_report")(answers(_share, "share"))
    app.action(SHOW_ALL)(answers(_show_all, "show all"))
    app.action("alert_snooze")(answers(_snooze, "snooze"))
    app.action("open_report")(answers(_report, "open report"))
    app.action("open_log_form")(opens(g.LogForm()))
    app.action("open_settings")(opens(g.Settings()))
    app.action("open_setup")(opens(g.Setup()))
    app.action("open_alert_form")(opens(g.AlertForm()))


def _ran(services: Services, who: Who, command: g.Command) -> Message:
    reply = services.run(who, command)
    assert isinstance(reply, dict)
    return reply


def _snooze(services: Services, who: Who, spec: dict[str, Any]) -> Message:
    ctx = services.context(who)
    rule, until = alerts.snooze_rule(ctx, int(spec.get("rule", 0)), str(spec.get("for", "1d")))
    return message(alert_views.snooze_clicked_text(who.user_id, rule, until, ctx.workspace.timezone))


def _asked(services: Services, who: Who, spec: dict[str, Any]) -> reports.Requested:
    """The report a button's value names: its range (as it stood on `as_of`), names,
    filters and breakdown."""
    ctx = services.context(who)
    dims = tuple((str(k), str(v)) for k, v in (spec.get("dims") or {}).items())
    return reports.requested(ctx, spec.get("range"), spec.get("kpis") or (), dims, spec.get("by"),
                             as_of=spec.get("as_of"))


def _report(services: Services, who: Who, spec: dict[str, Any]) -> Message:
    """An alert's "Open report": the period that fired, like for like."""
    ctx = services.context(who)
    asked = reports.requested(ctx, spec.get("range") or "30d", spec.get("kpis") or (),
                              as_of=spec.get("as_of"))
    return report_view.report_message(asked.report, share_value=json.dumps(spec),
                                      more=show_all_report(asked, spec.get("as_of")))


def _show_all(services: Services, who: Who, spec: dict[str, Any]) -> Message:
    """Every Show all: what its message left below the fold, only to the clicker. A log's
    button carries the numbers it stored (logging again would store them twice); every other
    names its command, run again in full."""
    if isinstance(spec.get("log"), dict):
        ctx = services.context(who)
        return log_views.log_reply(log_views.Logged.of_value(spec["log"]), ctx.catalogue,
                                   ctx.workspace.currency, ctx.workspace.locale, full=True)
    try:
        command = g.shown_in_full(spec)
    except g.CommandError as error:
        raise UserError(str(error)) from None
    reply = services.run(who, command)
    assert isinstance(reply, dict)
    return reply


def _share(services: Services, who: Who, spec: dict[str, Any]) -> Message:
    """Posts the report to the channel for everyone, saying who shared it; the clicker's private
    copy then says "Shared" where its Share button was."""
    asked = _asked(services, who, spec)
    shared = report_view.report_message(asked.report, share_value=json.dumps(spec),
                                        shared_by=who.user_id,
                                        more=show_all_report(asked, spec.get("as_of")))
    shared["text"] = f"<@{who.user_id}> shared: {shared['text']}"
    channel = who.channel_id or who.user_id
    try:
        who.client.chat_postMessage(channel=channel, **shared)
    except SlackApiError as error:
        services.slack_error("chat.postMessage", error)
        if error.response.get("error") != "not_in_channel":
            raise UserError("I couldn't post in this channel. Invite me with `/invite @KPI Bot` "
                            "and try again.") from None
        who.client.conversations_join(channel=channel)
        who.client.chat_postMessage(channel=channel, **shared)
    private = report_view.report_message(asked.report, share_value=json.dumps(spec),
                                         shared_in=channel,
                                         more=show_all_report(asked, spec.get("as_of")))
    return {**private, "replace_original": True}
