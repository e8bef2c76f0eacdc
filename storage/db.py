"""Engines and schema upgrades, for SQLite (the default) and PostgreSQL alike."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from storage.repository import Store

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK = 7_301_942  # serialises migrations of several processes on one PostgreSQL

log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    """An engine tuned for its backend: WAL, busy timeout and foreign keys on SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _tune_sqlite(engine)
        return engine
    engine = create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=4,
        connect_args=_POSTGRES_TIMEOUTS if parsed.get_backend_name() == "postgresql" else {},
    )
    if parsed.get_backend_name() == "postgresql":
        _bound_statements(engine)
    return engine


#: a database that stops answering (rather than refusing) is noticed in seconds, not after the
#: operating system's ~15 minutes of TCP retries: requests then get "try again" at once
_POSTGRES_TIMEOUTS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 5_000,
}
STATEMENT_TIMEOUT_MS = 15_000


def _bound_statements(engine: Engine) -> None:
    """A statement timeout, and no JIT: every statement here is a few index seeks, and the
    period read's recursive CTE (Store's _stock_reads) is costed at ten times the rows it
    walks, past jit_above_cost from ~20 gauges on; compiling it then took ~300 ms of a 10 ms
    read."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        cursor.execute("SET jit = off")
        cursor.close()
        dbapi_connection.commit()


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front: a deferred transaction that upgrades to a write
        # fails at once with "database is locked" instead of waiting for its turn.
        options = conn.get_execution_options()
        if options.get("single", False):
            return  # one statement (Store._read_one) is atomic in autocommit mode
        readonly = options.get("readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent, safe with several processes)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        finally:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK})
                connection.commit()


def open_store(url: str, *, migrate: bool = True) -> Store:
    """A Store on `url`, with the schema created or upgraded first."""
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return Store(engine)
