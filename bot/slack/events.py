"""Events: App Home shows this week against last week and what is still missing today."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

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


def publish_home(services: Services, who: Who) -> None:
    shown = home(services.context(who), is_admin=services.is_admin(who))
    who.client.views_publish(user_id=who.user_id, view=home_view(shown, services.admin_hint()))
