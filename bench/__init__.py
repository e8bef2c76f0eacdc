"""Benchmarks of kpibot, run by `make bench` (`python -m bench`).

A benchmark is a function registered with `@register("name")`. It receives the run's
`Options` and returns the rows it measured; `python -m bench` runs every registered
benchmark, prints one table of all rows and writes it as Markdown to `bench/results.md`.

To add one (Slack ack latency, charts, digests...): write `bench/<topic>_bench.py` with a
registered function and add the module to `MODULES` in `bench/__main__.py`.

Generated databases are cached outside the checkout (`cache_dir`), so every checkout and
worktree shares one copy, keyed by the generator's shape version and the schema's Alembic
head; `cached` builds one atomically and holds it for reading.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Row:
    """One figure of the results table."""

    figure: str
    value: str
    target: str
    reference: str
    met: bool


@dataclass(frozen=True)
class Options:
    runs: int = 50
    warmups: int = 3
    explain: bool = False
    rebuild: bool = False
    #: `make bench QUICK=1` (under 3 minutes): fewer runs and smaller inputs, each benchmark
    #: saying so in its rows or output; figures that take minutes (the mornings, memory over
    #: 500 digests) give a "skipped" row
    quick: bool = False


Benchmark = Callable[[Options], Iterable[Row]]
REGISTRY: dict[str, Benchmark] = {}


def register(name: str) -> Callable[[Benchmark], Benchmark]:
    """Adds a benchmark function to the table `python -m bench` prints."""

    def add(function: Benchmark) -> Benchmark:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = function
        return function

    return add


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# -- the cache of generated databases ---------------------------------------------------------


def cache_dir() -> Path:
    """KPIBOT_BENCH_CACHE, else $XDG_CACHE_HOME/kpibot-bench, else ~/.cache/kpibot-bench."""
    chosen = os.environ.get("KPIBOT_BENCH_CACHE")
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "kpibot-bench"


@functools.cache
def schema_head() -> str:
    """The newest Alembic revision of storage/migrations: a database built on another schema
    has another file name, so a new migration means a new build."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from storage.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic head in {MIGRATIONS}")
    return head


@dataclass(frozen=True)
class CachedDb:
    """A generated SQLite database: `name`, built by generator version `version`."""

    name: str
    version: int

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self.name}-v{self.version}-{schema_head()}.db"

    @property
    def meta_path(self) -> Path:
        return self.path.with_suffix(".json")

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


@dataclass(frozen=True)
class Cached:
    """A cached database held for reading, with what its builder said of it."""

    db: CachedDb
    meta: dict[str, Any]
    built_now: bool


#: databases built by this process: `--rebuild` builds each once, not once per benchmark
_rebuilt: set[Path] = set()

#: fills a new database at the path given (a temporary file) and returns its description
#: (a JSON object, kept beside the database; "build_seconds" is shown on later runs)
Builder = Callable[[Path], dict[str, Any]]


@contextmanager
def cached(db: CachedDb, build: Builder, rebuild: bool = False) -> Iterator[Cached]:
    """`db`, built first when it is missing (or `rebuild`), held under a shared lock while the
    caller reads it.

    A build writes a temporary file, leaves it without a WAL and renames it over the old one,
    then its description (what marks it ready), so a run never opens a half-built database.
    It holds the exclusive lock meanwhile, so it waits for runs still reading the old file
    (whose WAL index has the same name) and concurrent runs wait for one build instead of
    making their own.
    """
    db.path.parent.mkdir(parents=True, exist_ok=True)
    rebuild = rebuild and db.path not in _rebuilt
    with open(db.path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        if not rebuild and _ready(db):
            meta = json.loads(db.meta_path.read_text())
            print(f"using cached {db.path} (built {meta.get('built_at')} in "
                  f"{meta.get('build_seconds')} s)", flush=True)
            yield Cached(db, meta, False)
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        built_now = rebuild or not _ready(db)  # another run may have built it meanwhile
        if built_now:
            _build(db, build)
            _rebuilt.add(db.path)
            _prune_older(db)
        fcntl.flock(lock, fcntl.LOCK_SH)
        meta = json.loads(db.meta_path.read_text())
        if not built_now:
            print(f"using {db.path.name}, built meanwhile by another run", flush=True)
        yield Cached(db, meta, built_now)


def _prune_older(db: CachedDb) -> None:
    """Removes the builds of `db` for other shape versions or schema heads (hundreds of MB
    each), except those another run is reading now."""
    for old in db.path.parent.glob(f"{db.name}-v*.db"):
        if old == db.path:
            continue
        with open(old.with_suffix(".lock"), "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            for part in (old.with_suffix(".json"), *_siblings(old), old):
                part.unlink(missing_ok=True)
        old.with_suffix(".lock").unlink(missing_ok=True)


def _ready(db: CachedDb) -> bool:
    """The database and its description are there (the description is renamed in last)."""
    return db.path.exists() and db.meta_path.exists()


def _siblings(path: Path) -> tuple[Path, Path]:
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def _build(db: CachedDb, build: Builder) -> None:
    """Builds `db` into a temporary file and renames it into place (under the exclusive lock)."""
    directory = db.path.parent
    for stale in directory.glob(f".{db.path.stem}.*.tmp*"):  # left by a build that died
        stale.unlink(missing_ok=True)
    temporary = directory / f".{db.path.stem}.{os.getpid()}.tmp.db"
    temporary_meta = temporary.with_suffix(".json")
    try:
        meta = build(temporary)
        with sqlite3.connect(temporary) as conn:  # a rollback journal: one self-contained file
            conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        if any(sibling.exists() for sibling in _siblings(temporary)):
            raise RuntimeError(f"{temporary.name} still has a WAL after its build")
        temporary_meta.write_text(json.dumps(meta, indent=2) + "\n")
        # the old description goes first (a crash from here on leaves no "ready" database),
        # and the old database's WAL must not meet the new one
        for stale in (db.meta_path, *_siblings(db.path)):
            stale.unlink(missing_ok=True)
        os.replace(temporary, db.path)
        os.replace(temporary_meta, db.meta_path)
    finally:
        for leftover in (temporary, temporary_meta, *_siblings(temporary)):
            leftover.unlink(missing_ok=True)
