"""What every listener shares: the services, who is asking, and a reply within Slack's 3 s."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.app.context import Context, UserError, open_context
from bot.app.lifecycle import reinstalled
from bot.app.ports import Ports
from bot.grammar import Command
from bot.observability import Metrics
from bot.registry import spec_for
from bot.render import kit
from bot.render.kit import Message, Modal, Reply, Upload
from bot.settings import Settings
from storage import Store

log = logging.getLogger("kpibot.slack")
ACK_BUDGET_SECONDS = 2.0
#: Slack's language setting -> the workspace locale a new workspace starts with
SLACK_LOCALES = {"en-US": "en_US", "en-GB": "en_GB", "es-LA": "es_419", "es-ES": "es_ES",
                 "pt-BR": "pt_BR", "de-DE": "de_DE", "fr-FR": "fr_FR"}
_ADMIN_TTL = 300.0


@dataclass
class Services:
    """What every listener works with, complete when built (bot/bootstrap.py builds it)."""

    store: Store
    settings: Settings
    clock: Callable[[], datetime]
    metrics: Metrics
    executor: ThreadPoolExecutor
    ports: Ports
    _admins: dict[tuple[str, str], tuple[bool, float]] = field(default_factory=dict)

    def context(self, who: Who) -> Context:
        """The asker's context; a new workspace takes the asker's time zone from users.info."""
        settings: dict[str, Any] = {}
        found = self.store.workspace_and_catalogue(who.team_id)
        if found is None:
            timezone, locale = self._user_settings(who)
            settings = {"timezone": timezone, "locale": locale, "enterprise_id": who.enterprise_id}
        elif not found[0].installed:
            # Slack sends a workspace's requests only while the app is installed there
            reinstalled(self.store, who.team_id, self.ports.schedule_changed)
            found = None
        return open_context(self.store, who.team_id, who.user_id, self.clock(),
                            channel=who.channel_id, ports=self.ports, found=found,
                            admin=lambda: self.is_admin(who), **settings)

    def run(self, who: Who, command: Command) -> Reply:
        """The one way a command runs: the registry's admin rule, then its use case and renderer."""
        spec = spec_for(command)
        ctx = self.context(who)
        if spec.admin is not None:
            self.require_admin(who, spec.admin)
        return spec.run(ctx)

    def answer(self, who: Who, command: Command) -> Message:
        """Runs the command and carries out what its reply asks (open a form, share a file)."""
        reply = self.run(who, command)
        if isinstance(reply, Modal):
            who.client.views_open(trigger_id=who.trigger_id, view=reply.view)
            return {}
        if isinstance(reply, Upload):
            channel = self._direct_channel(who) if reply.private else who.channel_id
            if not channel:
                raise UserError("Use this in a channel, so I know where to post.")
            who.client.files_upload_v2(channel=channel, content=reply.content,
                                       filename=reply.filename, title=reply.title,
                                       initial_comment=reply.comment)
            return reply.then
        return reply

    @staticmethod
    def _direct_channel(who: Who) -> str:
        """The asker's direct conversation with the bot."""
        opened = who.client.conversations_open(users=who.user_id)
        return str((opened.get("channel") or {}).get("id") or who.user_id)

    def _user_settings(self, who: Who) -> tuple[str, str]:
        """The first user's time zone and Slack language, for a new workspace."""
        try:
            user = who.client.users_info(user=who.user_id, include_locale=True).get("user") or {}
        except SlackApiError as error:
            self.slack_error("users.info", error)
            return "UTC", "en_US"
        return str(user.get("tz") or "UTC"), SLACK_LOCALES.get(str(user.get("locale") or ""), "en_US")

    def is_admin(self, who: Who) -> bool:
        """Workspace admins and owners (users.info, cached briefly) and KPIBOT_ADMINS."""
        if who.user_id in self.settings.admins:
            return True
        key = (who.team_id, who.user_id)
        cached = self._admins.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        try:
            user = who.client.users_info(user=who.user_id).get("user") or {}
        except SlackApiError as error:
            self.slack_error("users.info", error)
            return False
        answer = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        self._admins[key] = (answer, time.monotonic() + _ADMIN_TTL)
        return answer

    def admin_hint(self) -> str:
        named = ", ".join(f"<@{a}>" for a in sorted(self.settings.admins))
        return "Workspace admins and owners" + (f", and {named}," if named else "") + " can change settings and definitions."

    def require_admin(self, who: Who, what: str) -> None:
        if not self.is_admin(who):
            raise UserError(f"Only admins can {what}. {self.admin_hint()} Ask one of them, "
                            "or ask your operator to add you to KPIBOT_ADMINS.")

    def slack_error(self, method: str, error: SlackApiError) -> None:
        code = str(error.response.get("error", "unknown")) if error.response is not None else "unknown"
        self.metrics.slack_errors.labels(method=method, error=code).inc()
        log.warning("slack api error method=%s error=%s", method, code)


@dataclass(frozen=True)
class Who:
    """Who is asking, from where: the Bolt context reduced to what use cases need."""

    team_id: str
    user_id: str
    client: WebClient
    channel_id: str | None = None
    enterprise_id: str | None = None
    trigger_id: str | None = None

    @classmethod
    def of(cls, context: Any, body: dict[str, Any], client: WebClient) -> Who:
        team = context.team_id or context.enterprise_id or body.get("team_id") or "unknown"
        channel = context.channel_id or (body.get("channel") or {}).get("id") or body.get("channel_id")
        return cls(team, context.user_id or "", client, channel, context.enterprise_id,
                   body.get("trigger_id"))



def guarded(work: Callable[[], Message | None], where: str) -> Callable[[], Message]:
    """Turns every failure into a message: the fix for user errors, an apology with an id for ours.

    Work that has nothing to say (it posted or opened something itself) gives an empty message.
    """

    def run() -> Message:
        try:
            return work() or {}
        except UserError as error:
            return kit.error(str(error))
        except (OperationalError, DBAPIError) as error:
            log.warning("database unavailable in %s: %s", where, error.__class__.__name__)
            return kit.busy()
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("error id=%s in %s", error_id, where)
            return kit.apology(error_id)

    return run


class _Deadlines:
    """One watchdog thread for every pending reply: at a reply's deadline it acks "Working on
    it" unless the answer went first. The work runs in the listener's own thread, so a fast
    answer costs no hand-off to another thread and back."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[float, Callable[[], None]]] = {}
        self._changed = threading.Condition()
        self._next = float("inf")
        self._thread: threading.Thread | None = None

    def add(self, key: int, deadline: float, fire: Callable[[], None]) -> None:
        with self._changed:
            self._pending[key] = (deadline, fire)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="kpibot-budget",
                                                daemon=True)
                self._thread.start()
            if deadline < self._next:
                self._changed.notify()

    def discard(self, key: int) -> None:
        with self._changed:
            self._pending.pop(key, None)

    def _watch(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [k for k, (at, _) in self._pending.items() if at <= now]
                fired = [self._pending.pop(k)[1] for k in due]
                if not fired:
                    self._next = min((at for at, _ in self._pending.values()), default=float("inf"))
                    self._changed.wait(None if self._next == float("inf") else self._next - now)
                    self._next = float("inf")
            for fire in fired:
                fire()


_deadlines = _Deadlines()


def reply_within_budget(
    services: Services, ack: Callable[..., Any], respond: Callable[..., Any],
    work: Callable[[], Message], where: str, budget: float = ACK_BUDGET_SECONDS,
    received_at: float | None = None,
) -> None:
    """Acks with the answer when it is ready in time, else acks at once and responds later.

    The work runs in this (the listener's) thread; the watchdog acks "Working on it" at the
    budget if the answer is not in by then, and the answer then goes to response_url. Exactly
    one of the two acks. The budget counts from when the request arrived (`received_at`, set by
    the app's middleware), not from when a listener thread became free.
    """
    started = time.monotonic()
    if received_at is not None:
        budget = max(budget - (started - received_at), 0.05)
    decided = threading.Lock()
    state = {"acked": False}

    def too_slow() -> None:
        with decided:
            if state["acked"]:
                return
            state["acked"] = True
        ack(text=":hourglass_flowing_sand: Working on it…")
        log.info("slow reply in %s, answering through response_url", where)

    key = id(state)
    _deadlines.add(key, started + budget, too_slow)
    try:
        answer = guarded(work, where)()
    finally:
        _deadlines.discard(key)
    with decided:
        late, state["acked"] = state["acked"], True
    if late:
        _respond(respond, answer)
        return
    ack(**answer)
    log.debug("replied in %.3fs (%s)", time.monotonic() - started, where)


def ack_then(
    services: Services, ack: Callable[..., Any], respond: Callable[..., Any], ack_text: str,
    work: Callable[[], Message | None], where: str,
) -> None:
    """For slow work (charts, uploads): acks at once, then answers through response_url."""
    ack(text=ack_text)
    future = services.executor.submit(guarded(work, where))
    future.add_done_callback(lambda f: _respond(respond, f.result()) if f.result() else None)


def _respond(respond: Callable[..., Any], answer: Message) -> None:
    try:
        respond(**answer)
    except Exception:
        log.exception("could not deliver a late reply")
