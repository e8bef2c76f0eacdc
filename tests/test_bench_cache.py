"""The cache of generated bench databases (bench.cached): built once, atomically, per schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import bench
from bench import CachedDb, cache_dir, cached, schema_head


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, and a new run (no database built by it yet)."""
    monkeypatch.setenv("KPIBOT_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bench, "_rebuilt", set())
    return tmp_path / "cache"


def _builder(calls: list[Path], value: int = 1) -> Any:
    def build(path: Path) -> dict[str, Any]:
        calls.append(path)
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE t (x INTEGER)")
            conn.execute("INSERT INTO t VALUES (?)", (value,))
        conn.close()
        return {"build_seconds": 0.1, "built_at": "now", "value": value}

    return build


def _value(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT x FROM t").fetchone()[0])
    finally:
        conn.close()


def test_the_cache_is_where_the_environment_says(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == cache
    monkeypatch.delenv("KPIBOT_BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert cache_dir() == Path("/somewhere/kpibot-bench")


def test_the_file_name_carries_the_version_and_the_schema_head(cache: Path) -> None:
    db = CachedDb("report-1m", 2)
    assert db.path == cache / f"report-1m-v2-{schema_head()}.db"
    assert schema_head().startswith("00")  # a revision id of storage/migrations


def test_built_once_then_read_from_the_cache(cache: Path) -> None:
    db, calls = CachedDb("demo", 1), []
    with cached(db, _builder(calls)) as first:
        assert first.built_now and first.meta["value"] == 1 and _value(first.db.path) == 1
    with cached(db, _builder(calls, 2)) as second:
        assert not second.built_now and _value(second.db.path) == 1
    assert len(calls) == 1
    assert calls[0] != db.path  # built elsewhere, then renamed into place
    assert sorted(p.name for p in cache.iterdir()) == [db.path.name, db.meta_path.name,
                                                        db.path.with_suffix(".lock").name]


def test_rebuild_replaces_it_once_per_run(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, calls = CachedDb("demo", 1), []
    with cached(db, _builder(calls)):
        pass
    monkeypatch.setattr(bench, "_rebuilt", set())  # a later run, with --rebuild
    with cached(db, _builder(calls, 2), rebuild=True) as again:
        assert again.built_now and again.meta["value"] == 2 and _value(db.path) == 2
    with cached(db, _builder(calls, 3), rebuild=True) as same_run:  # the next benchmark
        assert not same_run.built_now and _value(db.path) == 2
    assert len(calls) == 2


def test_a_failed_build_leaves_no_database(cache: Path) -> None:
    db = CachedDb("demo", 1)

    def broken(path: Path) -> dict[str, Any]:
        sqlite3.connect(path).execute("CREATE TABLE half (x INTEGER)").connection.close()
        raise RuntimeError("generator failed half way")

    with pytest.raises(RuntimeError, match="half way"), cached(db, broken):
        pass
    assert not db.path.exists() and not db.meta_path.exists()
    assert [p.name for p in cache.iterdir()] == [db.path.with_suffix(".lock").name]
    calls: list[Path] = []
    with cached(db, _builder(calls)) as held:  # the next run builds it
        assert held.built_now and _value(db.path) == 1


def test_a_new_build_removes_the_other_versions_builds_but_not_one_being_read(cache: Path) -> None:
    old, other, new = CachedDb("demo", 1), CachedDb("demo-other", 1), CachedDb("demo", 2)
    for db in (old, other):
        with cached(db, _builder([])):
            pass
    held = CachedDb("demo", 3)
    with cached(held, _builder([])):
        with cached(new, _builder([])):  # demo v3 is being read: it stays
            pass
        assert held.path.exists() and not old.path.exists() and not old.meta_path.exists()
    assert other.path.exists() and new.path.exists()  # another name, and the new build
