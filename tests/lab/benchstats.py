"""Statistics and the printed table of tools/bench (pure functions, unit-tested)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    """One timed run of one method on one app."""

    app: str
    method: str
    rep: int
    verdict: float  # seconds until the verdict was known (green, or the failure): all but cleanup
    total: float  # seconds of the whole run, cleanup included
    ok: bool  # ended as the app should: green for a healthy app, a failing verdict for a broken one
    phases: dict[str, float] = field(default_factory=dict)
    load: float = 0.0  # 1-minute load average when the run started
    others: int = 0  # kind nodes of other people's clusters running when it started
    cached: int = 0  # Dockerfile steps tilt's build log shows as [cached] ...
    steps: int = 0  # ... of this many it shows
    note: str = ""


@dataclass(frozen=True)
class Spread:
    n: int
    median: float
    min: float
    max: float


def spread(xs: Iterable[float]) -> Spread | None:
    values = sorted(xs)
    if not values:
        return None
    return Spread(len(values), statistics.median(values), values[0], values[-1])


def fmt(s: Spread | None) -> str:
    return "—" if s is None else f"{s.median:6.1f} s ({s.min:.1f}–{s.max:.1f})"


def group(samples: Sequence[Sample]) -> dict[tuple[str, str], list[Sample]]:
    """Samples by (app, method), in the order each pair first ran."""
    out: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        out.setdefault((s.app, s.method), []).append(s)
    return out


def phase_medians(samples: Sequence[Sample]) -> str:
    names: list[str] = []
    for s in samples:
        names += [n for n in s.phases if n not in names]
    parts = []
    for name in names:
        values = [s.phases[name] for s in samples if name in s.phases]
        parts.append(f"{name} {statistics.median(values):.1f}")
    return ", ".join(parts)


def table(samples: Sequence[Sample]) -> str:
    """A Markdown table: per app and method, the time to the verdict (median, min–max) over the runs
    that ended as they should, the whole run with cleanup, how many ended as they should, and the
    median of each phase."""
    rows = ["| app | method | ok | to verdict: median (min–max) | with cleanup: median (min–max) "
            "| phases (medians, s) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for (app, method), runs in group(samples).items():
        good = [s for s in runs if s.ok]
        rows.append(f"| {app} | {method} | {len(good)}/{len(runs)} | {fmt(spread(s.verdict for s in good))} "
                    f"| {fmt(spread(s.total for s in good))} | {phase_medians(good)} |")
    return "\n".join(rows)


def ratios(samples: Sequence[Sample], baseline: str = "plain") -> list[str]:
    """One line per app and non-baseline method: median(method) / median(baseline), to the verdict and
    with cleanup, over the runs that ended as they should."""
    lines = []
    grouped = group(samples)
    for (app, method), runs in grouped.items():
        if method == baseline or (app, baseline) not in grouped:
            continue
        mine = [s for s in runs if s.ok]
        base = [s for s in grouped[(app, baseline)] if s.ok]
        if not mine or not base:
            lines.append(f"ratio {method}/{baseline} on {app}: — (no run of one of them ended as it should)")
            continue
        verdict = statistics.median(s.verdict for s in mine) / statistics.median(s.verdict for s in base)
        total = statistics.median(s.total for s in mine) / statistics.median(s.total for s in base)
        lines.append(f"ratio {method}/{baseline} on {app}: {verdict:.2f} to the verdict, "
                     f"{total:.2f} with cleanup")
    return lines


def load_line(samples: Sequence[Sample]) -> str:
    loads = spread(s.load for s in samples)
    others = spread(float(s.others) for s in samples)
    if loads is None or others is None:
        return "load: no runs"
    return (f"load (1-min average at each run's start, 2 cores): median {loads.median:.1f}, "
            f"min {loads.min:.1f}, max {loads.max:.1f}; other people's kind nodes running: "
            f"median {others.median:.0f}, max {others.max:.0f}")


def rotation(methods: Sequence[str], rep: int) -> list[str]:
    """The methods in the order repetition `rep` runs them: rotated by one each repetition, so that no
    method always runs first (after a quiet spell) or right after the same neighbour."""
    if not methods:
        return []
    k = rep % len(methods)
    return [*methods[k:], *methods[:k]]


# `api │      [2/2] COPY server.py /app/server.py [cached]`: a Dockerfile step as tilt's log prints it
# (padded; printed again when it ends, `... [done: 493ms]`).
TILT_STEP = re.compile(
    r"^\s*(?P<res>\S+) │\s+\[(?P<step>(?:[\w.-]+ )?\d+/\d+)\] (?P<op>\S+)(?P<rest>.*?)\s*$", re.M)


def tilt_cache_hits(log: str) -> tuple[int, int]:
    """(Dockerfile steps tilt's build log shows as [cached], steps it shows): each step once, no FROM."""
    cached: dict[tuple[str, str], bool] = {}
    for m in TILT_STEP.finditer(log):
        if m["op"] != "FROM":
            key = (m["res"], m["step"])
            cached[key] = cached.get(key, False) or m["rest"].endswith("[cached]")
    return sum(cached.values()), len(cached)
