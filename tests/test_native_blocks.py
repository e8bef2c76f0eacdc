"""The native `table` and `data_visualization` builders keep Slack's documented limits
(slack-platform.md sections 10 and 11), and the phone-height count the digest is held to."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.app.charts import MAX_LINES, Charted, chart_buckets, charted
from bot.app.context import Context, UserError, open_context
from bot.render import kit
from bot.render.chart_post import chart_message, native_block
from bot.render.kit import (
    BlockLimitError,
    line_chart,
    marked_cell,
    native_problems,
    raw_cell,
    rendered_lines,
    table,
    wrapped_lines,
)
from bot.render.posts import outgoing_of
from kpis.periods import Period
from storage import Store
from storage.repository import Write
from tests.conftest import SLACK_MEMBER, SlackBot, sql_statements
from tests.fakeslack import block_kit_problems


def test_the_limits_are_the_documented_ones() -> None:
    # section 10
    assert (kit.TABLE_MAX_ROWS, kit.TABLE_MAX_CELLS, kit.TABLE_MAX_COLUMN_SETTINGS) == (100, 20, 20)
    assert kit.TABLE_MAX_PER_MESSAGE == 1
    # section 11: title 50; 1-6 series (the conflicting 12 is not used); names and point
    # labels 20; 1-20 points; axis labels 50; two per message
    assert kit.CHART_TITLE_LIMIT == 50 and kit.CHART_MAX_SERIES == 6
    assert kit.CHART_SERIES_NAME_LIMIT == 20 and kit.CHART_LABEL_LIMIT == 20
    assert kit.CHART_MAX_POINTS == 20 and kit.CHART_AXIS_LABEL_LIMIT == 50
    assert kit.CHART_MAX_PER_MESSAGE == 2


def cells(n: int, text: str = "x") -> list[dict[str, object]]:
    return [raw_cell(text) for _ in range(n)]


def test_a_table_at_its_limits_is_built_and_one_past_them_is_refused() -> None:
    biggest = table([cells(20) for _ in range(100)], align=["right"] * 20)
    assert len(biggest["rows"]) == 100 and len(biggest["column_settings"]) == 20
    assert native_problems([biggest]) == []
    assert block_kit_problems({"text": "t", "blocks": [biggest]}, "message") == []

    with pytest.raises(BlockLimitError, match="100 rows"):
        table([cells(3) for _ in range(101)])
    with pytest.raises(BlockLimitError, match="20 cells"):
        table([cells(21)])
    with pytest.raises(BlockLimitError, match="column settings"):
        table([cells(3)], align=["left"] * 21)
    with pytest.raises(BlockLimitError, match="align"):
        table([cells(3)], align=["middle"])
    with pytest.raises(BlockLimitError, match="header row"):
        table([])
    with pytest.raises(BlockLimitError, match="characters"):
        raw_cell("x" * (kit.TABLE_CELL_LIMIT + 1))
    with pytest.raises(BlockLimitError, match="characters"):
        table([[{"type": "raw_text", "text": "y" * (kit.TABLE_CELL_LIMIT + 1)}]])
    with pytest.raises(BlockLimitError, match="10000 characters"):
        table([cells(20, "z" * 50) for _ in range(11)])


def test_a_marked_cell_is_rich_text_leading_with_its_emoji() -> None:
    cell = marked_cell("red_circle", "+12.0%")
    assert kit.cell_text(cell) == ":red_circle: +12.0%"
    assert block_kit_problems({"text": "t", "blocks": [table([[raw_cell("a"), cell]])]}, "message") == []


def chart(points: int = 3, series: int = 1, **kw: object) -> dict[str, object]:
    categories = [f"D{i}" for i in range(points)]
    return line_chart(str(kw.get("title", "Leads")), categories,
                      [(f"S{s}", [float(i) for i in range(points)]) for s in range(series)])


def test_a_line_chart_at_its_limits_is_built_and_one_past_them_is_refused() -> None:
    biggest = line_chart("t" * 50, [f"{'c' * 18}{i:02d}" for i in range(20)],
                         [(f"{'s' * 19}{i}", [-1.5] * 20) for i in range(6)],
                         x_label="x" * 50, y_label="y" * 50)
    assert native_problems([biggest]) == []
    assert block_kit_problems({"text": "t", "blocks": [biggest]}, "message") == []

    with pytest.raises(BlockLimitError, match="title"):
        chart(title="t" * 51)
    with pytest.raises(BlockLimitError, match="title"):
        chart(title="")
    with pytest.raises(BlockLimitError, match="series"):
        chart(series=7)
    with pytest.raises(BlockLimitError, match="points"):
        chart(points=21)
    with pytest.raises(BlockLimitError, match="point label"):
        line_chart("t", ["x" * 21], [("s", [1.0])])
    with pytest.raises(BlockLimitError, match="series name"):
        line_chart("t", ["a"], [("n" * 21, [1.0])])
    with pytest.raises(BlockLimitError, match="unique"):
        line_chart("t", ["a"], [("s", [1.0]), ("s", [2.0])])
    with pytest.raises(BlockLimitError, match="unique"):
        line_chart("t", ["a", "a"], [("s", [1.0, 2.0])])
    with pytest.raises(BlockLimitError, match="one value per category"):
        line_chart("t", ["a", "b"], [("s", [1.0])])
    with pytest.raises(BlockLimitError, match="finite"):
        line_chart("t", ["a"], [("s", [math.nan])])
    with pytest.raises(BlockLimitError, match="axis label"):
        line_chart("t", ["a"], [("s", [1.0])], y_label="y" * 51)


def test_a_message_takes_one_table_and_two_charts() -> None:
    one = table([cells(2)])
    assert native_problems([one, chart(), chart()]) == []
    assert native_problems([one, one]) == ["2 tables (max 1)"]
    assert native_problems([chart(), chart(), chart()]) == ["3 data_visualization blocks (max 2)"]
    fake = block_kit_problems({"text": "t", "blocks": [one, one, chart(), chart(), chart()]}, "message")
    assert len(fake) == 2


def test_the_fake_refuses_what_the_builders_refuse() -> None:
    bad = {"type": "data_visualization", "title": "x" * 51, "chart": {
        "type": "line", "axis_config": {"categories": ["a"]},
        "series": [{"name": "s", "data": [{"label": "b", "value": "1"}]}]}}
    problems = block_kit_problems({"text": "t", "blocks": [bad]}, "message")
    assert len(problems) == 3, problems
    assert native_problems([bad]) != []
    assert block_kit_problems({"type": "modal", "title": {"type": "plain_text", "text": "M"},
                               "blocks": [table([cells(1)])]}, "modal")


def test_lines_on_a_phone_wrap_at_its_width_and_a_table_row_is_one_line() -> None:
    assert wrapped_lines("") == 1
    assert wrapped_lines("a\nb") == 2
    assert wrapped_lines("x" * kit.PHONE_WIDTH) == 1
    assert wrapped_lines(("word " * 20).strip()) == 3  # 99 characters in 44-character lines
    assert wrapped_lines("*bold* _it_ `code` <#C1|general> :eyes:") == 1
    assert wrapped_lines(":red_circle:" * 22) == 1 and wrapped_lines(":red_circle: " * 16) == 2
    blocks = [kit.header("Daily KPIs"), kit.section("one\ntwo"), kit.context("legend"),
              chart(), table([cells(3)] * 5)]
    assert rendered_lines(blocks) == 1 + 2 + 1 + 0 + 5


# -- /kpi chart: the native block, by DIM, raw metrics, the fallback -------------------------

NY = "America/New_York"
#: 10:00 in New York on Wednesday 2026-03-11, the e2e clock's day
ASKED_AT = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)
TODAY = date(2026, 3, 11)
CHANNEL = "C0001"
SOURCES = ("facebook", "google", "seo", "referral", "tiktok", "email", "podcast", "partner")


def tagged(store: Store, sources: dict[str, float], untagged: float = 0.0, days: int = 30,
           workspace: str = "T0001") -> None:
    """Each day of the last `days`: that many leads (and 10x the spend) per source, and
    `untagged` leads without a source."""
    store.ensure_workspace(workspace, timezone=NY)
    writes = []
    for i in range(days):
        day = TODAY - timedelta(days=i)
        for source, leads in sources.items():
            dims = (("source", source),)
            writes += [Write("leads", day, leads, "ana", dims),
                       Write("spend", day, leads * 10.0, "ana", dims)]
        if untagged:
            writes += [Write("leads", day, untagged, "ana"), Write("spend", day, untagged * 5.0, "ana")]
    store.record(workspace, writes, actor="ana", origin="test")


def chart_ctx(store: Store, workspace: str = "T0001") -> Context:
    return open_context(store, workspace, SLACK_MEMBER, ASKED_AT, channel=CHANNEL)


def names(chart: Charted) -> list[str]:
    block, _ = native_block(chart)
    assert block is not None
    return [s["name"] for s in block["chart"]["series"]]


def assert_valid(chart: Charted) -> dict[str, Any]:
    """The message carries one data_visualization block that keeps every documented limit."""
    message = chart_message(chart)
    body = {"text": message.text, "blocks": message.blocks}
    assert native_problems(message.blocks) == [] and block_kit_problems(body, "message") == []
    assert block_kit_problems({"text": message.text, "blocks": message.fallback_blocks}, "message") == []
    [block] = [b for b in message.blocks if b["type"] == "data_visualization"]
    assert not {b["type"] for b in message.fallback_blocks} & {"data_visualization", "table"}
    series = block["chart"]["series"]
    assert 1 <= len(series) <= kit.CHART_MAX_SERIES
    assert all(1 <= len(s["data"]) <= kit.CHART_MAX_POINTS for s in series)
    return block


def test_a_chart_has_as_many_lines_as_the_native_block_takes() -> None:
    assert MAX_LINES == kit.CHART_MAX_SERIES


@pytest.mark.parametrize(("days", "buckets", "size"), [(1, 1, 1), (7, 7, 1), (20, 20, 1),
                                                        (30, 15, 2), (90, 18, 5), (366, 20, 19)])
def test_a_long_range_is_at_most_20_equal_runs_ending_on_its_last_day(days: int, buckets: int,
                                                                      size: int) -> None:
    period = Period(TODAY - timedelta(days=days - 1), TODAY)
    runs = chart_buckets(period)
    assert len(runs) == buckets and runs[-1].end == TODAY and runs[0].start == period.start
    assert all(r.days == size for r in runs[1:]) and runs[0].days <= size
    assert sum(r.days for r in runs) == days
    assert all(a.end + timedelta(days=1) == b.start for a, b in zip(runs, runs[1:], strict=False))


def test_by_source_is_one_series_per_source_plus_the_untagged_entries(store: Store) -> None:
    tagged(store, {"facebook": 5.0, "google": 3.0, "seo": 1.0}, untagged=2.0)

    chart = charted(chart_ctx(store), "leads", "30d", "source")

    block = assert_valid(chart)
    assert names(chart) == ["facebook", "google", "seo", "untagged"]
    assert block["chart"]["type"] == "line" and len(block["chart"]["axis_config"]["categories"]) == 15
    assert [line.total for line in chart.lines] == [150.0, 90.0, 30.0, 60.0]
    # every bucket's lines add up to the team's total in it (2 days of 11 leads)
    for i in range(len(chart.buckets)):
        assert sum(line.points[i] or 0.0 for line in chart.lines) == 22.0
    text = chart_message(chart).text
    assert "no source (untagged) 60" in text and "facebook 150" in text


@pytest.mark.parametrize(("sources", "untagged", "shown", "pooled"), [
    (1, False, ["facebook"], ()),
    (6, False, list(SOURCES[:6]), ()),
    (7, False, [*SOURCES[:5], "other (2)"], SOURCES[5:7]),
    (8, False, [*SOURCES[:5], "other (3)"], SOURCES[5:]),
    (5, True, [*SOURCES[:5], "untagged"], ()),
    (8, True, [*SOURCES[:4], "other (4)", "untagged"], SOURCES[4:]),
])
def test_past_six_lines_the_smallest_values_are_pooled_as_other(
        any_store: Store, sources: int, untagged: bool, shown: list[str], pooled: tuple[str, ...]) -> None:
    store = any_store  # SQLite and PostgreSQL
    # facebook biggest, then google, ...: the order of SOURCES
    tagged(store, {s: float(20 - i) for i, s in enumerate(SOURCES[:sources])},
           untagged=1.0 if untagged else 0.0, days=10)

    chart = charted(chart_ctx(store), "leads", "10d", "source")

    assert_valid(chart)
    assert names(chart) == shown
    other = [line for line in chart.lines if line.others]
    assert tuple(other[0].others if other else ()) == pooled
    if other:  # the pooled values' leads add up, nothing is dropped
        assert other[0].total == 10 * sum(20 - SOURCES.index(s) for s in pooled)
    team = 10 * (sum(20 - i for i in range(sources)) + (1 if untagged else 0))
    assert sum(line.total or 0.0 for line in chart.lines) == team


def test_a_ratio_by_source_is_each_groups_ratio_of_sums_other_included(store: Store) -> None:
    # spend is 10 per lead for every source, 5 per untagged lead
    tagged(store, {s: float(20 - i) for i, s in enumerate(SOURCES)}, untagged=4.0, days=7)

    chart = charted(chart_ctx(store), "cpl", "7d", "source")

    assert_valid(chart)
    assert all(line.total == pytest.approx(5.0 if line.value is None and not line.others else 10.0)
               for line in chart.lines)
    assert chart.lines[-1].value is None and not chart.lines[-1].others


def test_the_lines_come_from_one_grouped_query_however_many_values(any_store: Store) -> None:
    store = any_store
    tagged(store, {s: 2.0 for s in SOURCES[:2]}, days=5, workspace="T0001")
    tagged(store, {s: 2.0 for s in SOURCES}, untagged=1.0, days=5, workspace="T0002")
    with sql_statements(store.engine) as statements:
        period = Period(TODAY - timedelta(days=4), TODAY)
        few = store.daily_series_by("T0001", "source", ["leads", "spend"], period)
        count_few, statements[:] = len(statements), []
        many = store.daily_series_by("T0002", "source", ["leads", "spend"], period)
    assert sorted(few) == sorted(SOURCES[:2]) and sorted(many) == sorted([*SOURCES, ""])
    assert len(statements) == count_few
    grouped = [s for s in statements if "GROUP BY" in s.upper()]
    assert len(grouped) == 1


def test_one_day_by_source_is_a_bar_per_source(store: Store) -> None:
    tagged(store, {"facebook": 5.0, "google": 3.0}, untagged=2.0, days=3)

    chart = charted(chart_ctx(store), "leads", "yesterday", "source")

    block = assert_valid(chart)
    assert chart.bars and block["chart"]["type"] == "bar"
    assert block["chart"]["axis_config"]["categories"] == ["facebook", "google", "untagged"]
    [series] = block["chart"]["series"]
    assert [d["value"] for d in series["data"]] == [5.0, 3.0, 2.0]


@pytest.mark.parametrize(("name", "spec", "key"), [("leads", "30d", "leads"),
                                                   ("revenue", None, "revenue"),
                                                   ("CPL", "7d", "cpl")])
def test_a_raw_metric_is_charted_like_a_kpi(store: Store, name: str, spec: str | None, key: str) -> None:
    tagged(store, {"facebook": 5.0})
    store.record("T0001", [Write("revenue", TODAY - timedelta(days=i), 100.0 + i, "ana")
                           for i in range(30)], actor="ana", origin="test")

    chart = charted(chart_ctx(store), name, spec)

    block = assert_valid(chart)
    assert chart.key == key and chart.trend is not None and chart.period.end == TODAY
    assert chart.period.days == (7 if spec == "7d" else 30)
    values = [d["value"] for d in block["chart"]["series"][0]["data"]]
    if key == "leads":  # 2-day runs of 5 leads a day
        assert values == [10.0] * 15 and chart.lines[0].total == 150.0
    if key == "revenue":
        assert chart.lines[0].total == sum(100.0 + i for i in range(30))
        assert [v for _, v in chart.trend.points][-1] == 100.0


@pytest.mark.parametrize(("name", "by", "said"), [
    ("leeds", None, "Did you mean `leads`?"),
    ("revenu", None, "Did you mean `revenue`?"),
    ("leads", "channel", "Dimensions are source, rep, campaign, product"),
    ("leads", "sorce", "Did you mean `source`?"),
])
def test_bad_chart_input_names_the_nearest_valid_choice(store: Store, name: str, by: str | None,
                                                        said: str) -> None:
    tagged(store, {"facebook": 5.0})
    with pytest.raises(UserError, match=re.escape(said)):
        charted(chart_ctx(store), name, "30d", by)


def test_a_ratio_bucket_without_a_value_for_every_line_is_left_out_of_the_native_chart(
        store: Store) -> None:
    tagged(store, {"facebook": 5.0}, days=10)
    store.record("T0001", [Write("spend", TODAY, 20.0, "ana", (("source", "seo"),)),
                           Write("leads", TODAY, 4.0, "ana", (("source", "seo"),))],
                 actor="ana", origin="test")

    chart = charted(chart_ctx(store), "cpl", "10d", "source")

    block, thinned = native_block(chart)
    assert thinned and block is not None
    assert block["chart"]["axis_config"]["categories"] == ["Mar 11"]
    assert "left out here" in json.dumps(chart_message(chart).blocks)


def test_the_chart_post_falls_back_to_text_with_the_png_in_its_thread(store: Store) -> None:
    tagged(store, {"facebook": 5.0, "google": 3.0}, untagged=2.0)

    outgoing = outgoing_of(charted(chart_ctx(store), "leads", "30d", "source"))

    assert [b["type"] for b in outgoing.blocks].count("data_visualization") == 1
    assert outgoing.fallback_blocks and not {b["type"] for b in outgoing.fallback_blocks} & {
        "data_visualization"}
    assert "facebook" in json.dumps(outgoing.fallback_blocks)
    [png] = outgoing.files()
    assert png.filename == "leads-by-source-2026-02-10-2026-03-11.png"
    assert png.content.startswith(b"\x89PNG")


# -- /kpi chart in Slack --------------------------------------------------------------------


def posted_chart(bot: SlackBot, text: str) -> dict[str, Any]:
    reply = bot.command(text, user_id=SLACK_MEMBER)
    assert reply.status == 200 and "Drawing the chart" in reply.json["text"]
    [message] = bot.fake.wait_for(lambda: bot.fake.messages_in(CHANNEL))
    bot.fake.wait_for(lambda: bot.fake.uploaded_files(CHANNEL))
    return message


def test_slack_chart_by_source_posts_a_native_chart_once_with_the_png_in_its_thread(
        slack_bot: SlackBot) -> None:
    tagged(slack_bot.store, {"facebook": 5.0, "google": 3.0}, untagged=2.0)

    message = posted_chart(slack_bot, "chart leads 30d by source")

    [block] = [b for b in message["blocks"] if b["type"] == "data_visualization"]
    assert [s["name"] for s in block["chart"]["series"]] == ["facebook", "google", "untagged"]
    [upload] = slack_bot.fake.uploaded_files(CHANNEL)
    assert upload["thread_ts"] == message["ts"] and upload["name"].startswith("leads-by-source")
    assert slack_bot.fake.refused_native == []
    assert len(slack_bot.fake.calls_to("chat.postMessage")) == 1


def test_slack_chart_of_a_raw_metric_is_posted(slack_bot: SlackBot) -> None:
    tagged(slack_bot.store, {"facebook": 5.0})

    message = posted_chart(slack_bot, "chart leads 30d")

    assert "I don't know" not in json.dumps(message)
    [block] = [b for b in message["blocks"] if b["type"] == "data_visualization"]
    assert block["chart"]["series"][0]["name"] == "Leads"


def test_slack_refusing_the_native_chart_gets_text_and_the_png_once(slack_bot: SlackBot) -> None:
    tagged(slack_bot.store, {"facebook": 5.0, "google": 3.0}, untagged=2.0)
    slack_bot.fake.native_blocks = False

    message = posted_chart(slack_bot, "chart cpl 30d by source")

    assert len(slack_bot.fake.refused_native) == 1
    assert [c.status for c in slack_bot.fake.calls_to("chat.postMessage")] == [200, 200]
    assert len(slack_bot.fake.messages_in(CHANNEL)) == 1
    assert not {b["type"] for b in message["blocks"]} & {"data_visualization", "table"}
    assert "facebook" in json.dumps(message["blocks"]) and "untagged" in json.dumps(message["blocks"])
    [upload] = slack_bot.fake.uploaded_files(CHANNEL)
    assert upload["thread_ts"] == message["ts"]


@pytest.mark.parametrize(("text", "said"), [
    ("chart leads 30d by channel", "is not a dimension"),
    ("chart leeds 30d", "Did you mean `leads`?"),
])
def test_slack_bad_chart_input_is_answered_and_posts_nothing(slack_bot: SlackBot, text: str,
                                                             said: str) -> None:
    tagged(slack_bot.store, {"facebook": 5.0})

    reply = slack_bot.command(text, user_id=SLACK_MEMBER)

    answer = reply.json if said in json.dumps(reply.json) else slack_bot.told(reply)
    assert said in json.dumps(answer)
    assert slack_bot.fake.messages_in(CHANNEL) == [] and slack_bot.fake.uploaded_files() == []


def test_a_gauge_by_rep_carries_each_reps_stock_and_other_sums_the_stocks(store: Store) -> None:
    """pipeline_value is a stock: a rep's line stays at their latest value between logs (one
    logged before the range opens it), and the pooled "other" line is the sum of its reps'
    latest stocks, not of whoever logged that day."""
    store.ensure_workspace("T0001", timezone=NY)
    start = TODAY - timedelta(days=6)
    writes = [Write("pipeline_value", start - timedelta(days=3), 50.0, "r0", (("rep", "U0"),))]
    for i in range(1, 8):  # U1..U7: a stock of 100*i logged on the first day, 10 more on day 4
        writes.append(Write("pipeline_value", start, 100.0 * i, f"r{i}", (("rep", f"U{i}"),)))
        writes.append(Write("pipeline_value", start + timedelta(days=3), 100.0 * i + 10,
                            f"r{i}", (("rep", f"U{i}"),)))
    store.record("T0001", writes, actor="ana", origin="test")

    chart = charted(chart_ctx(store), "pipeline_value", "7d", "rep")

    assert_valid(chart)
    lines = {line.value if not line.others else "other": line for line in chart.lines}
    # a stock ranks by how many entries it is made of (ties by name): U0 logged none in range
    assert names(chart) == ["U1", "U2", "U3", "U4", "U5", "other (3)"]
    other = lines["other"]
    assert other.others == ("U6", "U7", "U0")
    pooled = set(other.others)
    expected_first = sum(100.0 * int(v[1:]) if v != "U0" else 50.0 for v in pooled)
    assert other.points[0] == expected_first
    assert other.points[-1] == expected_first + 10 * len(pooled - {"U0"})
    assert sum(line.total or 0.0 for line in chart.lines) == 50.0 + sum(100.0 * i + 10 for i in range(1, 8))
