"""The digest's "by source" section: turned on per subscription (`/kpi digest daily 09:00 by
source`), the biggest mover of each source in a line, only news coloured, untagged entries a
line of their own; and migration 0011 that gives subscriptions the column."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from storage import open_store
from tests.conftest import insert_old_workspace, migrate_to


def test_the_breakdown_migration_keeps_every_schedule_up_and_down(db_url: str) -> None:
    migrate_to(db_url, "upgrade", "0010_alert_ids")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            insert_old_workspace(conn, "W1")
            for channel, kind, weekday in (("C1", "daily", None), ("C2", "weekly", 0)):
                conn.execute(text(
                    "INSERT INTO subscriptions (workspace_id, channel_id, kind, weekday, at_time, "
                    "created_by, created_at) VALUES ('W1', :channel, :kind, :weekday, '09:00', "
                    "'U1', '2026-03-01 00:00:00')"), {"channel": channel, "kind": kind,
                                                      "weekday": weekday})
    finally:
        engine.dispose()

    store = open_store(db_url)  # upgrades to the head
    try:
        before = store.subscriptions("W1")
        assert [(s.channel_id, s.kind, s.weekday, s.breakdown) for s in before] == [
            ("C1", "daily", None, None), ("C2", "weekly", 0, None)]
        moved = store.subscribe("W1", "C1", "daily", "08:30", None, "U1", breakdown="source")
        assert (moved.id, moved.at_time, moved.breakdown) == (before[0].id, "08:30", "source")
        again = store.subscribe("W1", "C1", "daily", "08:30", None, "U1")
        assert again.breakdown is None  # a schedule set again without `by source` has none
        store.subscribe("W1", "C1", "daily", "08:30", None, "U1", breakdown="source")
    finally:
        store.engine.dispose()

    migrate_to(db_url, "downgrade", "0010_alert_ids")
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT channel_id, kind, at_time FROM subscriptions ORDER BY channel_id")).all()
        assert [tuple(r) for r in rows] == [("C1", "daily", "08:30"), ("C2", "weekly", "09:00")]
    finally:
        engine.dispose()
    migrate_to(db_url, "upgrade", "head")
