"""API tokens and webhook secrets: what `kpibot token ...`, `/kpi token ...` and
`kpibot webhook stripe` do.

A token is `kpi_` and 43 URL-safe characters (256 random bits), so a hash without a salt is
enough: nobody can try them all. The secret exists only in the answer to `create`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from bot.app.context import Context, UserError
from storage.tokens import StoredToken

PREFIX = "kpi_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class NewToken:
    """The only moment the secret exists outside the caller's hands."""

    token: StoredToken
    secret: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(ctx: Context, name: str | None) -> NewToken:
    """A new token for the workspace; `name` says who uses it (zapier, n8n)."""
    store, workspace_id = ctx.store, ctx.workspace.id
    label = (name or "").strip() or f"token-{len(store.tokens(workspace_id)) + 1}"
    if not _NAME.match(label):
        raise UserError(f"`{label[:40]}` can't be a token name: use up to 40 letters, digits, "
                        "`.`, `_` or `-`, starting with a letter or digit (e.g. `zapier`).")
    secret = PREFIX + secrets.token_urlsafe(32)
    stored = store.add_token(workspace_id, label, hash_token(secret), actor=ctx.actor, now=ctx.now)
    return NewToken(stored, secret)


def tokens(ctx: Context) -> list[StoredToken]:
    return ctx.store.tokens(ctx.workspace.id)


def revoke_token(ctx: Context, token_id: int) -> StoredToken:
    known = {t.id: t for t in ctx.store.tokens(ctx.workspace.id)}
    found = known.get(token_id)
    if found is None:
        ids = ", ".join(f"{t.id} ({t.name})" for t in known.values() if t.revoked_at is None)
        raise UserError(f"There is no token {token_id} here; "
                        + (f"the live ones are {ids}." if ids else "there are no live tokens."))
    if found.revoked_at is not None:
        raise UserError(f"Token {token_id} ({found.name}) was already revoked.")
    ctx.store.revoke_token(ctx.workspace.id, token_id, ctx.now)
    return found


def set_stripe_secret(ctx: Context, secret: str) -> None:
    """Stores the workspace's Stripe endpoint secret (`whsec_...`, from the Stripe dashboard)."""
    value = secret.strip()
    if not value.startswith("whsec_") or len(value) < 12 or len(value) > 200 or " " in value:
        raise UserError("That is not a Stripe endpoint secret: it starts with `whsec_` (Stripe "
                        "dashboard, Developers, Webhooks, your endpoint, Signing secret).")
    ctx.store.set_webhook_secret(ctx.workspace.id, "stripe", value, ctx.now)
