"""The `kpibot` command line as interface.md describes it, run in-process and as a real program.

In-process runs freeze the CLI's clock at Sunday 2026-11-22 15:00 UTC, so "this week" is
2026-11-16..2026-11-22 and its previous week 2026-11-09..2026-11-15, as in the JSON example.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import bot.cli
from bot.cli import main
from bot.render.text import terminal_text
from storage import Store
from storage.models import DefinitionRow
from storage.repository import Write
from tests.conftest import SLACK_NOW, SlackBot, in_full

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
TODAY = NOW.date()
KPIBOT = Path(sys.executable).with_name("kpibot")
SLACK_TEAM = "T0001"


class Cli:
    """Runs `kpibot ...` in-process against one database and returns (status, out, err)."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str, db: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            status = main([*args, "--db", db or self.url])
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        out, err = self.capsys.readouterr()
        return status, out, err

    def ok(self, *args: str, db: str | None = None) -> str:
        status, out, err = self(*args, db=db)
        assert status == 0, err
        return out

    def report(self, *args: str, db: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ok("report", *args, "--json", db=db))
        return result

    def export(self, *args: str, db: str | None = None) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.ok("export", *args, db=db))))


@pytest.fixture
def cli(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Cli:
    monkeypatch.setattr(bot.cli, "_now", lambda: NOW)
    monkeypatch.chdir(tmp_path)  # no stray .env or kpibot.db is read or written
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return Cli(sqlite_url, capsys)


# -- log ----------------------------------------------------------------------------------


def test_log_stores_and_prints(cli: Cli) -> None:
    out = cli.ok("log", "leads=12", "spend=$1,200", "--as", "ana")
    assert out.splitlines()[0] == f"Stored for {TODAY} as ana: leads=12, spend=$1,200.00"
    assert "Cost per lead: n/a -> $100.00" in out
    assert cli.export() == [
        {"date": str(TODAY), "metric": "leads", "value": "12", "author": "ana",
         "source": "", "rep": "", "campaign": "", "product": ""},
        {"date": str(TODAY), "metric": "spend", "value": "1200", "author": "ana",
         "source": "", "rep": "", "campaign": "", "product": ""},
    ]  # fmt: skip


def test_log_with_date_dimensions_and_percent(cli: Cli) -> None:
    out = cli.ok(
        "log", "leads=1.5k", "program_completion=12.5%", "--date", "2026-11-20",
        "--dim", "source=Facebook ", "--dim", "campaign=Spring", "--as", "luis",
    )  # fmt: skip
    assert out.startswith("Stored for 2026-11-20 as luis: leads=1,500, program_completion=12.5%")
    rows = cli.export()
    assert {(r["metric"], r["value"], r["source"], r["campaign"]) for r in rows} == {
        ("leads", "1500", "facebook", "spring"),
        ("program_completion", "12.5%", "facebook", "spring"),
    }


def test_the_default_author_is_the_local_user_and_stable(cli: Cli) -> None:
    cli.ok("log", "leads=3")
    cli.ok("log", "leads=4")  # the same person again: replaces
    rows = cli.export()
    assert len(rows) == 1 and rows[0]["value"] == "4" and rows[0]["author"]


def test_log_yesterday_and_replace_add_rule(cli: Cli) -> None:
    cli.ok("log", "bookings=3", "--as", "ana", "--date", "yesterday")
    cli.ok("log", "bookings=4", "--as", "luis", "--date", "yesterday")
    cli.ok("log", "bookings=5", "--as", "ana", "--date", "yesterday")
    report = cli.report("yesterday")
    assert report["period"] == {"start": "2026-11-21", "end": "2026-11-21"}
    assert report["metrics"] == {"bookings": {"value": 9.0, "previous": None, "change_pct": None, "significant": None}}


BAD_INPUT = [
    pytest.param(["log", "leeds=12"], ["leeds", "leads"], id="unknown metric"),
    pytest.param(["log", "leads=abc"], ["abc", "1,234.5"], id="not a number"),
    pytest.param(["log", "leads=-3"], ["negative", "0 or more"], id="negative count"),
    pytest.param(["log", "leads=2.5"], ["whole number"], id="fractional count"),
    pytest.param(["log", "leads=3", "--date", "2026-02-30"], ["2026-02-30", "2026-02-28"], id="impossible date"),
    pytest.param(["log", "leads=3", "--date", "2026-11-23"], ["future", "today"], id="future date"),
    pytest.param(["log", "cpl=3"], ["cpl", "spend"], id="a KPI"),
    pytest.param(["log", "leads=3", "--dim", "sorce=facebook"], ["sorce", "source"], id="unknown dimension"),
    pytest.param(["log", "leads"], ["leads", "METRIC=VALUE"], id="no value"),
    pytest.param(["log", "leads=3", "spend=40", "leads=4"], ["twice"], id="twice"),
    pytest.param(["log", "spend=12%"], ["percent"], id="percent for money"),
    pytest.param(["log"], ["METRIC=VALUE"], id="nothing to log"),
    pytest.param(["report", "last-wek"], ["last-wek", "last-week"], id="unknown period"),
    pytest.param(["report", "week", "cpll"], ["cpll", "cpl"], id="unknown KPI"),
    pytest.param(["report", "--from", "2026-11-01"], ["--to"], id="half a range"),
    pytest.param(["frobnicate"], ["frobnicate"], id="unknown command"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "words"), BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    cli: Cli, args: list[str], words: list[str]
) -> None:
    status, out, err = cli(*args)
    assert status == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kpibot")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in err and out == ""
    assert cli.export() == []


def test_a_bad_value_among_good_ones_stores_none_of_them(cli: Cli) -> None:
    status, _, err = cli("log", "leads=12", "spend=40", "bookings=x")
    assert status == 2 and "bookings" in err
    assert cli.export() == []


# -- report --json --------------------------------------------------------------------------


def test_report_json_has_exactly_the_keys_of_the_interface(cli: Cli) -> None:
    this_week, last_week = "2026-11-18", "2026-11-11"
    cli.ok("log", "spend=1200", "leads=120", "bookings=30", "--date", this_week)
    cli.ok("log", "spend=1000", "leads=80", "bookings=40", "--date", last_week)
    cli.ok("log", "revenue=500", "--date", last_week)  # no data this week: not listed
    report = cli.report()
    assert set(report) == {"workspace", "period", "previous", "partial", "metrics", "kpis"}
    assert report["workspace"] == "local"
    assert report["period"] == {"start": "2026-11-16", "end": "2026-11-22"}
    assert report["partial"] is True  # today (Sunday) is the week's last day, not over yet
    assert report["previous"] == {"start": "2026-11-09", "end": "2026-11-15"}
    metrics = report["metrics"]
    assert isinstance(metrics, dict)
    assert set(metrics) == {"spend", "leads", "bookings"}
    assert metrics["spend"] == {"value": 1200.0, "previous": 1000.0, "change_pct": 20.0, "significant": None}
    kpis = report["kpis"]
    assert isinstance(kpis, dict)
    # total costs are the sum of the cost parts logged: here ad spend alone
    assert set(kpis) == {"cpl", "booking_rate", "cost_per_booking", "total_costs"}
    assert kpis["total_costs"]["value"] == metrics["spend"]["value"]
    for entry in (*metrics.values(), *kpis.values()):
        # a KPI with more than one way to compute it says which one gave the value
        assert set(entry) - {"method"} == {"value", "previous", "change_pct", "significant"}
    assert kpis["total_costs"]["method"] == "sum of the cost parts logged"
    assert "method" not in kpis["cpl"]
    # 120 leads against 80 in the same number of days is beyond Poisson noise
    assert metrics["leads"]["significant"] is True
    assert kpis["cpl"] == {"value": 10.0, "previous": 12.5, "change_pct": pytest.approx(-20.0), "significant": None}
    # a percent KPI is a fraction; its change is a percentage
    assert kpis["booking_rate"]["value"] == pytest.approx(0.25)
    assert kpis["booking_rate"]["previous"] == pytest.approx(0.5)
    assert kpis["booking_rate"]["change_pct"] == pytest.approx(-50.0)


def test_report_json_keeps_a_kpi_with_an_empty_denominator_as_null(cli: Cli) -> None:
    cli.ok("log", "spend=50", "leads=0")
    report = cli.report("today")
    assert report["kpis"]["cpl"] == {"value": None, "previous": None, "change_pct": None, "significant": None}
    # ad spend alone is a total cost, said as such
    assert report["kpis"]["total_costs"]["value"] == 50.0
    assert report["kpis"]["total_costs"]["method"] == "sum of the cost parts logged"
    assert "null" in cli.ok("report", "today", "--json")


def test_report_month_compares_with_the_previous_calendar_month(cli: Cli) -> None:
    cli.ok("log", "spend=300", "--date", "2026-10-31")
    cli.ok("log", "spend=100", "--date", "2026-10-01")
    cli.ok("log", "spend=200", "--date", "2026-11-02")
    cli.ok("log", "spend=999", "--date", "2026-09-30")  # before the previous month
    report = cli.report("month")  # today is 22 November: like for like, 1-22 Oct, not all of it
    assert report["period"] == {"start": "2026-11-01", "end": "2026-11-22"}
    assert report["previous"] == {"start": "2026-10-01", "end": "2026-10-22"}
    assert report["partial"] is True
    assert report["metrics"] == {"spend": {"value": 200.0, "previous": 100.0, "change_pct": 100.0, "significant": None}}
    last = cli.report("last-month")
    assert last["partial"] is False
    assert last["period"] == {"start": "2026-10-01", "end": "2026-10-31"}
    assert last["previous"] == {"start": "2026-09-01", "end": "2026-09-30"}


def test_report_with_an_explicit_range_and_kpi_filter(cli: Cli) -> None:
    cli.ok("log", "spend=100", "leads=10", "clicks=50", "--date", "2026-11-05")
    report = cli.report("--from", "2026-11-01", "--to", "2026-11-10")
    assert report["previous"] == {"start": "2026-10-22", "end": "2026-10-31"}
    only = cli.report("2026-11-01..2026-11-10", "cpl")
    assert set(only["kpis"]) == {"cpl"}
    assert set(only["metrics"]) == {"spend", "leads"}


def test_report_as_a_table(cli: Cli) -> None:
    out = cli.ok("report")
    assert "No numbers logged" in out
    cli.ok("log", "spend=50", "leads=0")
    out = cli.ok("report")
    assert "2026-11-16..2026-11-22" in out
    assert "Cost per lead" in out and "n/a" in out


def test_report_table_warns_when_ltv_is_below_cac(cli: Cli) -> None:
    cli.ok("log", "active_customers=100", "--date", "2026-10-31")
    cli.ok(
        "log", "active_customers=100", "customers_lost=10", "revenue=1000", "spend=2000",
        "new_customers=10", "--date", "2026-11-10",
    )  # fmt: skip
    out = cli.ok("report", "month")
    line = next(line for line in out.splitlines() if line.startswith("LTV to CAC ratio"))
    assert "0.50x" in line and "⚠" in line and "loses money" in line
    assert cli.report("month")["kpis"]["ltv_cac"]["value"] == pytest.approx(0.5)


# -- CSV --------------------------------------------------------------------------------------


def test_export_then_import_into_an_empty_database_reproduces_every_entry(
    cli: Cli, tmp_path: Path
) -> None:
    cli.ok("log", "spend=1234.56", "leads=17", "--as", "ana", "--date", "2026-11-01")
    cli.ok("log", "leads=5", "--as", "luis", "--date", "2026-11-01", "--dim", "source=google")
    cli.ok("log", "leads=7", "--as", "luis", "--date", "2026-11-01", "--dim", "source=facebook",
           "--dim", "campaign=spring")  # fmt: skip
    cli.ok(
        "log", "program_completion=33.3333%", "mrr=0.00001", "--as", "ops", "--date", "2026-11-20"
    )
    cli.ok("log", "cash_balance=-2500.75", "--as", "ops", "--dim", "rep=U042ABC")
    cli.ok("log", "days_to_close=4.333333333333333", "--as", "marta")
    exported = cli.ok("export")
    source = cli.export()
    assert len(source) == 8

    path = tmp_path / "entries.csv"
    path.write_text(exported, encoding="utf-8")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert cli.export(db=other) == []
    assert "Imported 8 entries" in cli.ok("import", str(path), db=other)
    copied = cli.export(db=other)

    def key(row: dict[str, str]) -> tuple[str, ...]:
        return tuple(
            row[c] for c in ("date", "metric", "author", "source", "rep", "campaign", "product")
        )

    assert sorted(map(key, copied)) == sorted(map(key, source))
    by_key = {key(r): r["value"] for r in copied}
    for row in source:
        a, b = row["value"], by_key[key(row)]
        assert float(a.rstrip("%")) == pytest.approx(float(b.rstrip("%")), rel=1e-12)
    assert cli.report("2026-11-01..2026-11-22", db=other) == cli.report("2026-11-01..2026-11-22")


def test_import_with_one_bad_row_names_its_line_and_column_and_stores_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "date,metric,value,author,source\n"
        "2026-11-01,leads,12,ana,facebook\n"
        "2026-11-02,spend,12..5,ana,\n"
        "2026-11-03,leads,3,luis,\n",
        encoding="utf-8",
    )
    status, out, err = cli("import", str(path))
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert "line 3" in err and "column value" in err and "12..5" in err
    assert cli.export() == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("date,metric,value\n2026-11-01,leeds,3\n", ["line 2", "column metric", "leads"]),
        ("date,metric,value\n2026-02-30,leads,3\n", ["line 2", "column date", "2026-02-28"]),
        ("date,metric,value\n2026-11-01,leads,3,4\n", ["line 2", "columns"]),
        ("date,metrik,value\n", ["line 1", "date,metric,value"]),
        ("date,metric,value,sorce\n", ["line 1", "sorce", "source"]),
        ("date,metric,value\n", ["no rows"]),
    ],
)
def test_import_refusals(cli: Cli, tmp_path: Path, content: str, words: list[str]) -> None:
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    status, _, err = cli("import", str(path))
    assert status == 2 and len(err.splitlines()) == 1
    for word in words:
        assert word in err
    assert cli.export() == []


def test_import_of_a_missing_file_is_bad_input(cli: Cli, tmp_path: Path) -> None:
    status, _, err = cli("import", str(tmp_path / "nope.csv"))
    assert status == 2 and "nope.csv" in err and len(err.splitlines()) == 1


def test_export_of_a_range(cli: Cli) -> None:
    cli.ok("log", "leads=1", "--date", "2026-11-01")
    cli.ok("log", "leads=2", "--date", "2026-11-10")
    rows = cli.export("--from", "2026-11-05", "--to", "2026-11-22")
    assert [r["date"] for r in rows] == ["2026-11-10"]


# -- database and workspaces ------------------------------------------------------------------


def test_db_upgrade_on_an_empty_file(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert "up to date" in cli.ok("db", "upgrade", db=url)
    assert "up to date" in cli.ok("db", "upgrade", db=url)  # twice is fine
    assert (tmp_path / "fresh.db").exists()
    assert cli.export(db=url) == []


def test_every_command_creates_the_schema_itself(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-upgraded.db'}"
    assert cli.report(db=url)["metrics"] == {}


def test_workspaces_are_separate(cli: Cli) -> None:
    cli.ok("log", "leads=10", "--workspace", "T0123")
    # with one workspace in the database it is the default
    assert cli.report()["workspace"] == "T0123"
    cli.ok("log", "leads=99", "--workspace", "T0456")
    first = cli.report("--workspace", "T0123")
    second = cli.report("--workspace", "T0456")
    assert first["metrics"] == {"leads": {"value": 10.0, "previous": None, "change_pct": None, "significant": None}}
    assert second["metrics"] == {"leads": {"value": 99.0, "previous": None, "change_pct": None, "significant": None}}
    assert [r["value"] for r in cli.export("--workspace", "T0456")] == ["99"]
    # with two workspaces and no --workspace: `local`, which has nothing
    assert cli.report()["workspace"] == "local"
    assert cli.report()["metrics"] == {}


def test_reading_a_mistyped_workspace_does_not_create_it(cli: Cli) -> None:
    cli.ok("log", "leads=10", "--workspace", "T0123")
    assert cli.report("--workspace", "T0132")["metrics"] == {}
    assert cli.export("--workspace", "T0132") == []
    # T0123 is still the only workspace, so still the default
    assert cli.report()["workspace"] == "T0123"


def test_postgresql_through_the_same_commands(cli: Cli, pg_url: str) -> None:
    cli.ok("log", "spend=50", "leads=5", "--as", "ana", db=pg_url)
    cli.ok("log", "leads=5", "--as", "luis", db=pg_url)
    report = cli.report("today", db=pg_url)
    assert report["kpis"]["cpl"] == {"value": 5.0, "previous": None, "change_pct": None, "significant": None}


# -- demo -----------------------------------------------------------------------------------


def test_demo_prints_the_table_and_writes_files(cli: Cli, tmp_path: Path) -> None:
    out_dir = tmp_path / "demo-out"
    out = cli.ok("demo", "--out", str(out_dir))
    assert "Cost per lead" in out and "Calls booked" in out
    assert (out_dir / "demo.db").exists()
    assert (out_dir / "report.txt").read_text(encoding="utf-8").strip()
    report = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    assert report["workspace"] == "demo"
    assert report["kpis"]["cpl"]["value"] > 0
    assert report["period"]["end"] == str(TODAY - timedelta(days=1))
    alerts = (out_dir / "alerts.md").read_text(encoding="utf-8")
    assert "| `leads down 30% daily` |" in alerts and "| `leads unusual daily medium` |" in alerts


# -- the installed program ------------------------------------------------------------------


def test_the_installed_kpibot_program(tmp_path: Path) -> None:
    assert KPIBOT.exists(), f"{KPIBOT} missing: pip install -e '.[test]'"
    url = f"sqlite:///{tmp_path / 'sub.db'}"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KPIBOT), *args, "--db", url], capture_output=True, text=True, timeout=120,
            cwd=tmp_path, env=env,
        )  # fmt: skip

    today = datetime.now(UTC).date()
    logged = run("log", "spend=50", "leads=0", "--as", "ana")
    assert logged.returncode == 0, logged.stderr
    assert "Stored for" in logged.stdout and "as ana" in logged.stdout

    bad = run("log", "leeds=3")
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1 and "leads" in bad.stderr

    future = run("log", "leads=3", "--date", (today + timedelta(days=2)).isoformat())
    assert future.returncode == 2 and "future" in future.stderr

    report = run("report", "today", "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["kpis"]["cpl"] == {"value": None, "previous": None, "change_pct": None, "significant": None}
    assert data["period"]["start"] in {today.isoformat(), (today - timedelta(days=1)).isoformat()}

    usage = run("log")
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1


def test_report_period_start_is_a_monday(cli: Cli) -> None:
    start = date.fromisoformat(str(cli.report()["period"]["start"]))
    assert start.weekday() == 0


def test_a_user_without_a_name_still_gets_a_stable_author(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 1234567")

    monkeypatch.setattr("getpass.getuser", nameless)
    cli.ok("log", "leads=3")
    cli.ok("log", "leads=4")
    rows = cli.export()
    assert [(r["author"], r["value"]) for r in rows] == [("local", "4")]


def test_today_is_the_day_in_the_workspace_time_zone(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import open_store

    store = open_store(cli.url)
    store.ensure_workspace("T0123", timezone="America/Bogota")
    store.engine.dispose()
    # 02:30 UTC on the 8th is still the evening of the 7th in Bogota
    monkeypatch.setattr(bot.cli, "_now", lambda: datetime(2026, 3, 8, 2, 30, tzinfo=UTC))
    out = cli.ok("log", "leads=3", "--workspace", "T0123")
    assert out.startswith("Stored for 2026-03-07 ")
    status, _, err = cli("log", "leads=3", "--date", "2026-03-08", "--workspace", "T0123")
    assert status == 2 and "future" in err
    assert cli.report("today")["period"] == {"start": "2026-03-07", "end": "2026-03-07"}


def test_demo_numbers_are_all_valid_inputs() -> None:
    from bot.demo import sample_writes
    from kpis.catalogue import DEFAULT, DIMENSIONS

    days = sample_writes(TODAY)
    assert len(days) == 90
    assert days[-1][0].day == TODAY - timedelta(days=1)
    for writes in days:
        for w in writes:
            assert DEFAULT.metrics[w.metric].check(w.value) is None, w
            assert all(name in DIMENSIONS for name, _ in w.dims)


# -- digest and alerts ----------------------------------------------------------------------


def test_digest_out_writes_markdown_block_kit_json_and_pngs(cli: Cli, tmp_path: Path) -> None:
    yesterday = TODAY - timedelta(days=1)
    cli.ok("log", "impressions=20000", "clicks=300", "leads=30", "spend=450", "--date", str(yesterday))

    out = cli.ok("digest", "daily", "--out", str(tmp_path / "d"))

    files = {Path(line).name for line in out.splitlines()}
    assert {"daily-digest.md", "daily-digest.json", f"daily-{yesterday}-cpl.png",
            f"daily-{yesterday}-funnel.png"} <= files
    markdown = (tmp_path / "d" / "daily-digest.md").read_text()
    assert "| Cost per lead | $15.00 |" in markdown
    blocks = json.loads((tmp_path / "d" / "daily-digest.json").read_text())
    assert blocks["text"].startswith("Daily KPIs") and blocks["blocks"]
    assert (tmp_path / "d" / f"daily-{yesterday}-cpl.png").read_bytes()[:4] == b"\x89PNG"


def test_digest_without_out_prints_markdown_and_refuses_the_future(cli: Cli) -> None:
    assert cli.ok("digest", "weekly").startswith("# Weekly KPIs")
    status, _, err = cli("digest", "daily", "--date", str(TODAY + timedelta(days=2)))
    assert status == 2 and "future" in err


def test_digest_by_source_adds_each_sources_biggest_move(cli: Cli) -> None:
    for day, leads in ((TODAY - timedelta(days=2), 20), (TODAY - timedelta(days=1), 60)):
        cli.ok("log", f"leads={leads}", "spend=300", "--dim", "source=facebook", "--date", str(day))
        cli.ok("log", "leads=8", "--dim", "source=seo", "--date", str(day))

    shown = cli.ok("digest", "daily", "--by", "source")

    assert "## By source" in shown
    assert "- **facebook** Leads 60 (+200.0%, was 20)\n" in shown  # the biggest, and no better way
    assert "- **seo**: nothing moved beyond noise (biggest: Leads 8, ±0.0%)" in shown
    assert "By source" not in cli.ok("digest", "daily")
    status, _, err = cli("digest", "daily", "--by", "rep")
    assert status == 2 and "invalid choice" in err


def test_digest_post_goes_out_once_per_period(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakeslack import FakeSlack

    with FakeSlack() as fake:
        monkeypatch.setenv("SLACK_API_URL", fake.api_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-cli-test")
        cli.ok("log", "leads=3", "spend=90", "--date", str(TODAY - timedelta(days=1)))

        first = cli.ok("digest", "daily", "--post", "C0001")
        second = cli.ok("digest", "daily", "--post", "C0001")

        assert first.startswith("Posted the daily digest") and "already posted" in second
        assert len(fake.messages_in("C0001")) == 1
        status, _, err = cli("digest", "daily", "--post", "#general")
        assert status == 2 and "channel id" in err


def test_alerts_lists_rules_as_text_and_json(cli: Cli) -> None:
    from bot.app import alerts
    from bot.app.context import open_context
    from storage import open_store

    store = open_store(cli.url)
    alerts.add_rule(open_context(store, "local", "ana", NOW), "C0001", "cpl", ">", "15",
                    for_periods=2)
    store.engine.dispose()

    assert "#1  Cost per lead > $15.00 daily for 2  -> C0001  ok" in cli.ok("alerts")
    listed = json.loads(cli.ok("alerts", "--json"))
    assert listed["rules"][0] | {"since": None} == {
        "id": 1, "kpi": "cpl", "op": ">", "threshold": 15.0, "period": "daily", "for": 2,
        "dims": {}, "channel": "C0001", "state": "ok", "since": None, "last_value": None,
        "snoozed_until": None,
    }


def test_a_weekly_frequency_says_it_is_a_lower_bound(cli: Cli) -> None:
    for back in (1, 2):
        day = str(TODAY - timedelta(days=back))
        cli.ok("log", "impressions=1000", "reach=400", "--date", day)

    week = cli.ok("report", "7d")
    one_day = cli.ok("report", "yesterday")

    assert "Frequency" in week and "the true frequency is at least this" in week
    assert "Frequency" in one_day and "at least this" not in one_day


# -- paid and organic sources (kpi-catalogue.md section 5) ------------------------------------


def test_sources_decide_paid_cac_and_paid_cpl(cli: Cli) -> None:
    cli.ok("log", "spend=10000", "organic_spend=5000")
    cli.ok("log", "new_customers=200", "leads=400", "--dim", "source=facebook")
    cli.ok("log", "new_customers=300", "leads=600", "--dim", "source=webinar")
    kpis = cli.report("today")["kpis"]
    # webinar is in neither default list, so it counts as paid
    assert kpis["cac"]["value"] == pytest.approx(20.0)
    assert kpis["paid_cpl"]["value"] == pytest.approx(10.0)
    assert "webinar: paid" in cli.ok("source")
    out = cli.ok("source", "webinar", "organic")
    assert "source=webinar counts as organic" in out
    kpis = cli.report("today")["kpis"]
    assert kpis["cac"]["value"] == pytest.approx(50.0)  # seed 003's pair
    assert kpis["blended_cac"]["value"] == pytest.approx(30.0)
    assert kpis["paid_cpl"]["value"] == pytest.approx(25.0)
    assert kpis["cpl"]["value"] == pytest.approx(10.0)
    assert "webinar: organic" in cli.ok("source")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("source", "webinr", "organic"), ["No entry has source=webinr", "webinar"]),
        (("source", "webinar"), ["Say a source and how it counts", "/kpi source webinar organic"]),
    ],
)
def test_a_source_classification_of_an_unknown_source_stores_nothing(
    cli: Cli, args: tuple[str, ...], words: list[str]
) -> None:
    cli.ok("log", "leads=3", "--dim", "source=webinar")
    status, out, err = cli(*args)
    assert status == 2 and not out
    assert len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err
    assert "webinar: paid (default)" in cli.ok("source")


@pytest.mark.parametrize(
    ("args", "instead"),
    [
        (("report", "2026-12-01..2026-12-05"), "Try 2026-11-18..2026-11-22"),
        (("report", "--from", "2026-11-23", "--to", "2026-11-24"), "Try 2026-11-21..2026-11-22"),
        (("report", str(TODAY + timedelta(days=1))), "Try today"),
    ],
)
def test_a_period_in_the_future_is_refused_with_one_that_is_not(
    cli: Cli, args: tuple[str, ...], instead: str
) -> None:
    cli.ok("log", "leads=3")
    status, out, err = cli(*args)
    assert status == 2 and not out
    assert "is in the future" in err and instead in err
    assert len(err.strip().splitlines()) == 1


# -- breakdowns (interface.md, Release 2: --dim, --by) ----------------------------------------


def test_report_by_rep_is_the_leaderboard_and_groups_add_up_to_the_team(cli: Cli) -> None:
    cli.ok("log", "shows=10", "sales=2", "--dim", "rep=U1")
    cli.ok("log", "shows=8", "sales=4", "--dim", "rep=U2")
    cli.ok("log", "shows=5", "sales=1")  # untagged: visible, never dropped
    report = cli.report("today", "close_rate", "--by", "rep")
    groups = report["groups"]
    assert report["by"] == "rep"
    assert [g["value"] for g in groups] == ["U2", "U1", None]  # best close rate first, untagged last
    assert groups[0]["kpis"]["close_rate"]["value"] == pytest.approx(0.5)
    for metric in ("shows", "sales"):
        assert sum(g["metrics"][metric]["value"] for g in groups) == report["metrics"][metric]["value"]
    for group in groups:
        assert set(group) == {"value", "metrics", "kpis"}
    text = cli.ok("report", "today", "close_rate", "--by", "rep")
    assert "1. U2: Close rate (per attended call) 50.0%" in text
    assert "3. no rep (untagged)" in text


def test_report_filtered_by_a_dimension_value(cli: Cli) -> None:
    cli.ok("log", "spend=300", "leads=30", "--dim", "source=facebook")
    cli.ok("log", "leads=12", "--dim", "source=seo")
    report = cli.report("today", "--dim", "source=Facebook")
    assert report["dims"] == {"source": "facebook"}
    assert report["metrics"]["leads"]["value"] == 30
    assert report["kpis"]["cpl"]["value"] == 10.0
    status, _, err = cli("report", "today", "--by", "sauce")
    assert status == 2 and "Did you mean source?" in err


# -- names after options (issue 13 part 5) -----------------------------------------------------


def test_report_keeps_every_name_given_after_from_and_to(cli: Cli) -> None:
    cli.ok("log", "leads=10", "spend=200", "new_customers=2")
    report = cli.report("--from", str(TODAY), "--to", str(TODAY), "leads", "cpl")
    assert set(report["metrics"]) == {"leads", "spend"}  # leads asked for, spend feeds cpl
    assert set(report["kpis"]) == {"cpl"}
    assert report["metrics"]["leads"]["value"] == 10
    mixed = cli.report("cpl", "--by", "source", "today", "leads")
    assert set(mixed["kpis"]) == {"cpl"} and "leads" in mixed["metrics"]


@pytest.mark.parametrize(
    "args",
    [
        ("report", "--from", str(TODAY), "--to", str(TODAY), "leeds"),
        ("report", "--from", str(TODAY), "--to", str(TODAY), "cpl", "leeds"),
        ("report", "today", "leeds", "--json"),
    ],
)
def test_report_of_an_unknown_name_exits_2_with_the_slack_refusal(
    cli: Cli, args: tuple[str, ...]
) -> None:
    cli.ok("log", "leads=10")
    status, out, err = cli(*args)
    assert status == 2 and not out
    assert err.strip() == ("kpibot report: I don't know a KPI or metric called leeds. "
                           "Did you mean leads? See /kpi metrics for the list.")


def test_report_refuses_a_period_given_twice(cli: Cli) -> None:
    status, out, err = cli("report", "30d", "--from", str(TODAY), "--to", str(TODAY))
    assert status == 2 and not out
    assert err.strip() == "kpibot report: give the period once: 30d or --from/--to, not both"



# -- /kpi commands from the terminal (interface.md, Release 2: the same words) ----------------


def seed_cpl_week(store: Store) -> None:
    """The week before SLACK_NOW against the one before it: spend +10%, leads -11%, CPL +23.6%."""
    store.ensure_workspace(SLACK_TEAM, timezone="America/New_York")
    for day, spend, leads, sales in ((date(2026, 3, 2), (600, 400), (60, 40), 10),
                                     (date(2026, 3, 9), (660, 440), (45, 44), 12)):
        store.record(SLACK_TEAM, [
            Write("spend", day, spend[0], "ads", (("source", "facebook"),)),
            Write("spend", day, spend[1], "ads", (("source", "google"),)),
            Write("leads", day, leads[0], "ads", (("source", "facebook"),)),
            Write("leads", day, leads[1], "ads", (("source", "google"),)),
            Write("sales", day, sales, "ads", ()),
        ], actor="ads", origin="cli")


@pytest.fixture
def both(slack_bot: SlackBot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> tuple[SlackBot, Cli]:
    """The Slack bot and the CLI on one database and one clock."""
    monkeypatch.setattr(bot.cli, "_now", lambda: SLACK_NOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    seed_cpl_week(slack_bot.store)
    return slack_bot, Cli(str(slack_bot.store.engine.url), capsys)


@pytest.mark.parametrize(
    ("words", "undo"),
    [
        ("why cpl", None),
        ("why leads week", None),
        ("whatif ctr=+10% close_rate=+5%", None),
        ("source", None),
        ("source google organic", "source google paid"),
        ("define cost_per_sale = spend / sales", None),  # a second define replaces the first
        ("metric add add_to_carts count sum Add to carts", None),
        ("metric remove add_to_carts", "metric add add_to_carts"),
        ("track leads,spend sales", "track bookings"),
        ("track", None),
    ],
)
def test_a_kpi_command_prints_what_slack_answers(
    both: tuple[SlackBot, Cli], words: str, undo: str | None
) -> None:
    slack, cli = both
    if undo:  # the state Slack starts from, then again for the CLI
        cli.ok(*undo.split(), "--workspace", SLACK_TEAM)
    answer = slack.command(words)
    assert answer.status == 200
    if undo:
        cli.ok(*undo.split(), "--workspace", SLACK_TEAM)
    printed = cli.ok(*words.split(), "--workspace", SLACK_TEAM)
    # a terminal has no fold: it prints what Slack's Show all answers
    folded = "show_all" in json.dumps(answer.json.get("blocks"))
    assert printed == terminal_text(in_full(slack, answer.json) if folded else answer.json)
    assert len(printed.splitlines()) >= 1 and ":" not in printed.split()[0]  # no emoji codes


def test_why_prints_the_numbers_that_moved(both: tuple[SlackBot, Cli]) -> None:
    _, cli = both
    out = cli.ok("why", "cpl", "--workspace", SLACK_TEAM)
    assert out.splitlines()[:2] == [
        "Why CPL moved", "CPL +23.6%: leads −11.0%, spend +10.0%; leads fell mostly from facebook"]
    assert "1. leads: 100 → 89 (−11.0%), +13.0 pts of CPL's +23.6%" in out
    assert "• facebook: 60 → 45 (−15)" in out
    assert "2026-03-04..2026-03-10, against 2026-02-25..2026-03-03" in out


def test_whatif_prints_the_compounding_and_stores_nothing(both: tuple[SlackBot, Cli]) -> None:
    slack, cli = both
    before = cli.ok("export", "--workspace", SLACK_TEAM)
    out = cli.ok("whatif", "ctr=+10%", "close_rate=+5%", "--workspace", SLACK_TEAM)
    assert "Compounding: 1.10x (CTR) × 1.05x (close rate) = 1.16x the sales" in out
    assert "Leads: 189 → 207.9 (+10.0%)" in out and "Sales: 22 → 25.41 (+15.5%)" in out
    assert cli.ok("export", "--workspace", SLACK_TEAM) == before


def test_define_is_stored_with_its_author_and_shows_in_reports(both: tuple[SlackBot, Cli]) -> None:
    slack, cli = both
    out = cli.ok("define", "cost_per_sale", "=", "spend / sales", "--as", "ops", "--workspace",
                 SLACK_TEAM)
    assert out == ("Defined cost_per_sale = spend / sales. It shows in reports as soon as its "
                   "inputs have data.\n")
    kpis = cli.report("2026-03-09", "cost_per_sale", "--workspace", SLACK_TEAM)["kpis"]
    assert kpis["cost_per_sale"]["value"] == pytest.approx(1100 / 12)
    with slack.store.engine.connect() as conn:
        row = conn.execute(select(DefinitionRow.created_by, DefinitionRow.formula)
                           .where(DefinitionRow.key == "cost_per_sale")).one()
    assert tuple(row) == ("ops", "spend / sales")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("define", "cps", "=", "spend", "/", "sails"), ["unknown name sails", "did you mean sales?"]),
        (("define", "cps", "spend", "/", "sales"), ["Write a definition like /kpi define"]),
        (("define", "leads", "=", "spend", "/", "sales"), ["leads is a built-in name"]),
        (("define", "cps", "=", "spend / sales", "as", "dollars"), ["dollars is not a unit"]),
        (("metric", "add", "cps", "curency"), ["Did you mean currency?"]),
        (("metric", "add", "leads"), ["leads is a built-in metric"]),
        (("metric", "add", "cpl"), ["cpl is a KPI already"]),
        (("metric", "remove", "leads"), ["leads is built in"]),
        (("metric", "remove", "cps"), ["I don't track a metric called cps"]),
        (("metric", "drop", "cps"), ["Say what to do with a metric"]),
        (("why",), ["Which KPI should I explain?"]),
        (("why", "cpll"), ["I don't know a KPI or metric called cpll", "Did you mean cpl?"]),
        (("whatif",), ["kpibot whatif STEP=+N%"]),
        (("whatif", "ctr=ten"), ["ctr=ten is not a change"]),
        (("whatif", "clicks=+10%"), ["clicks"]),
        (("source", "gogle", "organic"), ["No entry has source=gogle", "google"]),
        (("source", "google", "free"), ["A source is paid or organic, not free"]),
    ],
)
def test_a_bad_kpi_command_exits_2_with_one_line_and_stores_nothing(
    cli: Cli, args: tuple[str, ...], words: list[str]
) -> None:
    cli.ok("log", "spend=100", "sales=2", "leads=10", "--dim", "source=google")
    before = cli.ok("export"), cli.ok("source")
    status, out, err = cli(*args)
    assert status == 2 and not out
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"kpibot {args[0]}: ")
    for word in words:
        assert word in err
    assert (cli.ok("export"), cli.ok("source")) == before
    assert "cps" not in cli.report("today", "--json")["kpis"]


def test_kpi_commands_in_the_installed_program(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'kpi.db'}"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(KPIBOT), *args, "--db", db], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)

    assert run("log", "spend=100", "sales=4").returncode == 0
    done = run("define", "cost_per_sale = spend / sales")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Defined cost_per_sale = spend / sales.")
    bad = run("define", "cost_per_sale = spend / sails")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "did you mean sales?" in bad.stderr



def test_a_teams_own_metric_is_logged_computed_and_removed_only_when_unused(cli: Cli) -> None:
    out = cli.ok("metric", "add", "add_to_carts", "count", "sum", "Add", "to", "carts", "--as", "ops")
    assert out.startswith("Added the metric add_to_carts (Add to carts: count, sum over a period).")
    cli.ok("log", "add_to_carts=40", "sales=6")
    cli.ok("define", "cart_rate = sales / add_to_carts as percent higher")
    report = cli.report("today", "cart_rate", "add_to_carts")
    assert report["kpis"]["cart_rate"]["value"] == pytest.approx(0.15)
    assert report["metrics"]["add_to_carts"]["value"] == 40
    assert "cart_rate                 15.0%" in cli.ok("report", "today", "cart_rate")

    status, out, err = cli("metric", "remove", "add_to_carts")
    assert status == 2 and not out
    assert err.strip() == ("kpibot metric: add_to_carts is used by cart_rate; redefine or remove "
                           "those KPIs first.")
    assert "add_to_carts" in cli.report("today")["metrics"]

    cli.ok("define", "cart_rate = sales / leads as percent higher")
    assert cli.ok("metric", "remove", "add_to_carts").startswith("Removed the metric add_to_carts.")
    assert "add_to_carts" not in cli.report("today")["metrics"]
    assert [r["value"] for r in cli.export() if r["metric"] == "add_to_carts"] == ["40"]  # kept
    cli.ok("metric", "add", "add_to_carts")
    assert cli.report("today")["metrics"]["add_to_carts"]["value"] == 40
