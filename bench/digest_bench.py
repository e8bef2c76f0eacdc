"""Charts and digests: a chart warm and in a fresh process, a whole digest, memory over 500 digests.

Inputs come from the demo generator (`bot.demo.fill`): 90 days of a coaching business in a
workspace whose zone is America/New_York, built once through `storage.open_store` and cached
outside the checkout by `bench.cached`, like report_bench's.

* chart, warm: the daily digest's trend charts (and its funnel), rendered in turn after
  warm-ups; the median of `--runs` rounds. The reference is a naive pyplot chart of the same
  trend (plt.subplots at 1200x675, plot, axhline, title, legend, savefig(png), close), timed
  in the same rounds, interleaved with ours so drift of the machine hits both alike. With
  `--quick`, enough rounds for `--runs` charts of each (not `--runs` of every trend).
* first chart: wall time of importing the chart module and rendering one trend, inside a
  fresh `python -c` process (interpreter start-up excluded); pyplot's import + first chart
  the same way as the reference. Median of FRESH_RUNS processes each, interleaved, after one
  of each to warm the OS file cache (with `--quick`, QUICK_FRESH_RUNS and no warming).
* digest: `compute_digest` + `digest_message` + `digest_charts` of the daily and the weekly
  digest, median of `--runs` (QUICK_DIGEST_RUNS with `--quick`, the row says so).
* memory: a fresh `python -c` process renders 50 daily digests (compute, blocks, charts) and
  reads its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, what an operator sees;
  not tracemalloc, which misses matplotlib's and Agg's C allocations), then 450 more and reads
  it again. Growth = (after 500 - after 50) / after 50. The current RSS (VmRSS) at both points
  is shown beside it, as a slow leak could stay under an earlier peak for a while. It takes
  over a minute: `--quick` gives a "skipped" row (fewer digests would hide a slow leak).
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench import CachedDb, Options, Row, cached, ms, register

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = "T0DIGEST"
ACTOR = "U0BENCH"
ZONE = "America/New_York"
#: 08:00 in New York: the daily digest covers 2 March 2026, the weekly one 23 Feb - 1 Mar
NOW = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
DAYS = 90
SHAPE_VERSION = 1  # bump when the generated data changes, so the cache is rebuilt
DB = CachedDb("digest-demo", SHAPE_VERSION)

CHART_TARGET_S = 0.050
DIGEST_TARGET_S = 0.300
GROWTH_TARGET = 0.05
FRESH_RUNS = 5
QUICK_FRESH_RUNS = 3
MEMORY_FIRST, MEMORY_LAST = 50, 500
QUICK_DIGEST_RUNS = 15


# -- the database -----------------------------------------------------------------------------


def build(path: Path) -> dict[str, Any]:
    """The demo workspace's DAYS days at `path` (a new file); returns its description."""
    from bot.app.context import open_context
    from bot.demo import fill
    from storage import open_store

    started = time.perf_counter()
    store = open_store(f"sqlite:///{path}")
    ctx = open_context(store, WORKSPACE, ACTOR, NOW, timezone=ZONE)
    values = fill(store, WORKSPACE, ctx.today, DAYS)
    store.engine.dispose()
    seconds = time.perf_counter() - started
    print(f"built {DB.path.name}: {values} demo values over {DAYS} days up to {ctx.today} "
          f"in {seconds:.1f} s", flush=True)
    return {
        "values": values, "days": DAYS, "today": ctx.today.isoformat(), "zone": ZONE,
        "build_seconds": round(seconds, 2),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def open_bench_context() -> Any:
    from bot.app.context import open_context
    from storage import open_store

    return open_context(open_store(DB.url), WORKSPACE, ACTOR, NOW, timezone=ZONE)


def one_digest(ctx: Any, kind: str) -> tuple[float, float, float, int]:
    """Seconds to compute, build the blocks and render the charts of a digest; chart count."""
    from bot.app.digests import compute_digest
    from bot.render.digest import digest_charts, digest_message

    t0 = time.perf_counter()
    digest = compute_digest(ctx, kind)
    t1 = time.perf_counter()
    digest_message(digest)
    t2 = time.perf_counter()
    charts = digest_charts(digest)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, len(charts)


# -- the pyplot reference ---------------------------------------------------------------------


def pyplot_chart(title: str, points: list[tuple[date, float | None]],
                 previous: list[tuple[date, float | None]], goal: float | None) -> bytes:
    """The chart as naive pyplot code draws it: same size, same data, a figure per call."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [day for day, _ in points]
    nan = float("nan")
    fig, ax = plt.subplots(figsize=(12, 6.75), dpi=100)
    ax.plot(xs, [nan if v is None else v for _, v in points], marker="o", color="#0072B2",
            label="This period")
    if previous:
        ax.plot(xs[: len(previous)], [nan if v is None else v for _, v in previous],
                color="#999999", label="Previous period")
    if goal is not None:
        ax.axhline(goal, color="#D55E00", linestyle="--", label="Goal")
    ax.set_title(title)
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


# -- fresh processes --------------------------------------------------------------------------

_FRESH = """
import json, sys, time
from datetime import date
spec = json.loads(sys.argv[1])
def series(rows): return [(date.fromisoformat(d), v) for d, v in rows]
points, previous = series(spec["points"]), series(spec["previous"])
started = time.perf_counter()
if spec["pyplot"]:
    from bench.digest_bench import pyplot_chart
    png = pyplot_chart(spec["title"], points, previous, spec["goal"])
else:
    from bot.render.charts import trend_chart
    png = trend_chart(spec["title"], spec["unit"], points, previous=previous, goal=spec["goal"])
print(json.dumps({"seconds": time.perf_counter() - started, "bytes": len(png)}))
"""


def _fresh_chart(spec: dict[str, Any], pyplot: bool) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps({**spec, "pyplot": pyplot})],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if done.returncode:
        raise RuntimeError(f"fresh chart process failed:\n{done.stderr}")
    return float(json.loads(done.stdout)["seconds"])


_MEMORY = """
import json, resource, sys
from pathlib import Path
from bench.digest_bench import one_digest, open_bench_context
def rss_kib():
    status = Path("/proc/self/status")
    if not status.exists():
        return 0
    line = next(l for l in status.read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1])
first, last = int(sys.argv[1]), int(sys.argv[2])
ctx = open_bench_context()
seen = {}
for n in range(1, last + 1):
    one_digest(ctx, "daily")
    if n in (first, last):  # ru_maxrss: KiB on Linux
        seen[n] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_kib())
print(json.dumps(seen))
"""


def _memory() -> tuple[float, float, float, float]:
    """Peak RSS after MEMORY_FIRST and MEMORY_LAST digests, then the current RSS at both (MiB).

    Measured in a fresh process. The current RSS (VmRSS, 0 where /proc is missing) is printed
    beside the peak: a slow leak could hide under an earlier peak for a while.
    """
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY, str(MEMORY_FIRST), str(MEMORY_LAST)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if done.returncode:
        raise RuntimeError(f"memory process failed:\n{done.stderr}")
    seen = json.loads(done.stdout)
    (peak_first, now_first), (peak_last, now_last) = seen[str(MEMORY_FIRST)], seen[str(MEMORY_LAST)]
    return peak_first / 1024, peak_last / 1024, now_first / 1024, now_last / 1024


# -- measuring --------------------------------------------------------------------------------


def _timed(function: Callable[[int], Any], i: int) -> float:
    started = time.perf_counter()
    function(i)
    return time.perf_counter() - started


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (f"median {ms(statistics.median(samples))}, min {ms(ordered[0])}, "
            f"p90 {ms(p90)} over {len(samples)}")


@register("charts")
def charts_bench(options: Options) -> list[Row]:
    with cached(DB, build, options.rebuild):
        return _charts(options)


def _charts(options: Options) -> list[Row]:
    from bot.app.digests import compute_digest
    from bot.render.charts import funnel_chart, trend_chart

    ctx = open_bench_context()
    digest = compute_digest(ctx, "daily")
    trends = digest.trends
    if not trends:
        raise RuntimeError("the demo digest has no trends to chart")
    steps = [(s.label, s.value) for s in digest.funnel]
    funnel_title = f"Funnel, {digest.period}"
    print(f"daily digest of {digest.period}: {len(trends)} trend charts and a funnel", flush=True)

    def ours(i: int) -> bytes:
        t = trends[i % len(trends)]
        return trend_chart(t.label, t.unit, t.points, previous=t.previous, goal=t.goal,
                           currency=digest.currency, locale=digest.locale)

    def pyplot(i: int) -> bytes:
        t = trends[i % len(trends)]
        return pyplot_chart(t.label, list(t.points), list(t.previous), t.goal)

    def funnel(_i: int) -> bytes:
        return funnel_chart(funnel_title, steps, locale=digest.locale)

    rounds = -(-options.runs // len(trends)) if options.quick else options.runs
    warm_rounds = 1 if options.quick else options.warmups
    fresh_runs = QUICK_FRESH_RUNS if options.quick else FRESH_RUNS
    if options.quick:
        print(f"--quick: {warm_rounds} + {rounds} rounds of the {len(trends)} trends, "
              f"{fresh_runs} fresh processes each (a full run: --warmups + --runs rounds, "
              f"{FRESH_RUNS} processes)", flush=True)
    for i in range(warm_rounds * len(trends)):
        ours(i), pyplot(i), funnel(i)
    samples: dict[str, list[float]] = {"trend": [], "funnel": [], "pyplot": []}
    for i in range(rounds * len(trends)):
        samples["trend"].append(_timed(ours, i))
        samples["pyplot"].append(_timed(pyplot, i))
        if i % len(trends) == 0:
            samples["funnel"].append(_timed(funnel, i))
    for name, values in samples.items():
        print(f"{name}: {_summary(values)}", flush=True)
    trend, funnel_s, reference = (statistics.median(samples[k])
                                  for k in ("trend", "funnel", "pyplot"))

    first = trends[0]
    spec = {"title": first.label, "unit": first.unit.value, "goal": first.goal,
            "points": [(d.isoformat(), v) for d, v in first.points],
            "previous": [(d.isoformat(), v) for d, v in first.previous]}
    if not options.quick:  # --quick: the benchmarks before it have warmed the file cache
        _fresh_chart(spec, False), _fresh_chart(spec, True)  # warm the OS file cache
    fresh: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(fresh_runs):
        for pyplot_run in (False, True):
            fresh[pyplot_run].append(_fresh_chart(spec, pyplot_run))
    first_ours, first_pyplot = (statistics.median(fresh[k]) for k in (False, True))
    print(f"first chart: ours {_summary(fresh[False])}; pyplot {_summary(fresh[True])}",
          flush=True)

    ctx.store.engine.dispose()
    target = f"<= {CHART_TARGET_S * 1000:g} ms"
    ref = f"pyplot {ms(reference)}"
    return [
        Row("trend chart, warm (median)", ms(trend), target,
            f"{ref} (ratio {trend / reference:.2f})", trend <= CHART_TARGET_S),
        Row("funnel chart, warm (median)", ms(funnel_s), target,
            f"{ref} (ratio {funnel_s / reference:.2f})", funnel_s <= CHART_TARGET_S),
        Row("pyplot reference chart, warm (median)", ms(reference), "—", "reference", True),
        Row("first chart in a fresh process (import + render)", ms(first_ours), "—",
            f"pyplot {ms(first_pyplot)} (ratio {first_ours / first_pyplot:.2f})", True),
    ]


@register("digest")
def digest_bench(options: Options) -> list[Row]:
    with cached(DB, build, options.rebuild):
        return _digests(options)


def _digests(options: Options) -> list[Row]:
    ctx = open_bench_context()
    rows = []
    runs = QUICK_DIGEST_RUNS if options.quick else options.runs
    for kind in ("daily", "weekly"):
        for _ in range(options.warmups):
            one_digest(ctx, kind)
        parts: list[tuple[float, float, float, int]] = [one_digest(ctx, kind)
                                                         for _ in range(runs)]
        totals = [a + b + c for a, b, c, _ in parts]
        compute, blocks, charts = (statistics.median(p[i] for p in parts) for i in range(3))
        total = statistics.median(totals)
        count = parts[0][3]
        print(f"{kind} digest ({count} charts): {_summary(totals)}", flush=True)
        rows.append(Row(
            f"{kind} digest: compute + blocks + {count} charts (median)", ms(total),
            f"<= {DIGEST_TARGET_S * 1000:g} ms",
            f"compute {ms(compute)}, blocks {ms(blocks)}, charts {ms(charts)}"
            + (f"; median of {runs} (--quick)" if options.quick else ""),
            total <= DIGEST_TARGET_S,
        ))
    ctx.store.engine.dispose()

    figure = f"peak RSS growth, {MEMORY_LAST} vs {MEMORY_FIRST} digests"
    if options.quick:
        rows.append(Row(figure, "skipped", "—",
                        f"left out of --quick ({MEMORY_LAST} digests, over a minute)", True))
        return rows
    print(f"memory: {MEMORY_LAST} daily digests in a fresh process...", flush=True)
    after_first, after_last, now_first, now_last = _memory()
    growth = (after_last - after_first) / after_first
    print(f"peak RSS {after_first:.1f} -> {after_last:.1f} MiB, current RSS {now_first:.1f} -> "
          f"{now_last:.1f} MiB", flush=True)
    rows.append(Row(
        figure, f"{growth * 100:+.2f}%", f"<= {GROWTH_TARGET * 100:g}%",
        f"ru_maxrss {after_first:.1f} MiB after {MEMORY_FIRST}, {after_last:.1f} MiB after "
        f"{MEMORY_LAST} (current {now_first:.1f} -> {now_last:.1f} MiB)",
        growth <= GROWTH_TARGET,
    ))
    return rows
