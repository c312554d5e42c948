"""What build-ahead did, in words and numbers: the builds' timings against the cluster boot, pushes,
third-party loads, and the steps tilt's own builds then found cached (from tilt's log)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# `api │ [2/2] COPY server.py /app/server.py [cached]`: a Dockerfile step as tilt's log prints it.
TILT_STEP = re.compile(r"│\s+\[(?:[\w.-]+ )?\d+/\d+\] (?P<op>\S+).*?(?P<cached> \[cached\])?\s*$")


@dataclass(frozen=True)
class CacheHits:
    cached: int = 0
    steps: int = 0
    lines: tuple[str, ...] = ()  # the cached steps as tilt printed them


def cache_hits(tilt_log: str) -> CacheHits:
    """Dockerfile steps (FROM aside: a base image is never "built") tilt's log shows as cached."""
    cached, steps, lines = 0, 0, []
    for line in tilt_log.splitlines():
        m = TILT_STEP.search(line)
        if not m or m["op"].upper() == "FROM" or "[done: " in line:  # a step's second line: its end
            continue
        steps += 1
        if m["cached"]:
            cached += 1
            lines.append(line.strip())
    return CacheHits(cached, steps, tuple(lines))


@dataclass
class Built:
    ref: str
    tag: str
    seconds: float = 0.0
    error: str | None = None
    started: float = 0.0
    ended: float = 0.0


@dataclass
class Profile:
    """What build-ahead did, for the log, the summary and JUnit."""

    built: list[Built] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    third_party_present: list[str] = field(default_factory=list)
    third_party_missing: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    load_error: str | None = None
    load_early: bool = False  # the load began while kind was still booting
    pushed: list[str] = field(default_factory=list)  # <registry>/<repository>:pyci-ahead
    push_seconds: float = 0.0
    push_errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0  # when the last build finished
    boot_started: float = 0.0
    boot_ended: float = 0.0  # when registry + cluster were up
    waited: float = 0.0  # seconds tilt ci waited for builds still running after the boot
    hits: CacheHits | None = None

    @property
    def ok(self) -> list[Built]:
        return [b for b in self.built if b.error is None]

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started) if self.built else 0.0

    @property
    def overlap(self) -> float:
        """Seconds during which a build ran while the registry and cluster were coming up."""
        spans = sorted((b.started, b.ended) for b in self.built if b.ended > b.started)
        total, reach = 0.0, self.boot_started
        for start, end in spans:
            start, end = max(start, reach, self.boot_started), min(end, self.boot_ended)
            if end > start:
                total += end - start
                reach = end
        return total

    def describe(self) -> str:
        parts = []
        if self.built:
            boot = max(0.0, self.boot_ended - self.boot_started)
            parts.append(f"{len(self.ok)}/{len(self.built)} images built ahead in {self.seconds:.1f}s, "
                         f"{self.overlap:.1f}s of it during the {boot:.1f}s cluster boot; "
                         f"tilt waited {self.waited:.1f}s for them")
        if self.pushed or self.push_errors:
            parts.append(f"{len(self.pushed)} pushed to the registry in {self.push_seconds:.1f}s "
                         "(tilt's pushes find their layers there)"
                         + (f", {len(self.push_errors)} not" if self.push_errors else ""))
        if self.skipped:
            parts.append(f"not built ahead: {', '.join(self.skipped)}")
        if self.loaded:
            when = " during the boot" if self.load_early else ""
            parts.append(f"{len(self.loaded)} third-party images loaded into the nodes{when} in "
                         f"{self.load_seconds:.1f}s")
        if self.third_party_missing:
            parts.append(f"not in the daemon: {', '.join(self.third_party_missing)}")
        if self.hits is not None and self.hits.steps:
            parts.append(f"tilt: {self.hits.cached}/{self.hits.steps} build steps cached")
        return "; ".join(parts) or "nothing to build ahead"


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
