"""The `/kpi` slash command: parse with the one grammar, call a use case, render, reply."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import grammar as g
from bot import usecases
from bot.digest import chart_trend, digest_period
from bot.render import blocks
from bot.render.digest import trend_png
from bot.scheduler import digest_outgoing
from bot.slack import alerting, insights
from bot.slack.runtime import Message, Services, Who, ack_then, guarded, reply_within_budget
from kpis.catalogue import PACKS
from kpis.periods import zone
from kpis.schedule import WEEKDAYS, next_due, parse_time

log = logging.getLogger("kpibot.commands")
NOT_YET = {g.Why: "why", g.WhatIf: "whatif", g.WhatIfForm: "whatif", g.Remind: "remind"}
#: commands that render charts or post: acked at once, answered through response_url
SLOW = {g.DigestNow: "Posting the {kind} digest…", g.Chart: "Drawing the chart…"}


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
        if type(command) in SLOW:
            text = SLOW[type(command)].format(kind=getattr(command, "kind", ""))
            ack_then(services, ack, respond, f":hourglass_flowing_sand: {text}",
                     lambda: answer(services, who, command), type(command).__name__)
            return
        reply_within_budget(services, ack, respond, lambda: answer(services, who, command),
                            type(command).__name__, received_at=context.get("received_at"))


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
    if type(command) in NOT_YET and type(command) not in _HANDLERS:
        return blocks.message(f"`/kpi {NOT_YET[type(command)]}` is not available yet: it comes "
                              "with the digests and alerts release. Try `/kpi help`.")
    ctx = services.context(who)
    handler = _HANDLERS[type(command)]
    return handler(services, who, ctx, command)


def _log(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Log)
    result = usecases.log_numbers(ctx, c.values, day=c.date, dims=c.dims, origin="slack")
    services.metrics.entries.labels(origin="slack").inc(len(result.batch.changes))
    if services.alerting is not None:
        services.alerting.logged(ctx.workspace.id, result.day, {c.metric for c in result.batch.changes})
    return blocks.log_reply(result, ctx.catalogue, ctx.workspace.currency, ctx.workspace.locale)


def _report(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Report)
    period = usecases.period_for(ctx, c.range)
    result = usecases.report(ctx, period, c.kpis)
    share = json.dumps({"range": str(period), "kpis": list(c.kpis)})
    return blocks.report_message(result, share_value=share, goals=alerting.progress_lines(ctx))


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
    services.schedule_changed()
    return blocks.message(f":globe_with_meridians: Time zone set to `{workspace.timezone}`. Days, "
                          "digests and reminders follow it from now on.")


def _digest_now(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.DigestNow) and services.courier is not None
    channel = _channel(who)
    period = digest_period(c.kind, ctx.today)
    key = f"digest-now:{ctx.workspace.id}:{channel}:{c.kind}:{uuid.uuid4().hex}"
    outcome = services.courier.deliver(
        ctx.workspace.id, key, kind=f"digest-{c.kind}", channel=channel, due_at=ctx.now,
        build=lambda: digest_outgoing(ctx, c.kind, period),
    )
    if outcome != "posted":
        problem = services.store.delivery(key)
        raise usecases.UserError(_post_problem(problem.error if problem else outcome))
    return blocks.message(f":white_check_mark: Posted the {c.kind} digest for {period} here.")


def _digest_schedule(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.DigestSchedule)
    services.require_admin(who, "schedule digests")
    channel = _channel(who)
    try:
        at = parse_time(c.time)
    except ValueError as error:
        raise usecases.UserError(str(error)) from None
    sub = services.store.subscribe(ctx.workspace.id, channel, c.kind, f"{at:%H:%M}", c.weekday,
                                   who.user_id)
    services.schedule_changed()
    tz = ctx.workspace.timezone
    upcoming = next_due(at, sub.weekday, tz, ctx.now).astimezone(zone(tz))
    when = f"every {WEEKDAYS[sub.weekday].title()}" if sub.weekday is not None else "every day"
    return blocks.message(
        f":calendar: The {c.kind} digest will be posted in <#{channel}> {when} at {sub.at_time} "
        f"({tz}). Next: {upcoming:%a %d %b %H:%M}. `/kpi digest now {c.kind}` shows it now; "
        "`/kpi digest off` stops it."
    )


def _digest_off(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.DigestOff)
    services.require_admin(who, "stop digests")
    stopped = services.store.unsubscribe(ctx.workspace.id, _channel(who), c.kind)
    services.schedule_changed()
    what = f"{c.kind} digest" if c.kind else "digests"
    if not stopped:
        return blocks.message(f"There was no {what} scheduled in this channel, so nothing changed.")
    return blocks.message(f":no_bell: Stopped the {what} in this channel.")


def _chart(services: Services, who: Who, ctx: usecases.Context, c: g.Command) -> Message:
    assert isinstance(c, g.Chart)
    period = usecases.period_for(ctx, c.range, default="30d")
    trend = chart_trend(ctx, c.kpi, period)
    if not trend.has_data:
        raise usecases.UserError(f"No data for {trend.label} in {period}: log its inputs "
                                 f"({', '.join(sorted(ctx.catalogue.inputs_of(trend.key)))}) first.")
    png = trend_png(trend, ctx.workspace.currency, ctx.workspace.locale)
    channel = _channel(who)
    who.client.files_upload_v2(
        channel=channel, content=png, filename=f"{trend.key}-{period.start}-{period.end}.png",
        title=f"{trend.label}, {period}", initial_comment=f"<@{who.user_id}> asked for {trend.label}, {period}",
    )
    return {}


def _channel(who: Who) -> str:
    if not who.channel_id:
        raise usecases.UserError("Use this in a channel, so I know where to post.")
    return who.channel_id


def _post_problem(code: str) -> str:
    if code in ("not_in_channel", "method_not_supported_for_channel_type", "channel_not_found"):
        return ("I can't post in this channel. Invite me with `/invite @KPI Bot`, then try again.")
    return f"I couldn't post here (Slack said `{code}`). Nothing was posted twice; try again later."


_HANDLERS: dict[type, Callable[[Services, Who, usecases.Context, Any], Message]] = {
    g.Log: _log, g.Report: _report, g.Metrics: _metrics, g.Define: _define, g.History: _history,
    g.Undo: _undo, g.Export: _export, g.Tz: _tz, g.DigestNow: _digest_now,
    g.DigestSchedule: _digest_schedule, g.DigestOff: _digest_off, g.Chart: _chart,
    **alerting.HANDLERS, **insights.HANDLERS,
}
