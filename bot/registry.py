"""The one command registry: each `/kpi` command type -> its use case, its renderer, and what it
needs (admins only, slow: acked first, opens a form).

Every front end that runs a command (the slash command, buttons, forms) asks `spec_for`; the
admin rule is enforced from `Spec.admin` in one place (bot/slack/runtime.py). The match is
exhaustive: a command type without a line here fails type checking (`assert_never`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, assert_never

from bot import grammar as g
from bot.app import (
    alerts,
    charts,
    definitions,
    digests,
    entries,
    goals,
    insights,
    reminders,
    reports,
    setup,
    tokens,
    tracking,
)
from bot.app import settings as workspace_settings
from bot.app.context import Context
from bot.render import alerts as alert_views
from bot.render import blocks
from bot.render import insights as insight_views
from bot.render import report as report_view
from bot.render import tokens as token_views
from bot.render.chart_post import chart_message
from bot.render.kit import Modal, Reply, Upload, message
from kpis.catalogue import PACKS

R = TypeVar("R")


@dataclass(frozen=True)
class Spec(Generic[R]):
    """How one command is run: `use_case(ctx)` then `render(result, ctx)`.

    `admin` is what a member is told they cannot do ("define KPIs"); `slow` is the ack text of
    work that answers later (charts, posts); `form` marks commands that open a modal.
    """

    use_case: Callable[[Context], R]
    render: Callable[[R, Context], Reply]
    admin: str | None = None
    slow: str | None = None
    form: bool = False

    def run(self, ctx: Context) -> Reply:
        return self.render(self.use_case(ctx), ctx)


def _say(text: Callable[[Any, Context], str]) -> Callable[[Any, Context], Reply]:
    return lambda result, ctx: message(text(result, ctx))


def _money(ctx: Context) -> tuple[str, str]:
    return ctx.workspace.currency, ctx.workspace.locale


def _metadata(ctx: Context) -> dict[str, str]:
    return {"channel": ctx.channel or "", "user": ctx.actor}


def spec_for(command: g.Command) -> Spec[Any]:  # noqa: C901 - one line per command
    match command:
        case g.Help(full=full):
            return Spec(lambda ctx: None, lambda _, ctx: blocks.help_message(
                full=full, more=g.show_all_value(command)))
        case g.LogForm():
            return Spec(entries.log_form, lambda form, ctx: Modal(
                blocks.log_modal(form.metrics, form.today, form.currency, _metadata(ctx),
                                 form.prefilled, form.dimensions)), form=True)
        case g.Log(values=values, date=day, dims=dims, via=via):
            return Spec(lambda ctx: entries.log_numbers(ctx, values, day=day, dims=dims, origin=via),
                        lambda result, ctx: blocks.log_reply(blocks.Logged.of(result), ctx.catalogue,
                                                             *_money(ctx)))
        case g.Report(range=spec, kpis=names, dims=dims, by=by, as_of=as_of, full=full):
            return Spec(lambda ctx: reports.requested(ctx, spec, names, dims, by, as_of=as_of),
                        lambda asked, ctx: _report(asked, ctx, as_of=as_of, full=full))
        case g.Chart(kpi=name, range=spec, by=by):
            return Spec(lambda ctx: charts.post_chart(ctx, name, spec, by), _chart,
                        slow="Drawing the chart…")
        case g.DigestNow(kind=kind, by=by):
            return Spec(lambda ctx: digests.post_now(ctx, kind, by), _say(
                lambda posted, ctx: f":white_check_mark: Posted the {posted.kind} digest for "
                                    f"{posted.period} here."), slow=f"Posting the {kind} digest…")
        case g.DigestSchedule(kind=every, weekday=weekday, time=at, by=by):
            return Spec(lambda ctx: digests.subscribe(ctx, every, weekday, at, by),
                        _say(blocks.scheduled_text), admin="schedule digests")
        case g.DigestOff(kind=which):
            return Spec(lambda ctx: digests.unsubscribe(ctx, which),
                        _say(lambda stopped, ctx: blocks.unsubscribed_text(stopped, which)),
                        admin="stop digests")
        case g.AlertAdd():
            return Spec(lambda ctx: alerts.add_rule(
                ctx, ctx.in_channel(), command.kpi, command.op, command.threshold,
                period=command.period, for_periods=command.for_periods, mention=command.mention,
                dims=command.dims, sensitivity=command.sensitivity), _rule_added,
                admin="add alert rules")
        case g.AlertForm():
            return Spec(alerts.alert_form, lambda form, ctx: Modal(alert_views.alert_modal(form)),
                        admin="add alert rules", form=True)
        case g.Alerts(full=full):
            return Spec(alerts.listed, lambda rows, ctx: alert_views.rules_message(
                rows, *_money(ctx), ctx.workspace.timezone, ctx.now, full=full,
                more=g.show_all_value(command)))
        case g.AlertRemove(rule_id=rule_id):
            return Spec(lambda ctx: alerts.remove_rule(ctx, rule_id), _say(
                lambda rule, ctx: f":wastebasket: Alert #{rule.id} on `{rule.rule.kpi}` removed."),
                admin="remove alert rules")
        case g.AlertSnooze(rule_id=rule_id, duration=duration):
            return Spec(lambda ctx: alerts.snooze_rule(ctx, rule_id, duration),
                        _say(alert_views.snoozed_text))
        case g.Goal(kpi=name, value=value, period=period):
            return Spec(lambda ctx: goals.set_goal(ctx, name, value, period), _say(
                lambda progress, ctx: ":dart: Goal set. " + alert_views.goal_line(progress, *_money(ctx))
                + "\nDigests, reports and App Home show its progress from now on."),
                admin="set goals")
        case g.Goals(full=full):
            return Spec(goals.goals, lambda progress, ctx: alert_views.goals_message(
                progress, *_money(ctx), full=full, more=g.show_all_value(command)))
        case g.GoalRemove(key=key, period=which):
            return Spec(lambda ctx: goals.remove_goal(ctx, key, which), _say(
                lambda removed, ctx: alert_views.goal_removed_text(removed, ctx.catalogue,
                                                                   *_money(ctx))),
                admin="remove goals")
        case g.Track(metrics=names):
            return Spec(lambda ctx: tracking.track(ctx, names), _say(
                lambda tracked, ctx: blocks.tracked_text(tracked, changed=True)),
                admin="choose the tracked metrics")
        case g.Setup():
            return Spec(setup.setup_form, lambda form, ctx: Modal(
                blocks.setup_modal(form, _metadata(ctx))), admin="set up the workspace", form=True)
        case g.Tracking():
            return Spec(tracking.tracking, _say(lambda tracked, ctx: blocks.tracked_text(tracked)))
        case g.Metrics(full=full):
            return Spec(definitions.vocabulary, lambda v, ctx: blocks.metrics_message(
                v.catalogue, v.packs, v.currency, v.tracked if v.chosen else None, full=full,
                more=g.show_all_value(command)))
        case g.Define(key=key, formula=formula, unit=unit, better=better):
            return Spec(lambda ctx: definitions.define_kpi(ctx, key, formula, unit=unit,
                                                           better=better), _say(
                lambda kpi, ctx: f":white_check_mark: Defined `{kpi.key}` = `{kpi.formula.text}`. "
                                 "It shows in reports as soon as its inputs have data."),
                admin="define KPIs")
        case g.MetricAdd(key=key, unit=unit, aggregation=aggregation, label=label):
            return Spec(lambda ctx: definitions.add_metric(ctx, key, unit=unit,
                                                           aggregation=aggregation, label=label),
                        _say(lambda metric, ctx: blocks.metric_added_text(metric)),
                        admin="add metrics")
        case g.MetricRemove(key=key):
            return Spec(lambda ctx: definitions.remove_metric(ctx, key),
                        _say(lambda metric, ctx: blocks.metric_removed_text(metric)),
                        admin="remove metrics")
        case g.DimensionAdd(key=key, values=allowed):
            return Spec(lambda ctx: definitions.add_dimension(ctx, key, allowed),
                        _say(lambda done, ctx: blocks.dimension_added_text(done)),
                        admin="add dimensions")
        case g.DimensionRemove(key=key):
            return Spec(lambda ctx: definitions.remove_dimension(ctx, key),
                        _say(lambda done, ctx: blocks.dimension_removed_text(done)),
                        admin="remove dimensions")
        case g.Dimensions():
            return Spec(definitions.dimensions,
                        _say(lambda found, ctx: blocks.dimensions_text(found)))
        case g.SourceClass(source=source, paid=paid):
            return Spec(lambda ctx: definitions.classify_source(ctx, source, paid),
                        _say(lambda done, ctx: blocks.source_classified_text(done)),
                        admin="classify sources")
        case g.Sources(full=full):
            return Spec(definitions.sources, lambda found, ctx: blocks.sources_message(
                found, full=full, more=g.show_all_value(command)))
        case g.History(metric=metric, full=full):
            return Spec(lambda ctx: entries.recent(ctx, metric), lambda shown, ctx:
                        blocks.history_message(shown.lines, ctx.catalogue, *_money(ctx), full=full,
                                               more=g.show_all_value(command),
                                               changeable=shown.changeable))
        case g.EditEntry(change_id=change_id):
            return Spec(lambda ctx: entries.entry_form(ctx, change_id), lambda form, ctx: Modal(
                blocks.entry_modal(form, {**_metadata(ctx), "change": str(change_id)})), form=True)
        case g.SaveEntry(change_id=change_id, value=raw):
            return Spec(lambda ctx: entries.correct_entry(ctx, change_id, raw),
                        lambda result, ctx: blocks.log_reply(blocks.Logged.of(result), ctx.catalogue,
                                                             *_money(ctx)))
        case g.DeleteEntry(change_id=change_id):
            return Spec(lambda ctx: entries.delete_entry(ctx, change_id),
                        lambda result, ctx: blocks.deleted_reply(blocks.Logged.of(result),
                                                                 ctx.catalogue, *_money(ctx)))
        case g.Undo(batch_id=batch_id):
            return Spec(lambda ctx: entries.undo(ctx, batch_id),
                        lambda batch, ctx: blocks.undo_reply(batch))
        case g.Export(range=spec):
            return Spec(lambda ctx: entries.export(ctx, spec), _export)
        case g.Tz(zone=name):
            return Spec(lambda ctx: workspace_settings.set_timezone(ctx, name), _say(
                lambda ws, ctx: f":globe_with_meridians: Time zone set to `{ws.timezone}`. Days, "
                                "digests and reminders follow it from now on."),
                admin="change the time zone")
        case g.Settings():
            return Spec(lambda ctx: ctx.workspace, lambda ws, ctx: Modal(
                blocks.settings_modal(ws, PACKS, _metadata(ctx))), admin="change settings", form=True)
        case g.SaveSettings(packs=packs, timezone=tz, currency=currency, locale=locale):
            return Spec(lambda ctx: workspace_settings.save_settings(ctx, packs, tz, currency, locale),
                        _say(lambda ws, ctx: ":white_check_mark: Settings saved."),
                        admin="change settings")
        case g.Why(kpi=name, range=spec, full=full):
            return Spec(lambda ctx: insights.why(ctx, name, spec),
                        lambda result, ctx: insight_views.why_message(
                            result, *_money(ctx), full=full, more=g.show_all_value(command)))
        case g.WhatIf(changes=changes, full=full):
            return Spec(lambda ctx: insights.what_if(ctx, changes),
                        lambda result, ctx: insight_views.whatif_message(
                            result, *_money(ctx), full=full, more=g.show_all_value(command)))
        case g.WhatIfForm():
            return Spec(lambda ctx: None, lambda _, ctx: Modal(
                insight_views.whatif_modal(_metadata(ctx))), form=True)
        case g.Remind(enabled=enabled):
            return Spec(lambda ctx: reminders.set_reminders(ctx, ctx.actor, enabled),
                        lambda _, ctx: insight_views.reminders_message(
                            enabled, ctx.workspace.reminder_time, reminders.ACTIVE_DAYS))
        case g.RemindAt(time=hhmm):
            return Spec(lambda ctx: reminders.set_reminder_time(ctx, hhmm),
                        lambda ws, ctx: insight_views.reminder_time_message(
                            ws.reminder_time, reminders.ACTIVE_DAYS),
                        admin="change the reminder time")
        case g.TokenCreate(name=token_name):
            return Spec(lambda ctx: tokens.create_token(ctx, token_name), _say(
                lambda new, ctx: token_views.created_text(new, ctx.workspace.timezone)),
                admin="manage API tokens")
        case g.Tokens(full=full):
            return Spec(tokens.tokens, lambda listed, ctx: token_views.tokens_message(
                listed, ctx.workspace.timezone, full=full, more=g.show_all_value(command)),
                admin="manage API tokens")
        case g.TokenRevoke(token_id=token_id):
            return Spec(lambda ctx: tokens.revoke_token(ctx, token_id),
                        _say(lambda t, ctx: token_views.revoked_text(t)), admin="manage API tokens")
        case _:
            assert_never(command)


def _report(asked: reports.Requested, ctx: Context, *, as_of: str | None, full: bool) -> Reply:
    """The report with Share and, when rows are hidden, Show all (both like for like: the
    range as it was resolved when asked); `full` every row, the goals and the notes."""
    spec = {"range": asked.range, "kpis": list(asked.names), "dims": dict(asked.dims), "by": asked.by}
    if as_of:
        spec["as_of"] = as_of
    lines = [alert_views.goal_line(p, *_money(ctx)) for p in asked.goals]
    if full:
        return report_view.report_message(asked.report, goals=lines, full=True)
    return report_view.report_message(asked.report, share_value=json.dumps(spec), goals=lines,
                                      more=show_all_report(asked, as_of))


def show_all_report(asked: reports.Requested, as_of: str | None = None) -> str:
    """The report's Show all: the same report, its range as resolved when it was asked."""
    return g.show_all_value(g.Report(range=asked.range, kpis=asked.names, dims=asked.dims,
                                     by=asked.by, as_of=as_of))


def _chart(answer: charts.ChartAnswer, ctx: Context) -> Reply:
    """Posted: the message in the channel is the answer. Without a Poster, the PNG is shared."""
    if answer.posted:
        return {}
    chart = chart_message(answer.chart)
    return Upload(chart.filename, chart.title, chart.png,
                  comment=f"<@{ctx.actor}> asked for {chart.title}")


def _export(done: entries.Export, ctx: Context) -> Reply:
    return Upload(done.filename, f"KPI entries {done.period}", done.content.encode(), private=True,
                  then=message(f":page_facing_up: Sent you `{done.filename}` ({done.rows} entries) "
                               "in a direct message: exports stay private, nobody else sees them."))


def _rule_added(rule: alerts.AlertRule, ctx: Context) -> Reply:
    shown = alerts.watched(ctx, rule) if rule.rule.op.is_unusual else alerts.describe_rule(ctx, rule)
    text = alert_views.rule_text(rule, shown.label, shown.unit, *_money(ctx))
    watching = alert_views.watching_note(shown, *_money(ctx)) if isinstance(shown, alerts.Watched) else ""
    return message(f":bell: Alert #{rule.id} added: {text}. I'll post in <#{rule.channel_id}> "
                   f"when it starts firing and when it is back to normal, never in between.{watching}")
