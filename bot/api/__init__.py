"""Numbers that come in by themselves: the HTTP API (tokens) and signed Stripe webhooks."""

from bot.api.http import build_api

__all__ = ["build_api"]
