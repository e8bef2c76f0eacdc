"""The `/kpi` slash command: parse with the one grammar, call a use case, render, reply."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import grammar as g
from bot import usecases
from bot.render import blocks
from bot.slack.runtime import Message, Services, Who, guarded, reply_within_budget
from kpis.catalogue import PACKS

log = logging.getLogger("kpibot.commands")
NOT_YET = {g.Chart: "chart", g.DigestNow: "digest", g.DigestSchedule: "digest",
           g.DigestOff: "digest", g.AlertAdd: "alert", g.AlertForm: "alert", g.Alerts: "alerts",
           g.AlertRemove: "alert", g.AlertSnooze: "alert", g.Goal: "goal"}


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
            ack(**blocks.error(str(error)))
            return
        if isinstance(command, g.LogForm | g.Settings):
            ack()
            opened = guarded(lambda: open_form(services, who, command), "open form")()
            if opened:
                respond(**opened)
            return
        reply_within_budget(services, ack, respond, lambda: answer(services, who, command),
                            type(command).__name__)


def open_form(services: Services, who: Who, command: g.Command) -> Message | None:
    """Opens the log or settings modal; returns a message only when it could not."""
    ctx = services.context(who)
    metadata = {"channel": who.channel_id or "", "user": who.user_id}
    if isinstance(command, g.Settings):
        services.require_admin(who, "change settings")
        view = blocks.settings_modal(ctx.workspace, PACKS, metadata)
    else:
        tracked = ctx.catalogue.metrics_in(ctx.workspace.packs)
        view = blocks.log_modal(tracked, ctx.today, ctx.workspace.currency, metadata)
    who.client.views_open(trigger_id=who.trigger_id, view=view)
    return None


def answer(services: Services, who: Who, command: g.Command) -> Message:
    """The reply to every command but the forms."""
    if isinstance(command, g.Help):
        return blocks.help_message()
    if type(command) in NOT_YET:
        return blocks.message(f"`/kpi {NOT_YET[type(command)]}` is not available yet: it comes "
                              "with the digests and alerts release. Try `/kpi help`.")
    ctx = services.context(who)
    handler = _HANDLERS[type(command)]
    return handler(services, who, ctx, command)


def _log(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Log)
    result = usecases.log_numbers(ctx, c.values, day=c.date, dims=c.dims, origin="slack")
    services.metrics.entries.labels(origin="slack").inc(len(result.batch.changes))
    return blocks.log_reply(result, ctx.catalogue, ctx.workspace.currency, ctx.workspace.locale)


def _report(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Report)
    period = usecases.period_for(ctx, c.range)
    result = usecases.report(ctx, period, c.kpis)
    share = json.dumps({"range": str(period), "kpis": list(c.kpis)})
    return blocks.report_message(result, share_value=share)


def _metrics(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    return blocks.metrics_message(ctx.catalogue, ctx.workspace.packs, ctx.workspace.currency)


def _define(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Define)
    services.require_admin(who, "define KPIs")
    kpi = usecases.define_kpi(ctx, c.key, c.formula)
    return blocks.message(f":white_check_mark: Defined `{kpi.key}` = `{kpi.formula.text}`. It shows in "
                          "reports as soon as its inputs have data.")


def _history(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.History)
    lines = usecases.history(ctx, c.metric)
    return blocks.history_message(lines, ctx.catalogue, ctx.workspace.currency, ctx.workspace.locale)


def _undo(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    return blocks.undo_reply(usecases.undo(ctx))


def _export(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Export)
    period = usecases.period_for(ctx, c.range, default="90d")
    content = usecases.export_csv(ctx, period)
    rows = content.count("\n") - 1
    filename = f"kpi-export-{period.start}-{period.end}.csv"
    who.client.files_upload_v2(channel=who.channel_id, content=content.encode(), filename=filename,
                               title=f"KPI entries {period}")
    return blocks.message(f":page_facing_up: Uploaded `{filename}` ({rows} entries) to this conversation.")


def _tz(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Tz)
    services.require_admin(who, "change the time zone")
    workspace = usecases.set_timezone(ctx, c.zone)
    return blocks.message(f":globe_with_meridians: Time zone set to `{workspace.timezone}`. Days, "
                          "digests and reminders follow it from now on.")


_HANDLERS: dict[type, Callable[[Services, Who, usecases.Context, Any], Message]] = {
    g.Log: _log, g.Report: _report, g.Metrics: _metrics, g.Define: _define, g.History: _history,
    g.Undo: _undo, g.Export: _export, g.Tz: _tz,
}
