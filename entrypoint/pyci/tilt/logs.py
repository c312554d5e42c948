"""tilt's log, per resource: the live stream's prefixed lines and the snapshot's `logList`.

The live log prefixes a resource's lines with its name, cut to 12 characters (`example-go-… │
sh: go: not found`); the snapshot's log names each span's resource in full. Both are read here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyci.tilt.uiresource import parse_time, view

LOG_TAIL_LINES = 30  # log lines kept per resource for failed results

_ERROR_LINE = re.compile(r"^ERROR: (?:Build Failed: )?(.+)$")
_DONE_IN = re.compile(r"DONE IN: ([0-9.]+)s")
_READY_LINE = re.compile(r"┊ Ready\s+- (?!\(…\))")
# `     api │ Building Dockerfile` -> ("api", "Building Dockerfile")
_PREFIXED_LINE = re.compile(r"^\s*(?P<name>\S+)\s*│ ?(?P<text>.*)$")
_CUT = "…"  # how tilt marks a name it cut to fit its prefix


def split_log_line(line: str) -> tuple[str | None, str]:
    """`    api │ text` -> ("api", "text"); an unprefixed line -> (None, line)."""
    match = _PREFIXED_LINE.match(line)
    if not match:
        return None, line
    return match.group("name"), match.group("text")


def resolve_prefix(prefix: str, names: Iterable[str]) -> str | None:
    """The resource a log prefix stands for: its name, or the one name a cut prefix (`example-go-…`)
    begins; None when no resource (or more than one) fits."""
    names = list(names)
    if prefix in names:
        return prefix
    if not prefix.endswith(_CUT):
        return None
    fits = [n for n in names if n.startswith(prefix[: -len(_CUT)])]
    return fits[0] if len(fits) == 1 else None


def by_resource(tails: Mapping[str, Sequence[str]], names: Iterable[str]) -> dict[str, list[str]]:
    """Live-log tails keyed by prefix -> keyed by resource name (a prefix no resource fits is kept)."""
    names = list(names)
    out: dict[str, list[str]] = {}
    for prefix, lines in tails.items():
        out.setdefault(resolve_prefix(prefix, names) or prefix, []).extend(lines)
    return {k: v[-LOG_TAIL_LINES:] for k, v in out.items()}


def error_line(lines: Iterable[str]) -> str | None:
    """The last `Error: ...` line tilt printed (without the prefix)."""
    found = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("Error: "):
            found = stripped[len("Error: ") :]
    return found


def log_error(lines: Iterable[str]) -> str | None:
    """The last `ERROR: ...` line of one resource's log, without `ERROR: ` and `Build Failed: `."""
    found = None
    for line in lines:
        for part in line.splitlines():
            match = _ERROR_LINE.match(part.strip())
            if match:
                found = match.group(1)
    return found


@dataclass
class LogFacts:
    """What the snapshot's log says about one resource (the log is current; uiResources may lag)."""

    build_seconds: float | None = None
    ready_at: float | None = None  # POSIX time of the pod tracker's `Ready - <time>` line
    error: str | None = None  # the last `ERROR: Build Failed: ...` line of the resource


def _segments(snapshot: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(resource name, segment) for each segment of the snapshot's log that belongs to a resource."""
    log_list = view(snapshot).get("logList") or {}
    spans = {k: str((v or {}).get("manifestName") or "") for k, v in (log_list.get("spans") or {}).items()}
    for segment in log_list.get("segments") or []:
        resource = spans.get(str(segment.get("spanId", "")), "")
        if resource:
            yield resource, segment


def _build_failed(segment: Mapping[str, Any]) -> str | None:
    """tilt's `Build Failed: <error>` segment (level ERROR: the live log prints it as `ERROR: ...`)."""
    text = str(segment.get("text") or "").strip()
    if segment.get("level") == "ERROR" and text.startswith("Build Failed: "):
        return text[len("Build Failed: ") :]
    return None


def log_facts(snapshot: Mapping[str, Any]) -> dict[str, LogFacts]:
    """resource name -> LogFacts, from the snapshot's `logList` (spans name the resource)."""
    facts: dict[str, LogFacts] = {}
    for resource, segment in _segments(snapshot):
        text = str(segment.get("text") or "")
        done = _DONE_IN.search(text)
        if done:
            fact = facts.setdefault(resource, LogFacts())
            fact.build_seconds = round((fact.build_seconds or 0.0) + float(done.group(1)), 3)
        error = log_error([text]) or _build_failed(segment)
        if error:
            facts.setdefault(resource, LogFacts()).error = error
        if _READY_LINE.search(text):
            facts.setdefault(resource, LogFacts()).ready_at = parse_time(segment.get("time"))
    return facts


def resource_logs(snapshot: Mapping[str, Any], limit: int = LOG_TAIL_LINES) -> dict[str, list[str]]:
    """resource name -> the last `limit` lines of its log in the snapshot (full names, unlike the stream)."""
    text: dict[str, list[str]] = {}
    last: dict[str, tuple[Any, Any]] = {}
    for resource, segment in _segments(snapshot):
        parts = text.setdefault(resource, [])
        key = (segment.get("spanId"), segment.get("level"))
        # A segment continues the line before it only from the same span at the same level.
        if parts and not parts[-1].endswith("\n") and last.get(resource) != key:
            parts.append("\n")
        parts.append(str(segment.get("text") or ""))
        last[resource] = key
    return {r: "".join(parts).splitlines()[-limit:] for r, parts in text.items()}
