"""The `/kpi` slash command: parse with the one grammar, run through the registry, reply."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import grammar as g
from bot.registry import spec_for
from bot.render import kit
from bot.slack.runtime import Services, Who, ack_then, guarded, reply_within_budget

log = logging.getLogger("kpibot.commands")


def register(app: App, services: Services) -> None:
    @app.command("/kpi")
    def kpi(ack: Any, body: dict[str, Any], respond: Any, client: WebClient, context: Any) -> None:
        services.metrics.requests.labels(kind="command").inc()
        who = Who.of(context, body, client)
        log.info("command team=%s user=%s text_length=%d", who.team_id, who.user_id,
                 len(body.get("text") or ""))
        try:
            command = g.parse_command(body.get("text") or "")
        except g.CommandError as error:
            ack(**kit.error(str(error)))
            return
        spec = spec_for(command)
        where = type(command).__name__
        if spec.form:
            # ack at once and open the form right after, while the trigger id (3 s) is fresh;
            # a refusal or a problem is answered at the response URL
            ack()
            problem = guarded(lambda: services.answer(who, command), where)()
            if problem:
                respond(**problem)
        elif spec.slow:
            ack_then(services, ack, respond, f":hourglass_flowing_sand: {spec.slow}",
                     lambda: services.answer(who, command), where)
        else:
            reply_within_budget(services, ack, respond, lambda: services.answer(who, command),
                                where, received_at=context.get("received_at"))
