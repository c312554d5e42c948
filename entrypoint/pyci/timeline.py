"""The run on one time axis: the stages, then each component's build, deploy and ready, as bars.

Plain text that reads the same in a terminal and in GitHub's step summary (in a ```text block): block
characters, about 64 columns, no HTML or mermaid. Each row ends with its duration and its status
icon (`results.RENDERING`); the icon comes last because an emoji's width differs between fonts, and
at the end of the row it cannot push a bar out of line.

`spans_from_snapshot` reads build and deploy (and tilt's own view of ready) from tilt's
`--output-snapshot-on-exit` JSON; the readiness watch's ready span, where the pipeline sets one, wins.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pyci.results import RENDERING, ResourceResult, RunResult, Span, format_duration
from pyci.text import clean

BAR = 36  # columns of the time axis
LABEL = 18  # columns of a row's label
GLYPH = {"stage": "█", "build": "▓", "deploy": "▒", "ready": "░"}
PHASES = ("build", "deploy", "ready")
_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200)
_MIN_TICK_GAP = 9  # columns between two scale labels
# Stages that run after the app was judged: a phase still going is drawn up to them, not through
# them (the pods waited until pyci stopped watching, not until it deleted the cluster).
AFTERMATH = frozenset({"diagnostics", "cleanup"})
_DEPLOYING = re.compile(r"^STEP \d+/\d+ — Deploying")


# --- spans from tilt's snapshot ---
def _time(value: Any) -> float | None:
    """RFC 3339 -> POSIX seconds (Go prints up to 9 fraction digits, Python reads 6); None if unset."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip().replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _deploy_starts(view: Mapping[str, Any]) -> dict[str, list[float]]:
    """resource -> when each of its `STEP n/n — Deploying` lines was logged: where a build's image
    work ends and its apply begins."""
    log_list = view.get("logList") or {}
    names = {k: str((v or {}).get("manifestName") or "") for k, v in (log_list.get("spans") or {}).items()}
    found: dict[str, list[float]] = {}
    for segment in log_list.get("segments") or []:
        name = names.get(str(segment.get("spanId", "")), "")
        at = _time(segment.get("time"))
        if name and at is not None and _DEPLOYING.match(str(segment.get("text") or "")):
            found.setdefault(name, []).append(at)
    return found


def spans_from_snapshot(snapshot: Mapping[str, Any]) -> dict[str, list[Span]]:
    """tilt resource -> its spans: each build of its buildHistory (split into build and deploy at its
    `Deploying` step), a build still running, and tilt's ready (first pod created -> Ready)."""
    view = snapshot.get("view", snapshot)
    deploying = _deploy_starts(view)
    out: dict[str, list[Span]] = {}
    for resource in view.get("uiResources") or []:
        name = str((resource.get("metadata") or {}).get("name") or "")
        status = resource.get("status") or {}
        spans: list[Span] = []
        for build in reversed(status.get("buildHistory") or []):  # tilt lists the newest first
            start, finish = _time(build.get("startTime")), _time(build.get("finishTime"))
            if start is None:
                continue
            deploy = next((t for t in deploying.get(name, []) if start <= t <= (finish or math.inf)), None)
            if deploy is None:
                spans.append(Span("build", start, finish))
                continue
            if deploy - start > 0.001:  # a k8s_yaml without images deploys at once: no build to draw
                spans.append(Span("build", start, deploy))
            spans.append(Span("deploy", deploy, finish))
        current = _time((status.get("currentBuild") or {}).get("startTime"))
        if current is not None:
            spans.append(Span("build", current, None))
        created = _time((status.get("k8sResourceInfo") or {}).get("podCreationTime"))
        ready: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if created is not None:
            # tilt keeps the pod's creation to the second: not before the apply that made it
            deployed = max((s.end for s in spans if s.end is not None), default=created)
            created = deployed if 0 < deployed - created < 1.0 else created
            ready_at = _time(ready.get("lastTransitionTime")) if ready.get("status") == "True" else None
            spans.append(Span("ready", created, ready_at if ready_at and ready_at >= created else None))
        if spans:
            out[name] = spans
    return out


def add_snapshot_spans(resources: Iterable[ResourceResult], snapshot: Path | None) -> None:
    """Give each component the snapshot's spans of the phases it has none of yet."""
    try:
        found = spans_from_snapshot(json.loads(snapshot.read_text(encoding="utf-8"))) if snapshot else {}
    except (OSError, ValueError):
        return
    for resource in resources:
        have = {s.phase for s in resource.spans}
        resource.spans = [*resource.spans, *(s for s in found.get(resource.name, []) if s.phase not in have)]


# --- the text ---
def _tick(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    return f"{whole // 60}m" + (f"{whole % 60:02d}s" if whole % 60 else "")


def _scale(total: float) -> list[str]:
    """The scale line (tick labels) and the axis under it."""
    step = next((s for s in _STEPS if total / s <= BAR / _MIN_TICK_GAP), _STEPS[-1])
    labels = [" "] * (BAR + 8)
    axis = ["─"] * BAR
    free = 0
    t = 0.0
    while t <= total + 1e-9:
        col = min(BAR - 1, int(t / total * BAR)) if total else 0
        axis[col] = "┼"
        text = _tick(t)
        if col >= free:
            labels[col:col + len(text)] = list(text)
            free = col + len(text) + 1
        t += step
    pad = " " * (LABEL + 1)
    return [pad + "".join(labels).rstrip(), pad + "".join(axis)]


def _label(text: str) -> str:
    return text if len(text) <= LABEL else text[:LABEL - 1] + "…"


def _row(label: str, cells: Sequence[str], duration: str, icon: str) -> str:
    return f"{_label(label):<{LABEL}} {''.join(cells)} {duration:>7} {icon}".rstrip()


def _paint(cells: list[str], start: float, end: float, origin: float, total: float, glyph: str) -> None:
    first = min(BAR - 1, max(0, int((start - origin) / total * BAR)))
    last = min(BAR, max(first + 1, math.ceil((end - origin) / total * BAR)))  # at least one cell
    cells[first:last] = [glyph] * (last - first)


def _stage_times(result: RunResult, origin: float) -> list[tuple[float, float]]:
    """(start, end) of each stage: its own start when recorded, else right after the one before."""
    out = []
    cursor = origin
    for stage in result.stages:
        start = stage.started_at if stage.started_at is not None else cursor
        out.append((start, start + stage.seconds))
        cursor = start + stage.seconds
    return out


def text(result: RunResult, secrets: Iterable[str] = ()) -> str:
    """The timeline of a run as text; "" when there is nothing to draw (no stage and no span)."""
    secrets = tuple(secrets)
    components = [r for r in result.resources if r.spans]
    if not any(s.seconds > 0 for s in result.stages) and not components:
        return ""
    known = [s.started_at for s in result.stages if s.started_at is not None]
    known += [span.start for r in components for span in r.spans]
    origin = result.started_at if result.started_at is not None else min(known, default=0.0)
    stages = _stage_times(result, origin)
    ends = [end for _, end in stages] + [origin + result.duration]
    ends += [span.end or span.start for r in components for span in r.spans]
    total = max(max(ends) - origin, 1.0)
    watched = [end for stage, (_, end) in zip(result.stages, stages, strict=True)
               if stage.name not in AFTERMATH and not stage.skipped]
    stopped = max(watched, default=origin + total)  # where a phase still going is drawn to
    lines = [f"run: {format_duration(result.duration)}, one column ≈ {format_duration(total / BAR)}",
             *_scale(total)]
    for stage, (start, end) in zip(result.stages, stages, strict=True):
        cells = [" "] * BAR
        if not stage.skipped:
            _paint(cells, start, end, origin, total, GLYPH["stage"])
        duration = "–" if stage.skipped else format_duration(stage.seconds)
        lines.append(_row(clean(stage.name, secrets), cells, duration, RENDERING[stage.status].icon))
    if components:
        legend = "  ".join(f"{GLYPH[p]} {p}" for p in PHASES)
        lines += ["", f"{'components':<{LABEL}} {legend}"]
    for resource in components:
        cells = [" "] * BAR
        # Latest first: a cell shows the phase that began first in it, so a build shorter than a
        # column still shows before its ready.
        for span in sorted(resource.spans, key=lambda s: s.start, reverse=True):
            end = span.end if span.end is not None else max(stopped, span.start)
            _paint(cells, span.start, end, origin, total, GLYPH.get(span.phase, "█"))
        first = min(s.start for s in resource.spans)
        still = any(s.end is None for s in resource.spans)
        last = max(stopped, first) if still else max(s.end or s.start for s in resource.spans)
        duration = format_duration(last - first) + ("…" if still else "")
        lines.append(_row(clean(resource.name, secrets), cells, duration, RENDERING[resource.status].icon))
    return "\n".join(lines) + "\n"
