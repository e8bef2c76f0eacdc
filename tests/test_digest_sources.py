"""The digest's "by source" section: turned on per subscription (`/kpi digest daily 09:00 by
source`), the biggest mover of each source in a line, only news coloured, untagged entries a
line of their own; and migration 0011 that gives subscriptions the column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

from sqlalchemy import create_engine, event, text

from bot.app.context import Context, open_context
from bot.app.digests import DAILY, compute_digest
from bot.app.tracking import track
from bot.render.digest import (
    SOURCE_LINES,
    digest_details,
    digest_markdown,
    digest_message,
    fallback_blocks,
)
from bot.render.kit import FOLD_LINES, rendered_lines
from storage import Store, open_store
from storage.repository import Write
from tests.conftest import insert_old_workspace, migrate_to, texts

NOW = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)
DAY, BEFORE = date(2026, 3, 10), date(2026, 3, 9)  # the daily digest's day, and the day before


def _log(store: Store, day: date, metric: str, value: float, source: str = "") -> None:
    dims = (("source", source),) if source else ()
    store.record("T0001", [Write(metric, day, value, "ana", dims=dims)], actor="ana", origin="test")


def sources_ctx(store: Store) -> Context:
    """Leads (the one tracked metric) and spend from four sources and untagged entries:
    facebook's cost per lead five times what it was (news, worse), seo's leads within noise,
    tiktok new, and the untagged leads doubled (beyond noise, but leads have no better way)."""
    store.ensure_workspace("T0001", timezone="America/New_York")
    for day, facebook_leads, facebook_spend, seo, untagged in ((BEFORE, 60, 200, 9, 50),
                                                                (DAY, 20, 400, 10, 100)):
        _log(store, day, "leads", facebook_leads, "facebook")
        _log(store, day, "spend", facebook_spend, "facebook")
        _log(store, day, "leads", seo, "seo")
        _log(store, day, "leads", untagged)
    _log(store, DAY, "leads", 5, "tiktok")
    ctx = open_context(store, "T0001", "ana", NOW)
    track(ctx, ["leads"])
    return open_context(store, "T0001", "ana", NOW)


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


def test_each_source_has_its_biggest_move_only_news_coloured_untagged_kept(any_store: Store) -> None:
    digest = compute_digest(sources_ctx(any_store), DAILY, by="source")

    moves = {m.source: m for m in digest.sources}
    assert [m.source for m in digest.sources] == ["facebook", "seo", "tiktok", None]
    facebook = moves["facebook"]
    assert facebook.moved and facebook.line is not None and facebook.line.key == "cpl"
    assert facebook.line.change.value == 20.0 and facebook.line.change.previous == 200 / 60
    untagged = moves[None]
    assert untagged.moved and untagged.line is not None and untagged.line.key == "leads"
    assert not moves["seo"].moved  # 10 leads against 9 is noise

    [section] = [b for b in digest_message(digest)["blocks"]
                 if b["type"] == "section" and "By source" in b["text"]["text"]]
    lines = section["text"]["text"].split("\n")
    assert lines == [
        f"*By source*: {SOURCE_LINES} of 4, all in the thread",
        ":red_circle: *facebook* Cost per lead $20.00 +500.0%",
        "*seo*: nothing moved beyond noise",
        "*no source (untagged)* Leads 100 +100.0%",  # beyond noise, but no colour: no better way
    ]
    details = digest_details(digest)
    assert ":red_circle: *facebook* Cost per lead $20.00 (+500.0%, was $3.33)" in details
    assert "*seo*: nothing moved beyond noise (biggest: Leads 10, +11.1%)" in details
    assert "*tiktok*: first numbers, Leads 5" in details
    assert "*no source (untagged)* Leads 100 (+100.0%, was 50)" in details
    markdown = digest_markdown(digest)
    assert "## By source" in markdown and "- **facebook** Cost per lead $20.00 (+500.0%, was $3.33) worse" in markdown


def test_the_digest_with_its_sources_fits_twelve_lines_on_a_phone(store: Store) -> None:
    ctx = sources_ctx(store)
    for extra in range(6):  # more sources than the message names
        _log(store, DAY, "leads", 3 + extra, f"partner{extra}")
    digest = compute_digest(ctx, DAILY, by="source")
    message = digest_message(digest)

    assert rendered_lines(message["blocks"]) <= FOLD_LINES, texts(message)
    assert rendered_lines(fallback_blocks(digest)) <= FOLD_LINES
    shown = texts(message)
    assert "*no source (untagged)*" in shown and "of 10, all in the thread" in shown
    assert all(f"partner{n}" in digest_details(digest) for n in range(6))


def test_without_the_option_or_without_source_tags_there_is_no_section(store: Store) -> None:
    ctx = sources_ctx(store)
    assert compute_digest(ctx, DAILY).sources == ()
    assert "By source" not in texts(digest_message(compute_digest(ctx, DAILY)))

    store.ensure_workspace("T0002", timezone="America/New_York")
    store.record("T0002", [Write("leads", DAY, 4.0, "ana")], actor="ana", origin="test")
    untagged_only = compute_digest(open_context(store, "T0002", "ana", NOW), DAILY, by="source")
    assert untagged_only.sources == ()  # the team total already says it


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def test_the_sources_cost_the_same_statements_however_many_there_are(store: Store) -> None:
    """What the section adds to a digest (the rest, e.g. a mover's why, is not its own)."""
    ctx = sources_ctx(store)

    def added() -> int:
        with statements(store) as plain:
            compute_digest(ctx, DAILY)
        with statements(store) as broken_down:
            compute_digest(ctx, DAILY, by="source")
        return len(broken_down) - len(plain)

    few = added()
    for extra in range(20):
        _log(store, DAY, "leads", 3 + extra, f"partner{extra}")
        _log(store, BEFORE, "leads", 2 + extra, f"partner{extra}")
    many = added()
    assert len(compute_digest(ctx, DAILY, by="source").sources) == 24
    assert few == many <= 3, (few, many)
