"""Benchmarks of kpibot, run by `make bench` (`python -m bench`).

A benchmark is a function registered with `@register("name")`. It receives the run's
`Options` and returns the rows it measured; `python -m bench` runs every registered
benchmark, prints one table of all rows and writes it as Markdown to `bench/results.md`.

To add one (Slack ack latency, charts, digests...): write `bench/<topic>_bench.py` with a
registered function and add the module to `MODULES` in `bench/__main__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
#: cached databases and other generated inputs (git-ignored)
DATA = HERE / ".data"


@dataclass(frozen=True)
class Row:
    """One figure of the results table."""

    figure: str
    value: str
    target: str
    reference: str
    met: bool


@dataclass(frozen=True)
class Options:
    runs: int = 50
    warmups: int = 3
    explain: bool = False
    rebuild: bool = False
    #: `make bench QUICK=1`: fewer runs and smaller inputs; benchmarks that take minutes
    #: (the morning of 10,000 workspaces) give a "skipped" row
    quick: bool = False


Benchmark = Callable[[Options], Iterable[Row]]
REGISTRY: dict[str, Benchmark] = {}


def register(name: str) -> Callable[[Benchmark], Benchmark]:
    """Adds a benchmark function to the table `python -m bench` prints."""

    def add(function: Benchmark) -> Benchmark:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = function
        return function

    return add


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
