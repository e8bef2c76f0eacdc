"""Form submissions: the log form and the settings form, with errors on the offending field."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot import usecases
from bot.render import blocks
from bot.render.blocks import LOCALES
from bot.slack.runtime import ACK_BUDGET_SECONDS, Services, Who, guarded
from kpis.catalogue import PACKS
from kpis.periods import PeriodError, resolve_day, zone

log = logging.getLogger("kpibot.views")


def _value(state: dict[str, Any], block_id: str) -> Any:
    element: dict[str, Any] = next(iter((state.get(block_id) or {}).values()), {}) or {}
    for key in ("value", "selected_date", "selected_user"):
        if element.get(key) not in (None, ""):
            return element[key]
    if element.get("selected_option"):
        return element["selected_option"]["value"]
    if "selected_options" in element:
        return [o["value"] for o in element["selected_options"]]
    return None


def register(app: App, services: Services) -> None:
    @app.view("log_form")
    def log_form(ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: Any) -> None:
        services.metrics.requests.labels(kind="view_submission").inc()
        who = Who.of(context, body, client)
        state = view["state"]["values"]
        metadata = json.loads(view.get("private_metadata") or "{}")

        def check() -> _Checked:
            ctx = services.context(who)
            return (ctx, *_validate_log(ctx, state))

        checking = services.executor.submit(check)
        try:
            ctx, errors, pairs, day, dims = checking.result(timeout=ACK_BUDGET_SECONDS)
        except FutureTimeout:
            # Too slow to answer on the form within Slack's 3 s: close it, answer by message.
            ack()
            log.info("slow log form, answering by message")
            checking.add_done_callback(lambda done: _finish_late(services, who, client, metadata, done))
            return
        except Exception:
            log.exception("log form validation failed")
            ack(response_action="errors", errors={"day": "Something went wrong on our side; please try again."})
            return
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        reply = guarded(lambda: _store(services, ctx, pairs, day, dims), "log form")()
        _tell(client, who, metadata, reply)

    @app.view("settings_form")
    def settings_form(ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: Any) -> None:
        services.metrics.requests.labels(kind="view_submission").inc()
        who = Who.of(context, body, client)
        state = view["state"]["values"]
        packs = [p for p in (_value(state, "packs") or []) if p in PACKS]
        timezone = (_value(state, "timezone") or "").strip()
        currency = _value(state, "currency") or "USD"
        locale = _value(state, "locale") or None
        errors = {}
        if locale is not None and locale not in LOCALES:
            errors["locale"] = "Choose one of the listed languages."
        if not packs:
            errors["packs"] = "Choose at least one pack."
        try:
            zone(timezone)
        except PeriodError as error:
            errors["timezone"] = str(error)[:2000]
        if not services.is_admin(who):
            errors["packs"] = "Only admins can change settings. " + services.admin_hint()
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        def save() -> None:
            services.store.update_workspace(who.team_id, packs=packs, timezone=timezone, currency=currency,
                                            **({"locale": locale} if locale else {}))
            services.schedule_changed()

        guarded(save, "settings")()


_Checked = tuple[usecases.Context, dict[str, str], list[tuple[str, str]], str, list[tuple[str, str]]]


def _store(services: Services, ctx: usecases.Context, pairs: list[tuple[str, str]], day: str,
           dims: list[tuple[str, str]]) -> dict[str, Any]:
    result = usecases.log_numbers(ctx, pairs, day=day, dims=dims, origin="form")
    services.metrics.entries.labels(origin="form").inc(len(result.batch.changes))
    if services.alerting is not None:
        services.alerting.logged(ctx.workspace.id, result.day, {c.metric for c in result.batch.changes})
    return blocks.log_reply(result, ctx.catalogue, ctx.workspace.currency, ctx.workspace.locale)


def _tell(client: WebClient, who: Who, metadata: dict[str, Any], reply: dict[str, Any]) -> None:
    """The outcome of a form, only to its author: in the channel it was opened from, or the DM."""
    channel = metadata.get("channel") or ""
    if channel and not channel.startswith("D"):
        client.chat_postEphemeral(channel=channel, user=who.user_id, **reply)
    else:
        client.chat_postMessage(channel=who.user_id, **reply)


def _finish_late(services: Services, who: Who, client: WebClient, metadata: dict[str, Any],
                 checked: Future[_Checked]) -> None:
    """A form acked before it was checked: store it, or say by message why nothing was stored."""

    def work() -> dict[str, Any]:
        ctx, errors, pairs, day, dims = checked.result()
        if errors:
            raise usecases.UserError("Nothing was logged: " + " ".join(errors.values())
                                     + " Open the form again with `/kpi log`.")
        return _store(services, ctx, pairs, day, dims)

    try:
        _tell(client, who, metadata, guarded(work, "log form")())
    except Exception:
        log.exception("could not deliver the outcome of a slow log form")


def _validate_log(ctx: usecases.Context, state: dict[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]], str, list[tuple[str, str]]]:
    """Per-field errors (keyed by block_id) and the clean inputs of the log form."""
    errors: dict[str, str] = {}
    catalogue = ctx.catalogue
    day = _value(state, "day") or "today"
    try:
        resolve_day(day, ctx.today)
    except PeriodError as error:
        errors["day"] = str(error)
    unknown = [b for b in state if b.startswith("m:") and b[2:] not in catalogue.metrics]
    if unknown:  # an out-of-date (or forged) form: one short answer, on a field it has
        errors["day"] = (f"This form has {len(unknown):,} field(s) I don't track any more; nothing "
                         "was logged. Close it and open a fresh one with `/kpi`.")
        return errors, [], day, []
    pairs = []
    for block_id in state:
        if not block_id.startswith("m:"):
            continue
        raw = _value(state, block_id)
        if raw is None:
            continue
        key = block_id[2:]
        try:
            usecases.parse_value(usecases.find_metric(catalogue, key), str(raw))
            pairs.append((key, str(raw)))
        except usecases.UserError as error:
            errors[block_id] = str(error)[:2000]
    dims = []
    for block_id in ("d:source", "d:rep", "d:campaign"):
        raw = _value(state, block_id)
        if raw:
            try:
                usecases.clean_dims([(block_id[2:], str(raw))])
                dims.append((block_id[2:], str(raw)))
            except usecases.UserError as error:
                errors[block_id] = str(error)[:2000]
    if not pairs and not errors:
        first = next((b for b in state if b.startswith("m:")), "day")
        errors[first] = "Enter at least one number to log."
    return errors, pairs, day, dims
