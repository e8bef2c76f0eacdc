"""Events: App Home shows this week against last week and what is still missing today."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import usecases
from bot.render import blocks
from bot.slack import alerting
from bot.slack.runtime import Services, Who, guarded
from kpis.catalogue import HEADLINE_KPIS
from kpis.periods import Period
from kpis.schedule import WEEKDAYS

log = logging.getLogger("kpibot.events")
_FIX = {
    "channel_not_found": "The channel is gone: schedule the digest again in another channel.",
    "not_in_channel": "Invite me with `/invite @KPI Bot` in that channel.",
    "method_not_supported_for_channel_type": "Invite me with `/invite @KPI Bot` in that channel.",
    "is_archived": "The channel is archived: schedule the digest in another channel.",
}


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
    is_admin = services.is_admin(who)
    schedules = [
        f"{s.kind} at {s.at_time}" + (f" on {WEEKDAYS[s.weekday].title()}s" if s.weekday is not None else "")
        + f" in <#{s.channel_id}>"
        for s in services.store.subscriptions(ctx.workspace.id)
    ]
    problems = [
        f"• {d.kind.replace('-', ' ')} to <#{d.channel_id}>: `{d.error}` "
        f"({d.failed_at:%d %b %H:%M} UTC)" + (f" {_FIX[d.error]}" if d.error in _FIX else "")
        for d in services.store.deliveries(ctx.workspace.id, failed_only=True, limit=5)
        if d.failed_at is not None
    ] if is_admin else []
    goals = alerting.progress_lines(ctx)
    view = blocks.home_view(report, missing, is_admin, services.admin_hint(), schedules, problems,
                            goals)
    who.client.views_publish(user_id=who.user_id, view=view)
