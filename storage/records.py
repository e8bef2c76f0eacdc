"""What a write is and what it changed: shared by the Store and its aggregate mixins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from kpis.rollup import Dims


@dataclass(frozen=True)
class Write:
    """One value to store: replaces the same author's value for the same key, adds to others'."""

    metric: str
    day: date
    value: float
    author: str
    dims: Dims = ()


@dataclass(frozen=True)
class Changed:
    metric: str
    day: date
    author: str
    dims: Dims
    old: float | None
    new: float | None


@dataclass(frozen=True)
class ChangeBatch:
    """What one log, import or undo did, in order."""

    id: str
    actor: str
    origin: str
    changes: tuple[Changed, ...] = field(default_factory=tuple)

    @property
    def metrics(self) -> list[str]:
        return sorted({c.metric for c in self.changes})
