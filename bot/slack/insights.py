"""`/kpi why`, `/kpi whatif` (and its form), `/kpi remind`, and the daily nudges to log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import grammar as g
from bot import insights
from bot.render import insights as render
from bot.slack.courier import Courier, Outgoing
from bot.slack.runtime import Message, Services, Who, guarded
from bot.usecases import Context, UserError
from storage import Store

log = logging.getLogger("kpibot.insights")
Handler = Callable[[Services, Who, Any, Any], Message]
#: after a failed users.info, that person waits this long before the next look-up
LOOKUP_RETRY_SECONDS = 600.0


def _why(services: Services, who: Who, ctx: Context, c: g.Command) -> Message:
    assert isinstance(c, g.Why)
    result = insights.why(ctx, c.kpi, c.range)
    return render.why_message(result, ctx.workspace.currency, ctx.workspace.locale)


def _whatif(services: Services, who: Who, ctx: Context, c: g.Command) -> Message:
    assert isinstance(c, g.WhatIf)
    result = insights.what_if(ctx, c.changes)
    return render.whatif_message(result, ctx.workspace.currency, ctx.workspace.locale)


def _whatif_form(services: Services, who: Who, ctx: Context, c: g.Command) -> Message:
    metadata = {"channel": who.channel_id or "", "user": who.user_id}
    who.client.views_open(trigger_id=who.trigger_id, view=render.whatif_modal(metadata))
    return {}


def _remind(services: Services, who: Who, ctx: Context, c: g.Command) -> Message:
    assert isinstance(c, g.Remind)
    if c.time is not None:
        services.require_admin(who, "change the reminder time")
        workspace = insights.set_reminder_time(ctx, c.time)
        return render.reminder_time_message(workspace.reminder_time, insights.ACTIVE_DAYS)
    enabled = bool(c.enabled)
    insights.set_reminders(ctx, who.user_id, enabled)
    return render.reminders_message(enabled, ctx.workspace.reminder_time, insights.ACTIVE_DAYS)


#: command type -> handler, merged into the `/kpi` dispatcher
HANDLERS: dict[type, Handler] = {
    g.Why: _why, g.WhatIf: _whatif, g.WhatIfForm: _whatif_form, g.Remind: _remind,
}


# -- the what-if form ---------------------------------------------------------------------------


def register(app: App, services: Services) -> None:
    """The what-if form's submission; the nudge's button is `open_log_form` in actions.py."""

    @app.view("whatif_form")
    def whatif_form(ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient,
                    context: Any) -> None:
        services.metrics.requests.labels(kind="view_submission").inc()
        who = Who.of(context, body, client)
        changes = form_changes(view["state"]["values"])
        errors = form_errors(changes)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        reply = guarded(lambda: _whatif_reply(services, who, changes), "whatif form")()
        _tell(services, client, who, _metadata(view), reply)


def _whatif_reply(services: Services, who: Who, changes: list[tuple[str, str]]) -> Message:
    ctx = services.context(who)
    result = insights.what_if(ctx, changes)
    return render.whatif_message(result, ctx.workspace.currency, ctx.workspace.locale)


def form_changes(state: dict[str, Any]) -> list[tuple[str, str]]:
    """(step, percent as typed) for every picker of the form."""
    changes = []
    for block_id, actions in state.items():
        if not block_id.startswith("step:"):
            continue
        element = next(iter((actions or {}).values()), None) or {}
        option = element.get("selected_option") or {}
        changes.append((block_id.removeprefix("step:"), str(option.get("value") or "0")))
    return changes


def form_errors(changes: list[tuple[str, str]]) -> dict[str, str]:
    """Each refused change on its own picker, so nothing is projected from a bad form."""
    errors = {}
    for key, raw in changes:
        try:
            insights.parse_changes([(key, raw)])
        except UserError as error:
            errors[f"step:{key}"] = str(error)[:2000]
    return errors


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        found = json.loads(view.get("private_metadata") or "{}")
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def _tell(services: Services, client: WebClient, who: Who, metadata: dict[str, Any],
          reply: Message) -> None:
    """Only to the form's author: in the channel it was opened from, else in the app's DM."""
    channel = str(metadata.get("channel") or "")
    try:
        if channel and not channel.startswith("D"):
            try:
                client.chat_postEphemeral(channel=channel, user=who.user_id, **reply)
                return
            except SlackApiError as error:
                services.slack_error("chat.postEphemeral", error)
        client.chat_postMessage(channel=who.user_id, **reply)
    except SlackApiError as error:
        services.slack_error("chat.postMessage", error)


# -- nudges -------------------------------------------------------------------------------------


def nudge_sweeper(store: Store, courier: Courier) -> Callable[[datetime], list[str]]:
    """The minute sweep that sends each due nudge once, with this process's look-up memory."""
    retry_after: dict[tuple[str, str], float] = {}

    def zone_of(workspace_id: str, user_id: str) -> str | None:
        """The person's zone from users.info, kept in the people table so it is asked once."""
        if retry_after.get((workspace_id, user_id), 0.0) > time.monotonic():
            return None
        client = courier.client_for(workspace_id)
        workspace = store.workspace(workspace_id)
        if client is None or workspace is None:
            return None
        try:
            user = client.users_info(user=user_id).get("user") or {}
        except (SlackApiError, SlackClientError, OSError) as error:
            log.warning("users.info failed for a nudge: %s", error.__class__.__name__)
            retry_after[(workspace_id, user_id)] = time.monotonic() + LOOKUP_RETRY_SECONDS
            return None
        zone = str(user.get("tz") or workspace.timezone)
        if user.get("deleted") or user.get("is_bot"):
            store.remember_person(workspace_id, user_id, timezone=zone, reminders=False)
            return None
        store.remember_person(workspace_id, user_id, timezone=zone)
        return zone

    def nudge_sweep(now: datetime) -> list[str]:
        outcomes = []
        for nudge in insights.due_nudges(store, now, zone_of):
            done = store.delivery(nudge.key)
            if done is not None and (done.delivered_at or done.failed_at):
                continue
            outcomes.append(courier.deliver(
                nudge.workspace_id, nudge.key, kind="nudge", channel=nudge.user_id,
                due_at=nudge.due_at, build=partial(_nudge, store, nudge, now),
            ))
        return outcomes

    return nudge_sweep


def _nudge(store: Store, nudge: insights.Nudge, now: datetime) -> Outgoing:
    missing = insights.missing_today(store, nudge.workspace_id, now)
    body = render.nudge_message(missing, insights.ACTIVE_DAYS)
    return Outgoing(body["text"], body["blocks"])


def attach(services: Services) -> None:
    """Adds the nudge sweep to the scheduler's minute sweep."""
    if services.scheduler is not None and services.courier is not None:
        services.scheduler.extra_sweeps.append(nudge_sweeper(services.store, services.courier))
