"""Charts are real PNGs, big enough for a phone, drawn in the agreed colours, without leaks."""

from __future__ import annotations

import gc
import io
import math
import struct
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import date, timedelta

import numpy as np
import pytest
from PIL import Image

from bot.render import charts
from bot.render.charts import NO_DATA, PALETTE, breakdown_chart, funnel_chart, trend_chart
from bot.render.numbers import format_value
from kpis.catalogue import Unit

START = date(2026, 3, 2)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def days(values: list[float | None], start: date = START) -> list[tuple[date, float | None]]:
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


WEEK = days([21.0, 23.5, None, 19.0, 25.25, 22.0, 20.5])
LAST_WEEK = days([24.0, 22.0, 23.0, 26.0, 21.0, 20.0, 22.5], START - timedelta(days=7))
FUNNEL = [
    ("Impressions", 1_234_567.0),
    ("Clicks", 15_234.0),
    ("Leads", 1_234.0),
    ("Bookings", 152.0),
    ("Shows", 98.0),
    ("Sales", 12.0),
]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a PNG must start with."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every row and checks every chunk's CRC
    return np.asarray(image.convert("RGB"))


def count(image: np.ndarray, colour: str) -> int:
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return int(np.all(image == rgb, axis=-1).sum())


def assert_phone_sized_png(data: bytes) -> np.ndarray:
    width, height = png_size(data)
    assert width >= 1200 and height >= 675
    image = pixels(data)
    assert image.shape == (height, width, 3)
    return image


# -- trend ----------------------------------------------------------------------------------


def test_trend_is_a_phone_sized_png_with_the_line_in_blue() -> None:
    image = assert_phone_sized_png(trend_chart("Cost per lead", "currency", WEEK))
    assert count(image, charts.BLUE) > 1000
    assert count(image, charts.VERMILLION) == 0  # no goal, no goal line
    assert count(image, charts.GREY) < 100  # no previous period (a few anti-aliased pixels)


def test_gaps_and_a_lonely_value_render() -> None:
    values: list[float | None] = [None, 3.0, None, None, 5.0, 6.0, None, float("nan"), 2.0, None]
    image = assert_phone_sized_png(trend_chart("Leads", Unit.COUNT, days(values)))
    assert count(image, charts.BLUE) > 300


def test_goal_is_drawn_in_vermillion() -> None:
    image = assert_phone_sized_png(trend_chart("Cost per lead", "currency", WEEK, goal=22.0))
    assert count(image, charts.VERMILLION) > 300


def test_goal_outside_the_data_is_still_on_the_chart() -> None:
    trend_chart("Show-up rate", "percent", days([0.6, 0.62, 0.64]), goal=0.9)
    low, high = charts._local.trend.ax.get_ylim()
    assert low <= 0.6 and high >= 0.9


def test_previous_period_is_drawn_in_grey_on_the_same_days() -> None:
    image = assert_phone_sized_png(
        trend_chart("Cost per lead", "currency", WEEK, previous=LAST_WEEK)
    )
    assert count(image, charts.GREY) > 300
    x_now, _ = charts._local.trend.current.get_data()
    x_then, y_then = charts._local.trend.previous.get_data()
    assert list(x_then) == list(x_now)  # previous[i] sits at points[i]'s date
    assert list(y_then) == [v for _, v in LAST_WEEK]


@pytest.mark.parametrize("length", [0, 3, 20])
def test_previous_of_another_length_is_cut_or_padded(length: int) -> None:
    previous = days([10.0] * length, START - timedelta(days=length))
    assert_phone_sized_png(trend_chart("Cost per lead", "currency", WEEK, previous=previous))


@pytest.mark.parametrize(
    "points",
    [[], days([None, None, None]), days([float("nan")])],
    ids=["empty", "all-none", "nan"],
)
def test_no_data_is_still_a_png(points: list[tuple[date, float | None]]) -> None:
    data = trend_chart("Show-up rate", "percent", points, previous=LAST_WEEK, goal=0.8)
    image = assert_phone_sized_png(data)
    assert count(image, charts.BLUE) == 0
    assert count(image, charts.VERMILLION) == 0
    assert charts._local.trend.empty.get_text() == NO_DATA
    assert charts._local.trend.empty.get_visible()


def test_one_point_and_flat_series_render() -> None:
    assert_phone_sized_png(trend_chart("Show-up rate", "percent", days([0.5])))
    assert_phone_sized_png(trend_chart("Leads", "count", days([0.0] * 14)))
    assert charts._local.trend.ax.get_ylim()[0] == 0  # counts of 0 do not dip below zero


def test_long_range_renders_with_few_date_ticks() -> None:
    values: list[float | None] = [100 + 10 * math.sin(i / 5) for i in range(90)]
    assert_phone_sized_png(trend_chart("Revenue billed", "currency", days(values)))
    ticks = charts._local.trend.x_ticks.positions()
    assert 2 <= len(ticks) <= charts._MAX_X_TICKS
    assert ticks[-1] == (START + timedelta(days=89)).toordinal()


def tick_labels() -> list[str]:
    return charts._local.trend.y_ticks.texts()


def test_percent_axis_uses_the_shared_formatter() -> None:
    trend_chart("Show-up rate", "percent", days([0.55, 0.6, 0.72]), locale="en_US")
    ticks = charts._local.trend.y_ticks.positions()
    labels = tick_labels()
    assert labels == [format_value(t, Unit.PERCENT) for t in ticks]
    assert all(label.endswith("%") for label in labels)


def test_currency_axis_uses_the_shared_formatter_and_locale() -> None:
    trend_chart("Cost per lead", "currency", WEEK, currency="EUR", locale="de_DE")
    ticks = charts._local.trend.y_ticks.positions()
    labels = tick_labels()
    assert labels == [format_value(t, Unit.CURRENCY, currency="EUR", locale="de_DE") for t in ticks]
    assert all("€" in label for label in labels)


def test_dates_use_the_date_format() -> None:
    trend_chart("Leads", "count", days([1.0, 2.0, 3.0]), date_format="%Y-%m-%d")
    assert charts._local.trend.x_ticks.texts() == ["2026-03-02", "2026-03-03", "2026-03-04"]


def test_grid_lines_ticks_and_tick_labels_are_drawn() -> None:
    """One grid line across the axes per y tick, a tick mark and a label on every tick."""
    image = assert_phone_sized_png(trend_chart("Leads", "count", days([10.0, 40.0, 25.0, 30.0])))
    chart = charts._local.trend
    ax = chart.ax
    left, bottom, right, _ = (round(v) for v in ax.get_window_extent().extents)
    for tick in chart.y_ticks.positions():
        row = charts.HEIGHT_PX - round(ax.transData.transform((0, tick))[1])
        band = image[row - 1 : row + 2, left + 5 : right - 5]
        assert count(band, charts.GRID) > 0.9 * (right - left - 10)  # across the whole axes
    for tick in chart.x_ticks.positions():
        column = round(ax.transData.transform((tick, 0))[0])
        below = image[charts.HEIGHT_PX - bottom + 1 : charts.HEIGHT_PX - bottom + 6,
                      column - 1 : column + 2]
        assert count(below, charts.AXIS) >= 4  # the tick mark under the axis line
    dark = np.all(image < 100, axis=-1)  # tick labels are INK on white
    assert dark[:, : left - 5].sum() > 200  # y labels, left of the axis
    assert dark[charts.HEIGHT_PX - bottom + 8 :, left:right].sum() > 200  # x labels, below it


def test_text_stamps_sit_where_matplotlib_draws_text() -> None:
    """A cached string bitmap is matplotlib's own rendering, placed within half a pixel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def ink(canvas_class: type) -> np.ndarray:
        fig = Figure(figsize=(4, 1), dpi=100, facecolor="white")
        canvas = canvas_class(fig)
        # a position between pixels: the stamp moves to the nearest one, at most half a pixel
        fig.text(0.123, 0.437, "Cost per lead $1,234.50", fontsize=charts.TICK_SIZE, color="k")
        canvas.draw()
        return 255.0 - np.asarray(canvas.buffer_rgba())[:, :, 0]

    ours, theirs = ink(charts._canvas_class()), ink(FigureCanvasAgg)
    assert ours.sum() == pytest.approx(theirs.sum(), rel=0.01)  # the same glyphs, as dark
    rows, cols = np.mgrid[: ours.shape[0], : ours.shape[1]]
    for grid in (rows, cols):
        assert abs((grid * ours).sum() / ours.sum() - (grid * theirs).sum() / theirs.sum()) <= 0.5


def test_text_stamps_are_bounded() -> None:
    for i in range(charts._STAMPS + 50):
        funnel_chart(f"Funnel {i}", [])
    renderer = charts._local.funnel.canvas.get_renderer()
    assert len(renderer.stamps) <= charts._STAMPS


def test_png_is_the_drawn_image_without_loss() -> None:
    data = trend_chart("Cost per lead", "currency", WEEK, previous=LAST_WEEK, goal=22.0)
    drawn = np.asarray(charts._local.trend.canvas.buffer_rgba())
    assert np.array_equal(pixels(data), drawn[:, :, :3])


@pytest.mark.parametrize(
    ("unit", "currency", "expected"),
    [
        ("currency", "usd", "Cost per lead (USD)"),
        ("percent", "USD", "Show-up rate (%)"),
        ("days", "USD", "Days to close (days)"),
        ("count", "USD", "Leads"),
    ],
)
def test_title_names_the_unit(unit: str, currency: str, expected: str) -> None:
    label = expected.split(" (")[0]
    trend_chart(label, unit, WEEK, currency=currency)
    assert charts._local.trend.title.get_text() == expected


def test_unknown_unit_is_refused() -> None:
    with pytest.raises(ValueError):
        trend_chart("Leads", "furlongs", WEEK)


# -- funnel ---------------------------------------------------------------------------------


def test_funnel_is_a_phone_sized_png_with_labels() -> None:
    image = assert_phone_sized_png(funnel_chart("Funnel, last 7 days", FUNNEL))
    assert count(image, charts.BLUE) > 10_000
    labels = [label.get_text() for label in charts._local.funnel.labels[: len(FUNNEL)]]
    assert labels[0] == "1,234,567"
    assert labels[1] == "15,234  (1.2%)"
    assert labels[3] == "152  (12.3%)"


def test_funnel_keeps_small_steps_visible() -> None:
    funnel_chart("Funnel", [("Impressions", 10_000_000.0), ("Sales", 1.0)])
    big, small = (bar.get_width() for bar in charts._local.funnel.bars[:2])
    assert big == pytest.approx(1.0)
    assert small >= charts._MIN_BAR


def test_funnel_with_zero_and_missing_steps() -> None:
    steps: list[tuple[str, float | None]] = [
        ("Impressions", 1000.0),
        ("Clicks", 0.0),
        ("Leads", 0.0),
        ("Bookings", None),
        ("Shows", 3.0),
    ]
    assert_phone_sized_png(funnel_chart("Funnel", steps))
    labels = [label.get_text() for label in charts._local.funnel.labels[: len(steps)]]
    assert labels == ["1,000", "0  (0.0%)", "0  (n/a)", "n/a  (n/a)", "3  (n/a)"]
    assert [bar.get_width() for bar in charts._local.funnel.bars[1:4]] == [0, 0, 0]


def test_funnel_with_no_data_is_still_a_png() -> None:
    for steps in ([], [("Leads", None), ("Sales", None)]):
        image = assert_phone_sized_png(funnel_chart("Funnel", steps))
        assert count(image, charts.BLUE) == 0


def test_funnel_of_fewer_steps_hides_the_extra_bars() -> None:
    funnel_chart("Funnel", FUNNEL)
    funnel_chart("Funnel", FUNNEL[:2])
    assert [bar.get_visible() for bar in charts._local.funnel.bars] == [True, True] + [False] * 4


# -- reuse, threads, memory, imports --------------------------------------------------------


def sample_charts() -> Iterator[bytes]:
    yield trend_chart("Cost per lead", "currency", WEEK, previous=LAST_WEEK, goal=22.0)
    yield trend_chart("Show-up rate", "percent", days([0.7, None, 0.66]), goal=0.75)
    yield trend_chart("Show-up rate", "percent", days([None]))
    yield trend_chart("Revenue", "currency", days([float(1000 * i) for i in range(60)]))
    yield funnel_chart("Funnel", FUNNEL)
    yield funnel_chart("Funnel", FUNNEL[:3] + [("Shows", 0.0)])
    yield funnel_chart("Funnel", [])


def test_reused_figures_leave_nothing_behind() -> None:
    """A chart drawn after others is byte for byte the chart a fresh figure draws."""
    first = list(sample_charts())
    again = list(sample_charts())
    fresh: list[bytes] = []
    thread = threading.Thread(target=lambda: fresh.extend(reversed(list(sample_charts()))))
    thread.start()
    thread.join()
    assert again == first
    assert list(reversed(fresh)) == first


def test_threads_render_at_once_without_mixing_charts() -> None:
    expected = list(sample_charts())
    results: dict[int, list[bytes]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results[n] = [data for _ in range(2) for data in sample_charts()]
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 4
    assert all(got == expected * 2 for got in results.values())


def live_figures() -> int:
    from matplotlib.figure import Figure

    return sum(isinstance(o, Figure) for o in gc.get_objects())


def render_mix(n: int) -> None:
    for i in range(n):
        if i % 2:
            funnel_chart("Funnel", FUNNEL[: 2 + i % 5])
        else:
            trend_chart("Cost per lead", "currency", WEEK, previous=LAST_WEEK, goal=22.0)


def test_fifty_charts_do_not_grow_figures_or_objects() -> None:
    from matplotlib import _pylab_helpers

    render_mix(10)  # this thread's figures exist now; caches are warm
    gc.collect()
    figures, objects = live_figures(), len(gc.get_objects())
    render_mix(50)
    gc.collect()
    assert _pylab_helpers.Gcf.get_num_fig_managers() == 0
    assert live_figures() == figures
    assert len(gc.get_objects()) - objects < 500
    assert "matplotlib.pyplot" not in sys.modules


def test_charts_do_not_grow_memory() -> None:
    tracemalloc.start()  # slows every allocation down, so fewer charts here
    try:
        render_mix(4)  # warm: the first charts under tracing fill caches once
        gc.collect()
        before = tracemalloc.take_snapshot()
        render_mix(10)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 128 * 1024, f"{growth} bytes more after 10 charts"


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = (
        "import sys, bot.render.charts\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- charts that do not plot noise (issue 12) ------------------------------------------------


def key_texts() -> list[str]:
    return [text.get_text() for _, text in charts._local.trend.key if text.get_visible()]


def test_an_unfinished_last_day_is_a_hollow_dot_on_a_dashed_segment() -> None:
    image = assert_phone_sized_png(trend_chart("Leads", "count", days([10.0, 12.0, 11.0, 4.0]),
                                               unfinished=True))
    chart = charts._local.trend
    assert "So far" in key_texts()
    assert list(chart.unfinished.get_xdata()) == [float((START + timedelta(days=d)).toordinal())
                                                  for d in (2, 3)]
    assert math.isnan(chart.current.get_ydata()[-1])  # the solid line stops the day before
    x, y = chart.ax.transData.transform(((START + timedelta(days=3)).toordinal(), 4.0))
    centre = image[charts.HEIGHT_PX - round(y), round(x)]
    assert tuple(centre) == (255, 255, 255)  # hollow


def test_a_daily_ratio_draws_its_rolling_line_over_faint_daily_dots() -> None:
    rolling = [None, None, 0.3, 0.32, 0.31, 0.33]
    trend_chart("Close rate", "percent", days([0.2, 0.5, 0.1, 0.4, 0.3, 0.35]),
                previous=days([0.3] * 6, START - timedelta(days=6)), smoothed=rolling)
    chart = charts._local.trend
    assert key_texts() == ["7-day rolling", "Each day"]  # the noisy previous line is left out
    assert [None if math.isnan(v) else v for v in chart.current.get_ydata()] == rolling
    assert chart.daily.get_visible() and not chart.previous.get_visible()


def test_an_alert_rule_is_a_dotted_line_named_in_the_key() -> None:
    trend_chart("Cost per lead", "currency", WEEK, threshold=(">", 30.0))
    chart = charts._local.trend
    assert "Alert > $30.00" in key_texts()
    assert chart.threshold.get_visible() and list(chart.threshold.get_ydata()) == [30.0, 30.0]
    assert chart.ax.get_ylim()[1] >= 30.0  # the line is inside the axes


def test_days_before_the_first_value_are_not_drawn() -> None:
    values: list[float | None] = [None] * 60 + [float(v) for v in range(30)]
    trend_chart("Leads", "count", days(values))
    left, _ = charts._local.trend.ax.get_xlim()
    first = (START + timedelta(days=60)).toordinal()
    assert first - 2 < left < first


def test_money_ticks_from_a_thousand_have_no_cents() -> None:
    trend_chart("Revenue", "currency", days([1200.0, 1800.0, 2500.0]))
    labels = tick_labels()
    assert labels and all("." not in label for label in labels), labels
    trend_chart("Cost per lead", "currency", days([21.5, 23.0]))
    assert any(label.endswith(".00") or "." in label for label in tick_labels())


# -- breakdown (`/kpi chart NAME by DIM`) ------------------------------------------------------

RUNS = [START + timedelta(days=2 * i) for i in range(10)]


def breakdown_series(named: int, other: bool, untagged: bool) -> list[tuple[str, str, list[float | None]]]:
    series: list[tuple[str, str, list[float | None]]] = [
        (f"source{i}", "value", [float(10 * (i + 1) + d % 3) for d in range(10)]) for i in range(named)]
    if other:
        series.append(("other (3)", "other", [5.0, None, 6.0, 5.5, 5.0, 4.0, 6.0, 6.0, 5.0, 5.0]))
    if untagged:
        series.append(("untagged", "untagged", [3.0] * 10))
    return series


@pytest.mark.parametrize(("named", "other", "untagged"), [(1, False, False), (3, False, True),
                                                          (4, True, True), (6, False, False)])
def test_a_breakdown_draws_a_line_per_value_in_the_palette(named: int, other: bool, untagged: bool) -> None:
    image = assert_phone_sized_png(breakdown_chart(
        "Leads by source", "count", RUNS, breakdown_series(named, other, untagged)))

    for colour in PALETTE[:named]:
        assert count(image, colour) > 200, colour
    for colour in PALETTE[named:]:
        assert count(image, colour) == 0, colour
    if other:
        assert count(image, charts.MUTED) > 200
    assert (count(image, charts.GREY) > 100) is untagged


def test_a_breakdown_of_one_period_is_a_bar_per_value() -> None:
    series = [("facebook", "value", [120.0]), ("google", "value", [80.0]),
              ("untagged", "untagged", [30.0])]

    image = assert_phone_sized_png(breakdown_chart("Leads by source", "count", RUNS[:1], series, bars=True))

    assert count(image, PALETTE[0]) > count(image, PALETTE[1]) > 5000
    assert count(image, charts.GREY) > 2000


def test_a_breakdown_without_data_is_still_a_png() -> None:
    assert_phone_sized_png(breakdown_chart("Leads by source", "count", RUNS[:2],
                                           [("facebook", "value", [None, None])]))


@pytest.mark.parametrize("size, weight", [(charts.TITLE_SIZE, "bold"), (charts.TICK_SIZE, "normal")])
def test_the_kept_font_heights_lay_text_out_as_matplotlib_does(size: float, weight: str) -> None:
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.figure import Figure

    figure = Figure(dpi=charts.DPI)
    canvas = charts._canvas_class()(figure)
    stamps = canvas.get_renderer()
    assert hasattr(stamps, "_get_font_height_metrics")
    plain = RendererAgg(charts.WIDTH_PX, charts.HEIGHT_PX, charts.DPI)
    for text, va in (("Cost per lead (USD)", "top"), ("gjy 1,234", "center_baseline"),
                     ("two\nlines", "bottom")):
        shown = figure.text(0.1, 0.5, text, fontsize=size, fontweight=weight, va=va)
        for _ in range(2):  # the second time from what the renderer kept
            ours, theirs = shown._get_layout(stamps), shown._get_layout(plain)
            assert ours[0].bounds == theirs[0].bounds
            assert ours[1:] == theirs[1:]
