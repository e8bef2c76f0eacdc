"""Security, end to end: signatures, who may change what, workspaces kept apart, secrets kept out of logs.

One real bot (the WSGI app under waitress, a SQLite file, a FakeSlack Web API) serves the whole
module; every test works in workspaces of its own (`new_team()`), so tests cannot see each
other's data. Requests are built and signed as Slack sends them (tests/slackreq.py). "Nothing
changed" is checked on the whole database (`db_state`), not only on the entries.

`running_bot`, `db_state`, `answer` and the other helpers here are reused by tests/test_hostile.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import inspect, text

from bot import grammar as g
from bot.app.context import open_context
from bot.app.digests import chart_trend
from bot.grammar import COMMANDS, parse_command
from bot.registry import spec_for
from kpis.periods import Period
from storage import Store, open_store
from tests import slackreq
from tests.conftest import (
    SLACK_ADMIN,
    SLACK_MEMBER,
    SLACK_NOW,
    SLACK_OPERATOR,
    SLACK_OTHER_TEAM_USER,
    SlackBot,
    SlackReply,
    row_of,
    serve_bot,
    texts,
)
from tests.fakeslack import FakeSlack

# Distinctive secrets, so a leak into a log line cannot hide behind a common word.
BOT_TOKEN = "xoxb-7301-4477-kpibotBotTokenZq9"
SIGNING_SECRET = "kpibot-signing-secret-5f1d2c9ab0e7"
SLACK_OWNER = "UOWNER1"  # owner (not admin) of every test workspace
APOLOGY = "something went wrong on our side"
# An ack that promises the answer later: ":hourglass_flowing_sand: Drawing the chart…".
PENDING = re.compile(r"^:hourglass_flowing_sand: .*…$")

_teams = itertools.count(1)


def new_team(prefix: str = "TSEC") -> str:
    """A workspace id no other test uses."""
    return f"{prefix}{next(_teams):05d}"


# -- the harness --------------------------------------------------------------------------------


@contextlib.contextmanager
def running_bot(db_file: Path) -> Iterator[SlackBot]:
    """The whole bot on a real socket, talking to a FakeSlack; for module-scoped fixtures.

    Users: U0001 workspace admin, U0002 plain member, UOWNER1 owner, UOPS1 a plain member whom
    KPIBOT_ADMINS names, U0100 admin of another team. users.info ignores the team, so any of
    them can act in any test workspace.
    """
    fake = FakeSlack().start()
    fake.add_user(SLACK_ADMIN, tz="America/New_York", is_admin=True)
    fake.add_user(SLACK_MEMBER, tz="America/New_York")
    fake.add_user(SLACK_OWNER, tz="America/New_York", is_owner=True)
    fake.add_user(SLACK_OPERATOR, tz="America/New_York")
    fake.add_user(SLACK_OTHER_TEAM_USER, team_id="T0002", tz="Europe/Madrid", is_admin=True)
    store = open_store(f"sqlite:///{db_file}")
    try:
        with serve_bot(fake, store, token=BOT_TOKEN, secret=SIGNING_SECRET,
                       thread_name="waitress-security") as bot:
            yield bot
    finally:
        fake.stop()
        store.engine.dispose()


@contextlib.contextmanager
def clean_fake(bot: SlackBot) -> Iterator[None]:
    """Per test: forget earlier calls; afterwards, no Block Kit violation and no fake crash."""
    bot.fake.reset()
    yield
    assert bot.fake.violations == [], bot.fake.violations
    assert bot.fake.server_errors == [], bot.fake.server_errors


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlackBot]:
    with running_bot(tmp_path_factory.mktemp("security") / "kpibot.db") as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_fake(bot: SlackBot) -> Iterator[None]:
    with clean_fake(bot):
        yield


# -- helpers ------------------------------------------------------------------------------------


_tables: dict[int, list[tuple[str, str | None]]] = {}


def _tables_of(store: Store) -> list[tuple[str, str | None]]:
    """(table, the column naming its workspace or None), read once per database."""
    if id(store) not in _tables:
        with store.engine.connect() as conn:
            inspector = inspect(conn)
            found = []
            for table in inspector.get_table_names():
                if table == "alembic_version":
                    continue
                columns = {c["name"] for c in inspector.get_columns(table)}
                key = "workspace_id" if "workspace_id" in columns else None
                found.append((table, "id" if table == "workspaces" else key))
        _tables[id(store)] = found
    return _tables[id(store)]


def db_state(store: Store, team: str | None = None) -> dict[str, list[str]]:
    """Every row of every table (but alembic's), for before/after comparisons.

    With `team`, tables keyed by workspace hold only that workspace's rows (cheaper when the
    database holds thousands of fuzzed workspaces).
    """
    state = {}
    with store.engine.connect() as conn:
        for table, key in _tables_of(store):
            query, params = f'SELECT * FROM "{table}"', {}
            if team is not None and key is not None:
                query, params = f"{query} WHERE {key} = :team", {"team": team}
            state[table] = sorted(repr(tuple(row)) for row in conn.execute(text(query), params))
    return state




def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Interactive elements of a message or view, by action_id."""
    found: dict[str, dict[str, Any]] = {}
    for block in as_dict(message).get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "action_id" in element:
                found[element["action_id"]] = element
    return found


def answer(bot: SlackBot, reply: SlackReply, timeout: float = 5.0) -> dict[str, Any]:
    """What the user was told: the ack body, or (when it was empty or promised an answer
    later, "Working on it…") the message posted to the request's response_url."""
    assert reply.status == 200, (reply.status, reply.body[:500])
    body = reply.json
    said = str(body.get("text") or "").strip()
    if said and not PENDING.match(said):
        return body
    return bot.fake.wait_for(lambda: bot.responses(reply), timeout=timeout)[-1]


def is_refusal(message: dict[str, Any]) -> bool:
    return str(message.get("text", "")).startswith(":warning:")


def settle(bot: SlackBot, seconds: float = 0.15) -> None:
    """Give listeners that run after the ack a moment to (wrongly) do something."""
    time.sleep(seconds)


def log_as(bot: SlackBot, team: str, text: str, user: str = SLACK_ADMIN, **kw: Any) -> SlackReply:
    """A command that must succeed (a setup step)."""
    reply = bot.command(text, team_id=team, user_id=user, **kw)
    shown = answer(bot, reply)
    assert not is_refusal(shown) and APOLOGY not in shown["text"], shown["text"]
    return reply


# =============================================================================================
# 1. Unsigned, forged, stale and replayed requests are refused with 401 and change nothing
# =============================================================================================

LOG_FORM = {
    "callback_id": "log_form",
    "private_metadata": json.dumps({"channel": "C0001", "user": SLACK_ADMIN}),
    "blocks": [
        {
            "type": "input",
            "block_id": "m:leads",
            "optional": True,
            "label": {"type": "plain_text", "text": "Leads"},
            "element": {"type": "number_input", "action_id": "value", "is_decimal_allowed": False},
        }
    ],
}


def _slash_command(bot: SlackBot, team: str, batch: str) -> bytes:
    return slackreq.slash_command_body(
        "log leads=99", team_id=team, response_url=bot.fake.new_response_url()
    )


def _undo_click(bot: SlackBot, team: str, batch: str) -> bytes:
    return slackreq.block_actions_body(
        "undo_last", batch, team_id=team, is_ephemeral=True,
        response_url=bot.fake.new_response_url(),
    )


def _log_form_submission(bot: SlackBot, team: str, batch: str) -> bytes:
    return slackreq.view_submission_body(LOG_FORM, {"m:leads": {"value": "99"}}, team_id=team)


def _home_opened_event(bot: SlackBot, team: str, batch: str) -> bytes:
    event = {"type": "app_home_opened", "user": SLACK_ADMIN, "channel": "D0001", "tab": "home"}
    return slackreq.event_body(event, team_id=team)


REQUESTS: dict[str, Callable[[SlackBot, str, str], bytes]] = {
    "slash-command": _slash_command,
    "undo-button": _undo_click,
    "log-form-submission": _log_form_submission,
    "app-home-event": _home_opened_event,
}


def _content_type(body: bytes) -> str:
    return slackreq.JSON_TYPE if body.startswith(b"{") else slackreq.FORM_TYPE


def _now() -> int:
    return int(time.time())


SIGNINGS: dict[str, Callable[[bytes], dict[str, str]]] = {
    "forged-wrong-secret": lambda body: slackreq.sign("not-the-signing-secret", body),
    "unsigned-no-headers": lambda body: {"Content-Type": _content_type(body)},
    "signature-without-timestamp": lambda body: {
        k: v
        for k, v in slackreq.sign(SIGNING_SECRET, body).items()
        if k != "X-Slack-Request-Timestamp"
    },
    "stale-just-over-5-minutes": lambda body: slackreq.sign(
        SIGNING_SECRET, body, timestamp=_now() - 301
    ),
    "replayed-as-captured-an-hour-ago": lambda body: slackreq.sign(
        SIGNING_SECRET, body, timestamp=_now() - 3600
    ),
    "replayed-with-a-fresh-timestamp": lambda body: {
        **slackreq.sign(SIGNING_SECRET, body, timestamp=_now() - 3600),
        "X-Slack-Request-Timestamp": str(_now()),
    },
    "from-6-minutes-in-the-future": lambda body: slackreq.sign(
        SIGNING_SECRET, body, timestamp=_now() + 360
    ),
}


def _logged_team(bot: SlackBot) -> tuple[str, str]:
    team = new_team()
    reply = log_as(bot, team, "log leads=7 spend=70")
    batch = buttons(answer(bot, reply))["undo_last"]["value"]
    bot.fake.reset()
    return team, batch


@pytest.fixture(scope="module")
def refused_team(bot: SlackBot) -> tuple[str, str]:
    """A workspace with one stored log (so an Undo has a target): (team, batch id).

    Shared by the refusal tests: a refused request changes nothing, so each finds it as is.
    """
    return _logged_team(bot)


@pytest.fixture
def logged_team(bot: SlackBot) -> tuple[str, str]:
    """Like refused_team, but fresh: for requests that are accepted and change it."""
    return _logged_team(bot)


@pytest.mark.parametrize("signing", list(SIGNINGS))
@pytest.mark.parametrize("kind", list(REQUESTS))
def test_a_badly_signed_request_gets_401_and_changes_nothing(
    bot: SlackBot, refused_team: tuple[str, str], kind: str, signing: str
) -> None:
    team, batch = refused_team
    body = REQUESTS[kind](bot, team, batch)
    before = db_state(bot.store, team)

    reply = bot.post(body, SIGNINGS[signing](body))

    assert reply.status == 401
    assert reply.json == {"error": "invalid request"}
    settle(bot)
    assert db_state(bot.store, team) == before
    assert bot.fake.calls == []


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_the_same_requests_properly_signed_are_accepted(
    bot: SlackBot, logged_team: tuple[str, str], kind: str
) -> None:
    """The control for the test above: its requests are refused for their signature alone."""
    team, batch = logged_team
    before = db_state(bot.store, team)

    reply = bot.post(REQUESTS[kind](bot, team, batch))

    assert reply.status == 200
    bot.fake.wait_for(
        lambda: db_state(bot.store, team) != before or bot.fake.calls_to("views.publish")
    )


# =============================================================================================
# 2. Who may do what: admin-only commands refuse everyone else and change nothing
# =============================================================================================


def channel_of(team: str) -> str:
    """Each test workspace posts in a channel of its own (the fake keeps files across tests)."""
    return f"C{team}"


@dataclass(frozen=True)
class Row:
    """One `/kpi` command in the authorization matrix.

    `text` is what follows `/kpi` (`{rule}` and `{token}` are the workspace's newest alert rule
    and API token ids);
    `succeeded(bot, team, user, reply)` asserts the command did its job; `refusal` is the start
    of the message a non-admin gets (admin-only commands only). `setup` runs first: as the same
    user for everyday commands (e.g. a log to undo), as the workspace admin for admin-only ones
    (e.g. a schedule that a member must not stop).
    """

    text: str
    succeeded: Callable[[SlackBot, str, str, SlackReply], None]
    refusal: str | None = None
    setup: str | None = None
    refusal_bug: str | None = None  # a known BUG: non-admins are not refused (strict xfail)
    setup_by_admin: bool = False  # the setup needs an admin although the command does not

    @property
    def word(self) -> str:
        return self.text.split()[0]

    @property
    def admin_only(self) -> bool:
        return self.refusal is not None

    def prepare(self, bot: SlackBot, team: str, user: str) -> None:
        if self.setup:
            by = SLACK_ADMIN if self.admin_only or self.setup_by_admin else user
            log_as(bot, team, self.setup, user=by, channel_id=channel_of(team))

    def send(self, bot: SlackBot, team: str, user: str) -> SlackReply:
        text = self.text.format(rule=_newest_rule(bot, team), token=_newest_token(bot, team))
        return bot.command(text, team_id=team, user_id=user, channel_id=channel_of(team))


def _newest_rule(bot: SlackBot, team: str) -> int | None:
    if "alert_rules" not in db_state(bot.store, team):
        return None
    with bot.store.engine.connect() as conn:
        query = text("SELECT max(id) FROM alert_rules WHERE workspace_id = :team")
        return conn.execute(query, {"team": team}).scalar()


def _newest_token(bot: SlackBot, team: str) -> int | None:
    with bot.store.engine.connect() as conn:
        query = text("SELECT max(id) FROM api_tokens WHERE workspace_id = :team")
        return conn.execute(query, {"team": team}).scalar()


def _rows_of(bot: SlackBot, team: str, table: str) -> list[str]:
    return db_state(bot.store, team).get(table, [])


def _shows(*needles: str) -> Callable[[SlackBot, str, str, SlackReply], None]:
    def check(bot: SlackBot, team: str, user: str, reply: SlackReply) -> None:
        shown = answer(bot, reply)
        assert not is_refusal(shown) and APOLOGY not in shown["text"], shown["text"]
        for needle in needles:
            assert needle in texts(shown), texts(shown)

    return check


def _and(
    shows: Callable[[SlackBot, str, str, SlackReply], None],
    stored: Callable[[SlackBot, str, str], bool],
) -> Callable[[SlackBot, str, str, SlackReply], None]:
    """The reply shows it, and the database holds it."""

    def check(bot: SlackBot, team: str, user: str, reply: SlackReply) -> None:
        shows(bot, team, user, reply)
        assert stored(bot, team, user)

    return check


def _charted(bot: SlackBot, team: str, user: str, reply: SlackReply) -> None:
    assert reply.status == 200
    (chart,) = bot.fake.wait_for(lambda f: f.uploaded_files(channel_of(team)), timeout=10)
    assert chart["name"].startswith("cpl-") and chart["name"].endswith(".png")


def _settings_opened(bot: SlackBot, team: str, user: str, reply: SlackReply) -> None:
    assert reply.status == 200
    call = bot.fake.wait_for(lambda f: [c for c in f.calls_to("views.open") if c.status])[-1]
    assert call.ok and as_dict(call.params["view"])["callback_id"] == "settings_form"


def _setup_opened(bot: SlackBot, team: str, user: str, reply: SlackReply) -> None:
    assert reply.status == 200
    call = bot.fake.wait_for(lambda f: [c for c in f.calls_to("views.open") if c.status])[-1]
    assert call.ok and as_dict(call.params["view"])["callback_id"] == "setup_form"


WHO_CAN = ("Workspace admins and owners", f"<@{SLACK_OPERATOR}>")
ALERT = "alert cpl > 20 daily"
MATRIX = [
    # everyday commands: anyone
    pytest.param(Row("log leads=3", _and(
        _shows("Stored for"),
        lambda bot, team, user: ("leads", 3.0, user)
        in {(e.metric, e.value, e.author) for e in bot.store.entries_between(team)},
    )), id="log"),
    pytest.param(Row("report", _shows("Cost per lead")), id="report"),
    pytest.param(Row("metrics", _shows("`leads`", "`spend`")), id="metrics"),
    pytest.param(Row("history", _shows(f"<@{SLACK_ADMIN}>")), id="history"),
    pytest.param(Row("undo", _and(
        _shows("Undone: bookings"),
        lambda bot, team, user: "bookings" not in {e.metric for e in bot.store.entries_between(team)},
    ), setup="log bookings=2"), id="undo"),
    pytest.param(Row("export", _and(
        _shows("Sent you `kpi-export-"),
        lambda bot, team, user: not bot.fake.uploaded_files(channel_of(team)) and any(
            bot.fake.uploaded_files(c.response["channel"]["id"])
            for c in bot.fake.calls_to("conversations.open") if c.params.get("users") == user),
    )), id="export"),
    pytest.param(Row("chart cpl 7d", _charted), id="chart"),
    pytest.param(Row("digest now daily", _and(
        _shows("Posted the daily digest"),
        lambda bot, team, user: bool(bot.fake.posted_messages(channel_of(team))),
    )), id="digest-now"),
    pytest.param(Row("alerts", _shows()), id="alerts"),
    pytest.param(Row("why cpl week", _shows("Why CPL moved")), id="why"),
    pytest.param(Row("whatif booking_rate=+10%", _shows("What if booking rate")), id="whatif"),
    pytest.param(Row("remind off", _and(
        _shows("No more reminders to log for you"),
        lambda bot, team, user: any(user in row for row in _rows_of(bot, team, "people")),
    )), id="remind-off-for-me"),
    pytest.param(Row("help", _shows("/kpi log")), id="help"),
    pytest.param(Row("goals", _shows("No goals yet")), id="goals"),
    pytest.param(Row("sources", _shows("No entry has a source yet")), id="sources"),
    pytest.param(Row("track", _shows("Tracking the", "`leads`")), id="track-list"),
    # settings, definitions, schedules, alert rules and goals: admins only
    pytest.param(Row("define lead_value = spend / leads", _and(
        _shows("Defined `lead_value`"),
        lambda bot, team, user: "lead_value" in bot.store.catalogue(team).kpis,
    ), "Only admins can define KPIs"), id="define"),
    pytest.param(Row("metric add add_to_carts count sum Add to carts", _and(
        _shows("Added the metric `add_to_carts`"),
        lambda bot, team, user: "add_to_carts" in bot.store.catalogue(team).metrics,
    ), "Only admins can add metrics"), id="metric-add"),
    pytest.param(Row("metric remove add_to_carts", _and(
        _shows("Removed the metric `add_to_carts`"),
        lambda bot, team, user: "add_to_carts" not in bot.store.catalogue(team).metrics,
    ), "Only admins can remove metrics", setup="metric add add_to_carts"), id="metric-remove"),
    pytest.param(Row("dimensions", _shows("*Dimensions*", "`source`")), id="dimensions"),
    pytest.param(Row("dimension add temperature warm cold", _and(
        _shows("Added the dimension `temperature`"),
        lambda bot, team, user: "temperature" in bot.store.catalogue(team).dimension_names,
    ), "Only admins can add dimensions"), id="dimension-add"),
    pytest.param(Row("dimension remove temperature", _and(
        _shows("Removed the dimension `temperature`"),
        lambda bot, team, user: "temperature" not in bot.store.catalogue(team).dimension_names,
    ), "Only admins can remove dimensions", setup="dimension add temperature warm cold"),
        id="dimension-remove"),
    pytest.param(Row("source tiktok organic", _and(
        _shows("`source=tiktok` counts as organic"),
        lambda bot, team, user: len(_rows_of(bot, team, "source_classes")) == 1,
    ), "Only admins can classify sources"), id="source"),
    pytest.param(Row("tz Europe/Madrid", _and(
        _shows("Time zone set to `Europe/Madrid`"),
        lambda bot, team, user: getattr(bot.store.workspace(team), "timezone", "")
        == "Europe/Madrid",
    ), "Only admins can change the time zone"), id="tz"),
    pytest.param(Row("settings", _settings_opened, "Only admins can change settings"), id="settings"),
    pytest.param(Row("digest weekly monday 09:00", _and(
        _shows("The weekly digest will be posted in"),
        lambda bot, team, user: len(_rows_of(bot, team, "subscriptions")) == 1,
    ), "Only admins can schedule digests"), id="digest-schedule"),
    pytest.param(Row("digest off", _and(
        _shows("Stopped the digests in this channel"),
        lambda bot, team, user: _rows_of(bot, team, "subscriptions") == [],
    ), "Only admins can stop digests", setup="digest daily 08:30"), id="digest-off"),
    pytest.param(Row(ALERT, _and(
        _shows("added"), lambda bot, team, user: len(_rows_of(bot, team, "alert_rules")) == 1,
    ), "Only admins can add alert rules"), id="alert-add"),
    pytest.param(Row("alert remove {rule}", _and(
        _shows("removed"), lambda bot, team, user: _rows_of(bot, team, "alert_rules") == [],
    ), "Only admins can remove alert rules", setup=ALERT), id="alert-remove"),
    # Anyone may snooze: the alert message's Snooze buttons are for the people in the channel.
    pytest.param(Row("alert snooze {rule} 2h", _shows("is snoozed until"), setup=ALERT,
                     setup_by_admin=True), id="alert-snooze"),
    pytest.param(Row("remind 16:45", _and(
        _shows("16:45"), lambda bot, team, user: "'16:45'" in str(_rows_of(bot, team, "workspaces")),
    ), "Only admins can change the reminder time"), id="remind-time"),
    pytest.param(Row("goal leads 500 monthly", _and(
        _shows("Goal set"), lambda bot, team, user: len(_rows_of(bot, team, "goals")) == 1,
    ), "Only admins can set goals"), id="goal"),
    pytest.param(Row("goal remove leads", _and(
        _shows("Removed the monthly goal"), lambda bot, team, user: _rows_of(bot, team, "goals") == [],
    ), "Only admins can remove goals", setup="goal leads 500 monthly"), id="goal-remove"),
    pytest.param(Row("track leads spend", _and(
        _shows("Tracking 2 metrics"),
        lambda bot, team, user: getattr(bot.store.workspace(team), "tracked", ()) == ("leads", "spend"),
    ), "Only admins can choose the tracked metrics"), id="track"),
    pytest.param(Row("setup", _setup_opened, "Only admins can set up the workspace"), id="setup"),
    pytest.param(Row("token create zapier", _and(
        _shows("shown only now", "kpi_"),
        lambda bot, team, user: [t.name for t in bot.store.tokens(team)] == ["zapier"],
    ), "Only admins can manage API tokens"), id="token-create"),
    pytest.param(Row("token list", _shows("#", "`old`", "active"),
                     "Only admins can manage API tokens", setup="token create old"), id="token-list"),
    pytest.param(Row("token revoke {token}", _and(
        _shows("Revoked token"),
        lambda bot, team, user: [t.revoked_at is not None for t in bot.store.tokens(team)] == [True],
    ), "Only admins can manage API tokens", setup="token create old"), id="token-revoke"),
]
ANYONE = [p for p in MATRIX if not p.values[0].admin_only]
ADMIN_ONLY = [p for p in MATRIX if p.values[0].admin_only]
ADMINS = {
    "workspace-admin": SLACK_ADMIN,
    "workspace-owner": SLACK_OWNER,
    "named-in-KPIBOT_ADMINS": SLACK_OPERATOR,
}


def expect_known_bug(request: pytest.FixtureRequest, row: Row) -> None:
    if row.refusal_bug:
        request.applymarker(pytest.mark.xfail(strict=True, reason=row.refusal_bug))


def test_every_command_has_a_row_in_the_matrix() -> None:
    """A new `/kpi` command fails this until it gets a row saying who may use it."""
    assert {p.values[0].word for p in MATRIX} == set(COMMANDS)


#: command types no matrix text spells: forms and their submissions, with who may use them
NOT_IN_MATRIX: dict[type, tuple[g.Command, bool]] = {
    g.LogForm: (g.LogForm(), False),
    g.AlertForm: (g.AlertForm(), True),
    g.WhatIfForm: (g.WhatIfForm(), False),
    g.SaveSettings: (g.SaveSettings(packs=("marketing",), timezone="UTC", currency="USD"), True),
    # a history line's Edit and Delete: one's own entries, admins anyone's (entries._entry)
    g.EditEntry: (g.EditEntry(change_id=1), False),
    g.SaveEntry: (g.SaveEntry(change_id=1, value="1"), False),
    g.DeleteEntry: (g.DeleteEntry(change_id=1), False),
}


@pytest.mark.parametrize("row", [p.values[0] for p in MATRIX], ids=[p.id for p in MATRIX])
def test_the_registry_declares_who_may_use_each_command(row: Row) -> None:
    """The one admin rule (the registry's declaration) is the rule the matrix tests."""
    assert (spec_for(parse_command(row.text.format(rule=1, token=1))).admin is not None) == row.admin_only


def test_every_command_type_is_judged_by_the_matrix_or_declared_here() -> None:
    """A new command type fails this until it gets a matrix row (or a line above)."""
    judged = {type(parse_command(p.values[0].text.format(rule=1, token=1))) for p in MATRIX}
    assert judged | set(NOT_IN_MATRIX) == set(get_args(g.Command))
    for sample, admin_only in NOT_IN_MATRIX.values():
        assert (spec_for(sample).admin is not None) == admin_only


@pytest.fixture
def team_with_numbers(bot: SlackBot) -> str:
    """A workspace where the admin logged numbers today and a week ago."""
    team = new_team()
    log_as(bot, team, "log leads=10 spend=500")
    log_as(bot, team, "log leads=5 spend=400 date=2026-03-04")
    bot.fake.reset()
    return team


@pytest.mark.parametrize("row", ANYONE)
def test_a_plain_member_may_use_everyday_commands(
    bot: SlackBot, team_with_numbers: str, row: Row
) -> None:
    team = team_with_numbers
    row.prepare(bot, team, SLACK_MEMBER)

    reply = row.send(bot, team, SLACK_MEMBER)

    row.succeeded(bot, team, SLACK_MEMBER, reply)
    everything_said = reply.body.decode() + json.dumps(bot.responses(reply))
    assert "Only admins" not in everything_said


@pytest.mark.parametrize("row", ADMIN_ONLY)
def test_an_admin_only_command_refuses_a_member_naming_who_can(
    bot: SlackBot, team_with_numbers: str, row: Row, request: pytest.FixtureRequest
) -> None:
    expect_known_bug(request, row)
    team = team_with_numbers
    row.prepare(bot, team, SLACK_MEMBER)
    bot.fake.reset()
    before = db_state(bot.store, team)

    reply = row.send(bot, team, SLACK_MEMBER)

    shown = answer(bot, reply)
    assert is_refusal(shown)
    assert row.refusal and shown["text"].startswith(f":warning: {row.refusal}")
    for who in WHO_CAN:
        assert who in shown["text"]
    settle(bot)
    assert db_state(bot.store, team) == before
    assert bot.fake.calls_to("views.open") == []
    # this team's channel only: an earlier case's alert, debounced, may still post in its own
    assert [c for c in bot.fake.calls_to("chat.postMessage")
            if c.params.get("channel") == channel_of(team)] == []


@pytest.mark.parametrize("admin", list(ADMINS))
@pytest.mark.parametrize("row", ADMIN_ONLY)
def test_an_admin_only_command_works_for_admins_owners_and_kpibot_admins(
    bot: SlackBot, team_with_numbers: str, row: Row, admin: str
) -> None:
    row.prepare(bot, team_with_numbers, ADMINS[admin])

    reply = row.send(bot, team_with_numbers, ADMINS[admin])

    row.succeeded(bot, team_with_numbers, ADMINS[admin], reply)


@pytest.mark.parametrize("row", ADMIN_ONLY)
def test_when_users_info_fails_an_admin_only_command_fails_closed(
    bot: SlackBot, team_with_numbers: str, row: Row, request: pytest.FixtureRequest
) -> None:
    """Who is an admin comes from users.info; when Slack can't say, nobody is one.

    (The owner asks: the admin's answer is cached from the setup.)"""
    expect_known_bug(request, row)
    row.prepare(bot, team_with_numbers, SLACK_ADMIN)
    bot.fake.reset()
    bot.fake.error("users.info", "ratelimited", times=5)
    before = db_state(bot.store, team_with_numbers)

    reply = row.send(bot, team_with_numbers, SLACK_OWNER)

    shown = answer(bot, reply)
    assert row.refusal and shown["text"].startswith(f":warning: {row.refusal}")
    settle(bot)
    assert db_state(bot.store, team_with_numbers) == before
    assert bot.fake.calls_to("views.open") == []


def _settings_view(bot: SlackBot, team: str) -> dict[str, Any]:
    """The settings form as views.open returned it to an admin."""
    bot.command("settings", team_id=team, user_id=SLACK_ADMIN)
    call = bot.fake.wait_for(lambda f: [c for c in f.calls_to("views.open") if c.status])[-1]
    assert call.ok
    return dict(call.response["view"])


def test_a_member_submitting_the_settings_form_is_refused_on_the_form(
    bot: SlackBot, team_with_numbers: str
) -> None:
    team = team_with_numbers
    view = _settings_view(bot, team)
    before = db_state(bot.store, team)

    reply = bot.submit(
        view,
        {
            "packs": {"value": ["finance"]},
            "currency": {"value": "EUR"},
            "timezone": {"value": "Europe/Madrid"},
        },
        team_id=team,
        user_id=SLACK_MEMBER,
    )

    assert reply.status == 200
    body = reply.json
    assert body["response_action"] == "errors"
    shown = " ".join(body["errors"].values())
    assert "Only admins can change settings" in shown
    assert all(who in shown for who in WHO_CAN)
    settle(bot)
    assert db_state(bot.store, team) == before


def test_a_member_clicking_a_settings_button_gets_told_and_no_form(
    bot: SlackBot, team_with_numbers: str
) -> None:
    team = team_with_numbers
    home = {"type": "home", "blocks": [], "callback_id": ""}
    before = db_state(bot.store, team)

    reply = bot.action(
        "open_settings", block_id="admin", view=home, team_id=team, user_id=SLACK_MEMBER
    )

    assert reply.status == 200
    told = bot.fake.wait_for(lambda f: f.posted_messages(SLACK_MEMBER))[-1]
    assert "Only admins can change settings" in told["text"]
    assert bot.fake.calls_to("views.open") == []
    assert db_state(bot.store, team) == before


# =============================================================================================
# 3. Two workspaces on one bot never see or touch each other's numbers
# =============================================================================================

T1_MARKERS = ("777", "4,242", "4242", "secret-campaign", "t1_secret_kpi", "5.46")


@dataclass(frozen=True)
class Teams:
    t1: str
    t2: str
    t1_batch: str


def _two_teams(bot: SlackBot) -> Teams:
    t1, t2 = new_team("TONE"), new_team("TTWO")
    reply = log_as(bot, t1, "log leads=777 spend=4242 source=secret-campaign")
    batch = buttons(answer(bot, reply))["undo_last"]["value"]
    log_as(bot, t1, "define t1_secret_kpi = spend / leads")
    log_as(bot, t2, "log leads=3 spend=90", user=SLACK_OTHER_TEAM_USER, channel_id="C0100")
    bot.fake.reset()
    return Teams(t1, t2, batch)


@pytest.fixture(scope="module")
def teams(bot: SlackBot) -> Teams:
    """T1's admin logged distinctive numbers and a custom KPI; T2's admin logged its own.

    Shared by the tests that only read, or must change nothing."""
    return _two_teams(bot)


@pytest.fixture
def fresh_teams(bot: SlackBot) -> Teams:
    """Like `teams`, for a test that changes T2."""
    return _two_teams(bot)


def _states(bot: SlackBot, teams: Teams) -> tuple[dict[str, list[str]], ...]:
    return db_state(bot.store, teams.t1), db_state(bot.store, teams.t2)


def _t1_rows(bot: SlackBot, team: str) -> tuple[Any, ...]:
    return (
        sorted(map(repr, bot.store.entries_between(team))),
        sorted(map(repr, bot.store.history(team, None, 1000))),
        sorted(bot.store.catalogue(team).kpis),
    )


def _see_report(bot: SlackBot, team: str, user: str) -> str:
    answered = answer(bot, bot.command("report", team_id=team, user_id=user))
    assert row_of(answered, "Cost per lead")[0] == "$30.00"
    return texts(answered)


def _see_history(bot: SlackBot, team: str, user: str) -> str:
    shown = texts(answer(bot, bot.command("history", team_id=team, user_id=user)))
    assert f"<@{SLACK_OTHER_TEAM_USER}>" in shown
    return shown


def _see_export(bot: SlackBot, team: str, user: str) -> str:
    bot.command("export", team_id=team, user_id=user, channel_id=f"C{team}")
    (opened,) = bot.fake.wait_for(lambda f: [c for c in f.calls_to("conversations.open")
                                             if c.params.get("users") == user and c.response])
    (shared,) = bot.fake.wait_for(lambda f: f.uploaded_files(opened.response["channel"]["id"]))
    content = bot.fake.uploads[shared["id"]].decode()
    rows = [r[:4] for r in csv.reader(io.StringIO(content))][1:]
    assert rows == [
        ["2026-03-11", "leads", "3", SLACK_OTHER_TEAM_USER],
        ["2026-03-11", "spend", "90", SLACK_OTHER_TEAM_USER],
    ]
    return content


def _see_metrics(bot: SlackBot, team: str, user: str) -> str:
    shown = texts(answer(bot, bot.command("metrics", team_id=team, user_id=user)))
    assert "`leads`" in shown
    return shown


def _see_home(bot: SlackBot, team: str, user: str) -> str:
    event = {"type": "app_home_opened", "user": user, "channel": "D0100", "tab": "home"}
    published = len(bot.fake.calls_to("views.publish"))
    assert bot.event(event, team_id=team).status == 200
    call = bot.fake.wait_for(
        lambda f: [c for c in f.calls_to("views.publish")[published:] if c.params["user_id"] == user]
    )[-1]
    assert call.ok
    shown = texts(as_dict(call.params["view"]))
    assert "*Cost per lead*: $30.00" in shown
    return shown


T2_VIEWS = {
    "report": _see_report,
    "history": _see_history,
    "export": _see_export,
    "metrics": _see_metrics,
    "app-home": _see_home,
}


@pytest.mark.parametrize("surface", list(T2_VIEWS))
def test_another_workspace_never_sees_t1_numbers(
    bot: SlackBot, teams: Teams, surface: str
) -> None:
    shown = T2_VIEWS[surface](bot, teams.t2, SLACK_OTHER_TEAM_USER)

    for marker in T1_MARKERS:
        assert marker not in shown, (marker, shown)
    assert SLACK_ADMIN not in shown


def test_the_same_user_id_in_another_workspace_sees_only_that_workspace(
    bot: SlackBot, teams: Teams
) -> None:
    """Enterprise Grid user ids are global: U0001 of T1 acting in T2 sees T2's numbers only."""
    answered = answer(bot, bot.command("report", team_id=teams.t2, user_id=SLACK_ADMIN))
    shown = texts(answered)
    history = texts(answer(bot, bot.command("history", team_id=teams.t2, user_id=SLACK_ADMIN)))

    assert row_of(answered, "Cost per lead")[0] == "$30.00"
    for marker in T1_MARKERS:
        assert marker not in shown and marker not in history
    assert f"<@{SLACK_ADMIN}>" not in history


def test_a_t1_kpi_name_is_unknown_in_t2(bot: SlackBot, teams: Teams) -> None:
    shown = answer(bot, bot.command("report week t1_secret_kpi", team_id=teams.t2))

    assert is_refusal(shown) and "I don't know a KPI or metric called `t1_secret_kpi`" in shown["text"]


@pytest.mark.parametrize("user", [SLACK_OTHER_TEAM_USER, SLACK_ADMIN], ids=["t2-admin", "same-id"])
def test_undo_in_t2_never_undoes_t1(bot: SlackBot, fresh_teams: Teams, user: str) -> None:
    teams = fresh_teams
    t1_before = _t1_rows(bot, teams.t1)

    shown = answer(bot, bot.command("undo", team_id=teams.t2, user_id=user))

    assert _t1_rows(bot, teams.t1) == t1_before
    if user == SLACK_OTHER_TEAM_USER:  # undid its own T2 log
        assert "Undone:" in shown["text"] and bot.store.entries_between(teams.t2) == []
    else:
        assert is_refusal(shown) and "nothing of yours to undo" in shown["text"]


@pytest.mark.parametrize("user", [SLACK_OTHER_TEAM_USER, SLACK_ADMIN], ids=["t2-admin", "same-id"])
def test_a_forged_undo_button_naming_a_t1_batch_changes_nothing(
    bot: SlackBot, teams: Teams, user: str
) -> None:
    before = _states(bot, teams)

    click = bot.action(
        "undo_last", teams.t1_batch, team_id=teams.t2, user_id=user, is_ephemeral=True
    )

    shown = answer(bot, click)
    assert is_refusal(shown) and "already undone (or was logged by someone else)" in shown["text"]
    assert _states(bot, teams) == before
    assert "777" not in texts(shown)


def test_an_undo_button_with_a_made_up_batch_id_changes_nothing(
    bot: SlackBot, teams: Teams
) -> None:
    before = _states(bot, teams)

    for forged in ("' OR 1=1 --", "%", "*", "0" * 36, "x" * 2000):
        click = bot.action("undo_last", forged, team_id=teams.t1, is_ephemeral=True)
        assert is_refusal(answer(bot, click))

    assert _states(bot, teams) == before


# =============================================================================================
# 4. No secret in any log line, whatever happens
# =============================================================================================

SECRET_SHAPES = re.compile(r"xox[a-z]-|xapp-")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, self.format(record)))


@contextlib.contextmanager
def every_log_line_at_debug() -> Iterator[_Capture]:
    """Every logger (ours, Bolt, slack_sdk, waitress, SQLAlchemy...) at DEBUG, into one list."""
    capture = _Capture()
    root = logging.getLogger()
    loggers = [root] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    levels = {lg: lg.level for lg in loggers}
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root.addHandler(capture)
    # Loggers that don't propagate to the root still get the capture.
    detached = [lg for lg in loggers if lg is not root and not lg.propagate]
    for lg in detached:
        lg.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for lg in detached:
            lg.removeHandler(capture)
        for lg, level in levels.items():
            lg.setLevel(level)


def test_no_token_or_signing_secret_reaches_any_log_line(bot: SlackBot) -> None:
    team = new_team()
    fake = bot.fake
    with every_log_line_at_debug() as capture:
        fake.error("users.info", "invalid_auth")  # a new workspace's first users.info fails
        log_as(bot, team, "log leads=12 spend=300")
        log_as(bot, team, "report")
        assert is_refusal(answer(bot, bot.command("reprot", team_id=team)))
        fake.fail("views.open", status=500)  # the log form cannot open
        opened = bot.command("log", team_id=team)
        answer(bot, opened)
        fake.error("files.getUploadURLExternal", "invalid_auth")  # the export cannot upload
        answer(bot, bot.command("export", team_id=team))
        forged = slackreq.slash_command_body("log leads=1", team_id=team)
        assert bot.post(forged, slackreq.sign("wrong-secret", forged)).status == 401
        event = {"type": "app_home_opened", "user": SLACK_ADMIN, "channel": "D0001"}
        fake.error("views.publish", "invalid_auth")
        bot.event(event, team_id=team)
        fake.wait_for(lambda f: f.calls_to("views.publish"))
        settle(bot, 0.3)

    assert all(
        any(c.faulted for c in fake.calls_to(m))
        for m in ("users.info", "views.open", "files.getUploadURLExternal", "views.publish")
    )
    names = {name for name, _ in capture.lines}
    assert any(n.startswith("kpibot") for n in names), names
    assert any(n.startswith("slack_sdk") for n in names), names
    leaks = [
        line
        for _, line in capture.lines
        if BOT_TOKEN in line or SIGNING_SECRET in line or SECRET_SHAPES.search(line)
    ]
    assert leaks == []
    # Nor in any message: the token travels only in the Authorization header.
    sent = [(c.method, c.body.decode("utf-8", "replace")) for c in fake.calls]
    assert [m for m, body in sent if BOT_TOKEN in body or SIGNING_SECRET in body] == []


def test_alert_rules_goals_and_digests_stay_in_their_workspace(bot: SlackBot, fresh_teams: Teams) -> None:
    t1, t2 = fresh_teams.t1, fresh_teams.t2
    log_as(bot, t1, "alert cpl > 1 daily", channel_id=f"C{t1}")
    log_as(bot, t1, "goal leads 777 monthly", channel_id=f"C{t1}")
    [rule] = bot.store.rules(t1)
    t2_admin = {"team_id": t2, "user_id": SLACK_OTHER_TEAM_USER, "channel_id": "C0100"}

    listed = texts(answer(bot, bot.command("alerts", **t2_admin)))
    removed = texts(answer(bot, bot.command(f"alert remove {rule.id}", **t2_admin)))
    snoozed = texts(answer(bot, bot.command(f"alert snooze {rule.id} 1d", **t2_admin)))
    report = texts(answer(bot, bot.command("report month", **t2_admin)))
    why = texts(answer(bot, bot.command("why cpl today", **t2_admin)))

    assert "No alert rules yet" in listed
    assert f"no alert #{rule.id} in this workspace" in removed
    assert f"no alert #{rule.id} in this workspace" in snoozed
    assert bot.store.rules(t1) == [rule]  # untouched
    for shown in (listed, report, why):
        for marker in T1_MARKERS:
            assert marker not in shown, (marker, shown)

    before = len(bot.fake.messages_in("C0100"))
    bot.command("digest now daily", **t2_admin)
    digest = bot.fake.wait_for(lambda f: f.messages_in("C0100")[before:])[-1]
    shown = texts(digest)
    for marker in T1_MARKERS:
        assert marker not in shown, (marker, shown)


def test_a_chart_in_another_workspace_draws_only_its_numbers(bot: SlackBot, teams: Teams) -> None:
    """The PNG can't be read back as text, so the test checks what it was drawn from (the same
    use case the command calls), then that the command uploaded it to T2's channel only."""
    ctx = open_context(bot.store, teams.t2, SLACK_OTHER_TEAM_USER, SLACK_NOW)
    trend = chart_trend(ctx, "cpl", Period.rolling(30, ctx.today))
    drawn = [value for _, value in trend.points if value is not None]
    assert drawn == [30.0]  # T2's 90 / 3; T1's 4242 / 777 = 5.46 is not there

    before = len(bot.fake.uploaded_files())
    bot.command("chart cpl 30d", team_id=teams.t2, user_id=SLACK_OTHER_TEAM_USER, channel_id="C0100")
    uploads = bot.fake.wait_for(lambda f: f.uploaded_files()[before:])
    assert [u["channels"] for u in uploads] == [["C0100"]]
