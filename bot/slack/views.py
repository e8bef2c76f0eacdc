"""Form submissions: the log, settings, set-up, alert, what-if and entry forms, errors on the
offending field.

Each form becomes the command it stands for and runs through the registry like typed text."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from functools import partial
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import grammar as g
from bot.app import insights
from bot.app.context import Context, UserError
from bot.app.entries import changed_values, clean_dims, parse_value
from bot.app.goals import checked_goal
from bot.app.names import find_metric
from bot.app.settings import settings_problems
from bot.app.setup import DEFAULT_DIGEST_TIME, SETUP_GOALS, digest_words
from bot.app.tracking import tracking_problems
from bot.render.blocks import picked_dimension
from bot.render.kit import Message, message
from bot.slack.runtime import ACK_BUDGET_SECONDS, Services, Who, guarded
from kpis.catalogue import PACKS
from kpis.periods import PeriodError, resolve_day

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
        reply = guarded(lambda: _store(services, who, pairs, day, dims), "log form")()
        _tell(services, client, who, metadata, reply)

    @app.view("entry_form")
    def entry_form(ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient,
                   context: Any) -> None:
        """A history line's Edit, saved: stored like a log when the number is good, else the
        reason on the field and nothing stored; the reply (with Undo) goes where history was."""
        services.metrics.requests.labels(kind="view_submission").inc()
        who = Who.of(context, body, client)
        state = view["state"]["values"]
        metadata = _metadata(view)
        field = next((b for b in state if b.startswith("m:")), "")
        change = str(metadata.get("change") or "")
        if not field or not change.isdigit():
            ack(response_action="errors", errors={field or "value": "This form no longer works; "
                                                  "nothing was saved. Open it again from `/kpi history`."})
            return
        command = g.SaveEntry(change_id=int(change), value=str(_value(state, field) or ""))
        saving = services.executor.submit(services.answer, who, command)
        try:
            reply = saving.result(timeout=ACK_BUDGET_SECONDS)
        except FutureTimeout:
            ack()
            saving.add_done_callback(lambda done: _tell(
                services, client, who, metadata, guarded(done.result, "entry form")()))
            return
        except UserError as problem:
            ack(response_action="errors", errors={field: str(problem)[:2000]})
            return
        except Exception:
            log.exception("entry form failed")
            ack(response_action="errors", errors={field: "Something went wrong on our side; "
                                                  "please try again. `/kpi history` shows what is stored."})
            return
        ack()
        _tell(services, client, who, metadata, reply)

    @app.view("settings_form")
    def settings_form(ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: Any) -> None:
        services.metrics.requests.labels(kind="view_submission").inc()
        who = Who.of(context, body, client)
        state = view["state"]["values"]
        command = g.SaveSettings(
            packs=tuple(p for p in (_value(state, "packs") or []) if p in PACKS),
            timezone=(_value(state, "timezone") or "").strip(),
            currency=_value(state, "currency") or "USD", locale=_value(state, "locale") or None)
        errors = settings_problems(command.packs, command.timezone, command.locale)
        if not services.is_admin(who):
            errors["packs"] = "Only admins can change settings. " + services.admin_hint()
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()

        def save() -> None:
            services.answer(who, command)

        guarded(save, "settings")()

    @app.view("setup_form")
    def setup_form(ack: Any, body: dict[str, Any], view: dict[str, Any], client: WebClient,
                   context: Any) -> None:
        services.metrics.requests.labels(kind="view_submission").inc()
        who = Who.of(context, body, client)
        metadata = _metadata(view)
        try:
            commands, errors = setup_commands(services.context(who), view["state"]["values"])
        except Exception:
            log.exception("setup form check failed")
            ack(response_action="errors", errors={"metrics": "Something went wrong on our side; "
                                                             "nothing was saved. Please try again."})
            return
        if not services.is_admin(who):
            errors = {"metrics": "Only admins can set up the workspace. " + services.admin_hint()}
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()

        def run(command: g.Command, channel: str | None) -> Message:
            return services.answer(replace(who, channel_id=channel or who.channel_id), command)

        answers = [guarded(partial(run, c, channel), "setup form")() for c, channel in commands]
        _tell(services, client, who, metadata,
              message("\n".join(a.get("text", "") for a in answers if a.get("text"))))

    @app.view("alert_form")
    def alert_form(ack: Any, body: dict[str, Any], client: WebClient, context: Any, view: dict[str, Any]) -> None:
        services.metrics.requests.labels(kind="view_submission").inc()
        values = view["state"]["values"]

        def pick(block: str) -> str:
            element = values.get(block, {}).get("value", {})
            option = element.get("selected_option") or {}
            return str(option.get("value") or element.get("value") or element.get("selected_conversation") or "")

        channel = pick("channel") or _metadata(view).get("channel", "")
        who = replace(Who.of(context, body, client), channel_id=channel or None)
        unusual = pick("op") == "unusual"
        # an unusual rule has no threshold: what is wrong with it is its period
        field = "period" if unusual else "threshold"
        try:
            added = services.answer(who, alert_command(
                pick("kpi"), pick("op"), pick("threshold"), pick("period") or "daily",
                int(pick("for") or 1), pick("sensitivity")))
        except (UserError, g.CommandError) as error:
            ack(response_action="errors", errors={field: str(error)[:150]})
            return
        except Exception:
            log.exception("alert form failed")
            ack(response_action="errors", errors={"threshold": "Something went wrong on our side; nothing was saved."})
            return
        ack()

        def confirm() -> None:
            client.chat_postEphemeral(channel=channel, user=who.user_id, **added)

        guarded(confirm, "alert form reply")()

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
        # the steps changed, as the command would have typed them (its Show all names them)
        typed = tuple((k, v if v.endswith("%") else f"{v}%") for k, v in changes
                      if v.lstrip("+-") != "0") or tuple(changes)
        reply = guarded(lambda: services.answer(who, g.WhatIf(changes=typed)), "whatif form")()
        _tell(services, client, who, _metadata(view), reply)


def _picked(state: dict[str, Any], block_id: str) -> Any:
    """What one input of a form holds, whatever its element (text, select, time, channel)."""
    element: dict[str, Any] = next(iter((state.get(block_id) or {}).values()), {}) or {}
    for key in ("value", "selected_time", "selected_conversation", "selected_channel"):
        if element.get(key) not in (None, ""):
            return element[key]
    if "selected_options" in element:
        return [o["value"] for o in element["selected_options"] or []]
    return None


def alert_command(kpi: str, op: str, threshold: str, period: str, for_periods: int,
                  sensitivity: str) -> g.AlertAdd:
    """The alert form as the command it stands for. An unusual rule is read with the one
    grammar, as `/kpi alert KPI unusual PERIOD SENSITIVITY for N` would be, so the form and
    the typed command make the same rule and refuse the same mistakes."""
    if op == "unusual":
        command = g.parse_command(f"alert {kpi} unusual {period} {sensitivity or 'medium'} "
                                  f"for {for_periods}")
        assert isinstance(command, g.AlertAdd)
        return command
    if not threshold.strip():
        raise g.CommandError(f"`{op}` needs a threshold, like 15, $15 or 12%; only an unusual "
                             "rule goes without one.")
    return g.AlertAdd(kpi=kpi, op=op, threshold=threshold, period=period, for_periods=for_periods)


def setup_commands(ctx: Context, state: dict[str, Any]) -> tuple[list[tuple[g.Command, str | None]], dict[str, str]]:
    """The set-up form as the commands it stands for, each with the channel it runs in, read
    with the one grammar and checked by the use cases' own checks before any of them runs; or
    the problems, each on its field."""
    errors: dict[str, str] = {}
    commands: list[tuple[g.Command, str | None]] = []

    def parsed(text: str, field: str) -> g.Command | None:
        try:
            return g.parse_command(text)
        except g.CommandError as error:
            errors[field] = str(error)[:2000]
            return None

    names = [str(n) for n in _picked(state, "metrics") or []]
    problems = tracking_problems(ctx.catalogue, names)
    if not names:
        errors["metrics"] = "Pick at least one metric to track."
    elif problems:
        errors["metrics"] = " ".join(problems)[:2000]
    elif (track := parsed("track " + " ".join(names), "metrics")) is not None:
        commands.append((track, None))
    channel = _picked(state, "digest_channel")
    if channel:
        at = _picked(state, "digest_time") or DEFAULT_DIGEST_TIME
        if (digest := parsed(digest_words(ctx, str(channel), at), "digest_time")) is not None:
            commands.append((digest, str(channel)))
    for n in range(1, SETUP_GOALS + 1):
        field = f"goal:{n}"
        written = str(_picked(state, field) or "").strip()
        if not written:
            continue
        goal = parsed(f"goal {written}", field)
        if isinstance(goal, g.GoalRemove):
            errors[field] = "Write a goal to set, like `revenue 50000 monthly`."
        elif isinstance(goal, g.Goal):
            try:
                checked_goal(ctx, goal.kpi, goal.value, goal.period)
                commands.append((goal, None))
            except UserError as error:
                errors[field] = str(error)[:2000]
    return commands, errors


_Checked = tuple[Context, dict[str, str], list[tuple[str, str]], str, list[tuple[str, str]]]


def _store(services: Services, who: Who, pairs: list[tuple[str, str]], day: str,
           dims: list[tuple[str, str]]) -> Message:
    return services.answer(who, g.Log(values=tuple(pairs), date=day, dims=tuple(dims), via="form"))


def _tell(services: Services, client: WebClient, who: Who, metadata: dict[str, Any],
          reply: Message) -> None:
    """The outcome of a form, only to its author: in the channel it was opened from, else the DM."""
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


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        found = json.loads(view.get("private_metadata") or "{}")
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def form_changes(state: dict[str, Any]) -> list[tuple[str, str]]:
    """(step, percent as typed) for every picker of the what-if form."""
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


def _finish_late(services: Services, who: Who, client: WebClient, metadata: dict[str, Any],
                 checked: Future[_Checked]) -> None:
    """A form acked before it was checked: store it, or say by message why nothing was stored."""

    def work() -> dict[str, Any]:
        ctx, errors, pairs, day, dims = checked.result()
        if errors:
            raise UserError("Nothing was logged: " + " ".join(errors.values())
                                     + " Open the form again with `/kpi log`.")
        return _store(services, who, pairs, day, dims)

    try:
        _tell(services, client, who, metadata, guarded(work, "log form")())
    except Exception:
        log.exception("could not deliver the outcome of a slow log form")


def _is_picker(state: dict[str, Any], block_id: str) -> bool:
    element: dict[str, Any] = next(iter((state.get(block_id) or {}).values()), {}) or {}
    return element.get("type") == "static_select" or "selected_option" in element


def _validate_log(ctx: Context, state: dict[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]], str, list[tuple[str, str]]]:
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
            parse_value(find_metric(catalogue, key), str(raw))
            pairs.append((key, str(raw)))
        except UserError as error:
            errors[block_id] = str(error)[:2000]
    dims = []
    for block_id in state:  # the built-in fields, then a picker per dimension of the team's own
        if not block_id.startswith("d:"):
            continue
        raw = _value(state, block_id)
        value = picked_dimension(str(raw or ""), _is_picker(state, block_id))
        if value is not None:
            try:  # the check `/kpi log KEY=VALUE` makes: a value off the list, a removed one
                clean_dims([(block_id[2:], value)], catalogue)
                dims.append((block_id[2:], value))
            except UserError as error:
                errors[block_id] = str(error)[:2000]
    if not pairs and not errors:
        first = next((b for b in state if b.startswith("m:")), "day")
        errors[first] = "Enter at least one number to log."
    elif pairs and not errors:
        entered = pairs
        pairs = changed_values(ctx, day, pairs)
        if not pairs:
            errors[f"m:{entered[0][0]}"] = ("These are the numbers you already logged for that "
                                            "day; change one to log it.")
    return errors, pairs, day, dims
