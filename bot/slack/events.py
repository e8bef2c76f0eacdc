"""Events: App Home shows this week against last week and what is still missing today."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import usecases
from bot.render import blocks
from bot.slack.runtime import Services, Who, guarded
from kpis.catalogue import HEADLINE_KPIS
from kpis.periods import Period

log = logging.getLogger("kpibot.events")


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def home(event: dict[str, Any], body: dict[str, Any], client: WebClient, context: Any) -> None:
        services.metrics.requests.labels(kind="event").inc()
        if event.get("tab") not in (None, "home"):
            return
        who = Who.of(context, body, client)
        guarded(lambda: publish_home(services, who), "app home")()


def publish_home(services: Services, who: Who) -> None:
    ctx = services.context(who)
    catalogue = ctx.catalogue
    headline = [k for k in HEADLINE_KPIS if k in catalogue.kpis]
    report = usecases.report(ctx, Period.iso_week(ctx.today), headline)
    logged = services.store.metrics_logged_on(ctx.workspace.id, ctx.today)
    missing = [m for m in catalogue.metrics_in(ctx.workspace.packs) if m.key not in logged]
    view = blocks.home_view(report, missing, services.is_admin(who), services.admin_hint())
    who.client.views_publish(user_id=who.user_id, view=view)
