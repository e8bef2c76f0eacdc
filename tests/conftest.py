"""Shared fixtures: a real SQLite file per test, and PostgreSQL when the environment has one.

`store` opens a Store on a fresh temporary SQLite file (migrations applied by `open_store`).
`pg_url` gives a PostgreSQL URL whose search path is a brand-new, empty schema, dropped after
the test, so every test starts from an empty database without touching anyone else's tables.
It skips the test when KPIBOT_TEST_POSTGRES_URL is not set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage import Store, open_store

POSTGRES_ENV = "KPIBOT_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} not set: PostgreSQL suite skipped"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'kpibot.db'}"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    """A Store on a real, freshly migrated SQLite file."""
    opened = open_store(sqlite_url)
    try:
        yield opened
    finally:
        opened.engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL on an empty schema of its own (created here, dropped afterwards)."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    schema = f"kpibot_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on a SQLite file and, when configured, on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def any_store(db_url: str) -> Iterator[Store]:
    """A migrated Store on each configured backend."""
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.engine.dispose()
