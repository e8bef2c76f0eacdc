"""Settings from the environment and `.env` (pydantic-settings). Secrets are never logged."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite:///kpibot.db"
    kpibot_port: int = 3000
    kpibot_host: str = "0.0.0.0"
    kpibot_admins: str = Field(default="")
    #: how long a claimed delivery is reserved for its claimer before a crash is assumed
    kpibot_claim_lease_seconds: int = Field(default=300, ge=5, le=3600)
    #: the least time between two conversations.history (or .replies) calls of a workspace
    #: when the Courier checks whether a post went out: Slack's 2025 limit for commercially
    #: distributed apps outside the Marketplace is one a minute
    kpibot_history_interval_seconds: int = Field(default=60, ge=1, le=3600)

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.kpibot_admins.split(",") if a.strip())

    @property
    def oauth(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
