"""Comparisons between two periods, judged by which direction is better for the KPI."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kpis.catalogue import Better


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    SAME = "same"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Change:
    value: float | None
    previous: float | None
    change_pct: float | None
    verdict: Verdict


def change_pct(value: float | None, previous: float | None) -> float | None:
    """Percent change from `previous` to `value`; None when either is missing or previous is 0."""
    if value is None or previous is None or previous == 0:
        return None
    return (value - previous) / abs(previous) * 100.0


def compare(value: float | None, previous: float | None, better: Better) -> Change:
    pct = change_pct(value, previous)
    if value is None or previous is None:
        verdict = Verdict.UNKNOWN
    elif value == previous or better is Better.NEUTRAL:
        verdict = Verdict.SAME
    elif (value > previous) == (better is Better.HIGHER):
        verdict = Verdict.BETTER
    else:
        verdict = Verdict.WORSE
    return Change(value, previous, pct, verdict)
