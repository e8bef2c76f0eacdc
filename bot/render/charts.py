"""PNG charts for the digests and `/kpi chart`: a KPI trend line and a conversion funnel.

matplotlib is imported on first use, never at import time, and only through the object-oriented
API (a `Figure` on an Agg canvas; never pyplot), so nothing is registered globally and there is
nothing to close. Speed comes from reuse: each thread keeps one pre-built figure per kind of
chart (axes, lines, texts made once) and a call only updates data, limits, ticks and texts
before drawing. Margins are fixed numbers (no tight_layout or bbox_inches="tight", which draw
twice); only the left one follows the widest tick label, measured with the cached text layout.
Threads never share a figure, so worker threads can render at the same time.

Numbers on axes and labels come from `format_value`, so a chart says what the message says.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from bot.render.numbers import format_value
from kpis.catalogue import Unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

__all__ = ["NO_DATA", "funnel_chart", "trend_chart"]

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
_MAX_X_TICKS = 8
_MARKERS_UP_TO = 31  # points; longer lines are drawn without a dot on every day

_FUNNEL_TOP, _FUNNEL_BOTTOM = 0.86, 0.10
_FUNNEL_XMAX = 1.4  # bars run to 1.0; the rest of the axes holds their labels
_MIN_BAR = 0.012
_BAR_HEIGHT = 0.72

#: zlib level 1: charts are flat colour, so it is about as small as level 6 and twice as fast
_ZLIB_LEVEL = 1

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
    date_format: str = "%d %b",
) -> bytes:
    """A PNG of one KPI over a range of days.

    None (or NaN) values leave a gap in the line. `previous[i]` is drawn, faint, at the date of
    `points[i]`, so the two periods line up day by day. `goal` is a dashed line named in the
    key with its value. When `points` has no value at all the image says "No data for this
    period". The title gets the unit: "Cost per lead (USD)", "Show-up rate (%)".
    """
    unit = Unit(unit)
    chart = _this_thread("trend", _Trend)
    return chart.render(
        _with_unit(title, unit, currency),
        unit,
        points,
        previous,
        _finite(goal),
        currency,
        locale,
        date_format,
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


# -- shared ---------------------------------------------------------------------------------

_C = TypeVar("_C", bound="_Chart")


def _this_thread(kind: str, factory: Callable[[], _C]) -> _C:
    """This thread's pre-built chart of `kind`, built on its first use."""
    chart: _C | None = getattr(_local, kind, None)
    if chart is None:
        chart = factory()
        setattr(_local, kind, chart)
    return chart


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
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
        self.canvas = FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=0.1, right=_RIGHT, top=_TOP, bottom=_BOTTOM)
        self.ax = ax = self.fig.add_subplot()
        ax.set_facecolor("white")
        ax.set_autoscale_on(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_color(AXIS)
        ax.tick_params(labelsize=TICK_SIZE, colors=AXIS, labelcolor=INK, length=5, width=1)
        self.title = self.fig.text(
            _TITLE_X, _TITLE_Y, "", fontsize=TITLE_SIZE, fontweight="bold", color=INK,
            ha="left", va="top",
        )  # fmt: skip
        self.empty = self.fig.text(
            0.5, 0.45, NO_DATA, fontsize=TITLE_SIZE, color=MUTED, ha="center", va="center"
        )

    def text_width(self, text: str, size: float) -> float:
        """The width of `text` in pixels at `size` points (matplotlib caches the layout)."""
        renderer = self.canvas.get_renderer()  # type: ignore[no-untyped-call]
        width, _, _ = renderer.get_text_width_height_descent(text, _font(size), ismath=False)
        return float(width)

    def show_data(self, shown: bool) -> None:
        self.ax.set_visible(shown)
        self.empty.set_visible(not shown)

    def png(self) -> bytes:
        self.canvas.draw()  # type: ignore[no-untyped-call]
        return _encode_png(self.canvas.buffer_rgba())  # type: ignore[no-untyped-call]


def _encode_png(rgba: Any) -> bytes:
    """An Agg RGBA buffer as an RGB PNG through Pillow (matplotlib's own image library).

    The figure is opaque, so dropping alpha loses nothing; zlib level 1 keeps flat-colour
    charts about as small as the default level at half the encoding time.
    """
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgba)[:, :, :3]).save(buffer, format="PNG", compress_level=_ZLIB_LEVEL)
    return buffer.getvalue()


# -- trend ----------------------------------------------------------------------------------


class _Trend(_Chart):
    """The KPI line, the previous period, the goal, and a key under the title."""

    def __init__(self) -> None:
        super().__init__()
        from matplotlib.ticker import FuncFormatter
        from matplotlib.transforms import blended_transform_factory

        ax = self.ax
        self.unit, self.currency, self.locale, self.date_format = Unit.COUNT, "USD", "en_US", ""
        ax.grid(True, axis="y", color=GRID, linewidth=1)
        ax.set_axisbelow(True)
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
        # a hand-made key: Legend's offsetbox layout costs more to draw than the plot itself
        self.key = [self._key_entry(line) for line in (self.current, self.previous, self.goal)]
        ax.xaxis.set_major_formatter(FuncFormatter(self._format_x))
        ax.yaxis.set_major_formatter(FuncFormatter(self._format_y))

    def _format_x(self, x: float, _pos: int | None = None) -> str:
        return date.fromordinal(round(x)).strftime(self.date_format)

    def _format_y(self, y: float, _pos: int | None = None) -> str:
        return format_value(y, self.unit, currency=self.currency, locale=self.locale)

    def _key_entry(self, line: Line2D) -> tuple[Line2D, Text]:
        """A short sample of `line` and a text beside it, placed in pixels by `_show_key`."""
        from matplotlib.lines import Line2D

        sample = Line2D(
            [0, 0, 0], [0, 0, 0], transform=None, color=line.get_color(),
            linewidth=line.get_linewidth(), linestyle=line.get_linestyle(),
            marker=line.get_marker(), markersize=line.get_markersize(), markevery=[1],
        )  # fmt: skip
        self.fig.add_artist(sample)
        text = self.fig.text(
            0, 0, "", transform=None, fontsize=TEXT_SIZE, color=INK, ha="left",
            va="center_baseline",
        )  # fmt: skip
        return sample, text

    def _show_key(self, entries: Sequence[tuple[int, str]]) -> None:
        """Show the key entries (index into self.key, label) left to right; hide the others."""
        x, y = _TITLE_X * WIDTH_PX, _KEY_Y * HEIGHT_PX
        for index, label in entries:
            sample, text = self.key[index]
            sample.set_data([x, x + _KEY_SAMPLE / 2, x + _KEY_SAMPLE], [y, y, y])
            text.set_position((x + _KEY_SAMPLE + _KEY_PAD, y))
            text.set_text(label)
            x += _KEY_SAMPLE + _KEY_PAD + self.text_width(label, TEXT_SIZE) + _KEY_GAP
        shown = {index for index, _ in entries}
        for index, (sample, text) in enumerate(self.key):
            sample.set_visible(index in shown)
            text.set_visible(index in shown)

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
    ) -> bytes:
        import numpy as np

        self.unit, self.currency, self.locale = unit, currency, locale
        self.date_format = date_format
        self.title.set_text(title)
        xs = [float(day.toordinal()) for day, _ in points]
        ys = [_finite(value) for _, value in points]
        before = [_finite(value) for _, value in previous[: len(xs)]]
        before += [None] * (len(xs) - len(before))
        has_data = any(y is not None for y in ys)
        has_previous = has_data and any(y is not None for y in before)
        entries: list[tuple[int, str]] = []
        if has_data:
            entries.append((0, "This period"))
            if has_previous:
                entries.append((1, "Previous period"))
            if goal is not None:
                shown = format_value(goal, unit, currency=currency, locale=locale)
                entries.append((2, f"Goal {shown}"))
        self._show_key(entries)
        self.show_data(has_data)
        if not has_data:
            return self.png()

        nan = float("nan")
        now = np.array([nan if y is None else y for y in ys])
        self.current.set_data(xs, now)
        self.current.set_marker("o" if len(xs) <= _MARKERS_UP_TO else "None")
        last = len(ys) - 1
        lonely = [
            i
            for i, y in enumerate(ys)
            if y is not None and (i == 0 or ys[i - 1] is None) and (i == last or ys[i + 1] is None)
        ]
        self.lonely.set_data([xs[i] for i in lonely], now[lonely])
        self.previous.set_data(xs, [nan if y is None else y for y in before])
        self.previous.set_visible(has_previous)
        self.goal.set_visible(goal is not None)
        if goal is not None:
            self.goal.set_ydata([goal, goal])
        self._x_axis(xs)
        values = [y for y in (*ys, *before, goal) if y is not None]
        self._y_axis(min(values), max(values))
        return self.png()

    def _x_axis(self, xs: list[float]) -> None:
        """A tick on at most _MAX_X_TICKS (fewer if labels are wide) days, ending on the last."""
        from matplotlib.ticker import FixedLocator

        axes_px = (_RIGHT - _MIN_LEFT) * WIDTH_PX
        label_px = self.text_width(self._format_x(xs[-1]), TICK_SIZE) + 24
        most = max(2, min(_MAX_X_TICKS, int(axes_px // label_px)))
        step = max(1, math.ceil(len(xs) / most))
        self.ax.xaxis.set_major_locator(FixedLocator(xs[::-step][::-1]))
        first, final = min(xs), max(xs)
        pad = max(0.5, (final - first) * 0.02) if final > first else 1.0
        self.ax.set_xlim(first - pad, final + pad)

    def _y_axis(self, lo: float, hi: float) -> None:
        """Limits around [lo, hi] with "nice" ticks; the left margin fits the widest label."""
        from matplotlib.ticker import FixedLocator, MaxNLocator

        floor_at_zero = lo >= 0
        if hi == lo:
            spread = abs(hi) * 0.1 or (0.01 if self.unit is Unit.PERCENT else 1.0)
            lo, hi = lo - spread, hi + spread
        margin = (hi - lo) * 0.08
        low, high = lo - margin, hi + margin
        if floor_at_zero and low < 0:
            low = 0.0
        locator = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], integer=self.unit is Unit.COUNT)
        ticks = [t for t in locator.tick_values(low, high) if low <= t <= high]
        self.ax.yaxis.set_major_locator(FixedLocator(ticks))
        self.ax.set_ylim(low, high)
        widest = max((self.text_width(self._format_y(t), TICK_SIZE) for t in ticks), default=0.0)
        self.fig.subplots_adjust(left=max(_MIN_LEFT, (widest + 22) / WIDTH_PX))


# -- funnel ---------------------------------------------------------------------------------


class _Funnel(_Chart):
    """Horizontal bars on a log scale, each with its value and the step's conversion."""

    def __init__(self) -> None:
        super().__init__()
        ax = self.ax
        self.fig.subplots_adjust(top=_FUNNEL_TOP, bottom=_FUNNEL_BOTTOM)
        ax.spines["bottom"].set_visible(False)
        ax.tick_params(axis="x", bottom=False, labelbottom=False)
        ax.tick_params(axis="y", left=False, labelsize=TEXT_SIZE, pad=10)
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
        self.ax.set_yticks(range(len(steps)), names)
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
