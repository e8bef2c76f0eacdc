"""The app's life in a workspace (interface.md "Slack connection and lifecycle"):
`app_uninstalled` and `tokens_revoked` delete the workspace's tokens and stop every post for
it, with no Web API call on a revoked token, ever; its numbers stay, and an install resumes.

Everything runs through the real bot (signed Events API requests, the bootstrapped scheduler,
alert evaluator, nudge sweep and Courier) against the fake Slack, which answers a revoked
token with `token_revoked` and counts the calls made with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.oauth.installation_store import Installation

from storage import Store, Write, open_store
from tests.conftest import SLACK_ADMIN, SLACK_NOW, Clock, SlackBot, serve_bot
from tests.fakeslack import FakeSlack

T1 = "T0001"
T2 = "T0002"
NY = "America/New_York"
TODAY = date(2026, 3, 11)
#: Wednesday 21:10 UTC, 17:10 in New York: the 16:00 digest, the 17:00 nudge and today's
#: alert are all due
LATER = datetime(2026, 3, 11, 21, 10, tzinfo=UTC)
UNINSTALLED = {"type": "app_uninstalled"}
BOT_REVOKED = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'lifecycle.db'}")
    try:
        yield store
    finally:
        store.engine.dispose()


def set_up_everything(bot: SlackBot) -> None:
    """A daily digest at 16:00 in #general, an alert on today's leads, and an admin who
    logged yesterday (so they are nudged at 17:00 if they log nothing today)."""
    for text in ("digest daily 16:00", "alert leads > 5 daily", "log leads=3 date=yesterday"):
        reply = bot.command(text, user_id=SLACK_ADMIN)
        assert reply.status == 200 and ":warning:" not in str(reply.json), (text, reply.json)
    bot.services.alerting.debouncer.flush()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Bolt acks an event first and runs its listener after: wait for the listener's effect."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the event's listener did not finish in time"
        time.sleep(0.02)


def stopped(bot: SlackBot, workspace_id: str = T1) -> None:
    def done() -> bool:
        workspace = bot.store.workspace(workspace_id)
        return workspace is not None and not workspace.installed

    wait_until(done)
    wait_until(lambda: bot.store.timers(workspace_id) == {})  # nothing on a clock is left


def numbers(store: Store, workspace_id: str = T1) -> list[tuple[str, date, float, str]]:
    return sorted((e.metric, e.day, e.value, e.author)
                  for e in store.entries_between(workspace_id, TODAY - timedelta(days=7), TODAY))


def everything_due(bot: SlackBot, clock: Clock) -> list[str]:
    """Numbers arrive by the API (an alert they feed is evaluated), then the minute sweep
    runs at LATER: digests, alerts at the close and today, nudges."""
    bot.store.record(T1, [Write("leads", TODAY, 10, "zapier")], actor="zapier", origin="api")
    bot.services.alerting.logged(T1, TODAY, {"leads"})
    bot.services.alerting.debouncer.flush()
    clock.now = LATER
    return bot.services.scheduler.sweep()


def kinds_posted(fake: FakeSlack, token: str) -> list[str]:
    keys = [c.params["metadata"]["event_payload"]["key"]
            for c in fake.calls_with(token) if c.method == "chat.postMessage" and c.ok]
    return sorted(key.split(":")[0] for key in keys)


@pytest.mark.parametrize("events", [[UNINSTALLED, BOT_REVOKED], [BOT_REVOKED, UNINSTALLED],
                                    [UNINSTALLED], [BOT_REVOKED]],
                         ids=["uninstalled-then-revoked", "revoked-then-uninstalled",
                              "uninstalled-only", "revoked-only"])
def test_an_uninstall_stops_every_post_without_a_call_and_keeps_the_numbers(
    fake_slack: FakeSlack, db: Store, events: list[dict[str, Any]],
) -> None:
    clock = Clock(SLACK_NOW)
    with serve_bot(fake_slack, db, clock=clock) as bot:
        set_up_everything(bot)
        # the admin's zone is known: the sweep the scheduler runs at once on start calls nothing
        db.remember_person(T1, SLACK_ADMIN, timezone=NY)
        bot.services.scheduler.start()  # stopped by the bot's close
        assert {task for task, _ in db.timers(T1)} == {"digest", "alerts", "nudges"}
        fake_slack.revoke("xoxb-test")
        revoked_at = len(fake_slack.calls)

        for event in events:
            reply = bot.event(event)
            assert reply.status == 200, reply.body
        stopped(bot)  # and its schedule stopped at once
        outcomes = everything_due(bot, clock)
        direct = bot.services.courier.deliver(
            T1, "nudge:T0001:U0001:test", kind="nudge", channel=SLACK_ADMIN, due_at=LATER,
            build=lambda: pytest.fail("nothing is built for an uninstalled workspace"))
        assert bot.services.scheduler.sweep() == []

    assert outcomes == [] and direct == "stopped"
    assert fake_slack.calls[revoked_at:] == []  # no Web API call at all, so none with the token
    assert fake_slack.calls_with("xoxb-test")[revoked_at:] == []
    assert db.deliveries(T1) == []  # nothing claimed, so nothing is lost for a reinstall
    workspace = db.workspace(T1)
    assert workspace is not None and not workspace.installed
    assert numbers(db) == [("leads", TODAY - timedelta(days=1), 3.0, SLACK_ADMIN),
                           ("leads", TODAY, 10.0, "zapier")]
    assert [s.at_time for s in db.subscriptions(T1)] == ["16:00"] and len(db.rules(T1)) == 1


def test_a_reinstall_with_a_new_token_resumes_digests_alerts_and_reminders(
    fake_slack: FakeSlack, db: Store,
) -> None:
    clock = Clock(SLACK_NOW)
    with serve_bot(fake_slack, db, clock=clock) as bot:
        set_up_everything(bot)
        fake_slack.revoke("xoxb-test")
        revoked_at = len(fake_slack.calls)
        assert bot.event(UNINSTALLED).status == 200
        assert bot.event(BOT_REVOKED).status == 200
        stopped(bot)
        assert everything_due(bot, clock) == []

    # reinstalled: a new bot token, and Slack sends the workspace's requests again
    with serve_bot(fake_slack, db, clock=clock, token="xoxb-reinstalled") as bot:
        assert bot.services.scheduler.sweep() == []  # not before Slack says it is back
        assert bot.command("help", user_id=SLACK_ADMIN).status == 200
        workspace = db.workspace(T1)
        assert workspace is not None and workspace.installed
        assert sorted(bot.services.scheduler.sweep()) == ["posted", "posted", "posted"]

    assert fake_slack.calls_with("xoxb-test")[revoked_at:] == []
    assert kinds_posted(fake_slack, "xoxb-reinstalled") == ["alert", "digest", "nudge"]


def test_revoking_only_peoples_tokens_keeps_the_bot_posting(fake_slack: FakeSlack, db: Store) -> None:
    clock = Clock(SLACK_NOW)
    with serve_bot(fake_slack, db, clock=clock) as bot:
        set_up_everything(bot)
        reply = bot.event({"type": "tokens_revoked", "tokens": {"oauth": ["U0001"], "bot": []}})
        assert reply.status == 200
        everything_due(bot, clock)
        workspace = db.workspace(T1)
        assert workspace is not None and workspace.installed
    assert kinds_posted(fake_slack, "xoxb-test") == ["alert", "digest", "nudge"]


def test_an_uninstall_of_one_workspace_leaves_another_alone(fake_slack: FakeSlack, db: Store) -> None:
    clock = Clock(SLACK_NOW)
    with serve_bot(fake_slack, db, clock=clock) as bot:
        db.ensure_workspace(T2, timezone="Europe/Madrid")
        db.subscribe(T2, "C0002", "daily", "22:00")  # 21:00 UTC
        db.ensure_workspace(T1, timezone=NY)
        db.subscribe(T1, "C0001", "daily", "16:00")
        assert bot.event(UNINSTALLED, team_id=T1).status == 200
        stopped(bot)
        clock.now = LATER
        assert bot.services.scheduler.sweep() == ["posted"]
    assert [m["channel"] for m in fake_slack.posted_messages()] == ["C0002"]


def test_kpibot_digest_post_refuses_an_uninstalled_workspace(
    db: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    from bot.cli import main

    db.ensure_workspace(T1, timezone=NY)
    db.mark_uninstalled(T1, SLACK_NOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", fake_slack.api_url)
    url = str(db.engine.url)
    status = main(["digest", "daily", "--post", "C0001", "--db", url, "--workspace", T1])
    err = capsys.readouterr().err
    assert status == 2 and "uninstalled" in err and len(err.splitlines()) == 1
    assert fake_slack.calls == []


# -- OAuth: the installation store ---------------------------------------------------------------


def install(bot: SlackBot, token: str) -> None:
    """What Bolt's OAuth flow saves when the workspace installs the app."""
    bot.services.app.installation_store.save(Installation(
        app_id="A0001", team_id=T1, team_name="Acme", user_id=SLACK_ADMIN, bot_token=token,
        bot_id="BBOT", bot_user_id="UBOT", bot_scopes="chat:write", installed_at=SLACK_NOW.timestamp(),
    ))


def test_oauth_uninstall_deletes_the_installation_and_a_reinstall_resumes(
    fake_slack: FakeSlack, db: Store,
) -> None:
    clock = Clock(SLACK_NOW)
    oauth = {"slack_client_id": "111.222", "slack_client_secret": "oauth-secret"}
    with serve_bot(fake_slack, db, clock=clock, **oauth) as bot:
        store = bot.services.app.installation_store
        install(bot, "xoxb-T0001-first")
        db.ensure_workspace(T1, timezone=NY)
        db.subscribe(T1, "C0001", "daily", "16:00")
        fake_slack.revoke("xoxb-T0001-first")

        assert bot.event(BOT_REVOKED).status == 200
        stopped(bot)
        assert store.find_bot(enterprise_id=None, team_id=T1) is None
        assert store.find_installation(enterprise_id=None, team_id=T1) is not None
        assert bot.event(UNINSTALLED).status == 200
        wait_until(lambda: store.find_installation(enterprise_id=None, team_id=T1) is None)
        clock.now = LATER
        assert bot.services.scheduler.sweep() == []

        install(bot, "xoxb-T0001-second")  # the OAuth flow of a reinstall
        workspace = db.workspace(T1)
        assert workspace is not None and workspace.installed
        assert bot.services.scheduler.sweep() == ["posted"]

    assert fake_slack.calls_with("xoxb-T0001-first") == []
    assert kinds_posted(fake_slack, "xoxb-T0001-second") == ["digest"]


def test_the_manifests_subscribe_to_both_lifecycle_events() -> None:
    import yaml

    for name in ("manifest-http.yml", "manifest-socket.yml"):
        path = Path(__file__).parents[1] / "bot" / "manifests" / name
        manifest = yaml.safe_load(path.read_text())
        events = manifest["settings"]["event_subscriptions"]["bot_events"]
        assert {"app_home_opened", "app_uninstalled", "tokens_revoked"} <= set(events), name


# -- kpibot workspace delete --------------------------------------------------------------------


def fill(store: Store, workspace_id: str) -> None:
    """A row of `workspace_id` in every table, written the way the bot writes them."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

    store.ensure_workspace(workspace_id, timezone=NY)
    store.define(workspace_id, "cost_per_show", formula="spend / shows", unit="currency",
                 actor="ana")
    store.record(workspace_id, [Write("leads", TODAY, 4, "ana")], actor="ana", origin="cli")
    store.subscribe(workspace_id, "C0001", "daily", "09:00", actor="ana")
    store.claim_delivery(workspace_id, f"digest:{workspace_id}:C0001:daily:x", kind="digest-daily",
                         channel_id="C0001", due_at=SLACK_NOW, owner="me", now=SLACK_NOW,
                         lease=timedelta(minutes=5))
    store.add_rule(workspace_id, "C0001", "cpl", "{}", "{}", "ana")
    store.set_goal(workspace_id, "leads", "month", 100, "ana")
    store.remember_person(workspace_id, "U0001", timezone=NY)
    store.add_token(workspace_id, "zapier", f"hash-{workspace_id}", actor="ana", now=SLACK_NOW)
    store.record_keyed(workspace_id, [Write("spend", TODAY, 9, "zapier")], actor="zapier",
                       origin="api", key="k1", request_hash="h", status=201, response="{}",
                       now=SLACK_NOW)
    store.record_event(workspace_id, "stripe", "evt_1", "charge.succeeded",
                       [Write("cash_collected", TODAY, 5, "stripe")], actor="stripe",
                       origin="stripe", outcome="ok", now=SLACK_NOW, notice=("currency", "EUR"))
    store.set_webhook_secret(workspace_id, "stripe", "whsec_x", SLACK_NOW)
    store.classify_source(workspace_id, "webinar", paid=False, actor="ana")
    installations = SQLAlchemyInstallationStore(client_id="111.222", engine=store.engine)
    installations.metadata.create_all(store.engine, checkfirst=True)
    installations.save(Installation(
        app_id="A0001", team_id=workspace_id, user_id="U0001", bot_token=f"xoxb-{workspace_id}",
        bot_id="BBOT", bot_user_id="UBOT", installed_at=SLACK_NOW.timestamp()))


def rows_per_table(store: Store, workspace_id: str) -> dict[str, int]:
    """Rows of the workspace in each table: every table of the models (by its workspace_id,
    or its id for `workspaces`), and the OAuth tables beside them (by team_id)."""
    from sqlalchemy import MetaData, func, select

    from storage.models import Base

    present = MetaData()
    present.reflect(store.engine)
    counted: dict[str, int] = {}
    with store.engine.connect() as conn:
        for model in Base.metadata.sorted_tables:
            column = model.c.id if model.name == "workspaces" else model.c.get("workspace_id")
            assert column is not None, f"{model.name} has no workspace_id: say whose rows they are"
            counted[model.name] = conn.scalar(
                select(func.count()).select_from(model).where(column == workspace_id)) or 0
        for name in ("slack_installations", "slack_bots"):
            table = present.tables[name]
            counted[name] = conn.scalar(
                select(func.count()).select_from(table).where(table.c.team_id == workspace_id)) or 0
    unaccounted = set(present.tables) - set(counted) - {"alembic_version"}
    assert not unaccounted, f"tables nobody counts: {unaccounted}"
    return counted


def test_workspace_delete_removes_every_row_of_that_workspace_and_no_other(
    db_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    store = open_store(db_url)
    try:
        fill(store, T1)
        fill(store, T2)
        before = rows_per_table(store, T1)
        others = rows_per_table(store, T2)
        assert all(before.values()), before  # every table holds rows of both
        assert others == before

        capsys.readouterr()
        assert main(["workspace", "delete", T1, "--db", db_url]) == 2
        refused = capsys.readouterr().err
        assert len(refused.splitlines()) == 1 and f"kpibot workspace delete {T1} --yes" in refused
        assert rows_per_table(store, T1) == before

        with caplog.at_level("INFO", logger="kpibot.audit"):
            assert main(["workspace", "delete", T1, "--yes", "--as", "ops", "--db", db_url]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"Deleted workspace {T1}: {sum(before.values())} rows")
        assert rows_per_table(store, T1) == {table: 0 for table in before}
        assert rows_per_table(store, T2) == others
        [audit] = [r for r in caplog.records if r.name == "kpibot.audit"]
        assert audit.levelname == "WARNING"
        assert f"workspace {T1} deleted by ops" in audit.getMessage()
        assert f"{sum(before.values())} rows" in audit.getMessage()

        assert main(["workspace", "delete", T1, "--yes", "--db", db_url]) == 2
        assert f"there is no workspace {T1} (workspaces: {T2})" in capsys.readouterr().err
    finally:
        store.engine.dispose()


# -- kpibot serve checks the kinds of its tokens -------------------------------------------------


def serve_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    import os

    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "KPIBOT_", "DATABASE_URL"))}
    return {**base, "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "PYTHONUNBUFFERED": "1",
            **variables}


@pytest.mark.parametrize(("variables", "named", "prefix"), [
    ({"SLACK_APP_TOKEN": "xoxb-1-swapped", "SLACK_BOT_TOKEN": "xapp-1-A1-swapped"},
     "SLACK_APP_TOKEN", "xapp-"),
    ({"SLACK_APP_TOKEN": "xapp-1-A1-fine", "SLACK_BOT_TOKEN": "xoxp-1-a-user-token"},
     "SLACK_BOT_TOKEN", "xoxb-"),
    ({"SLACK_BOT_TOKEN": "not-a-token", "SLACK_SIGNING_SECRET": "8f74secret"}, "SLACK_BOT_TOKEN", "xoxb-"),
    ({"SLACK_APP_TOKEN": "xoxb-1-x", "SLACK_BOT_TOKEN": "xoxb-1-y", "SLACK_SIGNING_SECRET": "8f74secret"},
     "SLACK_APP_TOKEN", "xapp-"),
], ids=["swapped", "user-token-as-bot-token", "no-prefix-http", "bot-token-as-app-token"])
def test_serve_refuses_a_token_of_the_wrong_kind_in_one_line(
    tmp_path: Path, variables: dict[str, str], named: str, prefix: str,
) -> None:
    import subprocess

    from tests.faultkit import kpibot_executable

    done = subprocess.run([*kpibot_executable(), "serve"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=serve_env(tmp_path, **variables))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert named in line and f"must start with {prefix}" in line
    assert "Traceback" not in done.stderr
    for value in variables.values():  # the secrets themselves are never shown
        assert value not in line


def test_socket_mode_starts_without_a_signing_secret(tmp_path: Path, fake_slack: FakeSlack) -> None:
    import subprocess

    from tests.faultkit import kpibot_executable

    env = serve_env(tmp_path, SLACK_APP_TOKEN="xapp-1-A0001-socket", SLACK_BOT_TOKEN="xoxb-socket",
                    SLACK_API_URL=fake_slack.api_url)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([*kpibot_executable(), "serve"], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        opened = fake_slack.wait_for(lambda f: f.calls_to("apps.connections.open"), timeout=60)
        assert opened[0].headers["authorization"] == "Bearer xapp-1-A0001-socket"
        assert process.poll() is None  # still running: connecting over Socket Mode
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
    assert "SLACK_SIGNING_SECRET" not in (tmp_path / "serve.log").read_text(errors="replace")
