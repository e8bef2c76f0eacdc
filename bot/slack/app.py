"""The Bolt app: single workspace (bot token) or OAuth multi-workspace install, its clients,
and its listeners by kind."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from bot.app.lifecycle import reinstalled
from bot.settings import Settings, secret
from bot.slack import actions, commands, events, views
from bot.slack.runtime import Services
from storage import Store

log = logging.getLogger("kpibot.app")
BOT_SCOPES = ["commands", "chat:write", "chat:write.public", "files:write", "users:read",
              "channels:read", "channels:join", "channels:history", "groups:read",
              "groups:history", "im:write", "team:read"]


def web_client(settings: Settings, token: str | None = None) -> WebClient:
    """A client on SLACK_API_URL that waits out 429s and retries dropped connections."""
    return WebClient(
        base_url=settings.slack_api_url, token=token, timeout=10,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2),
                        RateLimitErrorRetryHandler(max_retry_count=3)],
    )


def courier_client(settings: Settings, token: str | None = None, *,
                   wait_out_429: bool = False) -> WebClient:
    """For posts through the Courier: never retries a post by itself after a 5xx or a dropped
    connection (the Courier first checks whether it went out), and hands a 429 to the Courier,
    which gives the delivery back until Retry-After rather than keep a worker asleep. A
    one-off post from the CLI (`wait_out_429`) has nothing else to do and waits it out."""
    return WebClient(
        base_url=settings.slack_api_url, token=token, timeout=20,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)] if wait_out_429 else [],
    )


class Installations(SQLAlchemyInstallationStore):
    """The OAuth installs, in the same database; an install (or a reinstall after
    `app_uninstalled`) resumes the workspace's digests, alerts and reminders."""

    def __init__(self, client_id: str, store: Store) -> None:
        super().__init__(client_id=client_id, engine=store.engine)
        self.store = store

    def save(self, installation: Installation) -> None:
        super().save(installation)
        workspace_id = installation.team_id or installation.enterprise_id
        if workspace_id:
            reinstalled(self.store, workspace_id)


def installation_store(settings: Settings, store: Store) -> Installations | None:
    """OAuth installs live in the same database (None with a single bot token)."""
    if not settings.oauth:
        return None
    installations = Installations(settings.slack_client_id or "", store)
    _create_tables(installations, store)
    return installations


def _create_tables(table_owner: Any, store: Store) -> None:
    try:
        table_owner.metadata.create_all(store.engine, checkfirst=True)
    except Exception:  # another process created them at the same moment
        log.info("oauth tables already being created by another process")


def clients_for(
    settings: Settings, store: Store, installations: SQLAlchemyInstallationStore | None
) -> Callable[[str], WebClient | None]:
    """workspace id -> a client with that workspace's bot token (None when not installed, or
    uninstalled since: its token is revoked and must not be used)."""
    single = None if installations is not None else courier_client(
        settings, secret(settings.slack_bot_token))

    def for_workspace(workspace_id: str) -> WebClient | None:
        workspace = store.workspace(workspace_id)
        if workspace is not None and not workspace.installed:
            return None
        if single is not None or installations is None:
            return single
        enterprise_id = workspace.enterprise_id if workspace else None
        bot = installations.find_bot(enterprise_id=enterprise_id, team_id=workspace_id)
        return courier_client(settings, bot.bot_token) if bot and bot.bot_token else None

    return for_workspace


def _listener_pool() -> ThreadPoolExecutor:
    """Bolt's default is 5 threads; each `/kpi` listener may hold one for its 2 s budget, so a
    burst behind a slow database would wait for a thread past Slack's 3 s."""
    return ThreadPoolExecutor(max_workers=64, thread_name_prefix="bolt")


def build_app(services: Services, installations: SQLAlchemyInstallationStore | None) -> App:
    s = services.settings
    signing_secret = secret(s.slack_signing_secret)
    if installations is not None:
        states = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=services.store.engine)
        _create_tables(states, services.store)
        app = App(
            signing_secret=signing_secret, client=web_client(s),
            listener_executor=_listener_pool(),
            oauth_settings=OAuthSettings(
                client_id=s.slack_client_id, client_secret=secret(s.slack_client_secret),
                scopes=BOT_SCOPES, installation_store=installations, state_store=states,
            ),
        )
    else:
        app = App(signing_secret=signing_secret, client=web_client(s, secret(s.slack_bot_token)),
                  token_verification_enabled=False, listener_executor=_listener_pool())

    @app.middleware
    def tag_request(logger: Any, body: dict[str, Any], context: Any, next: Any) -> Any:
        context["request_id"] = uuid.uuid4().hex[:12]
        context["received_at"] = time.monotonic()
        log.info("request id=%s kind=%s team=%s user=%s", context["request_id"],
                 body.get("type") or ("command" if "command" in body else "other"),
                 context.team_id, context.user_id)
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled listener error %s", error.__class__.__name__, exc_info=error)

    for listeners in (commands, actions, views, events):
        listeners.register(app, services)
    return app
