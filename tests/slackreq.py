"""Build and sign inbound requests exactly as Slack sends them to the bot.

Shapes follow /work/shared/slack-platform.md sections 1-4, so tests exercise
Bolt's real signature check and body parsing rather than hand-made dicts.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "block_actions_body",
    "event_body",
    "new_trigger_id",
    "post",
    "sign",
    "slash_command_body",
    "state_value",
    "url_verification_body",
    "view_submission_body",
]

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
SLACKBOT_UA = "Slackbot 1.0 (+https://api.slack.com/robots)"
API_APP_ID = "A0001"
VERIFICATION_TOKEN = "legacy-verification-token"

_counter = itertools.count(1)


def sign(
    secret: str, body: bytes, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    """Headers for a signed request: v0= HMAC-SHA256 of ``v0:{ts}:{body}``.

    Content-Type is JSON when the body is a JSON object, else form-encoded,
    matching what Slack sends for events versus commands/interactions.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    basestring = f"v0:{ts}:".encode() + body
    digest = hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()
    if content_type is None:
        content_type = JSON_TYPE if body.lstrip().startswith(b"{") else FORM_TYPE
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
        "User-Agent": SLACKBOT_UA,
    }


def new_trigger_id() -> str:
    """A fresh trigger_id; the fake treats them as single-use like Slack."""
    n = next(_counter)
    return f"{1000000000 + n}.{2000000000 + n}.{secrets.token_hex(16)}"


def _placeholder_response_url(team_id: str) -> str:
    return f"https://hooks.slack.com/commands/{team_id}/{next(_counter)}/{secrets.token_hex(12)}"


def slash_command_body(
    text: str,
    team_id: str = "T0001",
    user_id: str = "U0001",
    channel_id: str = "C0001",
    response_url: str | None = None,
    trigger_id: str | None = None,
    command: str = "/kpi",
    enterprise_id: str | None = None,
    *,
    team_domain: str = "acme",
    channel_name: str | None = None,
    user_name: str | None = None,
    api_app_id: str = API_APP_ID,
    is_enterprise_install: bool = False,
    enterprise_name: str = "Acme Grid",
) -> bytes:
    """Form body of a slash command, fields in the order Slack sends them.

    Pass ``response_url=fake.new_response_url()`` so ``respond()`` reaches the
    fake; the default is a realistic hooks.slack.com URL that goes nowhere.
    """
    if channel_name is None:
        channel_name = "directmessage" if channel_id.startswith("D") else "general"
    fields: list[tuple[str, str]] = [
        ("token", VERIFICATION_TOKEN),
        ("team_id", team_id),
        ("team_domain", team_domain),
        ("channel_id", channel_id),
        ("channel_name", channel_name),
        ("user_id", user_id),
        ("user_name", user_name or f"user_{user_id.lower()}"),
        ("command", command),
        ("text", text),
        ("api_app_id", api_app_id),
        ("is_enterprise_install", "true" if is_enterprise_install else "false"),
    ]
    if enterprise_id:
        fields += [("enterprise_id", enterprise_id), ("enterprise_name", enterprise_name)]
    fields += [
        ("response_url", response_url or _placeholder_response_url(team_id)),
        ("trigger_id", trigger_id or new_trigger_id()),
    ]
    return urlencode(fields).encode()


def _team(team_id: str, enterprise_id: str | None) -> dict[str, Any]:
    team: dict[str, Any] = {"id": team_id, "domain": "acme"}
    if enterprise_id:
        team.update(enterprise_id=enterprise_id, enterprise_name="Acme Grid")
    return team


def _user(user_id: str, team_id: str) -> dict[str, Any]:
    name = f"user_{user_id.lower()}"
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _payload_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def block_actions_body(
    action_id: str,
    value: str | None = None,
    *,
    block_id: str = "actions",
    action_type: str = "button",
    action: dict[str, Any] | None = None,
    team_id: str = "T0001",
    user_id: str = "U0001",
    channel_id: str = "C0001",
    message: dict[str, Any] | None = None,
    message_ts: str = "1700000000.000100",
    is_ephemeral: bool = False,
    response_url: str | None = None,
    trigger_id: str | None = None,
    view: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    enterprise_id: str | None = None,
) -> bytes:
    """Form body (``payload=`` JSON) of a block_actions interaction.

    Without ``view`` the click comes from a message: the container, channel,
    message and response_url are filled in. With ``view`` (as views.open got
    it or as it returned it) the click comes from a modal/Home tab, and
    ``values`` become its ``state.values`` as in view_submission_body.
    ``action`` adds or overrides action fields, e.g. ``selected_option``.
    """
    act: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type,
        "action_ts": f"{time.time():.6f}",
    }
    if action_type == "button":
        act["text"] = {"type": "plain_text", "text": action_id, "emoji": True}
    if value is not None:
        act["value"] = value
    act.update(action or {})
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": _team(team_id, enterprise_id),
        "enterprise": {"id": enterprise_id, "name": "Acme Grid"} if enterprise_id else None,
        "is_enterprise_install": False,
        "actions": [act],
    }
    if view is None:
        msg = message or {
            "type": "message",
            "text": "",
            "user": "UBOT",
            "bot_id": "BBOT",
            "ts": message_ts,
            "blocks": [],
        }
        payload.update(
            container={
                "type": "message",
                "message_ts": msg.get("ts", message_ts),
                "channel_id": channel_id,
                "is_ephemeral": is_ephemeral,
            },
            channel={"id": channel_id, "name": "general"},
            message=msg,
            response_url=response_url or _placeholder_response_url(team_id),
            state={"values": {}},
        )
    else:
        full = _full_view(view, values or {}, team_id)
        payload.update(container={"type": "view", "view_id": full["id"]}, view=full)
    return _payload_body(payload)


def view_submission_body(
    view: dict[str, Any],
    values: dict[str, Any],
    *,
    team_id: str = "T0001",
    user_id: str = "U0001",
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    response_urls: list[dict[str, Any]] | None = None,
) -> bytes:
    """Form body of a view_submission for ``view`` with ``values`` filled in.

    ``view`` may be what views.open received or what it returned. ``values``
    maps block_id -> action_id -> either a ready state dict (has "type") or a
    plain Python value that is shaped from the element in the view (see
    ``state_value``). Input blocks without a value appear empty, as in Slack.
    """
    payload = {
        "type": "view_submission",
        "team": _team(team_id, enterprise_id),
        "user": _user(user_id, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": _full_view(view, values, team_id),
        "response_urls": response_urls or [],
        "enterprise": {"id": enterprise_id, "name": "Acme Grid"} if enterprise_id else None,
        "is_enterprise_install": False,
    }
    return _payload_body(payload)


def _full_view(view: dict[str, Any], values: dict[str, Any], team_id: str) -> dict[str, Any]:
    view_id = view.get("id") or f"V{next(_counter):08d}"
    return {
        "id": view_id,
        "team_id": view.get("team_id", team_id),
        "type": view.get("type", "modal"),
        "blocks": view.get("blocks", []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": _state_values(view.get("blocks", []), values)},
        "hash": view.get("hash", f"{int(time.time())}.{secrets.token_hex(4)}"),
        "title": view.get("title"),
        "clear_on_close": view.get("clear_on_close", False),
        "notify_on_close": view.get("notify_on_close", False),
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": view.get("previous_view_id"),
        "root_view_id": view.get("root_view_id", view_id),
        "app_id": view.get("app_id", API_APP_ID),
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": view.get("bot_id", "BBOT"),
    }


def _state_values(blocks: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    elements: dict[tuple[str, str], dict[str, Any]] = {}
    for i, block in enumerate(blocks):
        block_id = block.get("block_id", f"block{i}")
        if block.get("type") == "input" and isinstance(block.get("element"), dict):
            el = block["element"]
            elements[(block_id, el.get("action_id", f"action{i}"))] = el
        elif block.get("type") == "actions":
            for j, el in enumerate(block.get("elements", [])):
                elements[(block_id, el.get("action_id", f"action{i}_{j}"))] = el
    out: dict[str, dict[str, Any]] = {}
    for (block_id, action_id), el in elements.items():
        given = values.get(block_id, {})
        if action_id in given or _is_input(el):
            out.setdefault(block_id, {})[action_id] = state_value(el, given.get(action_id))
    for block_id, actions in values.items():
        for action_id, value in actions.items():
            if (block_id, action_id) not in elements:
                shaped = value if isinstance(value, dict) else {"type": "plain_text_input"}
                if not isinstance(value, dict):
                    shaped["value"] = value
                out.setdefault(block_id, {})[action_id] = shaped
    return out


def _is_input(el: dict[str, Any]) -> bool:
    return el.get("type") not in ("button", "overflow", "image")


def state_value(element: dict[str, Any], value: Any) -> dict[str, Any]:
    """Shape a Python value as Slack reports it in ``view.state.values``.

    Dicts with a "type" pass through unchanged. Selects take option values;
    number_input values become strings; empty inputs read as null/[].
    """
    if isinstance(value, dict) and "type" in value:
        return value
    kind = element.get("type", "plain_text_input")
    state: dict[str, Any] = {"type": kind}
    options = _options(element)
    if kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
        state["value"] = None if value is None else str(value)
    elif kind == "datepicker":
        state["selected_date"] = value
    elif kind == "timepicker":
        state["selected_time"] = value
    elif kind == "datetimepicker":
        state["selected_date_time"] = value
    elif kind in ("static_select", "radio_buttons", "external_select"):
        state["selected_option"] = None if value is None else options.get(value, _option(value))
    elif kind in ("checkboxes", "multi_static_select", "multi_external_select"):
        state["selected_options"] = [options.get(v, _option(v)) for v in value or []]
    elif kind in ("users_select", "conversations_select", "channels_select"):
        state["selected_" + kind.split("_")[0].rstrip("s")] = value
    elif kind in ("multi_users_select", "multi_conversations_select", "multi_channels_select"):
        state["selected_" + kind.split("_")[1]] = list(value or [])
    else:
        state["value"] = value
    return state


def _option(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": str(value), "emoji": True}, "value": value}


def _options(element: dict[str, Any]) -> dict[str, dict[str, Any]]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return {o["value"]: o for o in options if isinstance(o, dict) and "value" in o}


def event_body(
    event: dict[str, Any],
    team_id: str = "T0001",
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    enterprise_id: str | None = None,
    bot_user_id: str = "UBOT",
    api_app_id: str = API_APP_ID,
) -> bytes:
    """JSON Events API envelope around ``event``; event_id is the dedup key."""
    now = int(time.time()) if event_time is None else event_time
    event = {"event_ts": f"{now}.{next(_counter):06d}", **event}
    envelope = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "enterprise_id": enterprise_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_counter):08d}",
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(envelope).encode()


def url_verification_body(challenge: str = "challenge-token") -> bytes:
    """The JSON Slack sends once when the Request URL is saved."""
    payload = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    return json.dumps(payload).encode()


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """POST and return (status, lower-cased headers, body) without raising on 4xx/5xx."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()
