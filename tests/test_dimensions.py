"""A team's own dimensions (`/kpi dimension add|remove`, `/kpi dimensions`): stored per workspace,
tagged on entries like `source`, filtered with `DIM=VALUE` and broken down with `by DIM`, on
SQLite and PostgreSQL, through the CLI and through Slack with signed requests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import bot.cli
from bot.app.context import UserError, open_context
from bot.app.definitions import add_dimension, remove_dimension
from bot.app.entries import log_numbers
from bot.app.reports import report
from kpis.periods import Period
from storage import open_store
from storage.repository import Store
from tests.conftest import SLACK_MEMBER, SlackBot, insert_old_workspace, migrate_to, texts
from tests.test_cli import Cli

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
TODAY = NOW.date()
MIGRATIONS = Path(__file__).resolve().parents[1] / "storage" / "migrations"
T1 = "T0001"


@pytest.fixture
def store(db_url: str) -> Any:
    made = open_store(db_url)
    made.clock = lambda: NOW
    try:
        yield made
    finally:
        made.engine.dispose()


def _ctx(store: Store, actor: str = "ana") -> Any:
    return open_context(store, "W1", actor, NOW)


# -- the use cases on SQLite and PostgreSQL ----------------------------------------------------


def test_own_dimension_tags_filters_and_breaks_down_like_source(store: Store) -> None:
    added = add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    assert added.key == "temperature" and added.values == ("warm", "cold")
    log_numbers(_ctx(store), [("leads", "10"), ("temperature", "warm")])
    log_numbers(_ctx(store), [("leads", "4"), ("spend", "80")], dims=[("temperature", "Cold"),
                                                                       ("source", "facebook")])
    log_numbers(_ctx(store), [("leads", "1")])
    today = Period.day(TODAY)

    warm = report(_ctx(store), today, ["leads"], (("temperature", "warm"),))
    assert warm.metrics["leads"].value == 10
    assert warm.to_json()["dims"] == {"temperature": "warm"}
    both = report(_ctx(store), today, ["leads"], (("temperature", "cold"), ("source", "facebook")))
    assert both.metrics["leads"].value == 4

    grouped = report(_ctx(store), today, ["leads"], by="temperature").to_json()
    assert grouped["by"] == "temperature"
    values = {g["value"]: g["metrics"]["leads"]["value"] for g in grouped["groups"]}
    assert values == {"warm": 10, "cold": 4, None: 1}  # the groups add up to the team's 15
    by_source = report(_ctx(store), today, ["cpl"], by="source", dims=(("temperature", "cold"),))
    assert {g.value: g.kpis["cpl"].value for g in by_source.groups} == {"facebook": 20.0}


def test_a_value_outside_the_list_is_refused_naming_the_nearest_and_stores_nothing(
    store: Store,
) -> None:
    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    with pytest.raises(UserError, match=r"`temperature=wram` is not one of its values; did you "
                                        r"mean `temperature=warm`\? The values are warm, cold"):
        log_numbers(_ctx(store), [("leads", "10"), ("temperature", "wram")])
    assert store.entries_between("W1") == []
    with pytest.raises(UserError, match="did you mean `temperature=cold`"):
        report(_ctx(store), Period.day(TODAY), (), (("temperature", "colt"),))
    with pytest.raises(UserError, match=r"`temprature` is not a dimension\. Did you mean "
                                        r"`?temperature"):
        report(_ctx(store), Period.day(TODAY), (), by="temprature")


def test_a_free_dimension_takes_any_value_and_the_same_entry_key_holds_it(store: Store) -> None:
    add_dimension(_ctx(store), "channel_group")
    log_numbers(_ctx(store), [("leads", "3")], dims=[("channel_group", "Webinar")])
    log_numbers(_ctx(store), [("leads", "5")], dims=[("channel_group", "webinar")])  # replaces
    log_numbers(_ctx(store), [("leads", "2")], dims=[("channel_group", "events")])
    log_numbers(_ctx(store), [("leads", "7")])  # another entry: no tag is a value of its own
    entries = sorted((e.value, e.dims) for e in store.entries_between("W1"))
    assert entries == [(2.0, (("dim1", "events"),)), (5.0, (("dim1", "webinar"),)), (7.0, ())]
    grouped = report(_ctx(store), Period.day(TODAY), ["leads"], by="channel_group")
    assert {g.value: g.metrics["leads"].value for g in grouped.groups} == {
        "webinar": 5, "events": 2, None: 7}


@pytest.mark.parametrize(("key", "message"), [
    ("source", "`source` is a built-in dimension already"),
    ("leads", "`leads` is a metric already; choose another name for the dimension"),
    ("cpl", "`cpl` is a KPI already"),
    ("Temp-1", "can't be a dimension name"),
])
def test_a_name_taken_by_a_dimension_metric_or_kpi_is_refused(
    store: Store, key: str, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        add_dimension(_ctx(store), key)
    assert store.catalogue("W1").dimensions == ()


def test_a_metric_or_kpi_cannot_take_a_dimensions_name(store: Store) -> None:
    from bot.app.definitions import add_metric, define_kpi

    add_dimension(_ctx(store), "temperature")
    with pytest.raises(UserError, match="`temperature` is a dimension already"):
        add_metric(_ctx(store), "temperature")
    with pytest.raises(UserError, match="`temperature` is a dimension"):
        define_kpi(_ctx(store), "temperature", "leads / spend")


def test_removal_is_refused_while_an_alert_keeps_one_of_its_values(store: Store) -> None:
    from bot.app.alerts import add_rule

    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    add_rule(_ctx(store), "C1", "leads", "<", "5", dims=(("temperature", "warm"),))
    with pytest.raises(UserError, match=r"`temperature` is kept by the alert `leads` \(#\d+\); "
                                        "remove those alerts first"):
        remove_dimension(_ctx(store), "temperature")
    with pytest.raises(UserError, match="Did you mean `temperature`"):
        remove_dimension(_ctx(store), "temperatur")
    with pytest.raises(UserError, match="`source` is built in"):
        remove_dimension(_ctx(store), "source")
    assert [d.key for d in store.catalogue("W1").dimensions] == ["temperature"]


def test_removed_tags_stay_and_their_slot_is_not_given_to_another_dimension(store: Store) -> None:
    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    log_numbers(_ctx(store), [("leads", "10")], dims=[("temperature", "warm")])
    remove_dimension(_ctx(store), "temperature")
    assert store.catalogue("W1").dimensions == ()
    assert [e.dims for e in store.entries_between("W1")] == [(("dim1", "warm"),)]
    tier = add_dimension(_ctx(store), "tier")
    assert store.catalogue("W1").dimension("tier").slot == "dim2"  # type: ignore[union-attr]
    assert tier.key == "tier"
    add_dimension(_ctx(store), "region")
    with pytest.raises(UserError, match="at most 3 dimensions of its own"):
        add_dimension(_ctx(store), "size")
    with pytest.raises(UserError, match="`temperature` is not a dimension any more"):
        log_numbers(_ctx(store), [("leads", "1")], dims=[("temperature", "warm")])
    with pytest.raises(UserError, match="bring it back with `/kpi dimension add temperature`"):
        log_numbers(_ctx(store), [("leads", "1"), ("temperature", "warm")])


def test_adding_a_dimension_again_changes_its_values_in_place(store: Store) -> None:
    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    again = add_dimension(_ctx(store), "temperature", ("warm", "cold", "hot"))
    assert again.replaced
    [own] = store.catalogue("W1").dimensions
    assert (own.slot, own.choices) == ("dim1", ("warm", "cold", "hot"))
    add_dimension(_ctx(store), "temperature")
    assert store.catalogue("W1").dimensions[0].choices == ()


# -- removed and added again -------------------------------------------------------------------


def _by(store: Store, dimension: str) -> dict[str | None, float | None]:
    grouped = report(_ctx(store), Period.day(TODAY), ["leads"], by=dimension)
    return {g.value: g.metrics["leads"].value for g in grouped.groups}


def test_adding_a_removed_dimension_again_brings_back_its_slot_and_tags(store: Store) -> None:
    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    log_numbers(_ctx(store), [("leads", "10")], dims=[("temperature", "warm")])
    remove_dimension(_ctx(store), "temperature")
    assert [d.key for d in store.catalogue("W1").removed] == ["temperature"]
    add_dimension(_ctx(store), "tier")  # another dimension does not get the tagged slot
    assert store.catalogue("W1").dimension("tier").slot == "dim2"  # type: ignore[union-attr]

    again = add_dimension(_ctx(store), "temperature", ("warm", "cold", "hot"))

    assert again.restored and not again.replaced
    catalogue = store.catalogue("W1")
    assert {d.key: d.slot for d in catalogue.dimensions} == {"temperature": "dim1",
                                                              "tier": "dim2"}
    assert catalogue.removed == ()
    log_numbers(_ctx(store), [("leads", "2")], dims=[("temperature", "hot")])
    assert _by(store, "temperature") == {"warm": 10, "hot": 2}


def test_a_removed_dimensions_slot_is_given_to_another_once_no_entry_carries_its_tags(
    store: Store,
) -> None:
    from bot.app.entries import delete_entry, recent

    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    log_numbers(_ctx(store), [("leads", "10")], dims=[("temperature", "warm")])
    remove_dimension(_ctx(store), "temperature")
    [line] = recent(_ctx(store)).lines
    delete_entry(_ctx(store), line.id)  # the last tag in dim1 is gone

    region = add_dimension(_ctx(store), "region")

    assert store.catalogue("W1").dimension("region").slot == "dim1"  # type: ignore[union-attr]
    assert not region.restored and store.catalogue("W1").removed == ()
    again = add_dimension(_ctx(store), "temperature")  # a fresh slot, nothing to bring back
    assert not again.restored
    assert store.catalogue("W1").dimension("temperature").slot == "dim2"  # type: ignore[union-attr]


def test_a_dimension_removed_without_tags_is_forgotten(store: Store) -> None:
    from bot.app.definitions import add_metric

    add_dimension(_ctx(store), "temperature")
    remove_dimension(_ctx(store), "temperature")
    assert store.catalogue("W1").removed == ()
    add_metric(_ctx(store), "temperature")  # the name is free again
    assert "temperature" in store.catalogue("W1").metrics


def test_every_place_taken_names_the_removed_dimension_and_how_to_free_it(store: Store) -> None:
    from bot.app.definitions import add_metric

    for key in ("temperature", "tier"):
        add_dimension(_ctx(store), key)
        log_numbers(_ctx(store), [("leads", "1")], dims=[(key, "x")])
    add_dimension(_ctx(store), "region")
    remove_dimension(_ctx(store), "temperature")
    with pytest.raises(UserError, match=r"by `tier`, `region` and the tags of `temperature`, "
                                        r"removed but kept on its entries \(add it back with "
                                        r"`/kpi dimension add temperature`"):
        add_dimension(_ctx(store), "size")
    with pytest.raises(UserError, match="`temperature` was a dimension, and entries keep its tags"):
        add_metric(_ctx(store), "temperature")
    assert "size" not in store.catalogue("W1").dimension_names


# -- tags by their names: history, undo, edit, delete, CSV ----------------------------------


def test_history_undo_edit_and_delete_name_the_dimension_never_its_slot(store: Store) -> None:
    from bot.app.entries import correct_entry, delete_entry, entry_form, recent, undo
    from bot.render import blocks

    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    log_numbers(_ctx(store), [("leads", "10")], dims=[("temperature", "warm")])
    catalogue = store.catalogue("W1")

    def shown(message: dict[str, Any]) -> str:
        return texts(message)

    [line] = recent(_ctx(store)).lines
    assert line.dims == (("temperature", "warm"),)
    history = shown(blocks.history_message([line], catalogue, "USD", "en_US"))
    assert "*leads* temperature=warm" in history and "dim1" not in history
    form = blocks.entry_modal(entry_form(_ctx(store), line.id), {})
    assert "temperature=warm" in shown(form) and "dim1" not in shown(form)

    edited = correct_entry(_ctx(store), line.id, "12")  # stored in the entry's own slot
    assert edited.dims == (("temperature", "warm"),)
    assert [(e.value, e.dims) for e in store.entries_between("W1")] == [
        (12.0, (("dim1", "warm"),))]
    undone = shown(blocks.undo_reply(undo(_ctx(store))))
    assert "leads temperature=warm for 2026-11-22 back to 10" in undone and "dim1" not in undone

    remove_dimension(_ctx(store), "temperature")  # a removed dimension's tags keep its name
    [latest, *_] = recent(_ctx(store)).lines
    assert latest.dims == (("temperature", "warm"),)
    edited = correct_entry(_ctx(store), latest.id, "11")
    assert [(e.value, e.dims) for e in store.entries_between("W1")] == [
        (11.0, (("dim1", "warm"),))]
    [latest, *_] = recent(_ctx(store)).lines
    deleted = delete_entry(_ctx(store), latest.id)
    reply = shown(blocks.deleted_reply(blocks.Logged.of(deleted), catalogue, "USD", "en_US"))
    assert "(temperature=warm)" in reply and "dim1" not in reply
    assert "temperature=warm" in shown(blocks.undo_reply(undo(_ctx(store))))


def test_the_csv_has_a_column_per_own_dimension_and_reads_back(store: Store) -> None:
    import csv
    import io

    from bot.app.entries import export_csv, import_csv

    add_dimension(_ctx(store), "temperature", ("warm", "cold"))
    add_dimension(_ctx(store), "channel_group")
    log_numbers(_ctx(store), [("leads", "10")], dims=[("temperature", "warm"),
                                                      ("source", "facebook")])
    log_numbers(_ctx(store), [("leads", "4")], dims=[("channel_group", "webinar")])
    exported = export_csv(_ctx(store))
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert list(rows[0]) == ["date", "metric", "value", "author", "source", "rep", "campaign",
                             "product", "temperature", "channel_group"]
    assert sorted((r["value"], r["source"], r["temperature"], r["channel_group"])
                  for r in rows) == [("10", "facebook", "warm", ""), ("4", "", "", "webinar")]

    # read back into another workspace with the same dimensions: the same entries
    add_dimension(open_context(store, "W2", "ana", NOW), "temperature", ("warm", "cold"))
    add_dimension(open_context(store, "W2", "ana", NOW), "channel_group")
    import_csv(open_context(store, "W2", "ana", NOW), exported)
    assert sorted((e.value, e.dims) for e in store.entries_between("W2")) == sorted(
        (e.value, e.dims) for e in store.entries_between("W1"))
    with pytest.raises(UserError, match=r"line 2, column dimensions: `temperature=hot` is not "
                                        r"one of its values"):
        import_csv(open_context(store, "W2", "ana", NOW),
                   "date,metric,value,temperature\n2026-11-22,leads,1,hot\n")

    # a removed dimension's tags stay in the export under its name; importing them asks for it
    remove_dimension(_ctx(store), "temperature")
    header = export_csv(_ctx(store)).splitlines()[0]
    assert header.endswith(",channel_group,temperature")
    remove_dimension(open_context(store, "W2", "ana", NOW), "temperature")
    with pytest.raises(UserError, match="`temperature` was removed as a dimension; add it back"):
        import_csv(open_context(store, "W2", "ana", NOW), exported)


# -- the migration -----------------------------------------------------------------------------


def test_the_dimensions_migration_keeps_every_row_up_and_down(db_url: str) -> None:
    migrate_to(db_url, "upgrade", "0008_partition")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            insert_old_workspace(conn, "W1")
            for author, source, value in (("ana", "facebook", 3), ("ana", "", 4), ("bo", "", 5)):
                conn.execute(text(
                    "INSERT INTO entries (workspace_id, metric, day, author, value, origin, "
                    "written_at, write_seq, source, rep, campaign, product) VALUES ('W1', 'leads', "
                    f"'2026-11-22', '{author}', {value}, 'cli', '2026-11-22 10:00:00', 1, "
                    f"'{source}', '', '', '')"))
    finally:
        engine.dispose()

    store = open_store(db_url)  # upgrades to the head
    store.clock = lambda: NOW
    try:
        assert sorted(e.value for e in store.entries_between("W1")) == [3.0, 4.0, 5.0]
        add_dimension(_ctx(store), "temperature", ("warm", "cold"))
        log_numbers(_ctx(store, "ana"), [("leads", "6")], dims=[("temperature", "warm")])
        got = report(_ctx(store), Period.day(date(2026, 11, 22)), ["leads"], by="temperature")
        assert {g.value: g.metrics["leads"].value for g in got.groups} == {"warm": 6, None: 12}
    finally:
        store.engine.dispose()

    with pytest.raises(RuntimeError, match="1 entries carry a workspace's own dimension"):
        migrate_to(db_url, "downgrade", "0008_partition")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM entries WHERE dim1 <> ''"))
    finally:
        engine.dispose()
    migrate_to(db_url, "downgrade", "0008_partition")
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM entries")).scalar() == 3
            assert conn.execute(text("SELECT count(*) FROM definitions")).scalar() == 1
    finally:
        engine.dispose()


# -- the CLI prints what Slack answers ---------------------------------------------------------


@pytest.fixture
def cli(sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Cli:
    monkeypatch.setattr(bot.cli, "_now", lambda: NOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return Cli(sqlite_url, capsys)


def test_kpibot_dimension_logs_reports_and_refuses(cli: Cli) -> None:
    out = cli.ok("dimension", "add", "temperature", "warm", "cold")
    assert out.startswith("Added the dimension temperature (values warm, cold).")
    cli.ok("log", "leads=10", "temperature=warm")
    cli.ok("log", "leads=4", "--dim", "temperature=cold")
    grouped = cli.report("today", "leads", "--by", "temperature")
    assert [(g["value"], g["metrics"]["leads"]["value"]) for g in grouped["groups"]] == [
        ("warm", 10), ("cold", 4)]
    assert cli.report("today", "--dim", "temperature=cold")["metrics"]["leads"]["value"] == 4
    status, out, err = cli("log", "leads=1", "temperature=hot")
    assert (status, out) == (2, "")
    assert err == ("kpibot log: temperature=hot is not one of its values; did you mean "
                   "temperature=warm? The values are warm, cold.\n")
    assert "Dimensions: source, rep, campaign, product (built in)" in cli.ok("dimensions")
    assert "temperature: warm, cold" in cli.ok("dimensions")
    status, _, err = cli("dimension", "add", "leads")
    assert status == 2 and "leads is a metric already" in err
    assert cli.ok("dimension", "remove", "temperature").startswith(
        "Removed the dimension temperature.")


def test_kpibot_export_has_a_column_per_own_dimension_and_import_reads_it(
    cli: Cli, tmp_path: Path,
) -> None:
    cli.ok("dimension", "add", "temperature", "warm", "cold")
    cli.ok("log", "leads=10", "temperature=warm", "--as", "ana")
    rows = cli.export()
    assert [(r["metric"], r["value"], r["author"], r["temperature"]) for r in rows] == [
        ("leads", "10", "ana", "warm")]
    again = tmp_path / "again.csv"
    again.write_text("date,metric,value,author,temperature\n"
                     "2026-11-22,leads,12,ana,warm\n2026-11-22,leads,3,bo,cold\n")
    cli.ok("import", str(again))
    grouped = cli.report("today", "leads", "--by", "temperature")
    assert [(g["value"], g["metrics"]["leads"]["value"]) for g in grouped["groups"]] == [
        ("warm", 12), ("cold", 3)]  # ana's warm leads replaced, bo's added


# -- Slack, signed requests --------------------------------------------------------------------


def test_slack_dimension_add_log_report_and_chart_by_it(slack_bot: SlackBot) -> None:
    added = texts(slack_bot.command("dimension add temperature warm cold").json)
    assert "Added the dimension `temperature`" in added
    logged = slack_bot.command("log leads=12 spend=240 temperature=warm")
    assert logged.status == 200 and "temperature=warm" in texts(logged.json)
    slack_bot.command("log leads=3 spend=30 temperature=cold")
    report = texts(slack_bot.command("report today cpl by temperature").json)
    assert "warm" in report and "cold" in report
    filtered = texts(slack_bot.command("report today leads temperature=warm").json)
    assert "12" in filtered
    refused = texts(slack_bot.command("log leads=2 temperature=wrm").json)
    assert "did you mean `temperature=warm`" in refused
    chart = slack_bot.command("chart leads 7d by temperature")
    assert chart.status == 200 and "Drawing the chart" in chart.json["text"]
    [upload] = slack_bot.fake.wait_for(lambda f: f.uploaded_files("C0001"))
    assert "by temperature" in upload["title"]
    listed = texts(slack_bot.command("dimensions").json)
    assert "`temperature`: warm, cold" in listed
    entries = slack_bot.store.entries_between(T1)
    assert sorted(e.value for e in entries if e.metric == "leads") == [3.0, 12.0]


def test_slack_dimension_add_by_a_member_is_refused_and_stores_nothing(
    slack_bot: SlackBot,
) -> None:
    reply = texts(slack_bot.command("dimension add temperature warm cold",
                                    user_id=SLACK_MEMBER).json)
    assert "Only admins can add dimensions" in reply
    assert slack_bot.store.catalogue(T1).dimensions == ()


# -- the log form, end to end through the fake Slack ----------------------------------------------


def _form(bot: SlackBot) -> tuple[dict[str, Any], dict[str, Any]]:
    from tests.test_slack import opened_view

    bot.command("log")
    return opened_view(bot)


def test_the_log_form_has_a_picker_per_own_dimension_and_stores_it_by_name(
    slack_bot: SlackBot,
) -> None:
    from tests.test_slack import elements, message_of, wait_response

    slack_bot.command("dimension add temperature warm cold")
    slack_bot.command("dimension add channel_group")
    slack_bot.command("track leads spend")
    slack_bot.command("log leads=5")  # the form is filled with it

    sent, view = _form(slack_bot)

    fields = {b["block_id"]: b for b in sent["blocks"]}
    assert fields["m:leads"]["element"]["initial_value"] == "5"
    picker = fields["d:temperature"]["element"]
    assert picker["type"] == "static_select" and fields["d:temperature"]["optional"]
    assert [(o["value"], o["text"]["text"]) for o in picker["options"]] == [
        ("v:warm", "warm"), ("v:cold", "cold"), ("-", "no temperature")]
    assert fields["d:channel_group"]["element"]["type"] == "plain_text_input"
    assert fields["d:channel_group"]["label"]["text"] == "Channel group"

    done = slack_bot.submit(view, {"m:leads": {"value": "5"}, "m:spend": {"value": "100"},
                                   "d:temperature": {"value": "v:warm"},
                                   "d:channel_group": {"value": " Webinar "}})

    assert done.status == 200 and done.body == b""
    call = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))[0]
    reply = message_of(call.params)
    assert "channel_group=webinar · temperature=warm" in reply["text"]
    assert "dim1" not in texts(reply) and "dim2" not in texts(reply)
    # the filled number left alone is not logged again under the new tags
    assert {(e.metric, e.value, e.dims) for e in slack_bot.store.entries_between(T1)} == {
        ("leads", 5.0, ()), ("spend", 100.0, (("dim1", "warm"), ("dim2", "webinar")))}

    history = texts(slack_bot.command("history").json)
    assert "*spend* channel_group=webinar temperature=warm" in history and "dim1" not in history
    click = slack_bot.action("undo_last", elements(reply)["undo_last"]["value"], is_ephemeral=True)
    undone = wait_response(slack_bot, click)["text"]
    assert "Undone: spend channel_group=webinar temperature=warm for 2026-03-11" in undone


@pytest.mark.parametrize(("values", "needle"), [
    ({"d:temperature": {"value": "v:hot"}},
     "`temperature=hot` is not one of its values; did you mean `temperature="),
    ({"d:temperature": {"value": "hot"}}, "The values are warm, cold."),
])
def test_a_bad_dimension_value_on_the_form_is_answered_on_its_field_and_stores_nothing(
    slack_bot: SlackBot, values: dict[str, Any], needle: str,
) -> None:
    slack_bot.command("dimension add temperature warm cold")
    _, view = _form(slack_bot)

    done = slack_bot.submit(view, {"m:leads": {"value": "3"}, **values})

    assert done.json["response_action"] == "errors"
    assert list(done.json["errors"]) == ["d:temperature"]
    assert needle in done.json["errors"]["d:temperature"]
    assert slack_bot.store.entries_between(T1) == []
    assert slack_bot.fake.calls_to("chat.postEphemeral") == []


def test_none_on_the_picker_logs_untagged_and_a_removed_dimension_is_refused_on_its_field(
    slack_bot: SlackBot,
) -> None:
    slack_bot.command("dimension add temperature warm cold")
    _, view = _form(slack_bot)

    slack_bot.submit(view, {"m:leads": {"value": "3"}, "d:temperature": {"value": "-"}})
    slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))
    assert [(e.value, e.dims) for e in slack_bot.store.entries_between(T1)] == [(3.0, ())]

    slack_bot.command("log spend=10 temperature=cold")
    before = {(e.metric, e.value, e.dims) for e in slack_bot.store.entries_between(T1)}
    slack_bot.command("dimension remove temperature")  # while a form is open
    stale = slack_bot.submit(view, {"m:leads": {"value": "4"},
                                    "d:temperature": {"value": "v:warm"}})
    assert ("`temperature` is not a dimension any more (it was removed; its earlier tags are "
            "kept). An admin can bring it back with `/kpi dimension add temperature`."
            in stale.json["errors"]["d:temperature"])
    assert {(e.metric, e.value, e.dims) for e in slack_bot.store.entries_between(T1)} == before


def test_the_log_form_with_every_metric_and_three_own_dimensions_fits_a_view(
    slack_bot: SlackBot,
) -> None:
    from bot.render.blocks import VIEW_BLOCKS, log_modal
    from kpis.catalogue import PACKS, Dimension, custom_metric

    for key in ("temperature", "tier", "region"):
        slack_bot.command(f"dimension add {key} a b")
    slack_bot.store.update_workspace(T1, packs=PACKS)  # every built-in metric asked for
    sent, _ = _form(slack_bot)  # the fake refuses a view over Slack's limits
    ids = [b["block_id"] for b in sent["blocks"]]
    assert ids[-3:] == ["d:temperature", "d:tier", "d:region"]
    assert len([i for i in ids if i.startswith("m:")]) == len(
        slack_bot.store.catalogue(T1).metrics_in(PACKS))

    # more metrics than a view holds: the dimensions stay, the numbers take what is left
    many = [custom_metric(f"m{n}") for n in range(120)]
    own = [Dimension(k, f"dim{n}", ("a",)) for n, k in enumerate(("x", "y", "z"), start=1)]
    modal = log_modal(many, TODAY, "USD", {}, {}, own)
    assert len(modal["blocks"]) <= VIEW_BLOCKS
    assert [b["block_id"] for b in modal["blocks"]][-6:] == [
        "d:source", "d:rep", "d:campaign", "d:x", "d:y", "d:z"]


def test_edit_and_delete_from_history_keep_an_own_dimension_and_say_its_name(
    slack_bot: SlackBot,
) -> None:
    from tests.test_history_edit import edit_form, history, line_of, pick
    from tests.test_slack import message_of, wait_response

    slack_bot.command("dimension add temperature warm cold")
    slack_bot.command("log leads=10 spend=300 temperature=warm")
    number = line_of(history(slack_bot), "*leads* temperature=warm")

    sent, view = edit_form(slack_bot, number)
    assert "for Wed 11 Mar 2026 · temperature=warm" in texts(sent)
    done = slack_bot.submit(view, {"m:leads": {"value": "20"}})

    assert done.status == 200 and done.body == b""
    call = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))[0]
    assert "*leads* 20 (was 10) (temperature=warm)" in texts(message_of(call.params))
    assert {(e.metric, e.value, e.dims) for e in slack_bot.store.entries_between(T1)} == {
        ("leads", 20.0, (("dim1", "warm"),)), ("spend", 300.0, (("dim1", "warm"),))}

    slack_bot.command("dimension remove temperature")  # the tags keep the name
    shown = history(slack_bot)
    assert "dim1" not in texts(shown)
    click = pick(slack_bot, f"delete:{line_of(shown, '*spend* temperature=warm')}")
    assert "Deleted for Wed 11 Mar 2026: *spend* $300.00 (temperature=warm)" in texts(
        wait_response(slack_bot, click))
