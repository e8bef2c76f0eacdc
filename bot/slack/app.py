"""Builds the Bolt app: single workspace (bot token) or OAuth multi-workspace install."""

from __future__ import annotations

import logging
import uuid
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

from bot.settings import secret
from bot.slack import actions, commands, events, views
from bot.slack.runtime import Services

log = logging.getLogger("kpibot.app")
BOT_SCOPES = ["commands", "chat:write", "chat:write.public", "files:write", "users:read",
              "channels:read", "channels:join", "groups:read", "im:write", "team:read"]


def web_client(services: Services, token: str | None = None) -> WebClient:
    """A client on SLACK_API_URL that waits out 429s and retries dropped connections."""
    return WebClient(
        base_url=services.settings.slack_api_url, token=token, timeout=10,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2),
                        RateLimitErrorRetryHandler(max_retry_count=3)],
    )


def build_app(services: Services) -> App:
    s = services.settings
    signing_secret = secret(s.slack_signing_secret)
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
            oauth_settings=OAuthSettings(
                client_id=s.slack_client_id, client_secret=secret(s.slack_client_secret),
                scopes=BOT_SCOPES, installation_store=installations, state_store=states,
            ),
        )
    else:
        app = App(signing_secret=signing_secret, client=web_client(services, secret(s.slack_bot_token)),
                  token_verification_enabled=False)

    @app.middleware
    def tag_request(logger: Any, body: dict[str, Any], context: Any, next: Any) -> Any:
        context["request_id"] = uuid.uuid4().hex[:12]
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
