"""Events: App Home shows this week against last week and what is still missing today;
`app_uninstalled` and `tokens_revoked` delete the workspace's tokens and stop its posting."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.app import lifecycle
from bot.app.home import home
from bot.render.blocks import home_view
from bot.slack.runtime import Services, Who, guarded

log = logging.getLogger("kpibot.events")


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], body: dict[str, Any], client: WebClient, context: Any) -> None:
        services.metrics.requests.labels(kind="event").inc()
        if event.get("tab") not in (None, "home"):
            return
        who = Who.of(context, body, client)
        guarded(lambda: publish_home(services, who), "app home")()


    @app.event("app_uninstalled")
    def app_uninstalled(body: dict[str, Any], context: Any) -> None:
        services.metrics.requests.labels(kind="event").inc()
        lifecycle.uninstalled(services.store, services.ports, _team(context, body),
                              context.enterprise_id, services.clock())

    @app.event("tokens_revoked")
    def tokens_revoked(event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
        services.metrics.requests.labels(kind="event").inc()
        tokens = event.get("tokens") or {}
        lifecycle.tokens_revoked(services.store, services.ports, _team(context, body),
                                 context.enterprise_id, bot=_ids(tokens.get("bot")),
                                 oauth=_ids(tokens.get("oauth")), now=services.clock())


def _team(context: Any, body: dict[str, Any]) -> str:
    return str(context.team_id or body.get("team_id") or context.enterprise_id or "unknown")


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def publish_home(services: Services, who: Who) -> None:
    shown = home(services.context(who), is_admin=services.is_admin(who))
    who.client.views_publish(user_id=who.user_id, view=home_view(shown, services.admin_hint()))
