"""Who is calling the API: the live token of an `Authorization: Bearer ...` header."""

from __future__ import annotations

from bot.app.tokens import PREFIX, hash_token
from storage import Store
from storage.tokens import StoredToken


def authenticate(store: Store, header: str | None) -> StoredToken | None:
    """The live token of an `Authorization: Bearer ...` header, or None."""
    scheme, _, secret = (header or "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    return store.token_by_hash(hash_token(secret))
