"""Proof under faults: kill -9 mid-delivery, the database refusing or not answering under load,
a burst while SQLite is locked, and a Slack API that rate-limits, fails or hangs while a digest
or an alert is due.

The bot runs as operators run it: `kpibot serve --http` in a subprocess, configured only through
its environment (SLACK_API_URL points at tests.fakeslack.FakeSlack), except the Slack-fault and
alert tests, which drive the real scheduler and Courier in-process so that the Web API client's
timeout can be shortened (the production client waits 20 s) and the clock moved.

Quick by default (`make test`, under a minute); `KPIBOT_SOAK=1` (`make soak`) runs 10 kill
rounds with more deliveries, the kill rounds on PostgreSQL and the black-hole test. The outage
tests and the PostgreSQL kill rounds need KPIBOT_TEST_POSTGRES_URL and skip, saying so, without
it. The black-hole test is xfail(strict=False): it documents a known limit (see its reason).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot import demo
from bot.app import alerts as alert_rules
from bot.app.context import open_context
from bot.app.digests import Due, due_now
from storage import Store, open_store
from storage.models import ChangeRow, DeliveryRow, EntryRow
from tests import slackreq
from tests.fakeslack import FakeSlack
from tests.faultkit import (
    BotProcess,
    TcpProxy,
    chart_counts,
    keys_posted,
    pg_reachable,
    post_signed,
    reply_text,
    via,
)

SOAK = os.environ.get("KPIBOT_SOAK") == "1"
POSTGRES_ENV = "KPIBOT_TEST_POSTGRES_URL"
SECRET = "faults-signing-secret"
TEAM = "T0001"
ADMIN = "U0001"
TZ = "America/Bogota"  # no daylight saving time: "a few minutes ago" is never ambiguous
LEASE_SECONDS = 5  # KPIBOT_CLAIM_LEASE_SECONDS for the kill rounds (the Settings minimum)
SEED = int(os.environ.get("KPIBOT_FAULT_SEED", "20260311"))

KILL_ROUNDS = int(os.environ.get("KPIBOT_KILL_ROUNDS", "10" if SOAK else "3"))
DAILY_CHANNELS = 8 if SOAK else 4
WEEKLY_CHANNELS = 4 if SOAK else 2
OUTAGE_SECONDS = 10.0 if SOAK else 4.0
OUTAGE_USERS = 40 if SOAK else 12
DEMO_DAYS = 90 if SOAK else 20  # bot.demo.fill takes ~0.15 s a day on SQLite


def bot_env(fake: FakeSlack, db_url: str, **extra: str) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": "xoxb-faults", "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.api_url, "DATABASE_URL": db_url, **extra}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    slack = FakeSlack().start()
    slack.add_user(ADMIN, team_id=TEAM, tz=TZ, is_admin=True)
    try:
        yield slack
    finally:
        slack.stop()


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with workspace T0001 (America/Bogota) and DEMO_DAYS of demo numbers,
    made once per module (bot.demo.fill is slow on SQLite) and copied by each test."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    store = open_store(f"sqlite:///{path}")
    ctx = open_context(store, TEAM, ADMIN, datetime.now(UTC), timezone=TZ)
    demo.fill(store, TEAM, ctx.today, days=DEMO_DAYS)
    store.engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def demo_copy(template: Path, tmp_path: Path, name: str) -> str:
    for suffix in ("", "-wal"):
        if Path(f"{template}{suffix}").exists():
            shutil.copyfile(f"{template}{suffix}", f"{tmp_path / name}{suffix}")
    return f"sqlite:///{tmp_path / name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def kill_db_url(request: pytest.FixtureRequest, tmp_path: Path, demo_template: Path) -> str:
    """SQLite always; PostgreSQL (own schema) when configured, in soak runs only (time)."""
    if request.param == "sqlite":
        return demo_copy(demo_template, tmp_path, "kill.db")
    if not SOAK:
        pytest.skip("kill -9 rounds on PostgreSQL run with KPIBOT_SOAK=1 (make soak)")
    return str(request.getfixturevalue("pg_url"))


# =============================================================================================
# kill -9 while digests and an alert are being delivered
# =============================================================================================


@dataclass
class DueWorld:
    store: Store
    fake: FakeSlack
    keys: list[str]  # every delivery that must appear exactly once
    channels: list[str]

    def add(self, daily: int, weekly: int, alerts: int = 1) -> None:
        """`daily` channels with a daily digest due three minutes ago (HH:MM in the workspace
        zone: due on start, well within the 6 h grace), a weekly one (on today's weekday) in
        the first `weekly` of them, and `alerts` rules `leads >= 0` (daily) that fire when a
        process's first sweep evaluates yesterday, which has demo numbers."""
        now = datetime.now(UTC)
        ctx = open_context(self.store, TEAM, ADMIN, now)
        at = now.astimezone(ZoneInfo(TZ)) - timedelta(minutes=3)
        first = 101 + len(self.channels)
        fresh = [f"C{n:04d}" for n in range(first, first + daily)]
        before = {d.key for d in _due_digests(self.store, now)}
        for n, channel in enumerate(fresh):
            self.fake.add_channel(channel, name=f"kpis-{channel.lower()}")
            self.store.subscribe(TEAM, channel, "daily", at.strftime("%H:%M"), actor=ADMIN)
            if n < weekly:
                self.store.subscribe(TEAM, channel, "weekly", at.strftime("%H:%M"),
                                     weekday=at.weekday(), actor=ADMIN)
        for n in range(alerts):
            rule = alert_rules.add_rule(ctx, fresh[n % len(fresh)], "leads", ">=", "0")
            self.keys.append(f"alert:{rule.id}:1")
        added = sorted({d.key for d in _due_digests(self.store, now)} - before)
        assert len(added) == daily + min(weekly, daily), added
        self.keys += added
        self.channels += fresh


def _due_digests(store: Store, now: datetime) -> list[Due]:
    """The digests due now and within the grace window, as the subscriptions' timers find them."""
    found = []
    for sub in store.subscriptions():
        workspace = store.workspace(sub.workspace_id)
        due = None if workspace is None else due_now(sub, workspace.timezone, now)
        if due is not None:
            found.append(due)
    return found


def due_world(db_url: str, fake: FakeSlack) -> DueWorld:
    """Demo numbers (DEMO_DAYS) in workspace T0001, and digests and an alert due now."""
    store = open_store(db_url)
    if store.workspace(TEAM) is None:
        ctx = open_context(store, TEAM, ADMIN, datetime.now(UTC), timezone=TZ)
        demo.fill(store, TEAM, ctx.today, days=DEMO_DAYS)
    world = DueWorld(store, fake, [], [])
    world.add(DAILY_CHANNELS, WEEKLY_CHANNELS)
    return world


def delivered(store: Store, keys: list[str]) -> set[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(DeliveryRow.key).where(
            DeliveryRow.key.in_(keys), DeliveryRow.delivered_at.is_not(None))).all()
    return {r.key for r in rows}


def deliveries_table(store: Store) -> list[tuple[str, int, str | None, str]]:
    d = DeliveryRow
    with store.engine.connect() as conn:
        return [(r.key, r.attempts, r.message_ts, r.error) for r in conn.execute(
            select(d.key, d.attempts, d.message_ts, d.error).order_by(d.id))]


def health(port: int, timeout: float = 10.0) -> int:
    """GET /healthz: the status, or 0 when it does not answer within `timeout`."""
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return 0


def wait_for_activity(fake: FakeSlack, since: int, bot: BotProcess, timeout: float) -> bool:
    """Until the bot makes a Web API call after the first `since` calls: True; False when it
    has been serving for 2 s without one (nothing it may deliver now), or on `timeout`."""
    deadline = time.monotonic() + timeout
    idle_until: float | None = None
    while time.monotonic() < deadline and bot.alive():
        if any(c.method != "users.info" for c in fake.calls[since:]):
            return True
        if idle_until is None and health(bot.port, timeout=1) == 200:
            idle_until = time.monotonic() + 2.0
        if idle_until is not None and time.monotonic() > idle_until:
            return False
        time.sleep(0.05)
    return False


def test_kill9_rounds_deliver_each_digest_and_alert_exactly_once(
    kill_db_url: str, fake: FakeSlack, tmp_path: Path
) -> None:
    """`kpibot serve --http` is killed with SIGKILL mid-delivery KILL_ROUNDS times (new digests
    and an alert fall due between rounds), then runs to the end: every digest and alert key is
    in its channel exactly once, no other message, no chart twice in a thread."""
    world = due_world(kill_db_url, fake)
    bot = BotProcess(tmp_path, bot_env(fake, kill_db_url,
                                       KPIBOT_CLAIM_LEASE_SECONDS=str(LEASE_SECONDS),
                                       # several posts cut mid-way each need a history check:
                                       # at Slack's 1/min the last run would take minutes
                                       KPIBOT_HISTORY_INTERVAL_SECONDS="2"))
    rng = random.Random(SEED)
    rounds: list[str] = []
    try:
        for n in range(KILL_ROUNDS):
            if n:
                world.add(daily=1, weekly=0)  # new work falls due while the bot is down
            before = len(fake.calls)
            bot.start()
            # Kill while it works: after its first Web API call of this round, a random moment
            # later (0-2.5 s, seeded); when it has nothing to do (2 s serving with no call),
            # after 1-4 s.
            active = wait_for_activity(fake, before, bot, timeout=30)
            pause = rng.uniform(0.0, 2.5) if active else rng.uniform(1.0, 4.0)
            time.sleep(pause)
            assert bot.alive(), f"the bot died by itself in round {n + 1}:\n{bot.tail()}"
            bot.kill9()
            got = delivered(world.store, world.keys)
            rounds.append(f"round {n + 1}: killed {pause:.2f} s after "
                          f"{'its first call' if active else 'start'}, "
                          f"{len(got)}/{len(world.keys)} delivered")
        # Claims of the last killed process expire after the lease; then one last run must
        # finish everything (its start-up sweep catches up, no 60 s wait).
        time.sleep(LEASE_SECONDS + 1)
        final_start = time.monotonic()
        bot.start()
        bot.wait_healthy(timeout=60)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and delivered(world.store, world.keys) != set(world.keys):
            assert bot.alive(), bot.tail()
            time.sleep(0.25)
        rounds.append(f"last run: everything delivered {time.monotonic() - final_start:.1f} s "
                      "after its start")
        time.sleep(1.0)  # anything still in flight (a duplicate upload) lands before counting
        missing = set(world.keys) - delivered(world.store, world.keys)
        table = deliveries_table(world.store)
    finally:
        bot.stop()
        world.store.engine.dispose()
    print("\n".join(rounds))

    keys, unkeyed = keys_posted(fake, world.channels)
    copies = {k: keys.get(k, 0) for k in world.keys}
    report = (f"{chr(10).join(rounds)}\ncopies per key: {copies}\n"
              f"deliveries: {table}\nlog tail:\n{bot.tail(25)}")
    assert not missing, f"never delivered: {sorted(missing)}\n{report}"
    assert all(c == 1 for c in copies.values()), f"not exactly once\n{report}"
    assert set(keys) == set(world.keys), f"unexpected keys {set(keys) - set(world.keys)}"
    assert unkeyed == [], f"messages without a delivery key: {unkeyed}"
    charts = {k: c for k, c in chart_counts(fake).items() if c > 1}
    assert charts == {}, f"charts shared twice in a digest's thread: {charts}\n{report}"
    assert fake.violations == [] and fake.server_errors == []


# =============================================================================================
# PostgreSQL goes away under load, and comes back
# =============================================================================================


@dataclass
class Sent:
    """One `/kpi log leads=.. spend=..` request and what became of it."""

    user: str
    day: date
    leads: int
    spend: int
    started: float
    finished: float = 0.0
    status: int = 0
    ack: str = ""
    response_url: str = ""
    final: str = ""  # the ack, or the response_url post when the ack said "Working on it"
    answered_at: float = 0.0  # when `final` arrived (time.monotonic())

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def kind_of(text: str) -> str:
    if "Stored for" in text:
        return "stored"
    if "database is not answering" in text and "try again" in text:
        return "busy"
    if "Working on it" in text:
        return "pending"
    return "other"


def response_posts(fake: FakeSlack) -> dict[str, tuple[str, float]]:
    """response_url path -> (text, monotonic time) of the first message posted to it."""
    out: dict[str, tuple[str, float]] = {}
    for call in fake.calls_to("response_url"):
        if call.status == 200 and call.path not in out:
            out[call.path] = (str(call.params.get("text") or ""), call.time)
    return out


class LogLoad:
    """Keeps `clients` signed `/kpi log` requests in flight, each (user, day) pair used once."""

    def __init__(self, fake: FakeSlack, port: int, users: list[str], clients: int = 6) -> None:
        self.fake, self.port, self.users = fake, port, users
        self.base_day = datetime.now(UTC).date() - timedelta(days=2)
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._next = 0
        self._rng = random.Random(SEED)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=clients, thread_name_prefix="load")
        self._futures = [self._pool.submit(self._client) for _ in range(clients)]

    def _take(self) -> Sent:
        with self._lock:
            k = self._next
            self._next += 1
            item = Sent(self.users[k % len(self.users)],
                        self.base_day - timedelta(days=k // len(self.users)),
                        self._rng.randint(1, 99), self._rng.randint(10, 999), time.monotonic())
            self.sent.append(item)
            return item

    def _client(self) -> None:
        while not self._stop.is_set():
            item = self._take()
            item.response_url = self.fake.new_response_url()
            body = slackreq.slash_command_body(
                f"log leads={item.leads} spend={item.spend} date={item.day.isoformat()}",
                team_id=TEAM, user_id=item.user, response_url=item.response_url)
            item.started = time.monotonic()
            status, raw, _ = post_signed(self.port, SECRET, body, timeout=30)
            item.finished = time.monotonic()
            item.status, item.ack = status, reply_text(raw)
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for future in self._futures:
            future.result(timeout=60)
        self._pool.shutdown()

    def settle(self, timeout: float = 30.0) -> None:
        """Waits for the response_url answers of acks that said "Working on it"."""
        deadline = time.monotonic() + timeout
        while True:
            posts = response_posts(self.fake)
            for item in self.sent:
                if kind_of(item.ack) != "pending":
                    item.final, item.answered_at = item.ack, item.finished
                else:
                    path = "/" + item.response_url.split("/", 3)[-1]
                    item.final, item.answered_at = posts.get(path, ("", 0.0))
            if all(item.final for item in self.sent) or time.monotonic() > deadline:
                return
            time.sleep(0.2)


def stored_rows(store: Store) -> tuple[dict[tuple[str, date, str], float], dict[str, set[str]],
                                       Counter[tuple[str, date, str]]]:
    """(author, day, metric) -> entry value; batch -> metrics in the audit trail; and
    (author, day, metric) -> audit rows."""
    with store.engine.connect() as conn:
        entries = {(r.author, r.day, r.metric): r.value for r in conn.execute(
            select(EntryRow.author, EntryRow.day, EntryRow.metric, EntryRow.value)
            .where(EntryRow.workspace_id == TEAM))}
        batches: dict[str, set[str]] = {}
        audit: Counter[tuple[str, date, str]] = Counter()
        for r in conn.execute(select(ChangeRow.batch, ChangeRow.author, ChangeRow.day,
                                     ChangeRow.metric).where(ChangeRow.workspace_id == TEAM)):
            batches.setdefault(r.batch, set()).add(r.metric)
            audit[(r.author, r.day, r.metric)] += 1
    return entries, batches, audit


@dataclass
class OutageRun:
    sent: list[Sent]
    timeline: dict[str, float]
    health_during: int
    health_after: int
    entries: dict[tuple[str, date, str], float]
    batches: dict[str, set[str]]
    audit: Counter[tuple[str, date, str]]

    def phase(self, item: Sent) -> str:
        t = self.timeline
        if item.finished < t["cut"]:
            return "before"
        if item.started > t["cut_done"] and item.finished < t["restore"]:
            return "outage"
        if item.started > t["restore"]:
            return "after"
        return "edge"  # in flight at the cut or at the restore: either answer is fine

    def by_phase(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for item in self.sent:
            out.setdefault(self.phase(item), Counter())[kind_of(item.final)] += 1
        return out

    def late_acks(self) -> list[str]:
        return [f"{i.user} {i.day} {i.seconds:.2f}s status {i.status}" for i in self.sent
                if i.status != 200 or i.seconds > 3.0]

    def summary(self) -> str:
        return (f"{len(self.sent)} requests; answers by phase {self.by_phase()}; health during "
                f"the outage {self.health_during}, after {self.health_after}; acks over 3 s or "
                f"not 200: {self.late_acks()[:10]}")

    def half_written(self) -> list[str]:
        """Each batch in the audit trail has both metrics; each (user, day) has both entries or
        neither, as the user was told, and one audit row per stored entry."""
        problems = [f"batch {b} has only {m}" for b, m in self.batches.items()
                    if m != {"leads", "spend"}]
        for item in self.sent:
            leads = self.entries.get((item.user, item.day, "leads"))
            spend = self.entries.get((item.user, item.day, "spend"))
            answer = kind_of(item.final)
            if (leads is None) != (spend is None):
                problems.append(f"half-written {item.user} {item.day}: leads={leads} spend={spend}")
            if answer == "stored" and (leads, spend) != (item.leads, item.spend):
                problems.append(f"said stored but has {leads}/{spend} for {item.user} {item.day}")
            if answer == "busy" and leads is not None and self.phase(item) != "edge":
                problems.append(f"said nothing was stored but stored {item.user} {item.day}")
            for metric in ("leads", "spend"):
                rows = self.audit.get((item.user, item.day, metric), 0)
                if rows != (0 if self.entries.get((item.user, item.day, metric)) is None else 1):
                    problems.append(f"{item.user} {item.day} {metric}: {rows} audit rows")
        return problems


def run_outage(fake: FakeSlack, tmp_path: Path, db_url: str, *, blackhole: bool,
               seconds: float) -> OutageRun:
    """`kpibot serve --http` on PostgreSQL through a TcpProxy, under `/kpi log` load: 3 s fine,
    then `seconds` of outage (refused and reset connections, or a black hole), then 6 s fine."""
    why = pg_reachable(db_url)
    if why:
        pytest.skip(why)
    from sqlalchemy.engine import make_url

    target = make_url(db_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    users = [f"U{n:04d}OUT" for n in range(1, OUTAGE_USERS + 1)]
    for user in users:
        fake.add_user(user, team_id=TEAM, tz=TZ)
    bot = BotProcess(tmp_path, bot_env(fake, via(db_url, proxy.port)))
    timeline: dict[str, float] = {}
    load: LogLoad | None = None
    try:
        bot.start()
        bot.wait_healthy(timeout=60)
        pid = bot.pid
        load = LogLoad(fake, bot.port, users)
        time.sleep(3.0)
        timeline["cut"] = time.monotonic()
        proxy.freeze() if blackhole else proxy.cut()
        timeline["cut_done"] = time.monotonic()
        time.sleep(0.5)
        health_during = health(bot.port, timeout=5)
        time.sleep(max(0.0, seconds - (time.monotonic() - timeline["cut_done"])))
        timeline["restore"] = time.monotonic()
        proxy.thaw() if blackhole else proxy.restore()
        time.sleep(6.0)
        load.stop()
        load.settle()
        health_after = health(bot.port)
        assert bot.alive() and bot.pid == pid, f"the bot restarted or died:\n{bot.tail()}"
    finally:
        if load is not None and not load._stop.is_set():
            load.stop()
        bot.stop()
        proxy.stop()
    store = open_store(db_url, migrate=False)
    try:
        entries, batches, audit = stored_rows(store)
    finally:
        store.engine.dispose()
    return OutageRun(load.sent, timeline, health_during, health_after, entries, batches, audit)


def postgres_url(request: pytest.FixtureRequest) -> str:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} not set: the database outage tests need PostgreSQL "
                    "(a SQLite file cannot be cut off by a proxy)")
    return str(request.getfixturevalue("pg_url"))


def test_database_outage_under_load_answers_try_again_and_recovers(
    fake: FakeSlack, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    run = run_outage(fake, tmp_path, postgres_url(request), blackhole=False,
                     seconds=OUTAGE_SECONDS)
    summary = run.summary()
    print("\n" + summary)
    by_phase = run.by_phase()
    # every request acknowledged within Slack's 3 s, whatever the database does
    assert run.late_acks() == [], summary
    # before: stored; during the outage: "try again"; after the restore: stored again, by
    # the same process (the first answers after the restore may still meet a dead connection)
    assert set(by_phase["before"]) == {"stored"}, summary
    assert by_phase.get("outage") and set(by_phase["outage"]) == {"busy"}, summary
    recovered = [i for i in run.sent if run.phase(i) == "after"
                 and i.started > run.timeline["restore"] + 2.0]
    assert recovered and all(kind_of(i.final) == "stored" for i in recovered), summary
    assert run.health_during == 503 and run.health_after == 200, summary
    unanswered = [f"{i.user} {i.day}: {i.final[:60]!r}" for i in run.sent
                  if kind_of(i.final) not in ("stored", "busy")]
    assert unanswered == [], f"{summary}\n{unanswered}"
    problems = run.half_written()
    assert problems == [], f"{summary}\n" + "\n".join(problems[:20])


BLACKHOLE_ANSWER_SECONDS = 10.0  # a final answer (busy) this long after the request, at most


@pytest.mark.xfail(strict=False, reason=(
    "known limit: PostgreSQL connections now have connect, keepalive and TCP user timeouts "
    "(storage/db.py), and every request is still acked within 3 s, but a server that accepts "
    "TCP and never answers (as this proxy does) holds a request until it answers again: "
    "statement_timeout is enforced by the server, and psycopg has no client-side query timeout"))
def test_database_black_hole_answers_try_again_in_time(
    fake: FakeSlack, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The database stops answering (packets dropped: a partition, a failover) instead of
    refusing: users still get an answer in time and nothing is half-written."""
    if not SOAK:
        pytest.skip("the database black hole runs with KPIBOT_SOAK=1 (make soak): ~40 s")
    run = run_outage(fake, tmp_path, postgres_url(request), blackhole=True,
                     seconds=BLACKHOLE_ANSWER_SECONDS + 4.0)
    summary = run.summary()
    print("\n" + summary)
    assert run.half_written() == [], summary
    assert run.late_acks() == [], summary
    slow = []
    for item in run.sent:
        if run.phase(item) != "outage" and not (run.timeline["cut"] <= item.started
                                                <= run.timeline["restore"]):
            continue
        answered = item.answered_at or float("inf")
        if answered - item.started > BLACKHOLE_ANSWER_SECONDS:
            slow.append(f"{item.user} {item.day}: {answered - item.started:.1f} s")
    assert slow == [], f"{summary}\nno answer within {BLACKHOLE_ANSWER_SECONDS:g} s: {slow[:10]}"
    assert run.health_during == 503, summary


BURST = 12


def test_burst_while_sqlite_is_locked_is_acked_in_time_and_stored_after(
    fake: FakeSlack, tmp_path: Path
) -> None:
    """Another process (`kpibot import`, a backup) holds SQLite's write lock for 4 s while 12
    people log at once: each gets an ack within 3 s, and every log is stored once the lock
    is released (the busy timeout is 30 s), the answer arriving through response_url."""
    users = [f"U{n:04d}LCK" for n in range(1, BURST + 1)]
    for user in users:
        fake.add_user(user, team_id=TEAM, tz=TZ)
    path = tmp_path / "locked.db"
    bot = BotProcess(tmp_path, bot_env(fake, f"sqlite:///{path}"))
    day = datetime.now(UTC).date() - timedelta(days=2)
    try:
        bot.start()
        bot.wait_healthy(timeout=60)
        warm = slackreq.slash_command_body(f"log leads=1 spend=1 date={day - timedelta(days=1)}",
                                           team_id=TEAM, user_id=users[0],
                                           response_url=fake.new_response_url())
        status, raw, _ = post_signed(bot.port, SECRET, warm)
        assert status == 200 and kind_of(reply_text(raw)) == "stored", raw
        sent = [Sent(u, day, n + 1, 10 * (n + 1), 0.0) for n, u in enumerate(users)]
        for item in sent:
            item.response_url = fake.new_response_url()
        with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as lock:
            lock.execute("BEGIN IMMEDIATE")

            def send(item: Sent) -> None:
                body = slackreq.slash_command_body(
                    f"log leads={item.leads} spend={item.spend} date={item.day}",
                    team_id=TEAM, user_id=item.user, response_url=item.response_url)
                item.started = time.monotonic()
                item.status, raw, _ = post_signed(bot.port, SECRET, body)
                item.finished = time.monotonic()
                item.ack = reply_text(raw)

            with ThreadPoolExecutor(max_workers=BURST) as pool:
                futures = [pool.submit(send, item) for item in sent]
                time.sleep(4.0)
                lock.execute("ROLLBACK")
                for future in futures:
                    future.result(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            posts = response_posts(fake)
            for item in sent:
                item.final = item.ack if kind_of(item.ack) != "pending" else posts.get(
                    "/" + item.response_url.split("/", 3)[-1], ("", 0.0))[0]
            if all(kind_of(i.final) == "stored" for i in sent if i.status == 200):
                break
            time.sleep(0.2)
    finally:
        bot.stop()
    acks = sorted(f"{i.seconds:.2f}s/{i.status}" for i in sent)
    store = open_store(f"sqlite:///{path}", migrate=False)
    entries, _, _ = stored_rows(store)
    store.engine.dispose()
    stored = sum(1 for i in sent if (i.user, i.day, "leads") in entries)
    print(f"\nacks during a 4 s SQLite write lock: {acks}; final answers: "
          f"{Counter(kind_of(i.final) for i in sent)}; stored {stored}/{BURST}")
    late = [a for a, i in zip(acks, sorted(sent, key=lambda i: i.seconds), strict=True)
            if i.status != 200 or i.seconds > 3.0]
    assert late == [], f"acks over 3 s or not 200: {late} (all: {acks})\n{bot.tail(10)}"
    assert [kind_of(i.final) for i in sent] == ["stored"] * BURST, [i.final for i in sent]


# =============================================================================================
# The Slack API rate-limits, fails or hangs while a digest is due
# =============================================================================================

CLIENT_TIMEOUT = 2  # the production courier client waits 20 s; same client, shorter wait


class Clock:
    def __init__(self, local_start: str | None = None) -> None:
        """Real time, or from `local_start` (HH:MM today in the workspace's zone) on."""
        self.offset = timedelta(0)
        if local_start is not None:
            now = datetime.now(ZoneInfo(TZ))
            hour, minute = map(int, local_start.split(":"))
            self.offset = now.replace(hour=hour, minute=minute, second=0, microsecond=0) - now

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class InProcess:
    services: Any
    store: Store
    clock: Clock
    channel: str
    key: str

    def sweep(self) -> list[str]:
        assert self.services.scheduler is not None
        return list(self.services.scheduler.sweep())


def app_services(store: Store, fake: FakeSlack, clock: Clock) -> Any:
    """The bot as bootstrap builds it (Courier, scheduler, alerting), in-process; the
    scheduler is not started: tests call its sweep()."""
    from pydantic import SecretStr

    from bot.bootstrap import bootstrap
    from bot.settings import Settings

    settings = Settings(slack_bot_token=SecretStr("xoxb-faults"),
                        slack_signing_secret=SecretStr(SECRET), slack_api_url=fake.api_url,
                        _env_file=None)  # type: ignore[call-arg]
    return bootstrap(settings, store=store, clock=clock)


@pytest.fixture
def due_digest(fake: FakeSlack, tmp_path: Path, demo_template: Path) -> Iterator[InProcess]:
    """The real app's scheduler and Courier, in-process, with one daily digest due now."""
    store = open_store(demo_copy(demo_template, tmp_path, "slackfaults.db"))
    clock = Clock()
    at = clock().astimezone(ZoneInfo(TZ)) - timedelta(minutes=3)
    fake.add_channel("C0201", name="digests")
    store.subscribe(TEAM, "C0201", "daily", at.strftime("%H:%M"), actor=ADMIN)
    (due,) = _due_digests(store, clock())
    services = app_services(store, fake, clock)
    courier = services.courier
    courier.backoff = 0.2
    client_for = courier.client_for

    def short_timeout(workspace_id: str) -> Any:
        client = client_for(workspace_id)
        if client is not None:
            client.timeout = CLIENT_TIMEOUT
        return client

    courier.client_for = short_timeout
    try:
        yield InProcess(services, store, clock, "C0201", due.key)
    finally:
        services.executor.shutdown(wait=True, cancel_futures=True)
        store.engine.dispose()


def digest_copies(fake: FakeSlack, world: InProcess) -> int:
    keys, _ = keys_posted(fake, [world.channel])
    return keys.get(world.key, 0)


def finish(fake: FakeSlack, world: InProcess, wait: float = 0.0) -> int:
    """Sweeps again (now, and after every retry and history check is due) and counts the copies."""
    time.sleep(wait)
    world.sweep()
    world.clock.offset += timedelta(hours=1)  # past any retry_after (at most 32 min), < grace
    world.sweep()
    world.clock.offset += timedelta(minutes=2)  # past the minute between two history checks
    world.sweep()
    return digest_copies(fake, world)


@pytest.mark.parametrize("fault", [
    "429 Retry-After 1",
    "500 (not posted)",
    "500 three times (not posted)",
    "500 after posting (reply lost)",
    "500 after posting, three times",
])
def test_digest_posted_once_when_slack_fails(fault: str, fake: FakeSlack,
                                             due_digest: InProcess) -> None:
    if fault.startswith("429"):
        fake.fail("chat.postMessage", 429, retry_after=1)
    elif fault == "500 (not posted)":
        fake.fail("chat.postMessage", 500)
    elif fault == "500 three times (not posted)":
        fake.fail("chat.postMessage", 500, times=3)
    elif fault == "500 after posting (reply lost)":
        fake.lose_reply("chat.postMessage", 500)
    else:
        fake.lose_reply("chat.postMessage", 500, times=3)
    first = due_digest.sweep()
    copies = finish(fake, due_digest)
    delivery = due_digest.store.delivery(due_digest.key)
    assert delivery is not None and delivery.delivered_at is not None, (first, delivery)
    assert copies == 1, (fault, first, [(c.method, c.status, c.fault) for c in fake.calls])
    assert {k: c for k, c in chart_counts(fake).items() if c > 1} == {}
    assert fake.violations == [] and fake.server_errors == []


@pytest.mark.parametrize("late", [
    pytest.param(0.5, id="timeout, the post lands before the courier checks the channel"),
    pytest.param(2.0, id="timeout, the post lands after the courier checked"),
])
def test_digest_posted_once_when_slack_times_out(late: float, fake: FakeSlack,
                                                 due_digest: InProcess) -> None:
    """chat.postMessage hangs beyond the client's timeout, then Slack carries it out anyway."""
    assert due_digest.services.courier is not None
    due_digest.services.courier.backoff = 1.0  # production: re-check the channel after 1 s
    fake.delay("chat.postMessage", CLIENT_TIMEOUT + late)
    first = due_digest.sweep()
    copies = finish(fake, due_digest, wait=late + 1.0)
    assert copies == 1, (first, [(c.method, c.status, c.fault) for c in fake.calls])


# =============================================================================================
# An alert whose delivery did not go through is posted later, not lost
# =============================================================================================


@pytest.fixture
def firing_alert(fake: FakeSlack, tmp_path: Path, demo_template: Path,
                 request: pytest.FixtureRequest) -> Iterator[tuple[Any, Store, Clock, str]]:
    """A rule that fires on yesterday's numbers; its clock starts at 10:00 in the workspace's
    zone (or at the `alert_clock_at` marker's time), so a test's jumps stay in one day."""
    store = open_store(demo_copy(demo_template, tmp_path, "alert.db"))
    marker = request.node.get_closest_marker("alert_clock_at")
    clock = Clock(marker.args[0] if marker else "10:00")
    ctx = open_context(store, TEAM, ADMIN, clock())
    fake.add_channel("C0301", name="alerts")
    rule = alert_rules.add_rule(ctx, "C0301", "leads", ">=", "0")
    services = app_services(store, fake, clock)
    services.courier.backoff = 0.05
    try:
        yield services, store, clock, f"alert:{rule.id}:1"
    finally:
        services.executor.shutdown(wait=True, cancel_futures=True)
        store.engine.dispose()


@pytest.mark.parametrize("cause", ["claim held by a killed process", "Slack 500 three times"])
def test_alert_transition_is_posted_after_a_failed_delivery(
    cause: str, fake: FakeSlack, firing_alert: tuple[Any, Store, Clock, str]
) -> None:
    services, store, clock, key = firing_alert
    if cause.startswith("claim"):
        # a process claimed the alert and was killed before posting
        rule = store.rules(TEAM)[0]
        assert store.claim_delivery(TEAM, key, kind="alert-firing", channel_id=rule.channel_id,
                                    due_at=clock(), owner="kpibot-killed", now=clock(),
                                    lease=timedelta(minutes=5)) is not None
    else:
        fake.fail("chat.postMessage", 500, times=3)
    assert services.scheduler is not None
    first = services.scheduler.sweep()  # the first sweep evaluates yesterday: firing
    for _ in range(3):  # later sweeps and evaluations, after the lease and any retry window
        clock.offset += timedelta(minutes=40)
        services.scheduler.sweep()
    keys, _ = keys_posted(fake, ["C0301"])
    assert keys.get(key, 0) == 1, (cause, first, store.delivery(key))


@pytest.mark.alert_clock_at("23:50")
def test_alert_transition_pending_across_the_workspaces_midnight_is_still_posted(
    fake: FakeSlack, firing_alert: tuple[Any, Store, Clock, str]
) -> None:
    services, store, clock, key = firing_alert
    fake.fail("chat.postMessage", 500, times=3)
    assert services.scheduler is not None
    services.scheduler.sweep()  # 23:50: yesterday fires, and the post is unclear
    for _ in range(3):  # 00:30, 01:10, 01:50 of the next day
        clock.offset += timedelta(minutes=40)
        services.scheduler.sweep()
    keys, _ = keys_posted(fake, ["C0301"])
    assert keys.get(key, 0) == 1, store.delivery(key)
