"""Answers about API tokens, the same words in Slack and in the terminal."""

from __future__ import annotations

from bot.app.tokens import NewToken
from bot.render.kit import Message, listing, message
from bot.render.numbers import format_moment
from storage.tokens import StoredToken


def created_text(new: NewToken, zone: str) -> str:
    t = new.token
    return (f":key: Token #{t.id} `{t.name}` created {format_moment(t.created_at, zone)}. "
            f"It is shown only now, so copy it into your tool:\n`{new.secret}`\n"
            "Send it as `Authorization: Bearer <token>`; `/kpi token revoke "
            f"{t.id}` stops it.")


def token_line(t: StoredToken, zone: str) -> str:
    used = format_moment(t.last_used_at, zone) if t.last_used_at else "never"
    state = f"revoked {format_moment(t.revoked_at, zone)}" if t.revoked_at else "active"
    return (f"#{t.id} `{t.name}` · created {format_moment(t.created_at, zone)} · "
            f"last used {used} · {state}")


def tokens_message(tokens: list[StoredToken], zone: str, *, full: bool = False,
                   more: str = "") -> Message:
    """`/kpi token list`: one line per token, as many as fit above the fold."""
    if not tokens:
        return message("There are no API tokens yet. `/kpi token create zapier` makes one for a "
                       "tool that sends numbers (see the README, \"Send numbers automatically\").")
    return listing("API tokens", "*API tokens*", [token_line(t, zone) for t in tokens],
                   noun="tokens", more=more, full=full)


def revoked_text(t: StoredToken) -> str:
    return f"Revoked token #{t.id} `{t.name}`; requests with it now get 401."
