"""KPI values as native `data_visualization` blocks: the one conversion the digest and
`/kpi chart` share. Percentages are drawn as points of 100, other values rounded to cents, the
axis says the currency; titles, series names and point labels are cut to Slack's limits
(slack-platform.md section 11) and series names kept unique."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from bot.render.kit import (
    CHART_LABEL_LIMIT,
    CHART_SERIES_NAME_LIMIT,
    CHART_TITLE_LIMIT,
    Block,
    series_chart,
)
from kpis.catalogue import Unit
from kpis.periods import Period


def chart_value(unit: Unit, value: float) -> float:
    return round(value * 100.0, 2) if unit is Unit.PERCENT else round(value, 2)


def y_label(currency: str, unit: Unit) -> str | None:
    return {Unit.CURRENCY: currency, Unit.PERCENT: "%", Unit.RATIO: "x"}.get(unit)


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def day_label(day: date) -> str:
    """`Mar 9`: a point of a daily chart."""
    return f"{day:%b} {day.day}"


def span_label(span: Period) -> str:
    """`Mar 9`, `Mar 9–10` or `Feb 27–Mar 2`: a point of a chart of runs of days."""
    if span.days == 1:
        return day_label(span.start)
    if span.start.month == span.end.month:
        return f"{day_label(span.start)}–{span.end.day}"
    return f"{day_label(span.start)}–{day_label(span.end)}"


def unique_cut(names: Sequence[str], limit: int = CHART_SERIES_NAME_LIMIT) -> list[str]:
    """The names cut to `limit` characters, each still unique (`facebook_spring_c…2`)."""
    found: list[str] = []
    for name in names:
        cut = short(name, limit) or "-"
        n = 2
        while cut in found:
            suffix = str(n)
            cut = short(name, limit - len(suffix)) + suffix
            n += 1
        found.append(cut)
    return found


def kpi_chart(kind: str, title: str, categories: Sequence[str],
              series: Sequence[tuple[str, Sequence[float]]], unit: Unit, currency: str,
              *, x_label: str | None = None) -> Block:
    """A line or bar chart of values in `unit`: one definition of how the digest and
    `/kpi chart` draw numbers natively."""
    names = unique_cut([name for name, _ in series])
    return series_chart(
        kind, short(title, CHART_TITLE_LIMIT), unique_cut(categories, CHART_LABEL_LIMIT),
        [(name, [chart_value(unit, v) for v in values])
         for name, (_, values) in zip(names, series, strict=True)],
        x_label=x_label, y_label=y_label(currency, unit))
