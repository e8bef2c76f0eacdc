"""`/kpi log` under load against real `kpibot serve --http` processes, as operators run them.

Unlike `ack` (bench/ack_bench.py, the WSGI app in this process), this starts the installed
`kpibot serve --http --port N` console script in subprocesses, configured only through the
environment (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL pointing at
tests.fakeslack.FakeSlack in this process, DATABASE_URL), with its scheduler running.

- `load`: one process on a temporary SQLite file.
- `load-pg2`: two processes on one PostgreSQL database (a schema of its own, dropped after),
  requests alternating between them. PostgreSQL comes from KPIBOT_BENCH_POSTGRES_URL, else
  KPIBOT_TEST_POSTGRES_URL; without one (or when it does not answer) the benchmark gives one
  row saying why it was skipped.

The clients run in a child process (as in ack_bench): 20 threads, one keep-alive connection
per server each, send signed slash commands (tests.slackreq) `log leads=N spend=M date=D` from
50 users, each (user, day) pair once, so every value sent must be stored: 50 warm-up requests,
then 20 x `--runs` timed ones (1,000 by default). Latency is from sending a request to having
read the whole ack; Slack's limit is 3 s. Afterwards the stored leads (entries and daily
totals) must equal the sum sent, late (response_url) answers included.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench import Options, Row, ms, register

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 20
WARMUP = 50
ACK_LIMIT_S = 3.0
SETTLE_S = 30.0
SEED = 20260102
PG_ENVS = ("KPIBOT_BENCH_POSTGRES_URL", "KPIBOT_TEST_POSTGRES_URL")

Result = tuple[float, int, bytes]  # latency (s), HTTP status (0 on a connection error), body


def _repo_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


_repo_on_path()
ack_bench: Any = importlib.import_module("bench.ack_bench")


# -- the clients (run in a child process) ------------------------------------------------------

_pool: ThreadPoolExecutor | None = None


def run_pairs(pairs: Sequence[tuple[int, bytes]]) -> list[Result]:
    """Sends each body to its port with CLIENTS requests in flight; results in order."""
    global _pool
    _repo_on_path()
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=CLIENTS, thread_name_prefix="client")
    return list(_pool.map(lambda pair: ack_bench._post(pair[0], pair[1]), pairs))


# -- the servers -------------------------------------------------------------------------------


def _helpers() -> tuple[Any, Any]:
    """tests.faultkit and tests.fakeslack, imported by name (test helpers, not the product)."""
    return importlib.import_module("tests.faultkit"), importlib.import_module("tests.fakeslack")


@contextmanager
def bots(directory: Path, db_url: str, processes: int) -> Iterator[tuple[Any, list[Any]]]:
    """A FakeSlack with the 50 bench users, and `processes` healthy `kpibot serve --http`."""
    faultkit, fakeslack = _helpers()
    fake = fakeslack.FakeSlack().start()
    for n, user in enumerate(ack_bench.USERS):
        fake.add_user(user, team_id=ack_bench.TEAM, tz="America/Bogota", is_admin=n == 0)
    env = {"SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": ack_bench.SECRET,
           "SLACK_API_URL": fake.api_url, "DATABASE_URL": db_url}
    servers = [faultkit.BotProcess(directory, env, name=f"kpibot-{n + 1}")
               for n in range(processes)]
    try:
        for server in servers:
            server.start()
        for server in servers:
            took = server.wait_healthy(timeout=120)
            print(f"   {server.name} (pid {server.pid}) healthy after {took:.1f} s", flush=True)
        yield fake, servers
    finally:
        for server in servers:
            server.stop()
        fake.stop()


def percentile(values: Sequence[float], p: int) -> float:
    return float(statistics.quantiles(values, n=100, method="inclusive")[p - 1])


def _kind(body: bytes) -> str:
    return str(ack_bench._kind(body))


def measure(label: str, db_url: str, processes: int, options: Options) -> list[Row]:
    """The rows of one configuration: acks on time, p50/p99, stored total exact."""
    from storage import open_store

    requests = CLIENTS * options.runs  # 1,000 with the default 50 runs
    rng = random.Random(SEED)
    base_day = datetime.now(UTC).date() - timedelta(days=2)
    spawn = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-bench-")))
        if db_url == "sqlite":
            db_url = f"sqlite:///{tmp / 'load.db'}"
        fake, servers = stack.enter_context(bots(tmp, db_url, processes))
        clients = stack.enter_context(ProcessPoolExecutor(max_workers=1, mp_context=spawn))
        ports = [s.port for s in servers]

        warm = ack_bench.plan(fake, WARMUP, 0, rng, base_day)
        clients.submit(run_pairs, [(ports[k % len(ports)], b) for k, b in
                                   enumerate(warm.bodies)]).result()
        timed = ack_bench.plan(fake, requests, WARMUP, rng, base_day)
        started = time.perf_counter()
        results: list[Result] = clients.submit(
            run_pairs, [(ports[k % len(ports)], b) for k, b in enumerate(timed.bodies)]).result()
        elapsed = time.perf_counter() - started
        sent, leads_sent = WARMUP + requests, warm.leads + timed.leads

        store = open_store(db_url, migrate=False)
        stack.callback(store.engine.dispose)
        services = SimpleNamespace(store=store)
        deadline = time.monotonic() + SETTLE_S
        while True:
            totals, entries, count = ack_bench.stored_leads(services)
            exact = totals == entries == leads_sent and count == sent
            if exact or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        alive = all(s.alive() for s in servers)
        if fake.violations or fake.server_errors:
            print(f"   FakeSlack: {fake.violations[:3]} {fake.server_errors[:3]}")

    latencies = [latency for latency, _, _ in results]
    on_time = sum(1 for latency, status, _ in results
                  if status == 200 and latency <= ACK_LIMIT_S)
    statuses: dict[int, int] = {}
    for _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    kinds = {k: sum(1 for _, _, body in results if _kind(body) == k)
             for k in ("stored", "deferred", "other")}
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"   {requests} requests in {elapsed:.1f} s ({requests / elapsed:.0f}/s): "
          f"p50 {ms(p50)}, p99 {ms(p99)}, max {ms(max(latencies))}; HTTP {statuses}; "
          f"acks {kinds['stored']} answered, {kinds['deferred']} deferred, {kinds['other']} "
          f"other; stored leads {totals:g} (entries {entries:g}, {count} rows), sent "
          f"{leads_sent} in {sent} logs", flush=True)
    where = f"{label}, {len(servers)} x kpibot serve --http"
    return [
        Row(f"[{label}] /kpi log acks 200 within 3 s", f"{on_time}/{requests}", "all",
            f"{where}; 50 users, {CLIENTS} in flight", on_time == requests),
        Row(f"[{label}] /kpi log ack p50", ms(p50), "—",
            f"{requests / elapsed:.0f} requests/s", True),
        Row(f"[{label}] /kpi log ack p99", ms(p99), f"< {ACK_LIMIT_S:g} s",
            f"max {ms(max(latencies))}", p99 < ACK_LIMIT_S),
        Row(f"[{label}] stored total exact", "yes" if exact else "no", "yes",
            f"{leads_sent} leads sent in {sent} logs (incl. {WARMUP} warm-up)"
            + ("" if alive else "; a server died"), exact and alive),
    ]


@register("load")
def load_sqlite(options: Options) -> list[Row]:
    return measure("SQLite", "sqlite", 1, options)


def on_postgres(figure: str, measure_on: Callable[[str], list[Row]]) -> list[Row]:
    """`measure_on(url)` on a schema of its own, or one "skipped" row saying why not."""
    faultkit, _ = _helpers()
    base = next((os.environ[e] for e in PG_ENVS if os.environ.get(e)), None)
    why = ("neither KPIBOT_BENCH_POSTGRES_URL nor KPIBOT_TEST_POSTGRES_URL is set" if base is None
           else faultkit.pg_reachable(base))
    if why or base is None:
        print(f"   skipped: {why}", flush=True)
        return [Row(figure, "skipped", "—", why or "", True)]
    with faultkit.pg_schema(base, prefix="kpibot_bench") as url:
        return measure_on(url)


@register("load-pg2")
def load_postgres(options: Options) -> list[Row]:
    return on_postgres("[PostgreSQL, 2 processes] /kpi log under load",
                       lambda url: measure("PostgreSQL", url, 2, options))
