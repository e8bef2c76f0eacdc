"""Button clicks: Undo, Share in channel, open the log form or the settings."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import usecases
from bot.grammar import LogForm, Settings
from bot.render import blocks
from bot.slack.commands import open_form
from bot.slack.runtime import Message, Services, Who, guarded

log = logging.getLogger("kpibot.actions")


def register(app: App, services: Services) -> None:
    @app.action("undo_last")
    def undo_last(ack: Any, body: dict[str, Any], respond: Any, client: WebClient, context: Any) -> None:
        ack()
        services.metrics.requests.labels(kind="action").inc()
        who = Who.of(context, body, client)
        batch_id = body["actions"][0].get("value") or None
        answer = guarded(lambda: blocks.undo_reply(usecases.undo(services.context(who), batch_id)), "undo")()
        respond(replace_original=False, **answer)

    @app.action("share_report")
    def share_report(ack: Any, body: dict[str, Any], respond: Any, client: WebClient, context: Any) -> None:
        ack()
        services.metrics.requests.labels(kind="action").inc()
        who = Who.of(context, body, client)
        value = body["actions"][0].get("value") or "{}"
        result = guarded(lambda: _share(services, who, value), "share")()
        respond(replace_original=False, **result)

    def opens(form: Any) -> Any:
        """A button listener that opens `form` (the log or settings modal)."""

        def listener(ack: Any, body: dict[str, Any], client: WebClient, context: Any) -> None:
            ack()
            services.metrics.requests.labels(kind="action").inc()
            _open_or_tell(services, Who.of(context, body, client), form)

        return listener

    app.action("open_log_form")(opens(LogForm()))
    app.action("open_settings")(opens(Settings()))


def _open_or_tell(services: Services, who: Who, command: Any) -> None:
    problem = guarded(lambda: open_form(services, who, command), "open form")()
    if problem:
        who.client.chat_postMessage(channel=who.user_id, **problem)


def _share(services: Services, who: Who, value: str) -> Message:
    """Posts the report to the channel for everyone; tells the clicker it was shared."""
    try:
        spec = json.loads(value)
    except json.JSONDecodeError:
        spec = {}
    ctx = services.context(who)
    period = usecases.period_for(ctx, spec.get("range"))
    report = usecases.report(ctx, period, spec.get("kpis") or ())
    shared = blocks.report_message(report)
    shared["text"] = f"<@{who.user_id}> shared: {shared['text']}"
    channel = who.channel_id or who.user_id
    try:
        who.client.chat_postMessage(channel=channel, **shared)
    except SlackApiError as error:
        services.slack_error("chat.postMessage", error)
        if error.response.get("error") != "not_in_channel":
            raise usecases.UserError("I couldn't post in this channel. Invite me with `/invite @KPI Bot` "
                                     "and try again.") from None
        who.client.conversations_join(channel=channel)
        who.client.chat_postMessage(channel=channel, **shared)
    return blocks.message(":white_check_mark: Shared in the channel.")
