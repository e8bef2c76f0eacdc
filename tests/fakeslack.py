"""A fake Slack Web API served over real HTTP on 127.0.0.1.

There is no internet in the test environment, and mocking slack_sdk would hide
how requests are really encoded. So the bot's real ``WebClient`` (and Bolt's
``respond()`` / ``files_upload_v2``) talk to this server instead of slack.com.
Bodies follow /work/shared/slack-platform.md section 5; Block Kit limits follow
section 6 and are enforced so layout bugs fail tests instead of production, and so are
the native ``table`` and ``data_visualization`` limits of sections 10 and 11. A workspace
whose Slack does not take those blocks yet is ``FakeSlack(native_blocks=False)`` (or
``fake.native_blocks = False``): any message carrying one is answered ``invalid_blocks``.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import http.server
import inspect
import itertools
import json
import mimetypes
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

__all__ = ["Call", "FakeSlack", "block_kit_problems"]

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
RESPONSE_URL_MAX_USES = 5
DEFAULT_SCOPES = (
    "commands,chat:write,chat:write.public,files:write,users:read,"
    "channels:read,channels:join,channels:history,groups:read,groups:history,im:write,team:read"
)


@dataclass
class Call:
    """One request the fake received, kept so tests can assert on it.

    ``method`` is the Web API method ("chat.postMessage"), or "response_url",
    "upload", or the raw path for anything unroutable. ``params`` merges the
    query string and the body (JSON values keep their types; form values are
    strings). ``faulted`` marks requests answered by an injected fault.
    """

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    time: float
    path: str = ""
    faulted: bool = False
    fault: str | None = None
    status: int = 0
    response: Any = None

    @property
    def ok(self) -> bool:
        """True when the request was answered 200 without a fault and, for API calls, ok:true."""
        if self.faulted or self.status != 200:
            return False
        if isinstance(self.response, dict):
            return bool(self.response.get("ok"))
        return True


@dataclass
class _Fault:
    kind: str
    times: int
    status: int = 200
    retry_after: int | None = None
    error: str = ""
    seconds: float = 0.0


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSlack


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST
    do_PUT = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log; calls are recorded instead."""


class FakeSlack:
    """Fake Slack Web API, response_url and file-upload endpoints on one local port.

    Use as ``with FakeSlack() as fake:`` or ``fake = FakeSlack().start()`` and
    ``fake.stop()``. Point ``WebClient(base_url=fake.api_url)`` at it. World
    state (users, channels, views, messages, uploads) lives on the instance;
    channel "C0001" (#general, bot is a member) exists from the start because
    the request builders in ``slackreq`` default to it.
    """

    def __init__(
        self,
        *,
        team_id: str = "T0001",
        team_name: str = "Acme",
        team_domain: str = "acme",
        user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A0001",
        enterprise_id: str | None = None,
        scopes: str = DEFAULT_SCOPES,
        client_id: str | None = None,
        client_secret: str | None = None,
        native_blocks: bool = True,
        messages_per_channel_second: int | None = None,
    ) -> None:
        self.team_id = team_id
        #: Slack's chat.postMessage limit: more than this many posts to one channel within a
        #: second are answered 429 with Retry-After: 1 (None: no limit)
        self.messages_per_channel_second = messages_per_channel_second
        self._channel_posts: dict[str, list[float]] = {}
        #: the 429s the channel limit answered
        self.rate_limited = 0
        #: False: `table` and `data_visualization` blocks are refused with invalid_blocks
        self.native_blocks = native_blocks
        #: a tests.fakesocket.FakeSocket: apps.connections.open then hands out its ws:// URLs
        self.socket_mode: Any = None
        #: the messages refused for carrying native blocks while native_blocks is False
        self.refused_native: list[dict[str, Any]] = []
        self.team_name = team_name
        self.team_domain = team_domain
        self.user_id = user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.enterprise_id = enterprise_id
        self.scopes = scopes
        self.client_id = client_id
        self.client_secret = client_secret

        self.violations: list[str] = []
        self.server_errors: list[str] = []
        self.uploads: dict[str, bytes] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}

        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._ids = itertools.count(1)
        self._ts_counter = itertools.count(1)
        self._ts_base = int(time.time())
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._response_urls: dict[str, int] = {}
        self._used_triggers: set[str] = set()
        self._used_codes: set[str] = set()
        self._dm_ids: dict[str, str] = {}
        self._deleted: set[str] = set()
        self._tokens: dict[str, dict[str, Any]] = {}
        self._revoked: set[str] = set()
        self._oauth: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self.add_user(user_id, team_id=team_id, name="kpibot", is_bot=True)
        self.add_channel("C0001", name="general")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        """Bind a free port and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes delayed handlers so shutdown never waits on them."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ configuration

    def add_user(
        self,
        user_id: str,
        team_id: str = "T0001",
        tz: str = "America/New_York",
        is_admin: bool = False,
        is_owner: bool = False,
        name: str | None = None,
        *,
        real_name: str | None = None,
        email: str | None = None,
        locale: str = "en-US",
        is_bot: bool = False,
        deleted: bool = False,
    ) -> dict[str, Any]:
        """Register a user for users.info; returns the stored user object."""
        name = name or f"user_{user_id.lower()}"
        now = datetime.now(ZoneInfo(tz))
        offset = now.utcoffset()
        user = {
            "id": user_id,
            "team_id": team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real_name or name,
            "tz": tz,
            "tz_label": now.tzname() or tz,
            "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "profile": {
                "real_name": real_name or name,
                "display_name": name,
                "email": email or f"{name}@example.com",
                "team": team_id,
            },
            "_locale": locale,
        }
        with self._lock:
            self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_private: bool = False,
        is_member: bool = True,
        is_im: bool = False,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Register a conversation for conversations.info / join."""
        channel: dict[str, Any] = {
            "id": channel_id,
            "name": name if name is not None else channel_id.lower(),
            "is_channel": not is_im and not is_private,
            "is_group": is_private and not is_im,
            "is_im": is_im,
            "is_mpim": False,
            "is_private": is_private or is_im,
            "is_archived": False,
            "is_general": name == "general",
            "is_member": is_member,
            "created": self._ts_base,
            "context_team_id": self.team_id,
        }
        if is_im:
            channel["user"] = user
            del channel["name"]
        with self._lock:
            self.channels[channel_id] = channel
        return channel

    def set_oauth_install(
        self,
        team_id: str,
        team_name: str = "Other Team",
        *,
        user_id: str = "U0001",
        bot_user_id: str | None = None,
        bot_id: str | None = None,
        scopes: str | None = None,
        enterprise_id: str | None = None,
    ) -> None:
        """Choose which workspace the next oauth.v2.access exchanges install into."""
        self._oauth = {
            "team_id": team_id,
            "team_name": team_name,
            "user_id": user_id,
            "bot_user_id": bot_user_id or self.user_id,
            "bot_id": bot_id or self.bot_id,
            "scopes": scopes or self.scopes,
            "enterprise_id": enterprise_id,
        }

    def delete_channel(self, channel_id: str) -> None:
        """The channel is gone: posting to it answers channel_not_found."""
        with self._lock:
            self.channels.pop(channel_id, None)
            self._deleted.add(channel_id)

    def revoke(self, token: str) -> None:
        """The token is revoked (an uninstall): every later call with it answers
        ``token_revoked``, as Slack does; ``calls_with(token)`` counts them."""
        with self._lock:
            self._revoked.add(token)

    def new_response_url(self) -> str:
        """Issue a response_url pointing back at this fake (5 uses, like Slack)."""
        with self._lock:
            n = next(self._ids)
            self._response_urls[str(n)] = 0
        return f"{self.base_url}/response/{n}"

    # ------------------------------------------------------------------ faults

    def fail(
        self, method: str, status: int = 429, retry_after: int | None = 1, times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an HTTP error status.

        429 carries ``Retry-After`` and ``{"ok":false,"error":"ratelimited"}``
        as Slack does; other statuses get a generic error body.
        """
        self._add_fault(method, _Fault("status", times, status=status, retry_after=retry_after))

    def lose_reply(self, method: str, status: int = 500, times: int = 1) -> None:
        """Carry out the next ``times`` calls, then answer them with an HTTP error status.

        The client cannot tell whether the call took effect, as when a reply is lost.
        """
        self._add_fault(method, _Fault("lost", times, status=status, retry_after=None))

    def error(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next ``times`` calls with HTTP 200 ``{"ok":false,"error":error}``."""
        self._add_fault(method, _Fault("error", times, error=error))

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        """Sleep before answering normally, to push clients into their timeouts.

        The call is flagged ``faulted`` because the client may have given up on it.
        """
        self._add_fault(method, _Fault("delay", times, seconds=seconds))

    def _add_fault(self, method: str, fault: _Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.setdefault(method, []).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[Call]:
        """Snapshot of every recorded call, in arrival order."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def calls_with(self, token: str) -> list[Call]:
        """Every recorded call that carried ``token`` (a Bearer header or a ``token`` field)."""
        with self._lock:
            return [c for c in self._calls
                    if c.headers.get("authorization", "") == f"Bearer {token}"
                    or c.params.get("token") == token]

    def reset(self) -> None:
        """Forget calls, violations, server errors and pending faults; keep world state."""
        with self._lock:
            self._calls.clear()
            self.violations.clear()
            self.server_errors.clear()
            self._faults.clear()

    def posted_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Params of successful chat.postMessage calls, optionally for one channel.

        ``channel`` matches either what the bot sent or the resolved channel
        (a user id posts into the app DM, reported as "D...").
        """
        out = []
        for c in self.calls_to("chat.postMessage"):
            if not c.ok:
                continue
            resolved = c.response.get("channel") if isinstance(c.response, dict) else None
            if channel is None or channel in (c.params.get("channel"), resolved):
                out.append(c.params)
        return out

    def messages_in(self, channel: str, *, top_level: bool = True) -> list[dict[str, Any]]:
        """What the channel shows, oldest first, whatever the bot was told (lost replies too)."""
        with self._lock:
            found = [m for (c, _), m in self.messages.items()
                     if c == channel and not (top_level and m.get("thread_ts"))]
        return sorted(found, key=lambda m: float(m["ts"]))

    def uploaded_files(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Files completed via files.completeUploadExternal, optionally shared in ``channel``."""
        with self._lock:
            files = list(self.files.values())
        return [f for f in files if channel is None or channel in f["channels"]]

    def wait_for(
        self, predicate: Callable[..., Any], timeout: float = 5.0, interval: float = 0.02
    ) -> Any:
        """Poll until ``predicate`` is truthy and return its value.

        Bolt acks first and works afterwards, so assertions about follow-up API
        calls must wait. The predicate may take the fake as its only argument or
        no argument at all. Raises AssertionError listing the calls on timeout.
        """
        wants_fake = _takes_positional_arg(predicate)
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self) if wants_fake else predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                seen = [(c.method, c.status) for c in self.calls]
                raise AssertionError(f"condition not met within {timeout}s; calls: {seen}")
            time.sleep(interval)

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle(self, req: _Handler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in req.headers.items()}
        url = urlsplit(req.path)
        call = Call(
            method=_route(url.path),
            params={},
            headers=headers,
            body=body,
            time=time.monotonic(),
            path=url.path,
        )
        try:
            if call.method != "upload":
                call.params = _parse_params(headers.get("content-type", ""), body, url.query)
        except ValueError as exc:
            call.params = {}
            reply = _Reply(400, {"ok": False, "error": "invalid_form_data", "detail": str(exc)})
        else:
            reply = None
        with self._lock:
            self._calls.append(call)

        if reply is None:
            try:
                reply = self._dispatch(call)
            except Exception:
                tb = traceback.format_exc()
                with self._lock:
                    self.server_errors.append(f"{call.method}: {tb}")
                reply = _Reply(500, {"ok": False, "error": "fake_slack_crashed"})

        call.status = reply.status
        call.response = reply.body
        self._send(req, reply)

    def _send(self, req: _Handler, reply: _Reply) -> None:
        if isinstance(reply.body, dict | list):
            payload = json.dumps(reply.body).encode()
            content_type = JSON_TYPE
        elif isinstance(reply.body, bytes):
            payload, content_type = reply.body, TEXT_TYPE
        else:
            payload, content_type = str(reply.body).encode(), TEXT_TYPE
        try:
            req.send_response(reply.status)
            req.send_header("Content-Type", content_type)
            req.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                req.send_header(name, value)
            req.end_headers()
            req.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _dispatch(self, call: Call) -> _Reply:
        if call.method == "chat.postMessage" and self._over_channel_limit(call):
            call.faulted = True
            call.fault = "status:429"
            return self._status_fault(_Fault(kind="status", times=1, status=429, retry_after=1))
        fault = self._take_fault(call.method)
        if fault is not None:
            call.faulted = True
            if fault.kind == "delay":
                call.fault = f"delay:{fault.seconds}"
                self._stopping.wait(fault.seconds)
            elif fault.kind == "lost":
                call.fault = f"lost:{fault.status}"
                self._dispatch_normally(call)
                return self._status_fault(fault)
            elif fault.kind == "error":
                call.fault = f"error:{fault.error}"
                return _Reply(200, {"ok": False, "error": fault.error}, self._api_headers())
            else:
                call.fault = f"status:{fault.status}"
                return self._status_fault(fault)

        return self._dispatch_normally(call)

    def _dispatch_normally(self, call: Call) -> _Reply:
        if call.method == "response_url":
            return self._response_url(call)
        if call.method == "upload":
            return self._upload(call)
        if call.path.startswith("/api/"):
            return self._api(call)
        return _Reply(404, "not_found")

    def _over_channel_limit(self, call: Call) -> bool:
        limit = self.messages_per_channel_second
        if limit is None:
            return False
        channel = str(call.params.get("channel") or "")
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._channel_posts.get(channel, []) if now - t < 1.0]
            if len(recent) >= limit:
                self.rate_limited += 1
                self._channel_posts[channel] = recent
                return True
            self._channel_posts[channel] = [*recent, now]
            return False

    def _status_fault(self, fault: _Fault) -> _Reply:
        headers = self._api_headers()
        if fault.status == 429:
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            return _Reply(429, {"ok": False, "error": "ratelimited"}, headers)
        return _Reply(fault.status, {"ok": False, "error": f"http_{fault.status}"}, headers)

    def _api_headers(self) -> dict[str, str]:
        return {"x-oauth-scopes": self.scopes, "x-slack-backend": "fake"}

    # ------------------------------------------------------------------ Web API

    def _api(self, call: Call) -> _Reply:
        method = call.method
        if method == "files.upload":
            body = {"ok": False, "error": "method_deprecated"}
            return _Reply(200, body, self._api_headers())
        if method == "oauth.v2.access":
            body = self._exchange_code(call.params, call.headers.get("authorization", ""))
            return _Reply(200, body, self._api_headers())
        handler = _API_METHODS.get(method)
        if handler is None:
            return _Reply(200, {"ok": False, "error": "unknown_method"}, self._api_headers())
        token, problem = self._check_token(call, method)
        if problem:
            return _Reply(200, {"ok": False, "error": problem}, self._api_headers())
        body = handler(self, call.params, token)
        return _Reply(200, body, self._api_headers())

    def _check_token(self, call: Call, method: str) -> tuple[str | None, str | None]:
        auth = call.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return None, "not_authed"
        token = auth[7:].strip()
        is_app_token = token.startswith("xapp-")
        if not (token.startswith("xox") or is_app_token):
            return token, "invalid_auth"
        if is_app_token != (method == "apps.connections.open"):
            return token, "not_allowed_token_type"
        with self._lock:
            if token in self._revoked:
                return token, "token_revoked"
        return token, None

    def _identity(self, token: str | None) -> dict[str, Any]:
        with self._lock:
            known = self._tokens.get(token or "")
        if known:
            return known
        return {
            "team_id": self.team_id,
            "team_name": self.team_name,
            "user_id": self.user_id,
            "bot_id": self.bot_id,
            "enterprise_id": self.enterprise_id,
        }

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _new_ts(self) -> str:
        n = next(self._ts_counter)
        return f"{self._ts_base + n // 1_000_000}.{n % 1_000_000:06d}"

    def _blocks_rejected(self, method: str, payload: dict[str, Any], surface: str) -> bool:
        if not self.native_blocks and surface == "message":
            try:
                blocks = _maybe_json(payload.get("blocks")) or []
            except ValueError:
                blocks = []
            if any(isinstance(b, dict) and b.get("type") in NATIVE_TYPES for b in blocks):
                with self._lock:
                    self.refused_native.append(dict(payload))
                return True
        problems = block_kit_problems(payload, surface)
        if problems:
            with self._lock:
                self.violations.extend(f"{method}: {p}" for p in problems)
        return bool(problems)

    def _auth_test(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        who = self._identity(token)
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": who["team_name"],
            "user": "kpibot",
            "team_id": who["team_id"],
            "user_id": who["user_id"],
            "bot_id": who["bot_id"],
            "enterprise_id": who["enterprise_id"],
            "is_enterprise_install": False,
        }

    def _dm_channel(self, user_id: str) -> str:
        with self._lock:
            if user_id not in self._dm_ids:
                self._dm_ids[user_id] = self._new_id("D")
                self.add_channel(self._dm_ids[user_id], is_im=True, user=user_id)
            return self._dm_ids[user_id]

    def _message(self, params: dict[str, Any], channel: str, ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": params.get("text", ""),
            "user": self.user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if params.get(key) is not None:
                message[key] = _maybe_json(params[key])
        return message

    def _chat_post_message(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not any(params.get(k) for k in ("text", "blocks", "attachments", "markdown_text")):
            return {"ok": False, "error": "no_text"}
        if self._blocks_rejected("chat.postMessage", params, "message"):
            return {"ok": False, "error": "invalid_blocks"}
        if channel[0] in "UW":
            channel = self._dm_channel(channel)
        if channel in self._deleted:
            return {"ok": False, "error": "channel_not_found"}
        known = self.channels.get(channel)
        if known is not None and not known["is_member"] and not known["is_im"]:
            return {"ok": False, "error": "not_in_channel"}
        ts = self._new_ts()
        message = self._message(params, channel, ts)
        with self._lock:
            self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_post_ephemeral(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        if not any(params.get(k) for k in ("text", "blocks", "attachments", "markdown_text")):
            return {"ok": False, "error": "no_text"}
        if self._blocks_rejected("chat.postEphemeral", params, "message"):
            return {"ok": False, "error": "invalid_blocks"}
        return {"ok": True, "message_ts": self._new_ts()}

    def _chat_update(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not ts:
            return {"ok": False, "error": "message_not_found"}
        if self._blocks_rejected("chat.update", params, "message"):
            return {"ok": False, "error": "invalid_blocks"}
        message = self._message(params, channel, ts)
        with self._lock:
            self.messages[(channel, ts)] = message
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": params.get("text", ""),
            "message": message,
        }

    def _chat_delete(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not ts:
            return {"ok": False, "error": "message_not_found"}
        with self._lock:
            self.messages.pop((channel, ts), None)
        return {"ok": True, "channel": channel, "ts": ts}

    def _build_view(
        self,
        view: dict[str, Any],
        *,
        view_id: str | None = None,
        root_view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> dict[str, Any]:
        vid = view_id or self._new_id("V")
        return {
            "id": vid,
            "team_id": self.team_id,
            "type": view.get("type", "modal"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": previous_view_id,
            "root_view_id": root_view_id or vid,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _use_trigger(self, params: dict[str, Any]) -> str | None:
        trigger = str(params.get("trigger_id") or "")
        if not trigger:
            return "invalid_trigger_id"
        with self._lock:
            if trigger in self._used_triggers:
                return "exchanged_trigger_id"
            self._used_triggers.add(trigger)
        return None

    def _open_or_push(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        view = _json_arg(params, "view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if self._blocks_rejected(method, view, "modal"):
            return {"ok": False, "error": "invalid_blocks"}
        problem = self._use_trigger(params)
        if problem:
            return {"ok": False, "error": problem}
        built = self._build_view(view)
        with self._lock:
            self.views[built["id"]] = built
        return {"ok": True, "view": built}

    def _views_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return self._open_or_push("views.open", params)

    def _views_push(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        return self._open_or_push("views.push", params)

    def _views_update(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        view = _json_arg(params, "view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        with self._lock:
            current = self.views.get(str(params.get("view_id") or ""))
            if current is None and params.get("external_id"):
                current = next(
                    (v for v in self.views.values() if v["external_id"] == params["external_id"]),
                    None,
                )
        if current is None:
            return {"ok": False, "error": "not_found"}
        if params.get("hash") and params["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        if self._blocks_rejected("views.update", view, "modal"):
            return {"ok": False, "error": "invalid_blocks"}
        built = self._build_view(
            view,
            view_id=current["id"],
            root_view_id=current["root_view_id"],
            previous_view_id=current["previous_view_id"],
        )
        with self._lock:
            self.views[built["id"]] = built
        return {"ok": True, "view": built}

    def _views_publish(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        user_id = str(params.get("user_id") or "")
        view = _json_arg(params, "view")
        if not user_id or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        with self._lock:
            current = self.home_views.get(user_id)
        if current and params.get("hash") and params["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        if self._blocks_rejected("views.publish", view, "home"):
            return {"ok": False, "error": "invalid_blocks"}
        built = self._build_view(view, view_id=current["id"] if current else None)
        with self._lock:
            self.home_views[user_id] = built
            self.views[built["id"]] = built
        return {"ok": True, "view": built}

    def _users_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._lock:
            stored = self.users.get(str(params.get("user") or ""))
        if stored is None:
            return {"ok": False, "error": "user_not_found"}
        user = {k: v for k, v in stored.items() if not k.startswith("_")}
        if _truthy(params.get("include_locale")):
            user["locale"] = stored["_locale"]
        return {"ok": True, "user": user}

    def _conversations_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._lock:
            channel = self.channels.get(str(params.get("channel") or ""))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": dict(channel)}

    def _conversations_history(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        """Newest first; `metadata` only with include_all_metadata, as Slack does."""
        channel = str(params.get("channel") or "")
        oldest = float(params.get("oldest") or 0)
        limit = int(params.get("limit") or 100)
        with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        with self._lock:
            found = sorted(
                (m for (c, ts), m in self.messages.items() if c == channel and float(ts) > oldest
                 and not m.get("thread_ts")),
                key=lambda m: float(m["ts"]), reverse=True,
            )[:limit]
        messages = [
            {k: v for k, v in m.items() if with_metadata or k != "metadata"} for m in found
        ]
        return {"ok": True, "messages": messages, "has_more": False}

    def _conversations_replies(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        """The parent message and its thread, oldest first; `metadata` only with
        include_all_metadata, as Slack does."""
        channel, parent = str(params.get("channel") or ""), str(params.get("ts") or "")
        with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        with self._lock:
            if (channel, parent) not in self.messages:
                return {"ok": False, "error": "thread_not_found"}
            thread = sorted(
                (m for (c, ts), m in self.messages.items()
                 if c == channel and (ts == parent or m.get("thread_ts") == parent)),
                key=lambda m: float(m["ts"]),
            )
        messages = [{k: v for k, v in m.items() if with_metadata or k != "metadata"} for m in thread]
        return {"ok": True, "messages": messages, "has_more": False}

    def _conversations_join(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._lock:
            channel = self.channels.get(str(params.get("channel") or ""))
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            if channel["is_private"]:
                return {"ok": False, "error": "method_not_supported_for_channel_type"}
            channel["is_member"] = True
            return {"ok": True, "channel": dict(channel)}

    def _conversations_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if params.get("channel"):
            return {"ok": True, "channel": {"id": params["channel"]}}
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if len(users) == 1:
            return {"ok": True, "channel": {"id": self._dm_channel(users[0])}}
        return {"ok": True, "channel": {"id": self._new_id("G")}}

    def _team_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        who = self._identity(token)
        team: dict[str, Any] = {
            "id": who["team_id"],
            "name": who["team_name"],
            "domain": self.team_domain,
            "email_domain": "example.com",
            "icon": {"image_default": True},
        }
        if who["enterprise_id"]:
            team["enterprise_id"] = who["enterprise_id"]
        return {"ok": True, "team": team}

    def _files_get_upload_url(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        filename = params.get("filename")
        length = str(params.get("length") or "")
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._new_id("F")
        with self._lock:
            self._pending_uploads[file_id] = {
                "filename": filename,
                "length": int(length),
                "alt_txt": params.get("alt_txt"),
                "snippet_type": params.get("snippet_type"),
            }
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _upload(self, call: Call) -> _Reply:
        file_id = call.path.rsplit("/", 1)[-1]
        with self._lock:
            if file_id not in self._pending_uploads:
                return _Reply(404, "not_found")
            self.uploads[file_id] = call.body
        return _Reply(200, f"OK - {len(call.body)}")

    def _files_complete_upload(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        try:
            entries = _maybe_json(params.get("files"))
        except ValueError:
            entries = None
        if not isinstance(entries, list) or not entries:
            return {"ok": False, "error": "invalid_arguments"}
        channels = [c for c in str(params.get("channels") or "").split(",") if c]
        if params.get("channel_id"):
            channels.insert(0, str(params["channel_id"]))
        done = []
        with self._lock:
            for entry in entries:
                file_id = entry.get("id") if isinstance(entry, dict) else None
                if file_id not in self.uploads:
                    return {"ok": False, "error": "file_not_found"}
                pending = self._pending_uploads[file_id]
                name = pending["filename"]
                info = {
                    "id": file_id,
                    "created": int(time.time()),
                    "name": name,
                    "title": entry.get("title") or name,
                    "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
                    "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
                    "user": self.user_id,
                    "size": len(self.uploads[file_id]),
                    "url_private": f"{self.base_url}/files/{file_id}/{name}",
                    "permalink": f"https://{self.team_domain}.slack.com/files/{file_id}",
                }
                self.files[file_id] = {
                    **info,
                    "channels": channels,
                    "initial_comment": params.get("initial_comment"),
                    "thread_ts": params.get("thread_ts"),
                }
                done.append(info)
            if done and channels and params.get("thread_ts"):
                # as in Slack, files shared into a thread show as a reply carrying them
                ts = self._new_ts()
                self.messages[(channels[0], ts)] = {
                    "type": "message", "subtype": "file_share", "user": self.user_id,
                    "ts": ts, "thread_ts": str(params["thread_ts"]),
                    "text": str(params.get("initial_comment") or ""),
                    "files": [{"id": f["id"], "name": f["name"], "title": f["title"]} for f in done],
                }
        return {"ok": True, "files": done}

    def _exchange_code(self, params: dict[str, Any], auth: str) -> dict[str, Any]:
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if auth.startswith("Basic "):
            decoded = base64.b64decode(auth[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if not client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if self.client_id is not None and client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if self.client_secret is not None and client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        code = str(params.get("code") or "")
        with self._lock:
            if not code or code in self._used_codes:
                return {"ok": False, "error": "invalid_code"}
            self._used_codes.add(code)
        install = self._oauth or {
            "team_id": self.team_id,
            "team_name": self.team_name,
            "user_id": "U0001",
            "bot_user_id": self.user_id,
            "bot_id": self.bot_id,
            "scopes": self.scopes,
            "enterprise_id": self.enterprise_id,
        }
        access_token = f"xoxb-{install['team_id']}-{secrets.token_hex(8)}"
        with self._lock:
            self._tokens[access_token] = {
                "team_id": install["team_id"],
                "team_name": install["team_name"],
                "user_id": install["bot_user_id"],
                "bot_id": install["bot_id"],
                "enterprise_id": install["enterprise_id"],
            }
        enterprise = install["enterprise_id"]
        return {
            "ok": True,
            "app_id": self.app_id,
            "authed_user": {"id": install["user_id"]},
            "scope": install["scopes"],
            "token_type": "bot",
            "access_token": access_token,
            "bot_user_id": install["bot_user_id"],
            "team": {"id": install["team_id"], "name": install["team_name"]},
            "enterprise": {"id": enterprise, "name": "Grid"} if enterprise else None,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if self.socket_mode is not None:
            return {"ok": True, "url": self.socket_mode.new_url()}
        ticket = secrets.token_hex(8)
        url = f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"
        return {"ok": True, "url": url}

    # ------------------------------------------------------------------ response_url

    def _response_url(self, call: Call) -> _Reply:
        key = call.path.rsplit("/", 1)[-1]
        with self._lock:
            if key not in self._response_urls:
                return _Reply(404, "no_service")
            if self._response_urls[key] >= RESPONSE_URL_MAX_USES:
                return _Reply(404, "used_url")
        if not isinstance(call.params, dict) or not call.params:
            return _Reply(400, "invalid_payload")
        if self._blocks_rejected("response_url", call.params, "message"):
            return _Reply(400, "invalid_blocks")
        with self._lock:
            self._response_urls[key] += 1
        return _Reply(200, "ok")


_API_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any], str | None], dict[str, Any]]] = {
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "chat.update": FakeSlack._chat_update,
    "chat.delete": FakeSlack._chat_delete,
    "views.open": FakeSlack._views_open,
    "views.update": FakeSlack._views_update,
    "views.push": FakeSlack._views_push,
    "views.publish": FakeSlack._views_publish,
    "users.info": FakeSlack._users_info,
    "conversations.info": FakeSlack._conversations_info,
    "conversations.join": FakeSlack._conversations_join,
    "conversations.history": FakeSlack._conversations_history,
    "conversations.replies": FakeSlack._conversations_replies,
    "conversations.open": FakeSlack._conversations_open,
    "team.info": FakeSlack._team_info,
    "files.getUploadURLExternal": FakeSlack._files_get_upload_url,
    "files.completeUploadExternal": FakeSlack._files_complete_upload,
    "apps.connections.open": FakeSlack._apps_connections_open,
}


def _route(path: str) -> str:
    """Map a request path to the method name calls are recorded under."""
    if path.startswith("/api/"):
        return path[len("/api/") :]
    if path.startswith("/response/"):
        return "response_url"
    if path.startswith("/upload/"):
        return "upload"
    return path


def _parse_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """Merge query string and body the way Slack reads them (JSON, form or multipart)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    ctype = content_type.lower()
    if not body:
        return params
    if ctype.startswith("multipart/form-data"):
        params.update(_parse_multipart(content_type, body))
    elif "json" in ctype or body.lstrip().startswith(b"{"):
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"invalid JSON body: {exc}") from exc
        if isinstance(data, dict):
            params.update(data)
    elif ctype.startswith("application/x-www-form-urlencoded") or not ctype:
        with contextlib.suppress(UnicodeDecodeError):
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Decode the multipart body the retired files.upload path still sends."""
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if name:
            out[str(name)] = data if part.get_filename() else data.decode("utf-8", "replace")
    return out


def _maybe_json(value: Any) -> Any:
    """Form-encoded calls carry blocks/view/files as JSON strings; decode those."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _json_arg(params: dict[str, Any], key: str) -> Any:
    """Like _maybe_json, but a malformed value reads as missing (invalid_arguments)."""
    try:
        return _maybe_json(params.get(key))
    except ValueError:
        return None


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def _takes_positional_arg(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional and p.default is p.empty for p in params) or any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in params
    )


# ---------------------------------------------------------------------- Block Kit

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MARKDOWN_BLOCK_CHARS = 12_000
NATIVE_TYPES = ("table", "data_visualization", "data_table")
# section 10: table
MAX_TABLE_ROWS = 100
MAX_TABLE_CELLS = 20
MAX_COLUMN_SETTINGS = 20
# section 11: data_visualization (line, bar, area)
MAX_CHART_TITLE = 50
MAX_CHART_SERIES = 6
MAX_SERIES_NAME = 20
MAX_CHART_POINTS = 20
MAX_POINT_LABEL = 20
MAX_AXIS_LABEL = 50
MAX_CHARTS_PER_MESSAGE = 2
OPTION_LIMITS = {
    "static_select": 100,
    "multi_static_select": 100,
    "overflow": 5,
    "checkboxes": 10,
    "radio_buttons": 10,
}


def block_kit_problems(payload: dict[str, Any], surface: str) -> list[str]:
    """List Block Kit limit violations in a message payload or a view.

    ``surface`` is "message" (chat.* args or a response_url body: needs a
    ``text`` fallback next to ``blocks``), "modal" or "home" (a view object; its
    own ``type`` wins when present). An empty list means the payload is valid as
    far as the limits in the platform contract section 6 go.
    """
    if surface == "message":
        return _message_problems(payload)
    if surface in ("modal", "home", "view"):
        return _view_problems(payload, str(payload.get("type") or surface))
    raise ValueError(f"unknown surface {surface!r}")


def _load_blocks(raw: Any, problems: list[str]) -> list[Any]:
    if raw is None:
        return []
    try:
        blocks = _maybe_json(raw)
    except ValueError:
        problems.append("blocks is not valid JSON")
        return []
    if not isinstance(blocks, list):
        problems.append("blocks must be a list")
        return []
    return blocks


def _message_problems(payload: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    blocks = _load_blocks(payload.get("blocks"), problems)
    if len(blocks) > MAX_MESSAGE_BLOCKS:
        problems.append(f"{len(blocks)} blocks in a message (max {MAX_MESSAGE_BLOCKS})")
    if blocks and not str(payload.get("text") or "").strip():
        problems.append("blocks without a non-empty text fallback")
    markdown = sum(
        len(str(b.get("text", "")))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "markdown"
    )
    if markdown > MAX_MARKDOWN_BLOCK_CHARS:
        problems.append(f"markdown blocks total {markdown} chars (max {MAX_MARKDOWN_BLOCK_CHARS})")
    kinds = [b.get("type") for b in blocks if isinstance(b, dict)]
    if kinds.count("table") + kinds.count("data_table") > 1:
        problems.append("more than one table in a message (only_one_table_allowed)")
    if kinds.count("data_visualization") > MAX_CHARTS_PER_MESSAGE:
        problems.append(f"{kinds.count('data_visualization')} data_visualization blocks "
                        f"(max {MAX_CHARTS_PER_MESSAGE})")
    for i, block in enumerate(blocks):
        problems.extend(_block_problems(block, f"blocks[{i}]"))
    return problems


def _view_problems(view: dict[str, Any], kind: str) -> list[str]:
    problems: list[str] = []
    blocks = _load_blocks(view.get("blocks"), problems)
    if len(blocks) > MAX_VIEW_BLOCKS:
        problems.append(f"{len(blocks)} blocks in a {kind} view (max {MAX_VIEW_BLOCKS})")
    if kind == "modal":
        if not isinstance(view.get("title"), dict):
            problems.append("modal title is required")
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if has_input and not view.get("submit"):
            problems.append("modal with input blocks needs submit")
        for key in ("title", "submit", "close"):
            obj = view.get(key)
            if obj is None:
                continue
            _check_len(problems, f"modal {key}", _text_of(obj), 24)
            if isinstance(obj, dict) and obj.get("type") != "plain_text":
                problems.append(f"modal {key} must be plain_text")
    _check_len(problems, "private_metadata", view.get("private_metadata"), 3000)
    _check_len(problems, "callback_id", view.get("callback_id"), 255)
    _check_len(problems, "external_id", view.get("external_id"), 255)
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and block.get("type") in NATIVE_TYPES:
            problems.append(f"blocks[{i}] ({block.get('type')}) is for messages only")
        problems.extend(_block_problems(block, f"blocks[{i}]"))
    return problems


def _table_problems(block: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    rows = block.get("rows")
    if not isinstance(rows, list) or not rows:
        return [f"{where}.rows is required"]
    if len(rows) > MAX_TABLE_ROWS:
        problems.append(f"{where} has {len(rows)} rows (max {MAX_TABLE_ROWS})")
    settings = block.get("column_settings") or []
    if len(settings) > MAX_COLUMN_SETTINGS:
        problems.append(f"{where} has {len(settings)} column_settings (max {MAX_COLUMN_SETTINGS})")
    for s in settings:
        if s is not None and s.get("align") not in (None, "left", "center", "right"):
            problems.append(f"{where}.column_settings align {s.get('align')!r}")
    for r, row in enumerate(rows):
        if not isinstance(row, list) or not 1 <= len(row) <= MAX_TABLE_CELLS:
            problems.append(f"{where}.rows[{r}] needs 1..{MAX_TABLE_CELLS} cells")
            continue
        for c, cell in enumerate(row):
            kind = cell.get("type") if isinstance(cell, dict) else None
            at = f"{where}.rows[{r}][{c}]"
            if kind == "raw_text":
                if not isinstance(cell.get("text"), str):
                    problems.append(f"{at}.text must be a string")
            elif kind == "raw_number":
                if not isinstance(cell.get("value"), int | float):
                    problems.append(f"{at}.value must be a number")
            elif kind == "rich_text":
                if not isinstance(cell.get("elements"), list) or not cell["elements"]:
                    problems.append(f"{at} rich_text needs elements")
            else:
                problems.append(f"{at} is {kind!r}, not raw_text, raw_number or rich_text")
    return problems


def _chart_problems(block: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    title = block.get("title")
    if not isinstance(title, str) or not title:
        problems.append(f"{where}.title is required")
    else:
        _check_len(problems, f"{where}.title", title, MAX_CHART_TITLE)
    chart = block.get("chart")
    if not isinstance(chart, dict):
        return [*problems, f"{where}.chart is required"]
    kind = chart.get("type")
    if kind == "pie":
        segments = chart.get("segments") or []
        if not 1 <= len(segments) <= 6:
            problems.append(f"{where} pie needs 1..6 segments")
        for seg in segments:
            _check_len(problems, f"{where}.segments label", seg.get("label"), 20)
            if not isinstance(seg.get("value"), int | float) or seg["value"] <= 0:
                problems.append(f"{where} pie values must be > 0")
        return problems
    if kind not in ("line", "bar", "area"):
        return [*problems, f"{where}.chart.type {kind!r}"]
    axis = chart.get("axis_config")
    if not isinstance(axis, dict) or not isinstance(axis.get("categories"), list):
        return [*problems, f"{where}.chart.axis_config with categories is required"]
    categories = axis["categories"]
    _check_len(problems, f"{where}.x_label", axis.get("x_label"), MAX_AXIS_LABEL)
    _check_len(problems, f"{where}.y_label", axis.get("y_label"), MAX_AXIS_LABEL)
    series = chart.get("series") or []
    if not 1 <= len(series) <= MAX_CHART_SERIES:
        problems.append(f"{where} has {len(series)} series (1..{MAX_CHART_SERIES})")
    names = [s.get("name") for s in series if isinstance(s, dict)]
    if len(set(names)) != len(names):
        problems.append(f"{where} series names are not unique")
    for s in series:
        name = s.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_SERIES_NAME:
            problems.append(f"{where} series name {name!r} (1..{MAX_SERIES_NAME} chars)")
        data = s.get("data") or []
        if not 1 <= len(data) <= MAX_CHART_POINTS:
            problems.append(f"{where} series {name!r} has {len(data)} points (1..{MAX_CHART_POINTS})")
        labels = [d.get("label") for d in data]
        if labels != categories:
            problems.append(f"{where} series {name!r} is not exactly one point per category")
        for d in data:
            _check_len(problems, f"{where} point label", d.get("label"), MAX_POINT_LABEL)
            value = d.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{where} series {name!r} has a value that is not a number")
    return problems


def _text_of(obj: Any) -> str | None:
    if isinstance(obj, dict):
        text = obj.get("text")
        return None if text is None else str(text)
    return None if obj is None else str(obj)


def _check_len(problems: list[str], where: str, value: Any, limit: int) -> None:
    if value is not None and len(str(value)) > limit:
        problems.append(f"{where} is {len(str(value))} chars (max {limit})")


def _block_problems(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{where} is not an object"]
    problems: list[str] = []
    kind = block.get("type")
    where = f"{where} ({kind})"
    _check_len(problems, f"{where}.block_id", block.get("block_id"), 255)
    if kind == "section":
        if block.get("text") is None and not block.get("fields"):
            problems.append(f"{where} needs text or fields")
        _check_len(problems, f"{where}.text", _text_of(block.get("text")), 3000)
        fields = block.get("fields") or []
        if len(fields) > 10:
            problems.append(f"{where} has {len(fields)} fields (max 10)")
        for j, f in enumerate(fields):
            _check_len(problems, f"{where}.fields[{j}]", _text_of(f), 2000)
        if isinstance(block.get("accessory"), dict):
            problems.extend(_element_problems(block["accessory"], f"{where}.accessory"))
    elif kind == "header":
        text = block.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            problems.append(f"{where}.text must be a plain_text object")
        _check_len(problems, f"{where}.text", _text_of(text), 150)
    elif kind in ("actions", "context"):
        limit = 25 if kind == "actions" else 10
        elements = block.get("elements") or []
        if not elements:
            problems.append(f"{where} has no elements")
        if len(elements) > limit:
            problems.append(f"{where} has {len(elements)} elements (max {limit})")
        for j, el in enumerate(elements):
            problems.extend(_element_problems(el, f"{where}.elements[{j}]"))
    elif kind == "input":
        if block.get("label") is None:
            problems.append(f"{where}.label is required")
        _check_len(problems, f"{where}.label", _text_of(block.get("label")), 2000)
        _check_len(problems, f"{where}.hint", _text_of(block.get("hint")), 2000)
        if not isinstance(block.get("element"), dict):
            problems.append(f"{where}.element is required")
        else:
            problems.extend(_element_problems(block["element"], f"{where}.element"))
    elif kind == "image":
        problems.extend(_image_problems(block, where))
        _check_len(problems, f"{where}.title", _text_of(block.get("title")), 2000)
    elif kind == "table":
        problems.extend(_table_problems(block, where))
    elif kind == "data_visualization":
        problems.extend(_chart_problems(block, where))
    return problems


def _image_problems(obj: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    if not obj.get("alt_text"):
        problems.append(f"{where}.alt_text is required")
    _check_len(problems, f"{where}.alt_text", obj.get("alt_text"), 2000)
    sources = [k for k in ("image_url", "slack_file") if obj.get(k)]
    if len(sources) != 1:
        problems.append(f"{where} needs exactly one of image_url/slack_file (got {sources})")
    _check_len(problems, f"{where}.image_url", obj.get("image_url"), 3000)
    return problems


def _element_problems(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict):
        return [f"{where} is not an object"]
    problems: list[str] = []
    kind = el.get("type")
    _check_len(problems, f"{where}.action_id", el.get("action_id"), 255)
    _check_len(problems, f"{where}.placeholder", _text_of(el.get("placeholder")), 150)
    if kind == "button":
        _check_len(problems, f"{where}.text", _text_of(el.get("text")), 75)
        _check_len(problems, f"{where}.value", el.get("value"), 2000)
        _check_len(problems, f"{where}.url", el.get("url"), 3000)
    elif kind == "image":
        problems.extend(_image_problems(el, where))
    elif kind == "plain_text_input":
        for key, low in (("min_length", 0), ("max_length", 1)):
            value = el.get(key)
            if value is not None and not (low <= int(value) <= 3000):
                problems.append(f"{where}.{key}={value} outside {low}..3000")
    elif kind == "number_input" and "is_decimal_allowed" not in el:
        problems.append(f"{where}.is_decimal_allowed is required")
    if kind in OPTION_LIMITS:
        limit = OPTION_LIMITS[kind]
        options = el.get("options") or []
        groups = el.get("option_groups") or []
        if len(options) > limit:
            problems.append(f"{where} has {len(options)} options (max {limit})")
        if len(groups) > 100:
            problems.append(f"{where} has {len(groups)} option_groups (max 100)")
        for g, group in enumerate(groups):
            group_options = group.get("options") or [] if isinstance(group, dict) else []
            if len(group_options) > 100:
                problems.append(f"{where}.option_groups[{g}] has {len(group_options)} options")
            options = [*options, *group_options]
        for j, opt in enumerate(options):
            if not isinstance(opt, dict):
                problems.append(f"{where}.options[{j}] is not an object")
                continue
            _check_len(problems, f"{where}.options[{j}].text", _text_of(opt.get("text")), 75)
            _check_len(problems, f"{where}.options[{j}].value", opt.get("value"), 150)
    return problems
