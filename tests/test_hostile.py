"""Hostile input, end to end: whatever anyone types or submits, the bot answers and stores nothing bad.

Generated `/kpi` texts and log-form submissions go through the real HTTP endpoint, signed as
Slack signs them, to one bot serving the whole module (see tests/test_security.py for the
harness). The contract (interface.md): every request is acknowledged within 3 s with an answer,
never a 5xx or a stack trace; a refusal names the problem and stores nothing; formulas are
arithmetic only.

`KPIBOT_FUZZ_EXAMPLES` sets the number of generated examples per property (default 200;
`make fuzz` runs 10,000).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import entries
from bot.app.context import open_context
from bot.grammar import COMMANDS
from storage.repository import Write
from tests import slackreq
from tests.conftest import SLACK_ADMIN, SLACK_NOW, SlackBot, SlackReply
from tests.fakeslack import block_kit_problems
from tests.test_security import (
    APOLOGY,
    PENDING,
    as_dict,
    clean_fake,
    db_state,
    is_refusal,
    log_as,
    new_team,
    running_bot,
    texts,
)

EXAMPLES = int(os.environ.get("KPIBOT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ACK_SECONDS = 3.0
# pyproject's 300 s per-test timeout is for ordinary tests; a long fuzz run gets ~0.3 s an example.
FUZZ_TIMEOUT = pytest.mark.timeout(max(300, int(EXAMPLES * 0.3)))


def next_example(bot: SlackBot) -> None:
    """The previous example broke no Block Kit limit and crashed nothing; forget its calls."""
    assert bot.fake.violations == [], bot.fake.violations
    assert bot.fake.server_errors == [], bot.fake.server_errors
    bot.fake.reset()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlackBot]:
    with running_bot(tmp_path_factory.mktemp("hostile") / "kpibot.db") as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_fake(bot: SlackBot) -> Iterator[None]:
    with clean_fake(bot):
        yield


@pytest.fixture(scope="module")
def team(bot: SlackBot) -> str:
    """A workspace that exists and has numbers, so every command reaches its real work."""
    team = new_team("THOST")
    log_as(bot, team, "log leads=10 spend=500 bookings=4")
    return team


class FuzzTeams:
    """Workspaces for generated examples, each starting from the same seeded numbers.

    An example gets the current workspace; one that changed it (a successful log, define,
    tz, undo) retires it, so the next example starts fresh and no stored value carries over.
    """

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot
        self.numbers = itertools.count(1)
        self.current: str | None = None
        self.pristine: dict[str, list[str]] = {}

    def take(self) -> str:
        if self.current is None:
            team = f"TFUZZ{next(self.numbers):06d}"
            store = self.bot.store
            ctx = open_context(store, team, SLACK_ADMIN, SLACK_NOW, timezone="America/New_York")
            entries.log_numbers(ctx, [("leads", "10"), ("spend", "500"), ("bookings", "4")])
            self.current, self.pristine = team, db_state(store, team)
        return self.current

    def changed(self) -> bool:
        """Whether the last example changed its workspace (then it is retired)."""
        assert self.current is not None
        if db_state(self.bot.store, self.current) == self.pristine:
            return False
        self.current = None
        return True


@pytest.fixture(scope="module")
def fuzz_teams(bot: SlackBot) -> FuzzTeams:
    return FuzzTeams(bot)


class _Crashes(logging.Handler):
    """The exception behind each "error id=..." the bot logged, so an apology can be explained."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.by_id: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"error id=(\w+)", record.getMessage())
        if found and record.exc_info:
            self.by_id[found.group(1)] = logging.Formatter().formatException(record.exc_info)


@pytest.fixture(scope="module")
def crashes() -> Iterator[_Crashes]:
    handler = _Crashes()
    logger = logging.getLogger("kpibot")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# -- what the user got back ---------------------------------------------------------------------


def outcome(bot: SlackBot, reply: SlackReply, trigger: str, timeout: float = 10.0) -> Any:
    """The answer to a command: a message (the ack, or a response_url post when the ack was
    empty or "Drawing the chart…"), the form it opened, or the file it uploaded (a chart)."""
    assert reply.status == 200, (reply.status, reply.body[:300])
    body = reply.json
    said = str(body.get("text") or "").strip()
    if said and not PENDING.match(said):
        return body

    def arrived() -> Any:
        posts = bot.responses(reply)
        if posts:
            return posts[-1]
        opened = [
            c for c in bot.fake.calls_to("views.open") if c.params.get("trigger_id") == trigger
        ]
        if opened:
            return {"opened": as_dict(opened[0].params["view"])}
        uploads = [c for c in bot.fake.calls_to("files.completeUploadExternal") if c.ok]
        return {"uploaded": uploads[0].params} if uploads else None

    return bot.fake.wait_for(arrived, timeout=timeout)


def assert_polite(message: dict[str, Any]) -> str:
    """A real text within Slack's Block Kit limits; no apology for a crash, no traceback."""
    shown = texts(message)
    assert str(message.get("text") or "").strip(), message
    assert block_kit_problems(message, "message") == []
    assert APOLOGY not in shown, shown
    assert "Traceback" not in shown and 'File "' not in shown, shown
    return shown


def send(bot: SlackBot, team: str, text: str, user: str = SLACK_ADMIN) -> tuple[SlackReply, Any]:
    trigger = slackreq.new_trigger_id()
    reply = bot.command(text, team_id=team, user_id=user, trigger_id=trigger)
    assert reply.seconds < ACK_SECONDS, reply.seconds
    return reply, outcome(bot, reply, trigger)


# =============================================================================================
# 1. Any command text: a 200 ack with an answer; a refusal stores nothing
# =============================================================================================

FRAGMENTS = (
    *COMMANDS,
    "log leads=", "leads=", "spend=", "bookings=", "cpl=", "=", "==", "date=", "source=", "rep=",
    "campaign=", "product=", "1e309", "-1e309", "1e-400", "nan", "NaN", "inf", "-inf", "Infinity",
    "-5", "-0", "0", "007", "1.5k", "2m", "3b", "$1,234", "1,2,3", "12%", "150%", "€-3", "1" * 40,
    "9" * 400, "2026-02-30", "2026-13-01", "0000-00-00", "9999-12-31", "2026-03-12", "1970-01-01",
    "today", "yesterday", "tomorrow", "..", "2026-03-01..2026-02-01", "2025-01-01..2026-03-11",
    "7d", "0d", "366d", "367d", "999999999d", "week", "last-month", "\x00", "\x1b[31m", "\r\n",
    "\t", "\u202e", "\u200b", "\ufeff", "\U0001f4a9", "&lt;", "&amp;", "&gt;", "<@U0002>",
    "<!channel>", "<#C0001|general>", "'", '"', "`", "\\", "(", ")", "*", "/", "%s", "{0}",
    "${x}", "__import__('os')", "' OR 1=1 --", "DROP TABLE entries;", "America/New_York",
    "Etc/GMT+12", "../../etc/passwd", "Mars/Olympus", "x = y", "a = b / c", ">", ">=", "for 2",
    "now", "daily", "09:00", "25:61",
)
fragment = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(repr),
    st.integers(min_value=100, max_value=5000).map(lambda n: "9" * n),
    st.text(min_size=50, max_size=300),
)
command_texts = st.one_of(
    st.text(max_size=200),
    st.lists(fragment, max_size=10).map(" ".join),
    st.lists(fragment, max_size=10).map("".join),
    st.tuples(st.sampled_from(COMMANDS), st.lists(fragment, max_size=8)).map(
        lambda t: " ".join([t[0], *t[1]])
    ),
)


@FUZZ_TIMEOUT
@FUZZ
@given(text=command_texts)
def test_any_command_text_gets_an_answer_and_a_refusal_stores_nothing(
    bot: SlackBot, fuzz_teams: FuzzTeams, crashes: _Crashes, text: str
) -> None:
    next_example(bot)
    team = fuzz_teams.take()

    _, got = send(bot, team, text)

    changed = fuzz_teams.changed()
    if "opened" in got:  # `/kpi`, `/kpi log`, `/kpi settings`...: the form is the answer
        assert got["opened"]["type"] == "modal" and got["opened"]["callback_id"]
        return
    if "uploaded" in got:  # `/kpi chart ...`: the chart is the answer
        return
    assert_polite(got)
    assert not (is_refusal(got) and changed), (text, got["text"])


# =============================================================================================
# 2. Any log-form submission: errors on the fields, or stored; never a 5xx
# =============================================================================================


@pytest.fixture(scope="module")
def log_form(bot: SlackBot, team: str) -> dict[str, Any]:
    """The log form as views.open returned it."""
    trigger = slackreq.new_trigger_id()
    bot.command("log", team_id=team, trigger_id=trigger)
    call = bot.fake.wait_for(
        lambda f: [c for c in f.calls_to("views.open") if c.params.get("trigger_id") == trigger]
    )[0]
    assert call.ok
    return dict(call.response["view"])


NUMBERISH = (
    "12", "1,234.5", "$1,234", "1.5k", "2m", "12%", "0", "-3", "2.5", "1e309", "nan", "inf",
    "-inf", "1e-320", "9" * 39, "9" * 41, "", " ", "\x00", "１２", "٣", "½", "1_000", "0x10",
)
field_value = st.one_of(
    st.none(), st.sampled_from(NUMBERISH), st.text(max_size=30), st.floats().map(repr)
)
day_value = st.one_of(
    st.none(),
    st.sampled_from(
        ["2026-03-11", "2026-03-10", "2026-02-30", "2026-03-12", "0001-01-01", "9999-12-31",
         "today", "yesterday", "", "2026-3-1", "11/03/2026"]
    ),
    st.text(max_size=20),
)


@st.composite
def form_values(draw: st.DrawFn, metric_blocks: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {"day": {"value": draw(day_value)}}
    for block_id in draw(st.lists(st.sampled_from(metric_blocks), unique=True, max_size=6)):
        values[block_id] = {"value": draw(field_value)}
    for block_id in ("d:source", "d:campaign", "d:rep"):
        if draw(st.booleans()):
            values[block_id] = {"value": draw(st.one_of(st.text(max_size=80), st.just("U0002")))}
    if draw(st.booleans()):  # a field the form never had, as a forged state would carry
        name = draw(st.one_of(st.sampled_from(["cpl", "nope", "LEADS", ""]), st.text(max_size=8)))
        values[f"m:{name}"] = {"value": draw(field_value)}
    return values


def test_the_log_form_has_the_fields_the_fuzzer_fills(log_form: dict[str, Any]) -> None:
    ids = [b["block_id"] for b in log_form["blocks"]]
    assert ids[0] == "day" and {"m:leads", "m:spend", "d:source", "d:rep", "d:campaign"} <= set(ids)


@FUZZ_TIMEOUT
@FUZZ
@given(data=st.data())
def test_any_log_form_submission_gets_field_errors_or_is_stored(
    bot: SlackBot,
    fuzz_teams: FuzzTeams,
    crashes: _Crashes,
    log_form: dict[str, Any],
    data: st.DataObject,
) -> None:
    form_blocks = {b["block_id"] for b in log_form["blocks"]}
    values = data.draw(form_values(sorted(b for b in form_blocks if b.startswith("m:"))))
    next_example(bot)
    team = fuzz_teams.take()
    told_before = len(bot.fake.calls_to("chat.postEphemeral"))

    reply = bot.submit(log_form, values, team_id=team)

    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.seconds < ACK_SECONDS
    body = reply.json
    if body:
        assert body["response_action"] == "errors"
        errors = body["errors"]
        assert errors and set(errors) <= form_blocks | set(values), errors
        for message in errors.values():
            assert isinstance(message, str) and message.strip()
            assert "Traceback" not in message and APOLOGY not in message
        assert not fuzz_teams.changed(), values
        return
    told = bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral")[told_before:])[0]
    changed = fuzz_teams.changed()
    message = {"text": told.params.get("text")}
    shown = assert_polite(message)
    assert not (shown.startswith(":warning:") and changed), (values, shown)
    if not shown.startswith(":warning:"):
        assert "Stored for" in shown


# =============================================================================================
# 3. Formulas are arithmetic: no code runs, no file is read, nothing is stored
# =============================================================================================


def hostile_formulas(marker: Path) -> list[Any]:
    return [
        pytest.param(f"__import__('os').system('touch {marker}')", id="import-os-system"),
        pytest.param("open('/etc/passwd').read()", id="open-file"),
        pytest.param("leads.__class__.__mro__[1].__subclasses__()", id="attribute-access"),
        pytest.param("(lambda: leads)()", id="lambda"),
        pytest.param("eval('1+1')", id="eval"),
        pytest.param(f"exec(\"open('{marker}', 'w')\")", id="exec"),
        pytest.param("globals()['__builtins__']", id="globals"),
        pytest.param("leads if spend else 0", id="conditional"),
        pytest.param("leads ** 99999999", id="power"),
        pytest.param("[leads, spend]", id="list"),
        pytest.param("leads; import os", id="statement"),
        pytest.param("f'{leads}'", id="f-string"),
        pytest.param("leads @ spend", id="matmul"),
        pytest.param("`rm -rf /`", id="backticks"),
        pytest.param("(" * 10_000 + "leads" + ")" * 10_000, id="10000-parentheses"),
        pytest.param("(" * 1_500 + "leads" + ")" * 1_500, id="1500-parentheses"),
        pytest.param("(" * 200 + "leads" + ")" * 200, id="200-parentheses"),
        pytest.param("-" * 3_000 + "leads", id="3000-unary-minus"),
        pytest.param("abs(" * 100 + "leads" + ")" * 100, id="100-nested-calls"),
    ]


MARKER = Path(f"/tmp/kpibot-pwned-{os.getpid()}")


@pytest.mark.parametrize("formula", hostile_formulas(MARKER))
def test_a_hostile_formula_is_refused_politely_and_runs_nothing(
    bot: SlackBot, team: str, formula: str
) -> None:
    MARKER.unlink(missing_ok=True)
    before = db_state(bot.store, team)

    reply, got = send(bot, team, f"define pwned = {formula}")

    shown = assert_polite(got)
    assert is_refusal(got), shown
    assert "root:" not in shown
    assert not MARKER.exists()
    assert db_state(bot.store, team) == before
    assert "pwned" not in bot.store.catalogue(team).kpis


# =============================================================================================
# 4. Oversized input: refused at once, in a few words, with nothing stored
# =============================================================================================

OVERSIZED = [
    pytest.param("log " + " ".join(f"leads={i}" for i in range(5000)), id="40kB-log"),
    pytest.param("log " + " ".join(f"m{i}=1" for i in range(10_000)), id="log-of-10000-metrics"),
    pytest.param("x" * 40_000, id="40kB-single-token"),
    pytest.param("report " + "é" * 20_000, id="40kB-multibyte"),
    pytest.param("define big = " + "leads+" * 7_000 + "1", id="40kB-formula"),
    pytest.param("log " + " ".join(f"m{i}={i}" for i in range(61)), id="61-values-in-one-log"),
]


@pytest.mark.parametrize("text", OVERSIZED)
def test_an_oversized_command_is_refused_within_3_seconds(
    bot: SlackBot, team: str, text: str
) -> None:
    before = db_state(bot.store, team)

    reply, got = send(bot, team, text)

    assert reply.seconds < ACK_SECONDS
    shown = assert_polite(got)
    assert is_refusal(got)
    assert "too long" in shown or "the limit is" in shown, shown
    assert len(shown) < 1000
    assert db_state(bot.store, team) == before


@pytest.fixture(scope="module")
def huge_form(bot: SlackBot, team: str, log_form: dict[str, Any]) -> dict[str, Any]:
    """One submission of the log form carrying 10,000 metric fields (a forged state), and
    what came of it: the ack, the message sent instead (when the check outran the ack), and
    the database before and after."""
    values: dict[str, Any] = {f"m:metric_{i}": {"value": "1"} for i in range(10_000)}
    values["m:leads"] = {"value": "5"}
    told_before = len(bot.fake.calls_to("chat.postEphemeral"))
    before = db_state(bot.store, team)
    reply = bot.submit(log_form, values, team_id=team)
    told = None
    if reply.status == 200 and not reply.body:
        call = bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral")[told_before:], 10)[0]
        told = {"text": call.params.get("text")}
    return {"reply": reply, "told": told, "before": before, "after": db_state(bot.store, team),
            "form_blocks": {b["block_id"] for b in log_form["blocks"]}}


def test_a_log_form_with_10000_metric_fields_stores_nothing_and_acks_within_3_seconds(
    huge_form: dict[str, Any],
) -> None:
    reply = huge_form["reply"]

    assert reply.status == 200 and reply.seconds < ACK_SECONDS
    assert huge_form["after"] == huge_form["before"]
    if huge_form["told"] is None:
        assert reply.json["response_action"] == "errors"
    else:
        assert assert_polite(huge_form["told"]).startswith(":warning: Nothing was logged")


def test_a_log_form_with_10000_metric_fields_gets_a_brief_answer_on_its_own_fields(
    huge_form: dict[str, Any],
) -> None:
    reply, told = huge_form["reply"], huge_form["told"]

    if told is None:  # refused on the form itself
        errors = reply.json["errors"]
        unknown = set(errors) - huge_form["form_blocks"]
        assert not unknown, f"errors on {len(unknown):,} block_ids the form doesn't have"
        assert len(reply.body) < 20_000, f"{len(reply.body):,} bytes of field errors"
    else:  # the check outran the ack: the form closed and a message said why
        assert len(told["text"]) < 1000, f"{len(told['text']):,} characters"


# =============================================================================================
# 5. Numbers too big to show: refused when typed, shown plainly if an old one is stored
# =============================================================================================

TOO_BIG = "10000000000000000000000000000"  # 1e28: 29 digits, inside the 40-character limit


@pytest.mark.parametrize("metric", ["spend", "leads"])
def test_a_value_too_big_to_show_is_refused_or_confirmed(bot: SlackBot, metric: str) -> None:
    team = new_team("TBIG")
    log_as(bot, team, "log bookings=1")
    before = db_state(bot.store, team)

    _, got = send(bot, team, f"log {metric}={TOO_BIG}")

    shown = assert_polite(got)
    if is_refusal(got):
        assert db_state(bot.store, team) == before
    else:
        assert "Stored for" in shown


@pytest.mark.parametrize("text", ["report", "history", "log leads=1"])
def test_a_stored_value_too_big_to_show_does_not_break_the_workspace(
    bot: SlackBot, text: str
) -> None:
    team = new_team("TBIG")
    ctx = open_context(bot.store, team, SLACK_ADMIN, SLACK_NOW, timezone="UTC")
    # stored before numbers that big were refused (the store takes what it is given)
    bot.store.record(team, [Write("spend", ctx.today, float(TOO_BIG), SLACK_ADMIN)],
                     actor=SLACK_ADMIN, origin="cli")

    _, got = send(bot, team, text)

    assert_polite(got)
