"""API tokens: created and shown once, kept as a SHA-256 hash, listed, revoked.

A token is `kpi_` and 43 URL-safe characters (256 random bits), so a hash without a salt is
enough: nobody can try them all. The use cases here serve `kpibot token ...` and `/kpi token`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from bot.app.context import UserError
from storage import Store
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


def create_token(store: Store, workspace_id: str, name: str | None, *, actor: str,
                 now: datetime) -> NewToken:
    """A new token for the workspace (created if new); `name` says who uses it (zapier, n8n)."""
    label = (name or "").strip() or f"token-{len(store.tokens(workspace_id)) + 1}"
    if not _NAME.match(label):
        raise UserError(f"`{label[:40]}` can't be a token name: use up to 40 letters, digits, "
                        "`.`, `_` or `-`, starting with a letter or digit (e.g. `zapier`).")
    store.ensure_workspace(workspace_id)
    secret = PREFIX + secrets.token_urlsafe(32)
    stored = store.add_token(workspace_id, label, hash_token(secret), actor=actor, now=now)
    return NewToken(stored, secret)


def list_tokens(store: Store, workspace_id: str) -> list[StoredToken]:
    return store.tokens(workspace_id)


def revoke_token(store: Store, workspace_id: str, token_id: int, now: datetime) -> StoredToken:
    known = {t.id: t for t in store.tokens(workspace_id)}
    found = known.get(token_id)
    if found is None:
        raise UserError(f"There is no token {token_id} in {workspace_id}; "
                        "`kpibot token list` shows their ids.")
    if found.revoked_at is not None:
        raise UserError(f"Token {token_id} ({found.name}) was already revoked.")
    store.revoke_token(workspace_id, token_id, now)
    return known[token_id]


def authenticate(store: Store, header: str | None) -> StoredToken | None:
    """The live token of an `Authorization: Bearer ...` header, or None."""
    scheme, _, secret = (header or "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    return store.token_by_hash(hash_token(secret))


def set_stripe_secret(store: Store, workspace_id: str, secret: str, now: datetime) -> None:
    """Stores the workspace's Stripe endpoint secret (`whsec_...`, from the Stripe dashboard)."""
    value = secret.strip()
    if not value.startswith("whsec_") or len(value) < 12 or len(value) > 200 or " " in value:
        raise UserError("That is not a Stripe endpoint secret: it starts with `whsec_` (Stripe "
                        "dashboard, Developers, Webhooks, your endpoint, Signing secret).")
    store.ensure_workspace(workspace_id)
    store.set_webhook_secret(workspace_id, "stripe", value, now)
