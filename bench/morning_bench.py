"""A morning of many workspaces: real `kpibot serve` processes on one PostgreSQL post every
digest due at the same minute, exactly once, against a fake Slack that limits each channel.

Setup, written in bulk (the rows `ensure_workspace`, `subscribe` and `record` write, without
going through 10,000 signed commands): `WORKSPACES` workspaces in one zone, a third of them
with a daily digest due at the coming minute ("09:00" of this run) and the numbers of a small
coaching business over the last 14 days (the demo generator's days, copied per workspace);
every tenth of those also has a weekly digest in the same channel at the same minute, so two
posts meet Slack's one-message-a-second channel limit. The other two thirds have a digest due
twelve hours later. The fake Slack (tests.fakeslack, in this process) answers a channel's
second message within a second with 429 and Retry-After: 1.

Then `processes` x `kpibot serve --http` start before the minute and the run waits until every
due digest is delivered. Figures: the time from the minute to the last digest posted, the
median, digests per second, the 429s Slack answered, and exactly once (every due key posted
once in its channel, no other top-level message). With 1 and 2 processes, so the scaling to N
processes is measured, not guessed.

PostgreSQL comes from KPIBOT_BENCH_POSTGRES_URL, else KPIBOT_TEST_POSTGRES_URL; without one the
benchmark gives one row saying why it was skipped. It takes minutes: `--quick` leaves it out.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench import Options, Row, register

ZONE = "Europe/Berlin"
TEMPLATE = "TMORNINGTPL"
DAYS = 14
DEADLINE = timedelta(minutes=5)
#: how long the run waits for the last digest before it gives up (and says so)
GIVE_UP = timedelta(minutes=12)
LEAD = timedelta(seconds=75)  # the processes start this long before the minute
SECRET = "morning-bench-secret"


def due_minute(now: datetime) -> datetime:
    """The first whole minute at least LEAD from now, in the workspaces' zone."""
    local = (now + LEAD).astimezone(ZoneInfo(ZONE))
    return (local.replace(second=0, microsecond=0) + timedelta(minutes=1)).astimezone(UTC)


def fill_numbers(store: Any, workspaces: int, today: date) -> int:
    """The workspaces and their numbers, before the minute is chosen (at 10,000 workspaces the
    copy takes longer than any lead we would wait); returns the entries copied."""
    from sqlalchemy import insert, text

    from bot.app.context import open_context
    from bot.demo import fill as demo_fill
    from storage.models import WorkspaceRow
    from storage.repository import DIMENSIONS

    open_context(store, TEMPLATE, "U0BENCH", datetime.now(UTC), timezone=ZONE)  # creates it
    demo_fill(store, TEMPLATE, today, DAYS)
    created = datetime.now(UTC) - timedelta(days=60)
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL statement_timeout = 0"))  # a bulk copy, not a request
        conn.execute(insert(WorkspaceRow), [
            {"id": ws, "name": "", "timezone": ZONE, "currency": "USD", "locale": "en_US",
             "packs": "marketing,sales", "created_at": created} for ws in _ids(workspaces)])
        copied = {"n": workspaces // 3, "t": TEMPLATE}
        entries = conn.execute(text(
            "INSERT INTO entries (workspace_id, metric, day, author, value, origin, written_at, "
            "write_seq, source, rep, campaign, product) "
            "SELECT w.id, e.metric, e.day, e.author, e.value, e.origin, e.written_at, e.write_seq, "
            "e.source, e.rep, e.campaign, e.product FROM entries e "
            "CROSS JOIN (SELECT id FROM workspaces WHERE id LIKE 'TM0%' ORDER BY id LIMIT :n) w "
            "WHERE e.workspace_id = :t"), copied).rowcount
        conn.execute(text(
            "INSERT INTO daily_totals (workspace_id, metric, day, total, count, latest) "
            "SELECT w.id, d.metric, d.day, d.total, d.count, d.latest FROM daily_totals d "
            "CROSS JOIN (SELECT id FROM workspaces WHERE id LIKE 'TM0%' ORDER BY id LIMIT :n) w "
            "WHERE d.workspace_id = :t"), copied)
        conn.execute(text(
            f"INSERT INTO month_totals (workspace_id, metric, month, {', '.join(DIMENSIONS)}, "
            f"total, count) SELECT w.id, m.metric, m.month, "
            f"{', '.join('m.' + d for d in DIMENSIONS)}, m.total, m.count FROM month_totals m "
            "CROSS JOIN (SELECT id FROM workspaces WHERE id LIKE 'TM0%' ORDER BY id LIMIT :n) w "
            "WHERE m.workspace_id = :t"), copied)
        conn.execute(text("DELETE FROM timers WHERE workspace_id = :t"), {"t": TEMPLATE})
        conn.execute(text("ANALYZE"))
    return int(entries or 0)


def _ids(workspaces: int) -> list[str]:
    return [f"TM{n:06d}" for n in range(workspaces)]


def fill_schedules(store: Any, workspaces: int, due: datetime) -> int:
    """The subscriptions and their timers for `due`; returns the digests due then."""
    from sqlalchemy import insert, text

    from kpis.schedule import next_due, parse_time
    from storage.models import SubscriptionRow, TimerRow
    from storage.timers import DIGEST_TIMER, NUDGES_TIMER

    local_due = due.astimezone(ZoneInfo(ZONE))
    at, later = f"{local_due:%H:%M}", f"{(local_due + timedelta(hours=12)):%H:%M}"
    due_count = workspaces // 3
    ids = _ids(workspaces)
    created = due - timedelta(days=60)
    subs: list[dict[str, Any]] = []
    for n, ws in enumerate(ids):
        time_of = at if n < due_count else later
        subs.append({"workspace_id": ws, "channel_id": f"C{n:07d}", "kind": "daily", "weekday": None,
                     "at_time": time_of, "created_by": "U0ADMIN", "created_at": created})
        if n < due_count and n % 10 == 0:
            subs.append({**subs[-1], "kind": "weekly", "weekday": local_due.weekday()})
    with store.engine.begin() as conn:
        rows = conn.execute(insert(SubscriptionRow).returning(
            SubscriptionRow.id, SubscriptionRow.workspace_id, SubscriptionRow.at_time,
            SubscriptionRow.weekday, sort_by_parameter_order=True), subs).all()
        timers = [{"workspace_id": ws, "task": NUDGES_TIMER, "subject": "",
                   "due_at": due + timedelta(days=1), "claim": None} for ws in ids]
        timers += [{"workspace_id": ws, "task": DIGEST_TIMER, "subject": str(sub_id),
                    "due_at": next_due(parse_time(time_of), weekday, ZONE, due - timedelta(seconds=1)),
                    "claim": None} for sub_id, ws, time_of, weekday in rows]
        conn.execute(insert(TimerRow), timers)
        conn.execute(text("ANALYZE"))
    return sum(1 for s in subs if s["at_time"] == at)


def run(url: str, workspaces: int, processes: int) -> dict[str, Any]:
    from sqlalchemy import text

    from storage import open_store
    from tests.fakeslack import FakeSlack
    from tests.faultkit import BotProcess, message_key

    started = time.perf_counter()
    store = open_store(url)
    today = due_minute(datetime.now(UTC)).astimezone(ZoneInfo(ZONE)).date()
    entries = fill_numbers(store, workspaces, today)
    due = due_minute(datetime.now(UTC))
    expected = fill_schedules(store, workspaces, due)
    print(f"   {workspaces:,} workspaces, {expected:,} digests due at {due:%H:%M} UTC, "
          f"{entries:,} entries copied, in {time.perf_counter() - started:.0f} s", flush=True)
    if datetime.now(UTC) > due - timedelta(seconds=20):
        raise RuntimeError("the setup took longer than the lead before the minute")
    fake = FakeSlack(messages_per_channel_second=1).start()
    env = {"SLACK_BOT_TOKEN": "xoxb-morning", "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": fake.api_url, "DATABASE_URL": url}
    with tempfile.TemporaryDirectory(prefix="kpibot-morning-") as directory:
        servers = [BotProcess(Path(directory), env, name=f"kpibot-{n + 1}") for n in range(processes)]
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_healthy(timeout=120)
            delivered = 0
            while datetime.now(UTC) < due + GIVE_UP:
                time.sleep(2)
                with store.engine.connect() as conn:
                    delivered = conn.execute(text(
                        "SELECT count(*) FROM deliveries WHERE delivered_at IS NOT NULL")).scalar_one()
                if delivered >= expected:
                    break
            with store.engine.connect() as conn:
                times = [r[0] for r in conn.execute(text(
                    "SELECT delivered_at FROM deliveries WHERE delivered_at IS NOT NULL"))]
                failed = conn.execute(text(
                    "SELECT count(*) FROM deliveries WHERE failed_at IS NOT NULL")).scalar_one()
            cpu = [_cpu_seconds(server.pid) for server in servers]
        finally:
            for server in servers:
                server.stop()
            fake.stop()
            store.engine.dispose()
    keys = Counter(message_key(m) for (_, _), m in list(fake.messages.items()) if not m.get("thread_ts"))
    lags = sorted((t.astimezone(UTC) - due).total_seconds() for t in times)
    return {"expected": expected, "delivered": len(times), "failed": failed,
            "twice": sum(1 for k, c in keys.items() if k and c > 1),
            "unkeyed": keys.get(None, 0), "posted_keys": sum(1 for k in keys if k),
            "last": lags[-1] if lags else float("inf"),
            "median": statistics.median(lags) if lags else float("inf"),
            "rate": len(lags) / max(lags[-1], 1e-9) if lags else 0.0,
            "limited": fake.rate_limited, "cpu": cpu}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc), for the per-process load."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def rows_for(label: str, found: dict[str, Any]) -> list[Row]:
    once = (found["delivered"] == found["expected"] == found["posted_keys"]
            and found["twice"] == 0 and found["unkeyed"] == 0 and found["failed"] == 0)
    return [
        Row(f"{label} every digest posted exactly once",
            "yes" if once else "NO", "yes",
            f"{found['delivered']:,}/{found['expected']:,} delivered, {found['twice']} twice, "
            f"{found['failed']} failed; {found['limited']} channel 429s answered", once),
        Row(f"{label} last digest after the minute", f"{found['last']:.0f} s",
            f"<= {DEADLINE.total_seconds():.0f} s",
            f"median {found['median']:.0f} s; {found['rate']:.1f} digests/s; process CPU "
            + ", ".join(f"{c:.0f} s" for c in found["cpu"]),
            found["last"] <= DEADLINE.total_seconds()),
    ]


def morning(options: Options, workspaces: int, processes: int) -> list[Row]:
    from bench.load_bench import on_postgres

    label = f"[PostgreSQL, {processes} process{'es' if processes > 1 else ''}, {workspaces:,} workspaces]"
    if options.quick:
        return [Row(f"{label} morning", "skipped", "—", "left out of --quick (minutes)", True)]

    def on(url: str) -> list[Row]:
        found = run(url, workspaces, processes)
        print(f"   {found}", flush=True)
        return rows_for(label, found)

    return on_postgres(f"{label} morning", on)


@register("morning-1")
def morning_one(options: Options) -> list[Row]:
    return morning(options, 3_000, 1)


@register("morning-2")
def morning_two(options: Options) -> list[Row]:
    return morning(options, 10_000, 2)
