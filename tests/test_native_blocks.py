"""The native `table` and `data_visualization` builders keep Slack's documented limits
(slack-platform.md sections 10 and 11), and the phone-height count the digest is held to."""

from __future__ import annotations

import math

import pytest

from bot.render import kit
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
