"""`POST /api/v1/entries` under load against a real `kpibot serve --http` process.

The server is the installed console script (bench/load_bench.py's `bots`: environment-only
configuration, FakeSlack for the Web API, scheduler running). 20 clients, each with a token
of its own (as 20 integrations would have) and one keep-alive connection, send 50 batches of
10 entries each (1,000 batches, 10,000 entries; `--runs` sets batches per client), every batch
with an Idempotency-Key. Every (author, day) pair is sent once, so every value must be stored:
afterwards the stored leads (entries and daily totals) must equal the sum sent.

- `api`: SQLite file. `api-pg`: PostgreSQL (KPIBOT_BENCH_POSTGRES_URL or
  KPIBOT_TEST_POSTGRES_URL; one row saying why when there is none).

With `--quick`, QUICK_BATCHES batches per client (200 in all, a p99 over 200 latencies); the
rows say how many.
"""

from __future__ import annotations

import http.client
import json
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import Options, Row, ms, register
from bench.load_bench import bots, on_postgres, percentile

CLIENTS = 20
PER_BATCH = 10
TEAM = "TBENCHAPI"
SEED = 20261125
LIMIT_S = 3.0  # the same budget as a Slack ack; integrations time out far later (Zapier 30 s)
QUICK_BATCHES = 10


def _batches(client: int, count: int, rng: random.Random, today: Any) -> list[dict[str, Any]]:
    return [{"entries": [
        {"metric": "leads", "value": rng.randint(1, 100), "author": f"c{client:02d}-{k}",
         "date": (today - timedelta(days=b)).isoformat()}
        for k in range(PER_BATCH)
    ]} for b in range(count)]


def _client(port: int, token: str, batches: list[dict[str, Any]], client: int,
            start: threading.Barrier) -> list[tuple[float, int]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    results = []
    start.wait()
    for n, body in enumerate(batches):
        payload = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Idempotency-Key": f"bench-{client}-{n}"}
        began = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/entries", payload, headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = 0
        results.append((time.perf_counter() - began, status))
    conn.close()
    return results


def measure(label: str, db_url: str, options: Options) -> list[Row]:
    from bot.app.context import open_context
    from bot.app.tokens import create_token
    from storage import open_store

    per_client = QUICK_BATCHES if options.quick else options.runs  # 50 by default: 1,000 batches
    rng = random.Random(SEED)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="api-bench-")))
        if db_url == "sqlite":
            db_url = f"sqlite:///{tmp / 'api.db'}"
        store = open_store(db_url)
        stack.callback(store.engine.dispose)
        now = datetime.now(UTC)
        ctx = open_context(store, TEAM, "bench", now)
        tokens = [create_token(ctx, f"client-{n:02d}").secret for n in range(CLIENTS)]
        _, servers = stack.enter_context(bots(tmp, db_url, 1))
        port = servers[0].port
        today = now.date() - timedelta(days=1)  # safe on either side of midnight UTC
        plans = [_batches(n, per_client, rng, today) for n in range(CLIENTS)]
        sent = sum(e["value"] for plan in plans for b in plan for e in b["entries"])
        barrier = threading.Barrier(CLIENTS)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            futures = [pool.submit(_client, port, tokens[n], plans[n], n, barrier)
                       for n in range(CLIENTS)]
            results = [r for f in futures for r in f.result()]
        elapsed = time.perf_counter() - started
        alive = servers[0].alive()
        with store.engine.connect() as conn:
            entries, rows = conn.exec_driver_sql(
                "SELECT COALESCE(SUM(value), 0), COUNT(*) FROM entries WHERE workspace_id = ? "
                "AND metric = 'leads'" if store.engine.dialect.name == "sqlite" else
                "SELECT COALESCE(SUM(value), 0), COUNT(*) FROM entries WHERE workspace_id = %s "
                "AND metric = 'leads'", (TEAM,)).one()
            totals = conn.exec_driver_sql(
                "SELECT COALESCE(SUM(total), 0) FROM daily_totals WHERE workspace_id = ? AND "
                "metric = 'leads'" if store.engine.dialect.name == "sqlite" else
                "SELECT COALESCE(SUM(total), 0) FROM daily_totals WHERE workspace_id = %s AND "
                "metric = 'leads'", (TEAM,)).scalar()

    batches = len(results)
    created = sum(1 for _, status in results if status == 201)
    latencies = [latency for latency, _ in results]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    expected_rows = batches * PER_BATCH
    exact = float(entries) == float(totals) == sent and int(rows) == expected_rows and alive
    statuses: dict[int, int] = {}
    for _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"   {batches} batches ({expected_rows} entries) in {elapsed:.1f} s "
          f"({batches / elapsed:.0f} batches/s, {expected_rows / elapsed:.0f} entries/s): "
          f"p50 {ms(p50)}, p99 {ms(p99)}, max {ms(max(latencies))}; HTTP {statuses}; stored "
          f"{float(entries):g} in {rows} rows (daily totals {float(totals):g}), sent {sent}",
          flush=True)
    where = f"{label}, 1 x kpibot serve --http, {CLIENTS} clients with a token each"
    return [
        Row(f"[{label}] API batches answered 201", f"{created}/{batches}", "all", where,
            created == batches),
        Row(f"[{label}] API batch of {PER_BATCH} p50", ms(p50), "—",
            f"{batches / elapsed:.0f} batches/s, {expected_rows / elapsed:.0f} entries/s", True),
        Row(f"[{label}] API batch of {PER_BATCH} p99", ms(p99), f"< {LIMIT_S:g} s",
            f"max {ms(max(latencies))} over {batches} batches", p99 < LIMIT_S),
        Row(f"[{label}] API stored total exact", "yes" if exact else "no", "yes",
            f"{sent} leads in {expected_rows} entries" + ("" if alive else "; the server died"),
            exact),
    ]


@register("api")
def api_sqlite(options: Options) -> list[Row]:
    return measure("SQLite", "sqlite", options)


@register("api-pg")
def api_postgres(options: Options) -> list[Row]:
    return on_postgres("[PostgreSQL] API batches under load",
                       lambda url: measure("PostgreSQL", url, options))
