"""Ninety days of plausible numbers for a coaching business, for `make demo` and benchmarks.

The funnel runs from impressions to sales with realistic ratios, weekday seasonality, a few
bad days (an ad account hiccup, a no-show day), two setters splitting bookings, two sources,
and gauges (MRR, cash, active customers) that move slowly.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from kpis.periods import Period
from storage.repository import Store, Write

SETTERS = ("setter.ana", "setter.luis")
SOURCES = ("facebook", "google")


def _add(
    writes: list[Write], day: date, metric: str, value: float, author: str = "marketing.lead",
    dims: tuple[tuple[str, str], ...] = (),
) -> None:
    writes.append(Write(metric, day, round(value, 2), author, dims))


def sample_writes(today: date, days: int = 90, seed: int = 7) -> list[list[Write]]:
    """One list of writes per day, oldest first, ending yesterday."""
    rng = random.Random(seed)
    active = 180.0
    cash = 42_000.0
    out: list[list[Write]] = []
    for offset in range(days, 0, -1):
        day = today - timedelta(days=offset)
        weekend = day.weekday() >= 5
        season = 0.55 if weekend else 1.0 + 0.05 * (day.weekday() == 1)
        broken_ads = offset in BROKEN_ADS_DAYS_AGO
        no_show_day = offset == 41
        writes: list[Write] = []

        add = partial(_add, writes, day)

        clicks_total = leads_total = 0
        for source, share, cpm in (("facebook", 0.65, 11.0), ("google", 0.35, 16.0)):
            spend = 420 * share * season * rng.uniform(0.85, 1.15) * (1.6 if broken_ads else 1.0)
            impressions = int(spend / cpm * 1000 * rng.uniform(0.9, 1.1))
            ctr = rng.uniform(0.009, 0.014) * (0.4 if broken_ads else 1.0)
            clicks = int(impressions * ctr)
            page_views = int(clicks * rng.uniform(0.75, 0.88))
            leads = int(page_views * rng.uniform(0.10, 0.15))
            dims = (("source", source),)
            add("spend", spend, dims=dims)
            add("impressions", impressions, dims=dims)
            add("reach", int(impressions / rng.uniform(1.4, 1.8)), dims=dims)
            add("clicks", clicks, dims=dims)
            add("page_views", page_views, dims=dims)
            add("leads", leads, dims=dims)
            clicks_total += clicks
            leads_total += leads
        add("organic_spend", 60 * season)
        add("mqls", int(leads_total * rng.uniform(0.5, 0.7)))
        bookings = int(leads_total * rng.uniform(0.25, 0.35))
        first = bookings // 2
        shows_total = sales_total = 0
        for setter, booked in ((SETTERS[0], first), (SETTERS[1], bookings - first)):
            shows = 0 if no_show_day else int(round(booked * rng.uniform(0.6, 0.8)))
            add("bookings", booked, author=setter)
            add("qualified_bookings", int(booked * rng.uniform(0.6, 0.8)), author=setter)
            add("shows", shows, author=setter)
            shows_total += shows
        sales = int(round(shows_total * rng.uniform(0.18, 0.32)))
        sales_total += sales
        add("sqls", int(shows_total * 0.8), author="closer.marta")
        add("sales", sales, author="closer.marta")
        add("new_customers", sales, author="closer.marta")
        revenue = sales * rng.choice((1500, 2000, 2000, 3000))
        add("revenue", revenue, author="closer.marta")
        add("cash_collected", revenue * rng.uniform(0.5, 0.7), author="closer.marta")
        if sales:
            add("days_to_close", rng.uniform(3, 9), author="closer.marta")
        lost = 1 if rng.random() < 0.2 else 0
        active = active + sales - lost
        add("customers_lost", lost, author="ops.sam")
        add("active_customers", active, author="ops.sam")
        add("mrr", active * 150, author="ops.sam")
        if rng.random() < 0.1:
            add("refund_requests", 1, author="ops.sam")
        expenses = 900 + 420 * season
        cash += revenue * 0.6 - expenses
        add("expenses", expenses, author="ops.sam")
        add("cogs", revenue * 0.18, author="ops.sam")
        add("payroll", 520 if not weekend else 0, author="ops.sam")
        add("cash_balance", cash, author="ops.sam")
        out.append(writes)
    return out


def fill(store: Store, workspace_id: str, today: date, days: int = 90) -> int:
    """Logs the sample days into `workspace_id`; returns how many values were stored."""
    count = 0
    for writes in sample_writes(today, days):
        store.record(workspace_id, writes, actor="demo", origin="demo")
        count += len(writes)
    return count


#: the demo's rules as typed after `/kpi alert`: the fixed and the unusual leads rules side by
#: side, and an unusual cost per lead, which the ad account's bad days (`broken_ads`) move most
DEMO_RULES = ("cpl > 12 daily for 2", "show_rate < 60% weekly", "leads down 30% daily",
              "leads unusual daily medium", "cpl unusual daily medium")

#: how many days before "today" the ad account broke (`sample_writes`)
BROKEN_ADS_DAYS_AGO = (23, 24)


@dataclass(frozen=True)
class Replayed:
    """What the demo's replay of the last 30 days made of each rule: how many times it fired
    and resolved, and what its firings said (an unusual rule's band, in its own words)."""

    typed: str
    fired: int
    resolved: int
    said: tuple[str, ...]


def replay_demo_alerts(store: Store, today: date, now: datetime) -> tuple[list[Replayed], list[str]]:
    """Adds the demo's alert rules and replays the last 30 days through them, day by day: each
    rule's counts, and each message the channel would have received (nothing in between)."""
    from bot import grammar as g
    from bot.app import alerts
    from bot.app.context import open_context
    from bot.app.names import label_of
    from kpis.unusual import explain

    ctx = open_context(store, "demo", "demo", now)
    typed: dict[int, str] = {}
    for text in DEMO_RULES:
        command = g.parse_command(f"alert {text}")
        assert isinstance(command, g.AlertAdd)
        rule = alerts.add_rule(ctx, "CDEMO", command.kpi, command.op, command.threshold,
                               period=command.period, for_periods=command.for_periods,
                               sensitivity=command.sensitivity)
        typed[rule.id] = text
    counts = {rule_id: {"firing": 0, "resolved": 0} for rule_id in typed}
    said: dict[int, list[str]] = {rule_id: [] for rule_id in typed}
    lines: list[str] = []

    def record(rule: alerts.AlertRule, note: Any, values: alerts.Values) -> str:
        shown = "n/a" if note.value is None else f"{note.value:,.4g}"
        counts[rule.id][note.kind.value] += 1
        why = ""
        if note.expectation is not None:
            why = explain(note.expectation, label_of(ctx.catalogue, rule.rule.kpi))
            if note.kind.value == "firing":
                said[rule.id].append(f"{values.period}: {why}")
            why = f": {why}"
        lines.append(f"- {values.period}: rule #{rule.id} (`{typed[rule.id]}`) {note.kind.value} "
                     f"at {shown}{why}")
        return "posted"

    for back in range(30, 0, -1):
        day = today - timedelta(days=back)
        moment = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
        alerts.evaluate_workspace(store, "demo", day, moment, record)
    replayed = [Replayed(typed[i], counts[i]["firing"], counts[i]["resolved"], tuple(said[i]))
                for i in typed]
    return replayed, lines


def run_demo_alerts(store: Store, today: date, now: datetime) -> str:
    """The demo's alert replay as Markdown (`alerts_markdown`)."""
    from bot.app import alerts

    replayed, messages = replay_demo_alerts(store, today, now)
    firing = [f"#{r.id} {r.rule.kpi}" for r in alerts.rules(store, "demo")
              if r.state.status.value == "firing"]
    return alerts_markdown(replayed, messages, firing)


def alerts_markdown(replayed: list[Replayed], messages: list[str], firing: list[str]) -> str:
    """The rules side by side (fired and resolved over the last 30 days), what the unusual
    ones said when they fired, each message in order, and what fires now."""
    lines = ["## Alerts", "", "Over the last 30 days:", "", "| Rule | Fired | Resolved |",
             "|---|---:|---:|",
             *(f"| `{r.typed}` | {r.fired} | {r.resolved} |" for r in replayed), ""]
    for r in replayed:
        if r.said:
            lines += [f"`{r.typed}` fired on:", "", *(f"- {s}" for s in r.said), ""]
    lines += ["Messages, in order:", "", *messages, "", f"Firing now: {', '.join(firing) or 'none'}", ""]
    return "\n".join(lines)


def run_demo(out: Path, now: datetime) -> int:
    """What `make demo` runs: a fresh demo database, its report, printed and written to `out`."""
    from bot.app.context import open_context
    from bot.app.digests import DAILY, WEEKLY, compute_digest
    from bot.app.reports import report
    from bot.render.digest import digest_markdown, write_digest_files
    from bot.render.text import report_table
    from storage import open_store

    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    store = open_store(f"sqlite:///{db_path}")
    ctx = open_context(store, "demo", "demo", now)
    count = fill(store, "demo", ctx.today)
    last_week = Period(ctx.today - timedelta(days=7), ctx.today - timedelta(days=1))
    result = report(ctx, last_week)
    table = report_table(result)
    (out / "report.txt").write_text(table, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    alert_log = run_demo_alerts(store, ctx.today, now)
    (out / "alerts.md").write_text(alert_log, encoding="utf-8")
    daily = compute_digest(ctx, DAILY)
    written = write_digest_files(daily, out) + write_digest_files(compute_digest(ctx, WEEKLY), out)
    print(f"Demo database: {db_path} ({count} values over 90 days)")
    print(f"KPIs for {result.period} against {result.previous}\n")
    print(table)
    print(digest_markdown(daily))
    print(alert_log)
    print(f"Files written to {out}/: report.txt, report.json, alerts.md and {len(written)} digest files "
          "(Markdown, Block Kit JSON and PNG charts)")
    return 0
