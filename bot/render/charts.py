"""PNG charts for the digests and `/kpi chart`: a KPI trend line and a conversion funnel.

matplotlib is imported on first use, never at import time, and only through the object-oriented
API (a `Figure` on an Agg canvas; never pyplot), so nothing is registered globally and there is
nothing to close. Speed comes from reuse: each thread keeps one pre-built figure per kind of
chart (axes, lines, texts made once) and a call only updates data, limits and texts before
drawing. Margins are fixed numbers (no tight_layout or bbox_inches="tight", which draw twice);
only the left one follows the widest tick label, measured with the cached text layout. Threads
never share a figure, so worker threads can render at the same time.

Where the time went, and what replaces it (a warm trend chart went from ~50-75 ms to ~10-20 ms
on a busy 2-core machine; the output stays 1200x675, anti-aliased, lossless):

* matplotlib's `Axis` (a `Tick` of five artists per tick, label bounding boxes measured twice
  per draw for axis labels we do not have) was two thirds of the drawing. Ticks, tick labels
  and grid lines are plain artists made once: one `Line2D` of tick marks per axis (the same
  marker matplotlib's ticks use), one `Line2D` of grid lines, and a pool of `Text`s placed with
  the axes' own tick-label transforms. The axes' `Axis` objects are hidden.
* Text: matplotlib 3.11 shapes and rasterises every glyph of every string on every draw. The
  canvas's renderer (`_StampRenderer`) keeps each string's anti-aliased bitmap ("stamp") and
  draws it at the nearest whole pixel, as matplotlib itself did up to 3.10; a digest's charts
  share their dates, key and many tick labels, so most strings are drawn from the cache.
* PNG: Pillow's encoder tries five filters on every row, and getting RGB bytes out of the
  RGBA buffer cost as much again. `_encode_png` copies the channels into a buffer kept per
  chart and writes the PNG itself with filter None and zlib level 1: on flat-colour charts
  smaller, and several times faster.

Numbers on axes and labels come from `format_value`, so a chart says what the message says.
"""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from bot.render.numbers import format_value
from kpis.catalogue import Unit

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

__all__ = ["NO_DATA", "breakdown_chart", "funnel_chart", "trend_chart"]

NO_DATA = "No data for this period"

#: 1200 x 675 px (16:9): still legible when Slack shrinks it to a phone's width
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.75, 100
WIDTH_PX, HEIGHT_PX = int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI)

# Okabe-Ito colours: told apart with every common colour-vision deficiency
BLUE = "#0072B2"
GREY = "#999999"
VERMILLION = "#D55E00"
INK = "#222222"
MUTED = "#555555"
GRID = "#E6E6E6"
#: a breakdown's named values, in order (Okabe-Ito; "other" and untagged are greys)
PALETTE = (BLUE, "#E69F00", "#009E73", "#CC79A7", "#56B4E9", VERMILLION)
AXIS = "#B0B0B0"  # not GREY: only the previous period's line is drawn in GREY

TITLE_SIZE = 26
TEXT_SIZE = 18
TICK_SIZE = 17
SMALL_SIZE = 15

#: what the title says the numbers are in (currency: the ISO code)
_TITLE_UNIT = {
    Unit.PERCENT: "%",
    Unit.DAYS: "days",
    Unit.HOURS: "hours",
    Unit.MONTHS: "months",
    Unit.RATIO: "×",
}

# layout, in figure fractions unless said otherwise
_TITLE_X, _TITLE_Y = 0.03, 0.955
_TOP, _BOTTOM, _RIGHT = 0.80, 0.11, 0.96
_MIN_LEFT = 0.06
#: the key under the title: baseline (fraction), sample line length and gaps (pixels)
_KEY_Y = 0.865
_KEY_SAMPLE, _KEY_PAD, _KEY_GAP = 56, 10, 36
#: pixels between two rows of a key that wraps (a breakdown's lines)
_KEY_ROW = 32
_MAX_X_TICKS = 8
_MARKERS_UP_TO = 31  # points; longer lines are drawn without a dot on every day

_FUNNEL_TOP, _FUNNEL_BOTTOM = 0.86, 0.10
_FUNNEL_XMAX = 1.4  # bars run to 1.0; the rest of the axes holds their labels
_MIN_BAR = 0.012
_BAR_HEIGHT = 0.72
_BAR_WIDTH = 0.6
#: lines a breakdown draws at most (the native chart's 6 series)
BREAKDOWN_LINES = 6

#: zlib level 1: charts are flat colour, so it is about as small as level 6 and twice as fast
_ZLIB_LEVEL = 1
#: strings whose bitmap each renderer keeps (a digest draws ~100 distinct ones, most < 2 kB)
_STAMPS = 512
#: tick labels sit this far from the axis line: matplotlib's default pad (3.5) + tick length
_TICK_LENGTH = 5
_TICK_PAD = 3.5 + _TICK_LENGTH
_FUNNEL_NAME_PAD = 10 + _TICK_LENGTH
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_local = threading.local()


# -- public ---------------------------------------------------------------------------------


def trend_chart(
    title: str,
    unit: Unit | str,
    points: Sequence[tuple[date, float | None]],
    *,
    previous: Sequence[tuple[date, float | None]] = (),
    goal: float | None = None,
    currency: str = "USD",
    locale: str = "en_US",
    date_format: str = "",
    smoothed: Sequence[float | None] = (),
    threshold: tuple[str, float] | None = None,
    unfinished: bool = False,
) -> bytes:
    """A PNG of one KPI over a range of days.

    None (or NaN) values leave a gap in the line. `previous[i]` is drawn, faint, at the date of
    `points[i]`, so the two periods line up day by day. `goal` is a dashed line named in the
    key with its value. When `points` has no value at all the image says "No data for this
    period". The title gets the unit: "Cost per lead (USD)", "Show-up rate (%)". Dates are
    written as the locale writes a day and month (`Nov 21`, `21. Nov.`) unless `date_format`
    (a strftime pattern) says otherwise.

    Noise is not drawn as news: `smoothed[i]` (a 7-day rolling value at `points[i]`) becomes
    the line and the daily values faint dots; `threshold` (`(">", 15.0)`) is an alert rule's
    line; `unfinished` marks the last point as a period not over yet (a hollow dot on a dashed
    segment, "so far" in the key). Days before the first value of either period are not drawn.
    """
    unit = Unit(unit)
    chart = _this_thread("trend", _Trend)
    first = next((i for i, (_, v) in enumerate(points) if _finite(v) is not None), None)
    first_before = next((i for i, (_, v) in enumerate(previous) if _finite(v) is not None), None)
    skip = min((i for i in (first, first_before) if i is not None), default=0)
    skip = min(skip, max(0, len(points) - 2))  # keep at least two days on the axis
    return chart.render(
        _with_unit(title, unit, currency),
        unit,
        points[skip:],
        previous[skip:],
        _finite(goal),
        currency,
        locale,
        date_format,
        [_finite(v) for v in smoothed][skip:],
        None if threshold is None or _finite(threshold[1]) is None else threshold,
        unfinished,
    )


def funnel_chart(
    title: str, steps: Sequence[tuple[str, float | None]], *, locale: str = "en_US"
) -> bytes:
    """A PNG of a conversion funnel: one bar per step, first step on top.

    Each bar is labelled with its value and the conversion from the step before it
    ("1,234  (12.3%)"; "n/a" when the step before is 0 or missing). Bar lengths are on a log
    scale, so a step a thousand times smaller than the first stays visible. A None value is a
    step with no data: no bar, labelled "n/a".
    """
    chart = _this_thread("funnel", _Funnel)
    return chart.render(title, steps, locale)


def breakdown_chart(
    title: str,
    unit: Unit | str,
    days: Sequence[date],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    bars: bool = False,
    currency: str = "USD",
    locale: str = "en_US",
) -> bytes:
    """A PNG of one KPI broken down by a dimension: a line per value over `days`.

    `series` holds (name, kind, one value per day), kind being `value`, `other` (drawn in a
    darker grey) or `untagged` (dashed grey); at most BREAKDOWN_LINES are drawn. With `bars`
    (a single period) each series is one bar of its last value, named on the axis and
    labelled with its value. None values leave gaps (or an "n/a" bar). The title gets the
    unit as `trend_chart` gives it.
    """
    unit = Unit(unit)
    chart = _this_thread("breakdown", _Breakdown)
    return chart.render(_with_unit(title, unit, currency), unit, days, series, bars, currency, locale)


# -- shared ---------------------------------------------------------------------------------

_C = TypeVar("_C", bound="_Chart")


def _this_thread(kind: str, factory: Callable[[], _C]) -> _C:
    """This thread's pre-built chart of `kind`, built on its first use."""
    chart: _C | None = getattr(_local, kind, None)
    if chart is None:
        chart = factory()
        setattr(_local, kind, chart)
    return chart


def _short_date(day: date, locale: str) -> str:
    """Day and month as the workspace's locale writes them: `Nov 21`, `21. Nov.`, `21 nov`."""
    from babel.dates import format_skeleton

    try:
        return str(format_skeleton("MMMd", day, locale=locale))
    except (ValueError, TypeError):
        return day.strftime("%d %b")


def _with_unit(title: str, unit: Unit, currency: str) -> str:
    shown = currency.upper() if unit is Unit.CURRENCY else _TITLE_UNIT.get(unit)
    return f"{title} ({shown})" if shown else title


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


_fonts: dict[float, FontProperties] = {}


def _font(size: float) -> FontProperties:
    props = _fonts.get(size)
    if props is None:
        from matplotlib.font_manager import FontProperties

        props = _fonts[size] = FontProperties(size=size)
    return props


class _Chart:
    """One figure and axes on an Agg canvas, with a title and a "no data" message."""

    fig: Figure
    canvas: FigureCanvasAgg
    ax: Axes

    def __init__(self) -> None:
        import numpy as np
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
        self.canvas = _canvas_class()(self.fig)
        self.fig.subplots_adjust(left=0.1, right=_RIGHT, top=_TOP, bottom=_BOTTOM)
        self.ax = ax = self.fig.add_subplot()
        ax.patch.set_visible(False)  # white on the white figure: filling it changes no pixel
        ax.set_autoscale_on(False)
        # ticks, tick labels and grid lines are this module's own artists (see the docstring)
        ax.xaxis.set_visible(False)
        ax.yaxis.set_visible(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_color(AXIS)
        self.title = self.fig.text(
            _TITLE_X, _TITLE_Y, "", fontsize=TITLE_SIZE, fontweight="bold", color=INK,
            ha="left", va="top",
        )  # fmt: skip
        self.empty = self.fig.text(
            0.5, 0.45, NO_DATA, fontsize=TITLE_SIZE, color=MUTED, ha="center", va="center"
        )
        self.widths: dict[tuple[str, float], float] = {}
        #: PNG scanlines: a filter-type byte (0, None) and the RGB bytes of each row
        self.rows = np.zeros((HEIGHT_PX, 1 + 3 * WIDTH_PX), dtype=np.uint8)

    def text_width(self, text: str, size: float) -> float:
        """The width of `text` in pixels at `size` points (kept: FreeType lays it out anew)."""
        width = self.widths.get((text, size))
        if width is None:
            if len(self.widths) >= _STAMPS:
                self.widths.clear()
            renderer = self.canvas.get_renderer()  # type: ignore[no-untyped-call]
            measured, _, _ = renderer.get_text_width_height_descent(text, _font(size), ismath=False)
            width = self.widths[text, size] = float(measured)
        return width

    def show_data(self, shown: bool) -> None:
        self.ax.set_visible(shown)
        self.empty.set_visible(not shown)

    def png(self) -> bytes:
        self.canvas.draw()  # type: ignore[no-untyped-call]
        return _encode_png(self.canvas.buffer_rgba(), self.rows)  # type: ignore[no-untyped-call]


class _Ticks:
    """The ticks of one axis: marks, labels and (optionally) grid lines, as plain artists.

    They look like matplotlib's own ticks (same marker, tick length and label pad, labels
    placed by the axes' tick-label transforms) without `Axis`'s per-tick artists and layout.
    """

    def __init__(
        self, ax: Axes, axis: str, *, marks: bool = True, grid: bool = False,
        size: float = TICK_SIZE, pad: float = _TICK_PAD,
    ) -> None:  # fmt: skip
        from matplotlib.lines import Line2D
        from matplotlib.markers import TICKDOWN, TICKLEFT, MarkerStyle

        self.ax, self.axis, self.size = ax, axis, size
        if axis == "x":
            self.transform, va, ha = ax.get_xaxis_text1_transform(pad)
            line_transform, marker = ax.get_xaxis_transform(), MarkerStyle(TICKDOWN)
        else:
            self.transform, va, ha = ax.get_yaxis_text1_transform(pad)
            line_transform, marker = ax.get_yaxis_transform(), MarkerStyle(TICKLEFT)
        self.va, self.ha = va, ha
        # zorder 0.5: below the data, as matplotlib's axis is with set_axisbelow(True)
        self.marks = Line2D(
            [], [], transform=line_transform, linestyle="none", marker=marker,
            markersize=_TICK_LENGTH, markeredgewidth=1, color=AXIS, clip_on=False, zorder=0.5,
        )  # fmt: skip
        self.marks.set_visible(marks)
        ax.add_line(self.marks)
        self.grid: Line2D | None = None
        if grid:
            self.grid = Line2D([], [], transform=line_transform, color=GRID, linewidth=1, zorder=0.5)
            ax.add_line(self.grid)
        self.labels: list[Text] = []

    def set(self, positions: Sequence[float], labels: Sequence[str]) -> None:
        """Ticks at `positions` (data coordinates) labelled `labels`; other labels hidden."""
        from matplotlib.text import Text

        while len(self.labels) < len(positions):
            label = Text(
                0, 0, "", fontproperties=_font(self.size), color=INK, va=self.va, ha=self.ha,
                transform=self.transform, clip_on=False,
            )  # fmt: skip
            self.ax.add_artist(label)
            self.labels.append(label)
        for i, label in enumerate(self.labels):
            label.set_visible(i < len(positions))
            if i < len(positions):
                label.set_text(labels[i])
                label.set_position((positions[i], 0) if self.axis == "x" else (0, positions[i]))
        nan = float("nan")
        along = [float(p) for p in positions]  # data coordinates along this axis
        across = [0.0] * len(along)  # axes coordinates: 0 is the axis line
        # the grid is one path: a segment across the axes per tick, NaN between them
        grid_along = [v for p in along for v in (p, p, nan)]
        grid_across = [v for _ in along for v in (0.0, 1.0, nan)]
        if self.axis == "x":
            self.marks.set_data(along, across)
            if self.grid is not None:
                self.grid.set_data(grid_along, grid_across)
        else:
            self.marks.set_data(across, along)
            if self.grid is not None:
                self.grid.set_data(grid_across, grid_along)

    def positions(self) -> list[float]:
        """Where the shown ticks are, in data coordinates."""
        index = 0 if self.axis == "x" else 1
        return [float(t.get_position()[index]) for t in self.labels if t.get_visible()]

    def texts(self) -> list[str]:
        """The shown tick labels, in order."""
        return [t.get_text() for t in self.labels if t.get_visible()]


def _encode_png(rgba: Any, rows: np.ndarray) -> bytes:
    """An opaque Agg RGBA buffer as an 8-bit RGB PNG, written here with filter None and zlib.

    The RGB bytes go into `rows` (kept by the chart, so no 2.4 MB buffer is allocated and
    faulted in per chart) behind each row's filter byte, one channel at a time: three long
    strided copies are several times faster than one copy of 3-byte pixels. Pillow's PNG
    encoder would try five filters on every row; on flat-colour charts filter None at zlib
    level 1 is both smaller and several times faster. Dropping alpha loses nothing, as the
    figure is opaque.
    """
    import numpy as np

    height, width = rows.shape[0], (rows.shape[1] - 1) // 3
    pixels = np.asarray(rgba)
    scanlines = rows[:, 1:].reshape(height, width, 3)  # a view: column 0 stays 0, filter None
    for channel in range(3):
        np.copyto(scanlines[:, :, channel], pixels[:, :, channel])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, not interlaced
    return b"".join((
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", header),
        _png_chunk(b"IDAT", zlib.compress(rows, _ZLIB_LEVEL)),  # type: ignore[arg-type]
        _png_chunk(b"IEND", b""),
    ))  # fmt: skip


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def _font_height_metrics(prop: FontProperties, dpi: float) -> tuple[float | None, float | None, float]:
    """What matplotlib 3.11's `Text._get_layout` computes from the font's OS/2 or hhea table
    (None, None when it has neither: the layout then measures "lp" itself)."""
    from matplotlib.font_manager import fontManager, get_font

    font: Any = get_font(fontManager._find_fonts_by_props(prop))  # its tables, untyped
    for table_name, gap_key, ascent_key, descent_key in (
            ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
            ("hhea", "lineGap", "ascent", "descent")):
        table = font.get_sfnt_table(table_name)
        if table is None:
            continue
        scale = 1 / font.get_sfnt_table("head")["unitsPerEm"] * prop.get_size_in_points() * dpi / 72
        return table[ascent_key] * scale, -table[descent_key] * scale, table[gap_key] * scale
    return None, None, 0.0


_canvas: type[FigureCanvasAgg] | None = None


def _canvas_class() -> type[FigureCanvasAgg]:
    """An Agg canvas whose renderer keeps the bitmap of every string it drew (made once)."""
    global _canvas
    if _canvas is not None:
        return _canvas

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag

    class _StampRenderer(RendererAgg):
        """RendererAgg drawing each string from a cached anti-aliased bitmap (a "stamp").

        A stamp is what FreeType renders for the whole string (`FT2Font.set_text` and
        `draw_glyphs_to_bitmap`, kerned and hinted as matplotlib does); it is drawn at the
        nearest whole pixel, as matplotlib did up to 3.10. Rotated text and mathtext take
        matplotlib's own path. At most _STAMPS strings are kept, least recently used dropped.
        """

        def __init__(self, width: int, height: int, dpi: float) -> None:
            super().__init__(width, height, dpi)  # type: ignore[no-untyped-call]
            self.stamps: OrderedDict[tuple[Any, ...], tuple[np.ndarray, float, float]] = (
                OrderedDict()
            )
            self.heights: dict[FontProperties, tuple[float | None, float | None, float]] = {}

        def _get_font_height_metrics(
            self, prop: FontProperties,
        ) -> tuple[float | None, float | None, float]:
            """A font's ascent, descent and line gap in pixels, as `Text._get_layout` reads them
            from the font's tables (the hook it asks a renderer first), kept per font and size:
            reading the tables again for every string drawn was most of a text's layout."""
            found = self.heights.get(prop)
            if found is None:
                found = self.heights[prop.copy()] = _font_height_metrics(prop, self.dpi)
            return found

        def draw_text(
            self, gc: Any, x: float, y: float, s: str, prop: FontProperties, angle: float,
            ismath: bool | str = False, mtext: Any = None,
        ) -> None:  # fmt: skip
            if ismath or angle:
                super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)  # type: ignore[no-untyped-call]
                return
            antialiased = bool(gc.get_antialiased())
            key = (s, prop, antialiased)
            stamp = self.stamps.get(key)
            if stamp is None:
                font = self._prepare_font(prop)  # type: ignore[no-untyped-call]
                font.set_text(s, 0, flags=get_hinting_flag())  # type: ignore[no-untyped-call]
                font.draw_glyphs_to_bitmap(antialiased=antialiased)
                xo, yo = font.get_bitmap_offset()
                stamp = (np.array(font.get_image()), xo / 64, (yo + font.get_descent()) / 64)
                # FontProperties are mutable: the key keeps a copy, equal (by value) to `prop`
                self.stamps[(s, prop.copy(), antialiased)] = stamp
                if len(self.stamps) > _STAMPS:
                    self.stamps.popitem(last=False)
            else:
                self.stamps.move_to_end(key)
            bitmap, dx, dy = stamp
            if bitmap.size:
                # draw_text_image's y is the bitmap's bottom row, counted downwards
                self._renderer.draw_text_image(bitmap, round(x + dx), round(y + dy) + 1, 0, gc)

    class _Canvas(FigureCanvasAgg):
        def get_renderer(self) -> RendererAgg:
            width, height = self.get_width_height(physical=True)
            key = (width, height, self.figure.dpi)
            if self._lastKey != key:  # as FigureCanvasAgg does, with the stamp renderer
                self.renderer = _StampRenderer(width, height, self.figure.dpi)
                self._lastKey = key
            return cast(RendererAgg, self.renderer)

    _canvas = _Canvas
    return _canvas


# -- trend ----------------------------------------------------------------------------------


class _Dated(_Chart):
    """Values over days: date ticks below, value ticks with grid lines on the left (formatted
    as the messages format them), and a hand-made key under the title."""

    key: list[tuple[Line2D, Text]]

    def __init__(self) -> None:
        super().__init__()
        self.unit, self.currency, self.locale, self.date_format = Unit.COUNT, "USD", "en_US", ""
        self.x_ticks = _Ticks(self.ax, "x")
        self.y_ticks = _Ticks(self.ax, "y", grid=True)
        self.key = []

    def _format_x(self, x: float) -> str:
        day = date.fromordinal(round(x))
        if self.date_format:
            return day.strftime(self.date_format)
        return _short_date(day, self.locale)

    def _format_y(self, y: float, cents: bool | None = None) -> str:
        return format_value(y, self.unit, currency=self.currency, locale=self.locale, cents=cents)

    def _key_entry(self, line: Line2D) -> tuple[Line2D, Text]:
        """A short sample of `line` and a text beside it, placed in pixels by `_show_key`."""
        from matplotlib.lines import Line2D

        sample = Line2D(
            [0, 0, 0], [0, 0, 0], transform=None, color=line.get_color(),
            linewidth=line.get_linewidth(), linestyle=line.get_linestyle(),
            marker=line.get_marker(), markersize=line.get_markersize(), markevery=[1],
            markerfacecolor=line.get_markerfacecolor(), markeredgewidth=line.get_markeredgewidth(),
            alpha=line.get_alpha(),
        )  # fmt: skip
        self.fig.add_artist(sample)
        text = self.fig.text(
            0, 0, "", transform=None, fontsize=TEXT_SIZE, color=INK, ha="left",
            va="center_baseline",
        )  # fmt: skip
        return sample, text

    def _show_key(self, entries: Sequence[tuple[int, str]], *, wrap: bool = False) -> int:
        """Show the key entries (index into self.key, label) left to right, on more rows when
        `wrap` and a row is full; hide the others. Returns the rows used."""
        x, y = _TITLE_X * WIDTH_PX, _KEY_Y * HEIGHT_PX
        rows = 1 if entries else 0
        for index, label in entries:
            sample, text = self.key[index]
            width = _KEY_SAMPLE + _KEY_PAD + self.text_width(label, TEXT_SIZE)
            if wrap and x > _TITLE_X * WIDTH_PX and x + width > _RIGHT * WIDTH_PX:
                x, y, rows = _TITLE_X * WIDTH_PX, y - _KEY_ROW, rows + 1
            sample.set_data([x, x + _KEY_SAMPLE / 2, x + _KEY_SAMPLE], [y, y, y])
            text.set_position((x + _KEY_SAMPLE + _KEY_PAD, y))
            text.set_text(label)
            x += _KEY_SAMPLE + _KEY_PAD + self.text_width(label, TEXT_SIZE) + _KEY_GAP
        shown = {index for index, _ in entries}
        for index, (sample, text) in enumerate(self.key):
            sample.set_visible(index in shown)
            text.set_visible(index in shown)
        return rows

    def _x_axis(self, xs: list[float]) -> None:
        """A tick on at most _MAX_X_TICKS (fewer if labels are wide) days, ending on the last."""
        axes_px = (_RIGHT - _MIN_LEFT) * WIDTH_PX
        label_px = self.text_width(self._format_x(xs[-1]), TICK_SIZE) + 24
        most = max(2, min(_MAX_X_TICKS, int(axes_px // label_px)))
        step = max(1, math.ceil(len(xs) / most))
        ticks = xs[::-step][::-1]
        self.x_ticks.set(ticks, [self._format_x(x) for x in ticks])
        first, final = min(xs), max(xs)
        pad = max(0.5, (final - first) * 0.02) if final > first else 1.0
        self.ax.set_xlim(first - pad, final + pad)

    def _y_axis(self, lo: float, hi: float) -> None:
        """Limits around [lo, hi] with "nice" ticks; the left margin fits the widest label."""
        from matplotlib.ticker import MaxNLocator

        floor_at_zero = lo >= 0
        if hi == lo:
            spread = abs(hi) * 0.1 or (0.01 if self.unit is Unit.PERCENT else 1.0)
            lo, hi = lo - spread, hi + spread
        margin = (hi - lo) * 0.08
        low, high = lo - margin, hi + margin
        if floor_at_zero and low < 0:
            low = 0.0
        locator = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], integer=self.unit is Unit.COUNT)
        ticks = [float(t) for t in locator.tick_values(low, high) if low <= t <= high]
        # money ticks that reach 1,000 read better without cents ($1,500, not $1,500.00)
        cents = None if max((abs(t) for t in ticks), default=0.0) < 1000 else False
        labels = [self._format_y(t, cents) for t in ticks]
        self.y_ticks.set(ticks, labels)
        self.ax.set_ylim(low, high)
        widest = max((self.text_width(label, TICK_SIZE) for label in labels), default=0.0)
        self.fig.subplots_adjust(left=max(_MIN_LEFT, (widest + 22) / WIDTH_PX))


class _Trend(_Dated):
    """The KPI line, the previous period, the goal, and a key under the title."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.transforms import blended_transform_factory

        ax = self.ax
        self.previous: Line2D = ax.plot(
            [], [], color=GREY, linewidth=2.5, solid_capstyle="round", zorder=2
        )[0]
        self.current: Line2D = ax.plot(
            [], [], color=BLUE, linewidth=3.5, solid_capstyle="round", zorder=4,
            marker="o", markersize=7,
        )[0]  # fmt: skip
        # a value with None on both sides draws no line segment: a dot keeps it visible
        self.lonely: Line2D = ax.plot(
            [], [], color=BLUE, linestyle="none", marker="o", markersize=7, zorder=4
        )[0]
        self.goal: Line2D = ax.plot(
            [0.0, 1.0], [0.0, 0.0], color=VERMILLION, linewidth=2.5, linestyle=(0, (6, 4)),
            zorder=3, transform=blended_transform_factory(ax.transAxes, ax.transData),
        )[0]  # fmt: skip
        self.threshold: Line2D = ax.plot(
            [0.0, 1.0], [0.0, 0.0], color=INK, linewidth=2, linestyle=(0, (1.5, 3)),
            zorder=3, transform=blended_transform_factory(ax.transAxes, ax.transData),
        )[0]  # fmt: skip
        # each day's own value under a rolling line: faint, so the line is what reads
        self.daily: Line2D = ax.plot(
            [], [], color=BLUE, alpha=0.35, linestyle="none", marker="o", markersize=6, zorder=3
        )[0]
        # the period not over yet: a dashed last segment to a hollow dot
        self.unfinished: Line2D = ax.plot(
            [], [], color=BLUE, linewidth=3, linestyle=(0, (3, 2.5)), marker="o", markersize=9,
            markerfacecolor="white", markeredgewidth=2.5, markevery=[1], zorder=5,
        )[0]  # fmt: skip
        # a hand-made key: Legend's offsetbox layout costs more to draw than the plot itself
        self.key = [self._key_entry(line) for line in (
            self.current, self.previous, self.goal, self.threshold, self.daily, self.unfinished)]

    def render(
        self,
        title: str,
        unit: Unit,
        points: Sequence[tuple[date, float | None]],
        previous: Sequence[tuple[date, float | None]],
        goal: float | None,
        currency: str,
        locale: str,
        date_format: str,
        smoothed: Sequence[float | None] = (),
        threshold: tuple[str, float] | None = None,
        unfinished: bool = False,
    ) -> bytes:
        import numpy as np

        self.unit, self.currency, self.locale = unit, currency, locale
        self.date_format = date_format
        self.title.set_text(title)
        xs = [float(day.toordinal()) for day, _ in points]
        daily = [_finite(value) for _, value in points]
        before = [_finite(value) for _, value in previous[: len(xs)]]
        before += [None] * (len(xs) - len(before))
        rolling = any(v is not None for v in smoothed)
        ys = (list(smoothed[: len(xs)]) + [None] * (len(xs) - len(smoothed))) if rolling else daily
        has_data = any(y is not None for y in daily)
        has_previous = has_data and any(y is not None for y in before) and not rolling
        unfinished = unfinished and has_data and ys[-1] is not None
        entries: list[tuple[int, str]] = []
        if has_data:
            entries.append((0, "7-day rolling" if rolling else "This period"))
            if rolling:
                entries.append((4, "Each day"))
            if has_previous:
                entries.append((1, "Previous period"))
            if unfinished:
                entries.append((5, "So far"))
            if goal is not None:
                shown = format_value(goal, unit, currency=currency, locale=locale)
                entries.append((2, f"Goal {shown}"))
            if threshold is not None:
                shown = format_value(threshold[1], unit, currency=currency, locale=locale)
                entries.append((3, f"Alert {threshold[0]} {shown}"))
        self._show_key(entries)
        self.show_data(has_data)
        if not has_data:
            return self.png()

        nan = float("nan")
        drawn = ys[:-1] + [None] if unfinished else ys  # the unfinished point has its own line
        now = np.array([nan if y is None else y for y in drawn])
        self.current.set_data(xs, now)
        self.current.set_marker("o" if len(xs) <= _MARKERS_UP_TO and not rolling else "None")
        last = len(drawn) - 1
        lonely = [
            i
            for i, y in enumerate(drawn)
            if y is not None and (i == 0 or drawn[i - 1] is None) and (i == last or drawn[i + 1] is None)
        ]
        self.lonely.set_data([xs[i] for i in lonely], now[lonely])
        self.daily.set_visible(rolling)
        self.daily.set_data(xs, [nan if y is None else y for y in daily])
        self.unfinished.set_visible(unfinished)
        if unfinished:
            tail = [y for y in ys[-2:] if y is not None]  # the last value, and the one before
            self.unfinished.set_data(xs[-len(tail):] * (3 - len(tail)), tail * (3 - len(tail)))
        self.previous.set_data(xs, [nan if y is None else y for y in before])
        self.previous.set_visible(has_previous)
        self.goal.set_visible(goal is not None)
        if goal is not None:
            self.goal.set_ydata([goal, goal])
        self.threshold.set_visible(threshold is not None)
        if threshold is not None:
            self.threshold.set_ydata([threshold[1], threshold[1]])
        self._x_axis(xs)
        values = [y for y in (*ys, *daily, *(before if has_previous else ()), goal,
                              threshold[1] if threshold else None) if y is not None]
        self._y_axis(min(values), max(values))
        return self.png()


# -- breakdown ------------------------------------------------------------------------------


class _Breakdown(_Dated):
    """A line per dimension value over the days, or a bar per value for one period; the
    named values in the palette, "other" in a darker grey, the untagged entries dashed grey."""

    def __init__(self) -> None:
        super().__init__()
        ax = self.ax
        self.lines: list[Line2D] = []
        for i in range(BREAKDOWN_LINES):
            self.lines.append(ax.plot(
                [], [], color=PALETTE[i], linewidth=3, solid_capstyle="round", zorder=4,
                marker="o", markersize=6,
            )[0])  # fmt: skip
        self.key = [self._key_entry(line) for line in self.lines]
        self.bars: list[Rectangle] = []
        self.bar_values: list[Text] = []

    def _style(self, i: int, kind: str) -> None:
        """Line `i` (and its key sample) as a named value, `other` or `untagged`."""
        colour = {"other": MUTED, "untagged": GREY}.get(kind, PALETTE[i])
        style: tuple[float, tuple[float, float]] | Literal["-"] = (
            (0, (4, 2.5)) if kind == "untagged" else "-")
        for line in (self.lines[i], self.key[i][0]):
            line.set_color(colour)
            line.set_linestyle(style)
            line.set_markerfacecolor(colour)
            line.set_markeredgecolor(colour)

    def _ensure_bars(self, count: int) -> None:
        from matplotlib.patches import Rectangle

        while len(self.bars) < count:
            bar = Rectangle((0, 0), 0, 0, facecolor=BLUE, edgecolor="none", zorder=4)
            self.ax.add_patch(bar)
            self.bars.append(bar)
            self.bar_values.append(self.ax.text(
                0, 0, "", ha="center", va="bottom", fontsize=TEXT_SIZE, color=INK, zorder=5))

    def render(
        self, title: str, unit: Unit, days: Sequence[date],
        series: Sequence[tuple[str, str, Sequence[float | None]]], bars: bool, currency: str,
        locale: str,
    ) -> bytes:
        self.unit, self.currency, self.locale, self.date_format = unit, currency, locale, ""
        self.title.set_text(title)
        shown = list(series)[:BREAKDOWN_LINES]
        values = [[_finite(v) for v in points] for _, _, points in shown]
        has_data = any(v is not None for points in values for v in points)
        self.show_data(has_data)
        for i, (_, kind, _) in enumerate(shown):
            self._style(i, kind)
        entries = [(i, name) for i, (name, _, _) in enumerate(shown)] if has_data and not bars else []
        rows = self._show_key(entries, wrap=True)
        self.fig.subplots_adjust(top=_TOP - _KEY_ROW / HEIGHT_PX * max(0, rows - 1))
        for bar, label in zip(self.bars, self.bar_values, strict=True):
            bar.set_visible(False)
            label.set_visible(False)
        for line in self.lines:
            line.set_visible(False)
        if not has_data:
            return self.png()
        if bars:
            return self._bars(shown, [points[-1] for points in values])
        nan = float("nan")
        xs = [float(day.toordinal()) for day in days]
        for line, points in zip(self.lines, values, strict=False):
            line.set_visible(True)
            line.set_data(xs, [nan if v is None else v for v in points])
        self._x_axis(xs)
        present = [v for points in values for v in points if v is not None]
        self._y_axis(min(present), max(present))
        return self.png()

    def _bars(self, shown: Sequence[tuple[str, str, Sequence[float | None]]],
              totals: Sequence[float | None]) -> bytes:
        self._ensure_bars(len(shown))
        for i, ((_, kind, _), value) in enumerate(zip(shown, totals, strict=True)):
            bar, label = self.bars[i], self.bar_values[i]
            colour = {"other": MUTED, "untagged": GREY}.get(kind, PALETTE[i])
            height = value or 0.0
            bar.set_bounds(i - _BAR_WIDTH / 2, min(0.0, height), _BAR_WIDTH, abs(height))
            bar.set_facecolor(colour)
            bar.set_visible(True)
            label.set_position((i, max(0.0, height)))
            label.set_text("n/a" if value is None else self._format_y(value))
            label.set_visible(True)
        positions = [float(i) for i in range(len(shown))]
        self.x_ticks.set(positions, [name for name, _, _ in shown])
        self.ax.set_xlim(-0.6, len(shown) - 0.4)
        present = [v for v in totals if v is not None]
        self._y_axis(min([0.0, *present]), max([0.0, *present]) * 1.1 or 1.0)
        return self.png()


# -- funnel ---------------------------------------------------------------------------------


class _Funnel(_Chart):
    """Horizontal bars on a log scale, each with its value and the step's conversion."""

    def __init__(self) -> None:
        super().__init__()
        ax = self.ax
        self.fig.subplots_adjust(top=_FUNNEL_TOP, bottom=_FUNNEL_BOTTOM)
        ax.spines["bottom"].set_visible(False)
        self.names = _Ticks(ax, "y", marks=False, size=TEXT_SIZE, pad=_FUNNEL_NAME_PAD)
        ax.set_xlim(0, _FUNNEL_XMAX)
        self.bars: list[Rectangle] = []
        self.labels: list[Text] = []
        self.note = self.fig.text(
            _RIGHT + 0.015, 0.03, "Bar length on a log scale", fontsize=SMALL_SIZE, color=MUTED,
            ha="right", va="bottom",
        )  # fmt: skip

    def _ensure(self, count: int) -> None:
        """At least `count` bars and labels (kept for later calls, hidden when unused)."""
        from matplotlib.patches import Rectangle

        while len(self.bars) < count:
            bar = Rectangle((0, 0), 0, _BAR_HEIGHT, facecolor=BLUE, edgecolor="none")
            self.ax.add_patch(bar)
            self.bars.append(bar)
            label = self.ax.text(0, 0, "", ha="left", va="center", fontsize=TEXT_SIZE, color=INK)
            self.labels.append(label)

    def render(self, title: str, steps: Sequence[tuple[str, float | None]], locale: str) -> bytes:
        self.title.set_text(title)
        values = [_finite(value) for _, value in steps]
        present = [v for v in values if v is not None]
        self.show_data(bool(present))
        self.note.set_visible(bool(present))
        if not present:
            return self.png()

        self._ensure(len(steps))
        scale = math.log10(max(max(present), 0.0) + 1) or 1.0
        for i, (bar, label) in enumerate(zip(self.bars, self.labels, strict=True)):
            bar.set_visible(i < len(steps))
            label.set_visible(i < len(steps))
            if i >= len(steps):
                continue
            value = values[i]
            width = 0.0
            if value is not None and value > 0:
                width = max(_MIN_BAR, math.log10(value + 1) / scale)
            bar.set_xy((0, i - _BAR_HEIGHT / 2))
            bar.set_width(width)
            label.set_position((width + 0.015, i))
            label.set_text(_step_label(values, i, locale))

        names = [str(name) for name, _ in steps]
        self.names.set([float(i) for i in range(len(steps))], names)
        self.ax.set_ylim(len(steps) - 0.5, -0.5)
        widest = max(self.text_width(name, TEXT_SIZE) for name in names)
        self.fig.subplots_adjust(left=max(_MIN_LEFT, (widest + 30) / WIDTH_PX))
        return self.png()


def _step_label(values: Sequence[float | None], i: int, locale: str) -> str:
    """ "1,234  (12.3%)": the value and the conversion from the step before (none on the first)."""
    value = values[i]
    text = format_value(value, Unit.COUNT, locale=locale)
    if i == 0:
        return text
    before = values[i - 1]
    if value is None or before is None or before == 0:
        return f"{text}  (n/a)"
    return f"{text}  ({format_value(value / before, Unit.PERCENT, locale=locale)})"
