"""Storage of the HTTP API and webhooks: tokens, idempotency keys, processed events, notices.

A mixin of `Store` (storage/repository.py): it uses Store's transaction helpers and its entry
writer, so an API batch or a Stripe event is stored exactly like a Slack log, with its claim
(the idempotency key, the event id) inserted in the same transaction as the entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from kpis.catalogue import DIMENSION_SLOTS, DIMENSIONS
from storage.models import (
    AdminNoticeRow,
    ApiTokenRow,
    EntryRow,
    IdempotencyKeyRow,
    WebhookEventRow,
    WebhookSecretRow,
)
from storage.records import ChangeBatch, Changed, Write

T = TypeVar("T")
#: idempotency keys are answered for at least 24 h; rows older than this are pruned
KEEP_KEYS = timedelta(hours=48)


@dataclass(frozen=True)
class StoredToken:
    id: int
    workspace_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_by: str = ""


@dataclass(frozen=True)
class StoredResponse:
    """The answer first given to an idempotency key, and the hash of the body it answered."""

    request_hash: str
    status: int
    body: str


@dataclass(frozen=True)
class Notice:
    id: int
    kind: str
    message: str
    created_at: datetime


class ApiRepository:
    """Tokens, idempotency keys, webhook events and secrets, admin notices."""

    if TYPE_CHECKING:
        clock: Callable[[], datetime]

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _retrying(self, work: Callable[[], T], attempts: int = 5) -> T: ...
        def _lock_days(self, conn: Connection, workspace_id: str,
                       keys: Iterable[tuple[str, date]]) -> None: ...
        def _apply(self, conn: Connection, workspace_id: str, w: Write, batch: str, actor: str,
                   origin: str) -> Changed: ...

    # -- tokens ---------------------------------------------------------------------------------

    def add_token(self, workspace_id: str, name: str, token_hash: str, *, actor: str,
                  now: datetime) -> StoredToken:
        with self._write() as conn:
            new_id = conn.execute(insert(ApiTokenRow).values(
                workspace_id=workspace_id, name=name, token_hash=token_hash, created_by=actor,
                created_at=now,
            )).inserted_primary_key
        assert new_id is not None
        return StoredToken(int(new_id[0]), workspace_id, name, now, None, None, actor)

    def tokens(self, workspace_id: str) -> list[StoredToken]:
        with self._read() as conn:
            rows = conn.execute(select(ApiTokenRow).where(ApiTokenRow.workspace_id == workspace_id)
                                .order_by(ApiTokenRow.id)).all()
        return [_token(r) for r in rows]

    def token_by_hash(self, token_hash: str) -> StoredToken | None:
        """The live (not revoked) token with this hash."""
        with self._read() as conn:
            row = conn.execute(select(ApiTokenRow).where(
                ApiTokenRow.token_hash == token_hash, ApiTokenRow.revoked_at.is_(None)
            )).first()
        return None if row is None else _token(row)

    def revoke_token(self, workspace_id: str, token_id: int, now: datetime) -> bool:
        with self._write() as conn:
            return bool(conn.execute(update(ApiTokenRow).where(
                ApiTokenRow.workspace_id == workspace_id, ApiTokenRow.id == token_id,
                ApiTokenRow.revoked_at.is_(None),
            ).values(revoked_at=now)).rowcount)

    def touch_token(self, token_id: int, now: datetime) -> None:
        with self._write() as conn:
            conn.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id)
                         .values(last_used_at=now))

    # -- entries with an idempotency key ----------------------------------------------------

    def idempotent_answer(self, workspace_id: str, key: str) -> StoredResponse | None:
        """The answer already given to `key`, if any (a retry answers the same)."""
        with self._read() as conn:
            return _answer(conn, workspace_id, key)

    def record_keyed(
        self, workspace_id: str, writes: Sequence[Write], *, actor: str, origin: str,
        key: str | None, request_hash: str, status: int, response: str, now: datetime,
    ) -> StoredResponse | None:
        """Stores `writes` (as Store.record does) and, with `key`, the answer in the same
        transaction. None when stored; the earlier answer when `key` was used before."""
        batch = str(uuid.uuid4())

        def work() -> StoredResponse | None:
            with self._write() as conn:
                if key is not None:
                    earlier = _answer(conn, workspace_id, key)
                    if earlier is not None:
                        return earlier
                    conn.execute(delete(IdempotencyKeyRow).where(
                        IdempotencyKeyRow.created_at < now - KEEP_KEYS))
                    conn.execute(insert(IdempotencyKeyRow).values(
                        workspace_id=workspace_id, key=key, request_hash=request_hash,
                        status=status, response=response, created_at=now,
                    ))
                self._lock_days(conn, workspace_id, ((w.metric, w.day) for w in writes))
                ChangeBatch(batch, actor, origin, tuple(
                    self._apply(conn, workspace_id, w, batch, actor, origin) for w in writes))
            return None

        try:
            return self._retrying(work)
        except IntegrityError:
            # the same key inserted by a concurrent request that committed first (PostgreSQL)
            assert key is not None
            with self._read() as conn:
                earlier = _answer(conn, workspace_id, key)
            if earlier is None:
                raise
            return earlier

    # -- webhook events -------------------------------------------------------------------------

    def record_event(
        self, workspace_id: str, provider: str, event_id: str, event_type: str,
        additions: Sequence[Write], *, actor: str, origin: str, outcome: str, now: datetime,
        notice: tuple[str, str] | None = None,
    ) -> ChangeBatch | None:
        """Claims the event id and adds each write's value to what its author has for that
        key (an event adds to the day, it does not replace it), in one transaction; None when
        the event was processed before, by this process or a concurrent one."""
        batch = str(uuid.uuid4())

        def work() -> ChangeBatch | None:
            with self._write() as conn:
                if _event_seen(conn, workspace_id, provider, event_id):
                    return None
                conn.execute(insert(WebhookEventRow).values(
                    workspace_id=workspace_id, provider=provider, event_id=event_id,
                    event_type=event_type, outcome=outcome[:200], processed_at=now,
                ))
                if notice is not None:
                    conn.execute(insert(AdminNoticeRow).values(
                        workspace_id=workspace_id, kind=notice[0], message=notice[1],
                        created_at=now,
                    ))
                self._lock_days(conn, workspace_id, ((w.metric, w.day) for w in additions))
                changes = []
                for w in additions:
                    total = _current(conn, workspace_id, w) + w.value
                    changes.append(self._apply(conn, workspace_id, replace(w, value=total),
                                               batch, actor, origin))
            return ChangeBatch(batch, actor, origin, tuple(changes))

        try:
            return self._retrying(work)
        except IntegrityError:
            with self._read() as conn:
                if _event_seen(conn, workspace_id, provider, event_id):
                    return None
            raise

    def set_webhook_secret(self, workspace_id: str, provider: str, secret: str,
                           now: datetime) -> None:
        with self._write() as conn:
            found = conn.execute(update(WebhookSecretRow).where(
                WebhookSecretRow.workspace_id == workspace_id, WebhookSecretRow.provider == provider,
            ).values(secret=secret, created_at=now)).rowcount
            if not found:
                conn.execute(insert(WebhookSecretRow).values(
                    workspace_id=workspace_id, provider=provider, secret=secret, created_at=now))

    def webhook_secret(self, workspace_id: str, provider: str) -> str | None:
        with self._read() as conn:
            return conn.scalar(select(WebhookSecretRow.secret).where(
                WebhookSecretRow.workspace_id == workspace_id, WebhookSecretRow.provider == provider))

    def notices(self, workspace_id: str, limit: int = 20) -> list[Notice]:
        """The latest admin notices, newest first (for App Home)."""
        with self._read() as conn:
            rows = conn.execute(select(AdminNoticeRow).where(
                AdminNoticeRow.workspace_id == workspace_id
            ).order_by(AdminNoticeRow.id.desc()).limit(limit)).all()
        return [Notice(r.id, r.kind, r.message, r.created_at) for r in rows]


def _token(row: Any) -> StoredToken:
    return StoredToken(row.id, row.workspace_id, row.name, row.created_at, row.last_used_at,
                       row.revoked_at, row.created_by)


def _answer(conn: Connection, workspace_id: str, key: str) -> StoredResponse | None:
    row = conn.execute(select(IdempotencyKeyRow).where(
        IdempotencyKeyRow.workspace_id == workspace_id, IdempotencyKeyRow.key == key)).first()
    return None if row is None else StoredResponse(row.request_hash, row.status, row.response)


def _event_seen(conn: Connection, workspace_id: str, provider: str, event_id: str) -> bool:
    return conn.execute(select(WebhookEventRow.id).where(
        WebhookEventRow.workspace_id == workspace_id, WebhookEventRow.provider == provider,
        WebhookEventRow.event_id == event_id,
    )).first() is not None


def _current(conn: Connection, workspace_id: str, w: Write) -> float:
    values = dict(w.dims)
    found = conn.scalar(select(EntryRow.value).where(and_(
        EntryRow.workspace_id == workspace_id, EntryRow.metric == w.metric, EntryRow.day == w.day,
        EntryRow.author == w.author,
        *(getattr(EntryRow, name) == values.get(name, "") for name in (*DIMENSIONS, *DIMENSION_SLOTS)),
    )))
    return float(found or 0.0)
