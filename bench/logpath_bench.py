"""What one `/kpi log leads=N spend=M` costs in process: CPU and SQL statements per log.

The log goes through the use case the Slack listener calls (`Services.answer` of the bot that
`bot.bootstrap` builds, with `tests.fakeslack.FakeSlack` as the Web API) on a temporary SQLite
file, from the parsed command to the reply. After 20 warm-up logs, `--runs` x 10 logs (500 by
default) are timed with `time.process_time`; every statement the store's engine sends is
counted (`before_cursor_execute`) over 100 more logs, as the listener has a cost of its own.
SQLite's explicit BEGINs are shown apart, as PostgreSQL's driver begins transactions out of the
event's sight. Each log is a new (user, day) pair, as a team's day is.

The before figure is main's code measured the same way (a `git archive` of main in a temporary
directory, run in a child process); its row says why when there is no main to measure.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import pstats
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import Options, Row, register

ROOT = Path(__file__).resolve().parent.parent
TEAM = "T0001"
USERS = tuple(f"U{n:04d}LOG" for n in range(1, 51))
WARMUP = 20
CPU_TARGET_MS = 2.0
STATEMENT_TARGET = 6  # 5 before month_totals (issue 13) took one more per log
BASE_REF = "main"


def measure(logs: int, directory: Path, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """CPU ms and statements per log over `logs` logs, on a new SQLite file in `directory`;
    `profile`, when given, runs over the timed logs only."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pydantic import SecretStr
    from slack_sdk import WebClient
    from sqlalchemy import event

    from bot.bootstrap import bootstrap
    from bot.grammar import parse_command
    from bot.settings import Settings
    from bot.slack.runtime import Who
    from storage import open_store

    fake: Any = importlib.import_module("tests.fakeslack").FakeSlack().start()
    for user in USERS:
        fake.add_user(user, team_id=TEAM, tz="America/New_York")
    store = open_store(f"sqlite:///{directory / 'logpath.db'}")
    settings = Settings(slack_bot_token=SecretStr("xoxb-test"),
                        slack_signing_secret=SecretStr("bench"),
                        slack_api_url=fake.api_url, _env_file=None)  # type: ignore[call-arg]
    bot = bootstrap(settings, store=store, clock=lambda: datetime(2026, 3, 11, 15, 0, tzinfo=UTC))
    client = WebClient(base_url=fake.api_url, token="xoxb-test")
    first = date(2026, 3, 9)
    statements = [0, 0]  # statements, and of them SQLite's explicit BEGINs

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements[0] += 1
        statements[1] += statement.lstrip().upper().startswith("BEGIN")

    def log(n: int) -> Any:
        day = first - timedelta(days=n // len(USERS))
        who = Who(TEAM, USERS[n % len(USERS)], client, "C0001")
        command = parse_command(f"log leads={n % 90 + 1} spend={n % 400 + 20} date={day}")
        return bot.services.answer(who, command)

    counted = min(logs, 100)
    try:
        for n in range(WARMUP):
            log(n)
        if profile is not None:
            profile.enable()
        started = time.process_time()
        for n in range(WARMUP, WARMUP + logs):
            log(n)
        cpu = time.process_time() - started
        if profile is not None:
            profile.disable()
        # counted apart: the listener costs CPU of its own that the timed logs must not carry
        event.listen(store.engine, "before_cursor_execute", count)
        for n in range(WARMUP + logs, WARMUP + logs + counted):
            log(n)
        event.remove(store.engine, "before_cursor_execute", count)
    finally:
        bot.close()
        store.engine.dispose()
        fake.stop()
    return {"cpu_ms": cpu * 1000 / logs, "statements": (statements[0] - statements[1]) / counted,
            "begins": statements[1] / counted}


def _measure_main(logs: int) -> dict[str, Any] | str:
    """The same measurement of main's code, or why it could not be made."""
    with tempfile.TemporaryDirectory(prefix="logpath-main-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASE_REF], capture_output=True)
        if archive.returncode != 0:
            return f"no `{BASE_REF}` to measure"
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        script = (
            "import importlib.util, json, sys, pathlib\n"
            f"sys.path.insert(0, {str(tree)!r})\n"
            f"spec = importlib.util.spec_from_file_location('logpath_now', {__file__!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            f"module.ROOT = pathlib.Path({str(tree)!r})\n"
            f"print(json.dumps(module.measure({logs}, pathlib.Path({tmp!r}))))\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=tree)
        if done.returncode != 0:
            return f"{BASE_REF} failed: {done.stderr.strip().splitlines()[-1:]}"
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


@register("logpath")
def logpath(options: Options) -> list[Row]:
    logs = options.runs * 10
    with tempfile.TemporaryDirectory(prefix="logpath-") as tmp:
        now = measure(logs, Path(tmp))
    before = _measure_main(logs)
    cpu_ref = (f"{BASE_REF}: {before['cpu_ms']:.2f} ms" if isinstance(before, dict) else before)
    sql_ref = (f"{BASE_REF}: {before['statements']:.1f} + {before.get('begins', 0):.1f} BEGIN"
               if isinstance(before, dict) else before)
    print(f"  {logs} logs: {now['cpu_ms']:.2f} ms CPU and {now['statements']:.1f} statements "
          f"per log ({cpu_ref}; {sql_ref})", flush=True)
    return [
        Row("log: CPU per /kpi log, in process (SQLite file)", f"{now['cpu_ms']:.2f} ms",
            f"<= {CPU_TARGET_MS:g} ms", cpu_ref, now["cpu_ms"] <= CPU_TARGET_MS),
        Row("log: SQL statements per /kpi log (besides BEGIN)",
            f"{now['statements']:.2f} + {now['begins']:.2f} BEGIN",
            f"<= {STATEMENT_TARGET}", sql_ref, now["statements"] <= STATEMENT_TARGET),
    ]


def main() -> None:
    """`python -m bench.logpath_bench --profile [LOGS]`: where a log's CPU goes (cProfile)."""
    parser = argparse.ArgumentParser(prog="python -m bench.logpath_bench", description=main.__doc__)
    parser.add_argument("--logs", type=int, default=300)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime", help="a pstats sort key (tottime, cumulative)")
    args = parser.parse_args()
    profile = cProfile.Profile(time.process_time)
    with tempfile.TemporaryDirectory(prefix="logpath-profile-") as tmp:
        result = measure(args.logs, Path(tmp), profile)
    print(f"{args.logs} logs: {result['cpu_ms']:.2f} ms CPU per log (profiled, so slower)")
    pstats.Stats(profile).strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
