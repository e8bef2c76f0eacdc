"""Builds the Bolt app: single workspace (bot token) or OAuth multi-workspace install."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from slack_bolt import App
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from bot.scheduler import DigestScheduler
from bot.settings import secret
from bot.slack import actions, alerting, commands, events, insights, views
from bot.slack.courier import Courier
from bot.slack.runtime import Services

log = logging.getLogger("kpibot.app")
BOT_SCOPES = ["commands", "chat:write", "chat:write.public", "files:write", "users:read",
              "channels:read", "channels:join", "channels:history", "groups:read",
              "groups:history", "im:write", "team:read"]


def web_client(services: Services, token: str | None = None) -> WebClient:
    """A client on SLACK_API_URL that waits out 429s and retries dropped connections."""
    return WebClient(
        base_url=services.settings.slack_api_url, token=token, timeout=10,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2),
                        RateLimitErrorRetryHandler(max_retry_count=3)],
    )


def courier_client(services: Services, token: str | None = None) -> WebClient:
    """For scheduled posts: waits out 429s (nothing was posted) but never retries a post by
    itself after a 5xx or a dropped connection: the Courier first checks whether it went out."""
    return WebClient(
        base_url=services.settings.slack_api_url, token=token, timeout=20,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
    )


def _clients(
    services: Services, installations: SQLAlchemyInstallationStore | None
) -> Callable[[str], WebClient | None]:
    """workspace id -> a client with that workspace's bot token (None when not installed)."""
    if installations is None:
        client = courier_client(services, secret(services.settings.slack_bot_token))
        return lambda _workspace_id: client

    def for_workspace(workspace_id: str) -> WebClient | None:
        workspace = services.store.workspace(workspace_id)
        enterprise_id = workspace.enterprise_id if workspace else None
        bot = installations.find_bot(enterprise_id=enterprise_id, team_id=workspace_id)
        return courier_client(services, bot.bot_token) if bot and bot.bot_token else None

    return for_workspace


def _listener_pool() -> ThreadPoolExecutor:
    """Bolt's default is 5 threads; each `/kpi` listener may hold one for its 2 s budget, so a
    burst behind a slow database would wait for a thread past Slack's 3 s."""
    return ThreadPoolExecutor(max_workers=64, thread_name_prefix="bolt")


def build_app(services: Services) -> App:
    s = services.settings
    signing_secret = secret(s.slack_signing_secret)
    installations: SQLAlchemyInstallationStore | None = None
    if s.oauth:
        engine = services.store.engine
        installations = SQLAlchemyInstallationStore(client_id=s.slack_client_id or "", engine=engine)
        states = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine)
        for store in (installations, states):
            try:
                store.metadata.create_all(engine, checkfirst=True)
            except Exception:  # another process created them at the same moment
                log.info("oauth tables already being created by another process")
        app = App(
            signing_secret=signing_secret, client=web_client(services),
            listener_executor=_listener_pool(),
            oauth_settings=OAuthSettings(
                client_id=s.slack_client_id, client_secret=secret(s.slack_client_secret),
                scopes=BOT_SCOPES, installation_store=installations, state_store=states,
            ),
        )
    else:
        app = App(signing_secret=signing_secret, client=web_client(services, secret(s.slack_bot_token)),
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

    for listeners in (commands, actions, views, events, alerting, insights):
        listeners.register(app, services)
    if services.courier is None:
        services.courier = Courier(
            services.store, _clients(services, installations), services.metrics, services.clock,
            lease=timedelta(seconds=s.kpibot_claim_lease_seconds),
        )
    if services.scheduler is None:
        services.scheduler = DigestScheduler(services.store, services.courier, services.clock)
    alerting.attach(services)
    insights.attach(services)
    return app
