"""What one `/kpi log` costs in SQL: every statement from the parsed command to the reply.

The log runs through `Services.answer`, the use case the Slack listener calls, on the bot that
bootstrap builds (FakeSlack as the Web API), and every statement the store's engine sends is
counted with SQLAlchemy's `before_cursor_execute`. SQLite's explicit `BEGIN IMMEDIATE` is
counted apart: PostgreSQL's driver begins transactions itself, out of the event's sight.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient
from sqlalchemy import event

from bot.bootstrap import Bot, bootstrap
from bot.grammar import parse_command
from bot.settings import Settings
from bot.slack.runtime import Who
from storage import Store, open_store
from storage.records import Write
from tests.fakeslack import FakeSlack

TEAM = "T0001"
USER = "U0001"
NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
DAY = date(2026, 3, 11)
#: the workspace, the day's data before the writes, the audit rows, the entries, their
#: month_totals (the 6th since issue 13: a `by DIM` report reads whole months from it) and the
#: day's totals
MAX_STATEMENTS = 6


@pytest.fixture
def bot(db_url: str) -> Iterator[Bot]:
    fake = FakeSlack().start()
    fake.add_user(USER, team_id=TEAM, tz="America/New_York")
    store = open_store(db_url)
    settings = Settings(slack_bot_token=SecretStr("xoxb-test"),  # type: ignore[call-arg]
                        slack_signing_secret=SecretStr("test"), slack_api_url=fake.api_url,
                        _env_file=None)
    made = bootstrap(settings, store=store, clock=lambda: NOW)
    try:
        yield made
    finally:
        made.close()
        store.engine.dispose()
        fake.stop()


class Counted:
    def __init__(self, store: Store) -> None:
        self.statements: list[str] = []
        self.store = store

    def __enter__(self) -> Counted:
        event.listen(self.store.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.store.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    @property
    def begins(self) -> int:
        return sum(s.upper().startswith("BEGIN") for s in self.statements)

    @property
    def work(self) -> list[str]:
        return [s for s in self.statements if not s.upper().startswith("BEGIN")]


def answer(bot: Bot, text: str) -> dict[str, Any]:
    who = Who(TEAM, USER, WebClient(base_url=bot.settings.slack_api_url, token="xoxb-test"),
              "C0001")
    return dict(bot.services.answer(who, parse_command(text)))


def test_a_log_of_a_few_values_is_at_most_six_statements(bot: Bot) -> None:
    answer(bot, "log leads=10 spend=200")  # the workspace exists from here on
    with Counted(bot.store) as counted:
        reply = answer(bot, "log leads=12 spend=340 clicks=80")
    assert len(counted.work) <= MAX_STATEMENTS, "\n".join(counted.work)
    assert counted.begins <= 1, "one transaction writes; reads need none"
    text = str(reply)
    assert "340" in text and "$28.33" in text  # cpl moved from 200/10 = $20 to 340/12
    stored = bot.store.period_data(TEAM, _day(), bot.store.catalogue(TEAM))
    assert stored.totals["leads"] == (12.0, 1) and stored.totals["clicks"] == (80.0, 1)
    lines = bot.store.history(TEAM, limit=10)
    assert [(h.metric, h.old, h.new) for h in lines[:3]] == [
        ("clicks", None, 80.0), ("spend", 200.0, 340.0), ("leads", 10.0, 12.0)]


@pytest.mark.parametrize("text", [
    "log spend=250.5 leads=7 revenue=1200",  # a year(...) sum moved by whole numbers
    "log revenue=99.25 new_customers=2",  # a year(...) sum of fractions: read again
    "log cash_balance=4000 spend=10",  # a gauge: read again
    "log leads=3 source=facebook",  # a paid(...) sum with a source: read again
])
def test_the_moved_kpis_are_those_a_fresh_read_before_and_after_gives(
    bot: Bot, text: str
) -> None:
    from bot.app.entries import log_numbers
    from kpis.rollup import kpi_values

    answer(bot, "log revenue=1000 new_customers=3 cash_balance=5000 leads=4 spend=30")
    answer(bot, "log leads=2 source=google")
    ctx = bot.services.context(Who(TEAM, USER, WebClient(token="x"), "C0001"))
    catalogue = ctx.catalogue
    before = kpi_values(catalogue, bot.store.period_data(TEAM, _day(), catalogue))
    command = parse_command(text)
    assert hasattr(command, "values")
    result = log_numbers(ctx, command.values, dims=getattr(command, "dims", ()))
    after = kpi_values(catalogue, bot.store.period_data(TEAM, _day(), catalogue))
    expected = [(k, before.get(k), after.get(k)) for k in catalogue.kpis_using(
        {c.metric for c in result.batch.changes}) if k in after and before.get(k) != after.get(k)]
    assert [(m.key, m.before, m.after) for m in result.moved] == expected
    assert expected


def test_undo_and_totals_stay_in_step_after_fast_writes(bot: Bot) -> None:
    store = bot.store
    answer(bot, "log leads=5")
    answer(bot, "log leads=9 spend=90")
    catalogue = store.catalogue(TEAM)
    assert store.period_data(TEAM, _day(), catalogue).totals["leads"] == (9.0, 1)
    undone = store.undo_last(TEAM, USER)
    assert undone is not None
    data = store.period_data(TEAM, _day(), catalogue)
    assert data.totals["leads"] == (5.0, 1) and "spend" not in data.totals
    entries = store.entries_between(TEAM)
    assert [(e.metric, e.value) for e in entries] == [("leads", 5.0)]


def test_a_batch_writing_one_key_twice_keeps_the_last_value(bot: Bot) -> None:
    answer(bot, "log leads=1")
    store = bot.store
    batch = store.record(TEAM, [Write("leads", DAY, 4, USER), Write("leads", DAY, 6, USER)],
                         actor=USER, origin="csv")
    assert [(c.old, c.new) for c in batch.changes] == [(1.0, 4.0), (4.0, 6.0)]
    assert store.period_data(TEAM, _day(), store.catalogue(TEAM)).totals["leads"] == (6.0, 1)


def _day() -> Any:
    from kpis.periods import Period

    return Period.day(DAY)
