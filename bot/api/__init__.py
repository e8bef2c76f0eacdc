"""Numbers that come in by themselves: the HTTP API (tokens) and signed Stripe webhooks."""

from bot.api.http import build_api
from bot.api.tokens import (
    NewToken,
    create_token,
    list_tokens,
    revoke_token,
    set_stripe_secret,
)

__all__ = ["NewToken", "build_api", "create_token", "list_tokens", "revoke_token",
           "set_stripe_secret"]
