"""The WSGI sub-app for `/api/v1/*` and `/webhooks/stripe/*` (bot/server.py hands them over).

Every answer is JSON; every refusal names the problem and stores nothing. Tokens are never
logged: a log line names a token by its id and name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy.exc import OperationalError

from bot.api import entries as batch
from bot.api import stripe_events
from bot.api.openapi import document
from bot.api.ratelimit import RateLimiter
from bot.api.tokens import authenticate
from bot.app.context import Context, UserError, open_context
from bot.app.reports import report
from kpis.periods import Period, PeriodError, parse_date
from storage import Store
from storage.repository import utcnow
from storage.tokens import StoredResponse, StoredToken

log = logging.getLogger("kpibot.api")
MAX_BODY = 1_000_000
MAX_REPORT_DAYS = 3660
TOUCH_EVERY = timedelta(minutes=1)
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
OnLogged = Callable[[str, date, set[str]], None]
_STATUS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


def _refuse(status: int, field: str, message: str, *headers: tuple[str, str]) -> Answer:
    return Answer(status, {"errors": [{"field": field, "message": message}]}, headers)


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def build_api(
    store: Store, *, clock: Callable[[], datetime] = utcnow, on_logged: OnLogged | None = None,
    per_second: float = 1.0, burst: int = 60, count: Callable[[str, int], None] | None = None,
) -> WsgiApp:
    """The sub-app. `on_logged(workspace_id, day, metrics)` runs after every stored batch, as
    after a Slack log (alert evaluation); `count(origin, n)` feeds the entries metric."""
    api = _Api(store, clock, on_logged, RateLimiter(per_second, burst), count)
    return api


class _Api:
    def __init__(self, store: Store, clock: Callable[[], datetime], on_logged: OnLogged | None,
                 limiter: RateLimiter, count: Callable[[str, int], None] | None) -> None:
        self.store, self.clock, self.on_logged = store, clock, on_logged
        self.limiter, self.count = limiter, count
        self.openapi = json.dumps(document()).encode()
        # SQLite has one writer at a time and its busy handler polls with growing sleeps, so
        # 20 waiting batches starve each other (seconds of tail); a lock wakes the next at once
        self.one_writer: AbstractContextManager[Any] = (
            threading.Lock() if store.engine.dialect.name == "sqlite"
            else contextlib.nullcontext())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            answer = self.route(path, method, environ)
        except _Refused as refused:
            answer = refused.answer
        except OperationalError as error:
            log.warning("%s %s: database unavailable (%s)", method, path,
                        error.orig.__class__.__name__)
            answer = _refuse(503, "database", "The database is not answering; nothing was "
                             "stored. Try again in a few seconds.", ("Retry-After", "5"))
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("%s %s failed: error id=%s", method, path, error_id)
            answer = _refuse(500, "server", f"Something went wrong on our side (error id "
                             f"{error_id}); nothing was stored.")
        payload = json.dumps(answer.body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                   ("Cache-Control", "no-store"), *answer.headers]
        start_response(f"{answer.status} {_STATUS.get(answer.status, '')}".strip(), headers)
        return [payload]

    def route(self, path: str, method: str, environ: dict[str, Any]) -> Answer:
        if path == "/api/v1/openapi.json":
            _allow(method, "GET")
            return Answer(200, json.loads(self.openapi))
        if path == "/api/v1/entries":
            _allow(method, "POST")
            return self.post_entries(environ)
        if path == "/api/v1/report":
            _allow(method, "GET")
            return self.get_report(environ)
        if path.startswith("/webhooks/stripe/"):
            _allow(method, "POST")
            return self.stripe(path.removeprefix("/webhooks/stripe/"), environ)
        return _refuse(404, "path", f"There is no {path}; the API is POST /api/v1/entries, GET "
                       "/api/v1/report and GET /api/v1/openapi.json.")

    # -- shared steps ---------------------------------------------------------------------------

    def token(self, environ: dict[str, Any]) -> StoredToken:
        token = authenticate(self.store, environ.get("HTTP_AUTHORIZATION"))
        if token is None:
            raise _Refused(_refuse(401, "Authorization", "A valid token is needed: send "
                                   "`Authorization: Bearer kpi_...` (create one with `kpibot "
                                   "token create --name NAME`).", ("WWW-Authenticate", "Bearer")))
        wait = self.limiter.take(token.id)
        if wait:
            log.info("token %d (%s) over its rate limit", token.id, token.name)
            raise _Refused(_refuse(429, "rate", f"Too many requests for token `{token.name}`; "
                                   f"retry after {wait:g} s.", ("Retry-After", f"{wait:.0f}")))
        return token

    def touch(self, token: StoredToken, now: datetime) -> None:
        """Last use, at most once a minute per token (a write per request would cost more)."""
        if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
            self.store.touch_token(token.id, now)

    def context(self, token: StoredToken, now: datetime) -> Context:
        return open_context(self.store, token.workspace_id, f"token:{token.name}", now)

    # -- POST /api/v1/entries -------------------------------------------------------------------

    def post_entries(self, environ: dict[str, Any]) -> Answer:
        token = self.token(environ)
        body = _json_body(environ)
        key = _idempotency_key(environ)
        request_hash = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        now = self.clock()
        ctx = self.context(token, now)
        if key is not None:
            earlier = self.store.idempotent_answer(ctx.workspace.id, key)
            if earlier is not None:
                return _replay(earlier, request_hash, key)
        try:
            writes, problems = batch.writes_of(ctx, body, token.name)
        except batch.BatchTooLarge as error:
            return _refuse(413, "entries", str(error))
        if problems:
            return Answer(422, {"errors": [p.to_json() for p in problems]})
        answer = {"stored": len(writes)}
        with self.one_writer:
            earlier = self.store.record_keyed(
                ctx.workspace.id, writes, actor=ctx.actor, origin="api", key=key,
                request_hash=request_hash, status=201, response=json.dumps(answer), now=now)
        if earlier is not None:
            assert key is not None
            return _replay(earlier, request_hash, key)
        log.info("token %d (%s) stored %d entries in %s", token.id, token.name, len(writes),
                 ctx.workspace.id)
        self.touch(token, now)
        self.logged(ctx.workspace.id, "api", writes)
        return Answer(201, answer)

    def logged(self, workspace_id: str, origin: str, writes: Iterable[Any]) -> None:
        """Alert evaluation for each day touched, exactly as after a Slack log."""
        by_day: dict[date, set[str]] = {}
        n = 0
        for w in writes:
            by_day.setdefault(w.day, set()).add(w.metric)
            n += 1
        if self.count is not None:
            self.count(origin, n)
        if self.on_logged is None:
            return
        for day, metrics in sorted(by_day.items()):
            try:
                self.on_logged(workspace_id, day, metrics)
            except Exception:
                log.exception("alert evaluation after an %s write to %s failed", origin,
                              workspace_id)

    # -- GET /api/v1/report ---------------------------------------------------------------------

    def get_report(self, environ: dict[str, Any]) -> Answer:
        token = self.token(environ)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        unknown = sorted(set(query) - {"from", "to", "by"})
        if unknown:
            return _refuse(422, unknown[0], f"Unknown parameter `{unknown[0]}`; the report takes "
                           "from, to and by.")
        days: dict[str, date] = {}
        for name in ("from", "to"):
            values = query.get(name)
            if not values or not values[0].strip():
                return _refuse(422, name, f"`{name}` is missing: give ?from=YYYY-MM-DD&to=YYYY-MM-DD.")
            try:
                days[name] = parse_date(values[0])
            except PeriodError as error:
                return _refuse(422, name, str(error))
        try:
            period = Period(days["from"], days["to"])
            period.previous()
        except PeriodError as error:
            return _refuse(422, "to", str(error))
        except OverflowError:
            return _refuse(422, "from", "That period reaches outside the calendar; pick dates "
                           "after the year 1.")
        if (period.end - period.start).days >= MAX_REPORT_DAYS:
            return _refuse(422, "to", f"That period is {(period.end - period.start).days + 1:,} "
                           f"days; a report covers at most {MAX_REPORT_DAYS:,}.")
        by = query["by"][0] if "by" in query else None
        now = self.clock()
        ctx = self.context(token, now)
        try:
            result = report(ctx, period, by=by)
        except UserError as error:
            return _refuse(422, "by" if by is not None else "from", str(error))
        self.touch(token, now)
        return Answer(200, result.to_json())

    # -- POST /webhooks/stripe/<workspace> -------------------------------------------------------

    def stripe(self, workspace_id: str, environ: dict[str, Any]) -> Answer:
        workspace = self.store.workspace(workspace_id) if 0 < len(workspace_id) <= 32 else None
        if workspace is None:
            return _stripe_error(404, f"There is no workspace `{workspace_id[:40]}`; the "
                                 "endpoint is /webhooks/stripe/<workspace id>.")
        secret = self.store.webhook_secret(workspace.id, "stripe")
        if secret is None:
            return _stripe_error(400, f"No Stripe endpoint secret is set for {workspace.id}: run "
                                 "`kpibot webhook stripe --secret whsec_...`.")
        payload = _read_body(environ)
        try:
            event = stripe_events.verify(payload, environ.get("HTTP_STRIPE_SIGNATURE"), secret)
        except stripe_events.BadEvent as error:
            log.warning("stripe webhook for %s refused: %s", workspace.id, error)
            return _stripe_error(400, str(error))
        with self.one_writer:
            outcome = stripe_events.handle(self.store, workspace, event, self.clock())
        if outcome.metrics:
            self.logged(workspace.id, "stripe", [_Touched(outcome.day, m) for m in outcome.metrics])
        return Answer(outcome.status, outcome.body)


@dataclass(frozen=True)
class _Touched:
    day: date
    metric: str


def _stripe_error(status: int, message: str) -> Answer:
    return Answer(status, {"error": message})


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _Refused(_refuse(405, "method", f"Use {allowed} here, not {method}.",
                               ("Allow", allowed)))


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _Refused(_refuse(400, "Content-Length", "Content-Length is not a number.")) from None
    if length > MAX_BODY:
        raise _Refused(_refuse(413, "body", f"The body is {length:,} bytes; the limit is 1 MB. "
                               "Split the entries into several requests."))
    body = environ["wsgi.input"].read(min(length, MAX_BODY + 1) if length else MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise _Refused(_refuse(413, "body", "The body is over 1 MB; split the entries into "
                               "several requests."))
    return bytes(body)


def _json_body(environ: dict[str, Any]) -> Any:
    kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise _Refused(_refuse(415, "Content-Type", f"The body must be JSON sent as "
                               f"`Content-Type: application/json`, not `{kind or 'nothing'}`."))
    raw = _read_body(environ)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _Refused(_refuse(400, "body", "The body is not UTF-8 text.")) from None
    except (ValueError, RecursionError) as error:
        where = f" (line {error.lineno}, column {error.colno})" if isinstance(
            error, json.JSONDecodeError) else ""
        raise _Refused(_refuse(400, "body", f"The body is not valid JSON{where}: "
                               f"{getattr(error, 'msg', error)}.")) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _idempotency_key(environ: dict[str, Any]) -> str | None:
    raw = environ.get("HTTP_IDEMPOTENCY_KEY")
    if raw is None:
        return None
    key = str(raw).strip()
    if not key or len(key) > 200 or not key.isprintable():
        raise _Refused(_refuse(400, "Idempotency-Key", "Idempotency-Key must be 1 to 200 "
                               "printable characters, e.g. a UUID."))
    return key


def _replay(earlier: StoredResponse, request_hash: str, key: str) -> Answer:
    if earlier.request_hash != request_hash:
        return _refuse(409, "Idempotency-Key", f"The Idempotency-Key `{key[:60]}` was already "
                       "used with another body; use a new key for new entries.")
    return Answer(earlier.status, json.loads(earlier.body), (("Idempotent-Replayed", "true"),))
