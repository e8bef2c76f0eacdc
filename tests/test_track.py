"""`/kpi track`, `/kpi goal remove`, `/kpi goals` on a phone, and the log form filled with what
the person already logged: end to end through the fake Slack, the CLI and both databases."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.app import entries
from bot.app.context import open_context
from bot.app.reminders import missing_today
from bot.render.kit import FOLD_LINES, rendered_lines
from kpis.catalogue import DEFAULT
from storage import open_store
from storage.records import Write
from tests.conftest import (
    SLACK_ADMIN,
    SLACK_MEMBER,
    SLACK_NOW,
    SlackBot,
    insert_old_workspace,
    migrate_to,
    texts,
)
from tests.test_slack import _home_opened, elements, opened_view, stored

T1 = "T0001"
TODAY = date(2026, 3, 11)


def _tracked(bot: SlackBot) -> tuple[str, ...]:
    workspace = bot.store.workspace(T1)
    assert workspace is not None
    return workspace.tracked


def _form_metrics(view: dict[str, Any]) -> list[str]:
    return [b["block_id"][2:] for b in view["blocks"] if b["block_id"].startswith("m:")]


def _seed(bot: SlackBot, day: date = TODAY, user: str = SLACK_ADMIN, **values: str) -> None:
    ctx = open_context(bot.store, T1, user, SLACK_NOW, timezone="America/New_York")
    entries.log_numbers(ctx, list(values.items()), day=day.isoformat(), origin="cli")


# -- /kpi track --------------------------------------------------------------------------------


def test_track_sets_exactly_what_the_form_home_and_reminders_ask_for(slack_bot: SlackBot) -> None:
    _seed(slack_bot, leads="4")  # the workspace, and a number logged today

    reply = slack_bot.command("track spend, leads revenue")

    assert reply.json["text"].startswith(":white_check_mark: Tracking 3 metrics: `spend`, "
                                         "`leads`, `revenue`.")
    assert "No longer asked for: `organic_spend`" in reply.json["text"]
    assert _tracked(slack_bot) == ("spend", "leads", "revenue")

    slack_bot.command("log")
    sent, _ = opened_view(slack_bot)
    assert _form_metrics(sent) == ["spend", "leads", "revenue"]

    home = texts(_home_opened(slack_bot))
    missing = next(line for line in home.splitlines() if "Still missing today" in line)
    assert missing == "*Still missing today:* `spend`, `revenue`"

    nudge = missing_today(slack_bot.store, T1, SLACK_NOW)
    assert nudge.missing == ("spend", "revenue")

    listed = slack_bot.command("track", user_id=SLACK_MEMBER)  # anyone may ask what is tracked
    assert listed.json["text"].startswith("Tracking 3 metrics, chosen with `/kpi track`: `spend`, "
                                          "`leads`, `revenue`.")
    assert "chosen with `/kpi track`" in texts(slack_bot.command("metrics").json)


def test_nothing_tracked_asks_for_the_packs_metrics_as_before(slack_bot: SlackBot) -> None:
    _seed(slack_bot, leads="4")
    packs = [m.key for m in DEFAULT.metrics_in(("marketing", "sales"))]

    slack_bot.command("log")
    sent, _ = opened_view(slack_bot)

    assert _form_metrics(sent) == packs
    assert missing_today(slack_bot.store, T1, SLACK_NOW).missing == tuple(
        k for k in packs if k != "leads")
    listed = slack_bot.command("track").json["text"]
    assert listed.startswith(f"Tracking the {len(packs)} metrics of the packs marketing, sales:")


def test_track_packs_goes_back_to_asking_for_the_packs_metrics(slack_bot: SlackBot) -> None:
    packs = [m.key for m in DEFAULT.metrics_in(("marketing", "sales"))]
    slack_bot.command("track leads spend")
    assert "`/kpi track packs` goes back" in slack_bot.command("track").json["text"]

    reply = slack_bot.command("track packs")

    assert reply.json["text"].startswith(
        f":white_check_mark: Back to the {len(packs)} metrics of the packs marketing, sales:"), reply.json
    assert _tracked(slack_bot) == ()
    slack_bot.command("log")
    sent, _ = opened_view(slack_bot)
    assert _form_metrics(sent) == packs
    assert slack_bot.command("metric add packs").json["text"].startswith(":warning:")


@pytest.mark.parametrize(
    ("words", "needles"),
    [
        ("track leds spend", ["I don't know a metric called `leds`. Did you mean `leads`?",
                              "Nothing changed"]),
        ("track spend cpl", ["`cpl` is a KPI computed from other numbers; track its inputs "
                             "instead: `leads`, `spend`."]),
        ("track leads 12x", ["`12x` is not a metric name"]),
        ("track " + " ".join(f"m{i}" for i in range(61)), ["That is 61 metrics", "at most 60"]),
    ],
)
def test_a_bad_track_names_the_nearest_metric_and_changes_nothing(
    slack_bot: SlackBot, words: str, needles: list[str]
) -> None:
    slack_bot.command("track leads")
    reply = slack_bot.command(words)

    shown = reply.json["text"]
    assert shown.startswith(":warning:")
    for needle in needles:
        assert needle in shown, shown
    assert _tracked(slack_bot) == ("leads",)


def test_only_admins_choose_the_tracked_metrics(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("track leads", user_id=SLACK_MEMBER)

    assert reply.json["text"].startswith(":warning: Only admins can choose the tracked metrics.")
    assert _tracked(slack_bot) == ()


def test_a_tracked_metric_removed_since_is_no_longer_asked_for(slack_bot: SlackBot) -> None:
    slack_bot.command("metric add add_to_carts")
    slack_bot.command("track add_to_carts leads")
    slack_bot.command("metric remove add_to_carts")

    slack_bot.command("log")
    sent, _ = opened_view(slack_bot)

    assert _form_metrics(sent) == ["leads"]


# -- the log form, filled with what the person logged ---------------------------------------------


def test_the_log_form_is_filled_with_what_the_person_logged_that_day(slack_bot: SlackBot) -> None:
    slack_bot.command("track leads spend bookings")
    _seed(slack_bot, leads="12", spend="340.5")
    _seed(slack_bot, user=SLACK_MEMBER, bookings="3")  # someone else's number: not theirs
    _seed(slack_bot, day=TODAY - timedelta(days=1), bookings="9")  # another day

    slack_bot.command("log")
    sent, view = opened_view(slack_bot)

    initial = {b["block_id"]: b["element"].get("initial_value") for b in sent["blocks"]
               if b["block_id"].startswith("m:")}
    assert initial == {"m:leads": "12", "m:spend": "340.5", "m:bookings": None}

    # the filled fields left alone, a new number and a source: only the new number is logged
    done = slack_bot.submit(view, {"m:leads": {"value": "12"}, "m:spend": {"value": "340.5"},
                                   "m:bookings": {"value": "2"}, "d:source": {"value": "google"}})

    assert done.status == 200 and done.body == b""
    slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))
    mine = {(e.metric, e.value, e.dims) for e in slack_bot.store.entries_between(T1)
            if e.author == SLACK_ADMIN and e.day == TODAY}
    assert mine == {("leads", 12.0, ()), ("spend", 340.5, ()),
                    ("bookings", 2.0, (("rep", SLACK_ADMIN), ("source", "google")))}


def test_the_log_form_is_filled_with_the_sales_numbers_logged_as_your_own(slack_bot: SlackBot) -> None:
    slack_bot.command("track leads bookings")
    slack_bot.command("log bookings=3 leads=7")  # bookings: rep = the person logging

    slack_bot.command("log")
    sent, view = opened_view(slack_bot)

    initial = {b["block_id"]: b["element"].get("initial_value") for b in sent["blocks"]
               if b["block_id"].startswith("m:")}
    assert initial == {"m:leads": "7", "m:bookings": "3"}
    slack_bot.submit(view, {"m:leads": {"value": "7"}, "m:bookings": {"value": "4"}})
    slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))
    assert {(e.metric, e.value, e.dims) for e in slack_bot.store.entries_between(T1)} == {
        ("leads", 7.0, ()), ("bookings", 4.0, (("rep", SLACK_ADMIN),))}


def test_a_changed_filled_value_replaces_the_one_logged(slack_bot: SlackBot) -> None:
    slack_bot.command("track leads spend")
    _seed(slack_bot, leads="12", spend="100")
    slack_bot.command("log")
    _, view = opened_view(slack_bot)

    slack_bot.submit(view, {"m:leads": {"value": "15"}, "m:spend": {"value": "100"}})

    slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))
    assert {(e.metric, e.value) for e in slack_bot.store.entries_between(T1)} == {
        ("leads", 15.0), ("spend", 100.0)}
    assert [h.metric for h in slack_bot.store.history(T1) if h.origin == "form"] == ["leads"]


def test_a_form_left_as_filled_says_nothing_changed_and_stores_nothing(slack_bot: SlackBot) -> None:
    slack_bot.command("track leads")
    _seed(slack_bot, leads="12")
    before = stored(slack_bot)
    slack_bot.command("log")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(view, {"m:leads": {"value": "12"}})

    assert done.json["response_action"] == "errors"
    assert done.json["errors"] == {"m:leads": "These are the numbers you already logged for that "
                                              "day; change one to log it."}
    assert stored(slack_bot) == before


@pytest.mark.parametrize(("key", "raw", "shown"), [
    ("program_completion", "12.5%", "12.5"), ("program_completion", "7", "7"),
    ("spend", "$1,234.56", "1234.56"), ("leads", "1.5k", "1500"), ("days_to_close", "0.25", "0.25"),
])
def test_a_filled_value_reads_back_as_the_number_logged(key: str, raw: str, shown: str) -> None:
    metric = DEFAULT.metrics[key]
    value = entries.parse_value(metric, raw)
    assert entries.form_text(metric.unit, value) == shown
    assert entries.parse_value(metric, shown) == pytest.approx(value, rel=1e-12)


# -- goals ---------------------------------------------------------------------------------------


def test_goal_remove_removes_it_and_goals_no_longer_lists_it(slack_bot: SlackBot) -> None:
    slack_bot.command("goal revenue 50000 monthly")
    slack_bot.command("goal revenue 12000 weekly")
    slack_bot.command("goal leads 500")

    reply = slack_bot.command("goal remove revenue weekly")

    assert reply.json["text"] == (":wastebasket: Removed the weekly goal of $12,000 on Revenue billed "
                                  "(`revenue`). Digests, reports and App Home no longer show it; "
                                  "`/kpi goals` lists the others.")
    assert [(g.key, g.period) for g in slack_bot.store.goals(T1)] == [
        ("leads", "monthly"), ("revenue", "monthly")]
    both = slack_bot.command("goal remove Revenue").json["text"]
    assert both.startswith(":wastebasket: Removed the monthly goal of $50,000 on Revenue billed")
    listed = texts(slack_bot.command("goals").json)
    assert "Leads" in listed and "Revenue" not in listed


def test_goal_remove_of_an_unknown_name_names_the_goals_there_are(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("goal remove revenue")
    assert reply.json["text"] == (":warning: There are no goals to remove. Set one with "
                                  "`/kpi goal revenue 50000 monthly`.")
    slack_bot.command("goal revenue 50000 monthly")
    slack_bot.command("goal leads 500 weekly")

    reply = slack_bot.command("goal remove revenu")

    assert reply.json["text"] == (":warning: There is no goal on `revenu`. Did you mean "
                                  "`revenue`? The goals are: `leads` (weekly), `revenue` "
                                  "(monthly).")
    weekly = slack_bot.command("goal remove revenue weekly").json["text"]
    assert weekly.startswith(":warning: There is no weekly goal on `revenue`.")
    assert len(slack_bot.store.goals(T1)) == 2


def test_only_admins_remove_goals(slack_bot: SlackBot) -> None:
    slack_bot.command("goal leads 500")

    reply = slack_bot.command("goal remove leads", user_id=SLACK_MEMBER)

    assert reply.json["text"].startswith(":warning: Only admins can remove goals.")
    assert len(slack_bot.store.goals(T1)) == 1


def test_many_goals_fit_above_the_fold_and_show_all_has_every_one(slack_bot: SlackBot) -> None:
    keys = ["revenue", "leads", "spend", "sales", "bookings", "shows", "clicks", "impressions"]
    for n, key in enumerate(keys):
        assert "Goal set" in slack_bot.command(f"goal {key} {100 + n} monthly").json["text"]
    _seed(slack_bot, leads="40", revenue="900")

    reply = slack_bot.command("goals")

    blocks = reply.json["blocks"]
    assert rendered_lines(blocks) <= FOLD_LINES, rendered_lines(blocks)
    show_all = elements(reply.json)["show_all"]
    assert show_all["text"]["text"] == "Show all 8 goals"
    assert 1 <= texts(reply.json).count("* goal ") < 8

    click = slack_bot.action("show_all", show_all["value"], is_ephemeral=True)

    full = slack_bot.fake.wait_for(lambda: slack_bot.responses(click))[-1]
    assert texts(full).count("* goal ") == 8
    assert "show_all" not in elements(full)
    assert "`/kpi goal remove revenue`" in texts(full)


# -- the CLI ---------------------------------------------------------------------------------------


def test_kpibot_track_stores_the_list_and_refuses_a_typo(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["track", "leads,spend", "--db", db, "--workspace", "T9"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Tracking 2 metrics: leads, spend.")
    assert main(["track", "leds", "--db", db, "--workspace", "T9"]) == 2
    assert "Did you mean leads?" in capsys.readouterr().err
    store = open_store(db)
    try:
        workspace = store.workspace("T9")
        assert workspace is not None and workspace.tracked == ("leads", "spend")
    finally:
        store.engine.dispose()


# -- the migration -----------------------------------------------------------------------------------


def test_the_tracked_migration_keeps_every_row_up_and_down(db_url: str) -> None:
    migrate_to(db_url, "upgrade", "0006_timers")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            insert_old_workspace(conn, "T1")
    finally:
        engine.dispose()
    store = open_store(db_url)  # upgrades to the head
    try:
        workspace = store.workspace("T1")
        assert workspace is not None and workspace.tracked == ()
        store.record("T1", [Write("leads", TODAY, 3, "ana")], actor="ana", origin="cli")
        store.update_workspace("T1", tracked=("leads", "spend"))
        assert store.workspace("T1").tracked == ("leads", "spend")  # type: ignore[union-attr]
    finally:
        store.engine.dispose()

    migrate_to(db_url, "downgrade", "0006_timers")

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM entries")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM changes")).scalar() == 1
            assert conn.execute(text("SELECT id FROM workspaces")).scalars().all() == ["T1"]
    finally:
        engine.dispose()
    again = open_store(db_url)
    try:
        assert again.workspace("T1").tracked == ()  # type: ignore[union-attr]
    finally:
        again.engine.dispose()


# -- /kpi setup --------------------------------------------------------------------------------------


def _initial_metrics(view: dict[str, Any]) -> list[str]:
    [block] = [b for b in view["blocks"] if b.get("block_id") == "metrics"]
    return [o["value"] for o in block["element"].get("initial_options") or []]


def test_setup_opens_one_form_from_the_command_and_app_home(slack_bot: SlackBot) -> None:
    home = _home_opened(slack_bot)
    assert elements(home)["open_setup"]["text"]["text"] == "Set up"
    assert "open_setup" not in elements(_home_opened(slack_bot, user=SLACK_MEMBER))

    slack_bot.action("open_setup", block_id="admin", view=slack_bot.fake.home_views[SLACK_ADMIN])
    sent, _ = opened_view(slack_bot)

    assert sent["callback_id"] == "setup_form"
    assert _initial_metrics(sent) == [m.key for m in DEFAULT.metrics_in(("marketing", "sales"))]
    blocks = {b.get("block_id"): b for b in sent["blocks"]}
    assert blocks["digest_time"]["element"]["initial_time"] == "09:00"
    assert [k for k in blocks if str(k).startswith("goal:")] == ["goal:1", "goal:2", "goal:3"]

    slack_bot.command("setup")
    again, _ = opened_view(slack_bot)
    assert again["callback_id"] == "setup_form"


def test_the_setup_form_tracks_schedules_and_sets_goals_like_the_commands(slack_bot: SlackBot) -> None:
    slack_bot.command("setup")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(view, {
        "metrics": {"value": ["leads", "spend", "revenue"]},
        "digest_channel": {"value": "C0002"}, "digest_time": {"value": "08:30"},
        "goal:1": {"value": "revenue 50k"}, "goal:2": {"value": "leads 120 weekly"},
    })

    assert done.status == 200 and done.body == b""
    told = slack_bot.fake.wait_for(lambda f: f.calls_to("chat.postEphemeral"))[0]
    said = told.params["text"]
    assert said.splitlines()[0].startswith(":white_check_mark: Tracking 3 metrics: `leads`, "
                                           "`spend`, `revenue`.")
    assert "The daily digest will be posted in <#C0002> every day at 08:30" in said
    assert said.count(":dart: Goal set.") == 2
    assert _tracked(slack_bot) == ("leads", "spend", "revenue")
    [daily] = slack_bot.store.subscriptions(T1)
    assert (daily.channel_id, daily.kind, daily.at_time) == ("C0002", "daily", "08:30")
    assert {(g.key, g.period, g.value) for g in slack_bot.store.goals(T1)} == {
        ("revenue", "monthly", 50_000), ("leads", "weekly", 120)}
    assert "open_setup" not in elements(_home_opened(slack_bot))

    slack_bot.command("setup")  # opened again, it starts from what is set
    sent, _ = opened_view(slack_bot, opens=2)
    blocks = {b.get("block_id"): b for b in sent["blocks"]}
    assert _initial_metrics(sent) == ["leads", "spend", "revenue"]
    assert blocks["digest_channel"]["element"]["initial_conversation"] == "C0002"
    assert blocks["digest_time"]["element"]["initial_time"] == "08:30"
    assert [blocks[f"goal:{n}"]["element"].get("initial_value") for n in (1, 2, 3)] == [
        "leads 120 weekly", "revenue 50000 monthly", None]


def test_a_bad_setup_form_says_what_is_wrong_on_each_field_and_stores_nothing(
    slack_bot: SlackBot,
) -> None:
    slack_bot.command("setup")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(view, {
        "metrics": {"value": ["leads"]}, "digest_channel": {"value": "C0002"},
        "goal:1": {"value": "revenu 500"}, "goal:2": {"value": "leads 500 yearly"},
        "goal:3": {"value": "leads lots"},
    })

    errors = done.json["errors"]
    assert done.json["response_action"] == "errors"
    assert set(errors) == {"goal:1", "goal:2", "goal:3"}
    assert "Did you mean `revenue`?" in errors["goal:1"]
    assert "`yearly` is not a goal period" in errors["goal:2"]
    assert "A goal needs a KPI and a target" in errors["goal:3"]
    assert _tracked(slack_bot) == ()
    assert slack_bot.store.subscriptions(T1) == [] and slack_bot.store.goals(T1) == []


def test_only_admins_set_up(slack_bot: SlackBot) -> None:
    reply = slack_bot.command("setup", user_id=SLACK_MEMBER)

    assert "Only admins can set up the workspace" in texts(slack_bot.told(reply))
    assert slack_bot.fake.calls_to("views.open") == []


def test_a_setup_form_submitted_by_a_member_is_refused_on_the_form(slack_bot: SlackBot) -> None:
    slack_bot.command("setup")
    _, view = opened_view(slack_bot)

    done = slack_bot.submit(view, {"metrics": {"value": ["leads"]},
                                   "goal:1": {"value": "leads 5"}}, user_id=SLACK_MEMBER)

    assert done.json["response_action"] == "errors"
    assert done.json["errors"]["metrics"].startswith("Only admins can set up the workspace.")
    assert _tracked(slack_bot) == () and slack_bot.store.goals(T1) == []
