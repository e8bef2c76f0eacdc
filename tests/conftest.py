"""Shared fixtures: a real SQLite file per test, and PostgreSQL when the environment has one.

`store` opens a Store on a fresh temporary SQLite file (migrations applied by `open_store`).
`pg_url` gives a PostgreSQL URL whose search path is a brand-new, empty schema, dropped after
the test, so every test starts from an empty database without touching anyone else's tables.
It skips the test when KPIBOT_TEST_POSTGRES_URL is not set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from storage import Store, open_store
from tests.faultkit import pg_schema

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
    with pg_schema(base, prefix="kpibot_test") as url:
        yield url


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


@contextmanager
def sql_statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL sent to `engine` inside the block, in order: what tests count to hold a read
    or a write to a cost that does not grow with the data."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


# =============================================================================================
# Slack end-to-end harness (used by tests/test_slack.py); appended block, self-contained.
#
# `slack_bot` boots the real WSGI app (bot.server.wsgi_app) under waitress on 127.0.0.1, on a
# fresh SQLite file, talking to a FakeSlack Web API; requests are signed exactly as Slack does.
# The clock is fixed at SLACK_NOW. Teardown stops everything and asserts that no Block Kit
# limit was broken and the fake never crashed.
# =============================================================================================

import contextlib  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from waitress.server import create_server  # noqa: E402

from bot.bootstrap import Bot, bootstrap  # noqa: E402
from bot.server import wsgi_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests import slackreq  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402

SLACK_SECRET = "e2e-signing-secret"
# Wednesday 2026-03-11 15:00 UTC: 11:00 the same day in New York, Thursday 04:00 in Auckland.
SLACK_NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
SLACK_ADMIN = "U0001"  # workspace admin of T0001 (America/New_York)
SLACK_MEMBER = "U0002"  # plain member of T0001
SLACK_OPERATOR = "UOPS1"  # named in KPIBOT_ADMINS
SLACK_OTHER_TEAM_USER = "U0100"  # admin of T0002 (Europe/Madrid)


@dataclass
class Clock:
    """A clock the test moves by hand (`clock.now += timedelta(days=1)`), from SLACK_NOW."""

    now: datetime = SLACK_NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class SlackReply:
    """What the bot answered on the HTTP request itself (the ack), and how long it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    response_url: str | None = None

    @property
    def json(self) -> dict[str, Any]:
        """The ack as a message; Slack shows a plain-text ack body as the message text."""
        raw = self.body.strip()
        if not raw:
            return {}
        return json.loads(raw) if raw.startswith(b"{") else {"text": raw.decode()}


@dataclass
class SlackBot:
    fake: FakeSlack
    store: Store
    services: Bot
    base_url: str
    secret: str = SLACK_SECRET

    @property
    def events_url(self) -> str:
        return f"{self.base_url}/slack/events"

    def responses(self, reply: SlackReply) -> list[dict[str, Any]]:
        """What the bot posted to the response_url of `reply`'s request."""
        assert reply.response_url
        path = reply.response_url.removeprefix(self.fake.base_url)
        return [c.params for c in self.fake.calls_to("response_url") if c.path == path]

    def told(self, reply: SlackReply, timeout: float = 5.0) -> dict[str, Any]:
        """The last answer posted at `reply`'s response_url (waiting for it)."""
        return self.fake.wait_for(lambda: self.responses(reply), timeout=timeout)[-1]

    def post(
        self, body: bytes, headers: dict[str, str] | None = None, response_url: str | None = None
    ) -> SlackReply:
        headers = slackreq.sign(self.secret, body) if headers is None else headers
        started = time.monotonic()
        status, got, raw = slackreq.post(self.events_url, body, headers)
        return SlackReply(status, got, raw, time.monotonic() - started, response_url)

    def command(self, text: str, **kwargs: Any) -> SlackReply:
        """`/kpi TEXT` from U0001 in C0001 of T0001 unless overridden; respond() reaches the fake."""
        kwargs.setdefault("response_url", self.fake.new_response_url())
        return self.post(
            slackreq.slash_command_body(text, **kwargs), response_url=kwargs["response_url"]
        )

    def action(self, action_id: str, value: str | None = None, **kwargs: Any) -> SlackReply:
        if "view" not in kwargs:
            kwargs.setdefault("response_url", self.fake.new_response_url())
        body = slackreq.block_actions_body(action_id, value, **kwargs)
        return self.post(body, response_url=kwargs.get("response_url"))

    def submit(self, view: dict[str, Any], values: dict[str, Any], **kwargs: Any) -> SlackReply:
        return self.post(slackreq.view_submission_body(view, values, **kwargs))

    def event(self, event: dict[str, Any], **kwargs: Any) -> SlackReply:
        return self.post(slackreq.event_body(event, **kwargs))

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        import urllib.request

        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def _stop_waitress(server: Any, thread: threading.Thread) -> None:
    """Stops the loop from inside (it ends when its map is empty), then closes its sockets.

    Nothing is closed while the loop thread runs, so no file descriptor is closed twice.
    """
    dispatchers: list[Any] = []

    def empty_the_map() -> None:
        dispatchers.extend(server._map.values())
        server._map.clear()

    server.trigger.pull_trigger(empty_the_map)
    thread.join(timeout=5)
    assert not thread.is_alive(), "waitress loop did not stop"
    server.task_dispatcher.shutdown(timeout=5)
    for dispatcher in dispatchers:
        with contextlib.suppress(OSError):
            dispatcher.close()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    fake.add_user(SLACK_ADMIN, tz="America/New_York", is_admin=True)
    fake.add_user(SLACK_MEMBER, tz="America/New_York")
    fake.add_user(SLACK_OTHER_TEAM_USER, team_id="T0002", tz="Europe/Madrid", is_admin=True)
    try:
        yield fake
    finally:
        fake.stop()


@contextlib.contextmanager
def serve_bot(
    fake: FakeSlack, store: Store, *, token: str = "xoxb-test", secret: str = SLACK_SECRET,
    thread_name: str = "waitress-e2e", clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> Iterator[SlackBot]:
    """The whole bot (Bolt app, waitress, `/healthz`, `/metrics`) on a free local port, its Web
    API calls going to `fake`, its clock at SLACK_NOW (or `clock`); stopped and its threads
    joined after. `overrides` are more settings (slack_client_id=... for OAuth)."""
    fields: dict[str, Any] = {
        "slack_bot_token": token, "slack_signing_secret": secret, "slack_api_url": fake.api_url,
        "slack_client_id": None, "slack_client_secret": None, "slack_app_token": None,
        "kpibot_admins": SLACK_OPERATOR, **overrides,
    }
    settings = Settings(**fields, _env_file=None)
    services = bootstrap(settings, store=store, clock=clock or (lambda: SLACK_NOW))
    server = create_server(
        wsgi_app(services), host="127.0.0.1", port=0, threads=8, asyncore_loop_timeout=0.1
    )
    thread = threading.Thread(target=server.run, daemon=True, name=thread_name)
    thread.start()
    try:
        yield SlackBot(fake, store, services, f"http://127.0.0.1:{server.effective_port}",
                       secret=secret)
    finally:
        _stop_waitress(server, thread)
        services.close()


@pytest.fixture
def slack_bot(fake_slack: FakeSlack, tmp_path: Path) -> Iterator[SlackBot]:
    """The whole bot on a real socket; asserts fake.violations == [] when the test ends."""
    store = open_store(f"sqlite:///{tmp_path / 'slack-e2e.db'}")
    try:
        with serve_bot(fake_slack, store) as bot:
            yield bot
    finally:
        violations = list(fake_slack.violations)
        crashes = list(fake_slack.server_errors)
        fake_slack.stop()
        store.engine.dispose()
        assert violations == [], violations
        assert crashes == [], crashes


def texts(obj: Any) -> str:
    """Every piece of text a person sees in a message, view or response body, one per line."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return "\n".join(found)


def table_rows(obj: Any) -> list[tuple[str, ...]]:
    """The rows of a message's `table` block as the cells read (emoji marks dropped), header first."""
    from bot.render.kit import cell_text

    for block in obj.get("blocks") or []:
        if block.get("type") == "table":
            return [tuple(re.sub(r":[a-z_]+:", "", cell_text(c)).strip() for c in row)
                    for row in block["rows"]]
    return []


def row_of(obj: Any, label: str) -> tuple[str, ...]:
    """The table row of `label` after its label: value, was, change (or a group's figures)."""
    found = [row[1:] for row in table_rows(obj) if row[0] == label]
    assert found, f"no row {label!r} in {[r[0] for r in table_rows(obj)]}"
    return found[0]


def at_once(*work: Callable[[], list[str]]) -> list[str]:
    """Runs each callable in its own thread, released together as racing processes would be,
    and returns their results one after the other."""
    barrier = threading.Barrier(len(work))
    results: list[list[str]] = [[] for _ in work]

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [outcome for result in results for outcome in result]


def in_full(bot: SlackBot, body: dict[str, Any]) -> dict[str, Any]:
    """What the Show all button of a folded answer answers (only to the clicker)."""
    [button] = [e for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == "show_all"]
    click = bot.action("show_all", button.get("value"), is_ephemeral=True)
    return bot.fake.wait_for(lambda: bot.responses(click))[-1]


def migrate_to(engine_url: str, action: str, revision: str) -> None:
    """Alembic's `upgrade` or `downgrade` to `revision`, as a migration test needs it."""
    from alembic import command
    from alembic.config import Config

    from storage.db import MIGRATIONS, make_engine

    engine = make_engine(engine_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def insert_old_workspace(conn: Any, workspace_id: str) -> None:
    """A workspace row as the migrations before 0007 left it, for a migration test's data."""
    from sqlalchemy import text

    conn.execute(text(
        "INSERT INTO workspaces (id, enterprise_id, name, timezone, currency, locale, "
        "packs, reminder_time, created_at) VALUES (:id, NULL, '', 'UTC', 'USD', 'en_US', "
        "'marketing,sales', '17:00', '2026-03-01 00:00:00')"), {"id": workspace_id})
