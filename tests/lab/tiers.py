"""The whole suite as tools/test runs it: the three tiers side by side, each held to its checked-in count,
then one leftover check over all of them.

Unit tests compute, integration tests mostly wait on the lab's control plane and tilt, e2e tests mostly
wait on kind: run one after another they cost their sum, side by side about the longest. Each tier is its
own pytest session (its log in a file, printed whole when it ends); e2e spreads over pytest-xdist
workers (tests/e2e/conftest.py keeps those that share kind's default network on one of them).

A tier passes when pytest exits 0 and at least its count in tests/tier-counts passed: a tier that
collects fewer tests (a module that stopped importing, a wrong path, a skip that spread) fails the run
with a line saying so. Since the tiers share the daemon, the sessions do not check for leftovers each
(each would see the others' clusters as its own); tests/lab/leftovers.py checks once, after all of them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.lab import leftovers

REPO = Path(__file__).resolve().parents[2]
COUNTS = REPO / "tests" / "tier-counts"


def workers(name: str, default: int) -> list[str]:
    n = int(os.environ.get(f"PYCI_TEST_{name.upper()}_WORKERS", default))
    return ["-n", str(n), "--dist", "loadgroup"] if n > 1 else ["-p", "no:xdist"]


# tier -> pytest arguments. Worker counts: PYCI_TEST_<TIER>_WORKERS=N (1: no xdist).
TIERS: dict[str, list[str]] = {
    "unit": ["tests/unit", "-p", "no:xdist"],
    "integration": ["tests/integration", *workers("integration", 1)],
    "e2e": ["tests/e2e", *workers("e2e", 1)],
}
# Which tiers run side by side. By default all three at once, e2e on one worker: on 2 cores that took
# 21-23 min (the machine 64-67% busy; e2e alone is the critical path) where waves took 30 (fresh
# clones, 2026-12-06). PYCI_TEST_E2E_WORKERS=2 took 16-17 min at 90-92% busy, e2e green, but two of
# three runs lost integration checks to tilt's own races under that load ("internal error: missing
# image status"; a hold that did not happen): not the default on 2 cores. Three e2e workers pushed the
# load past 20 and broke timing bounds (2026-12-04). PYCI_TEST_PARALLEL=0 runs waves: unit beside
# integration, then e2e.
WAVES_ALL = [["unit", "integration", "e2e"]]
WAVES_SPLIT = [["unit", "integration"], ["e2e"]]


def expected_counts(path: Path = COUNTS) -> dict[str, int]:
    """`<tier> <count>` lines; `#` starts a comment."""
    counts = {}
    for line in path.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            tier, count = words
            counts[tier] = int(count)
    return counts


@dataclass
class Tier:
    name: str
    args: list[str]
    log: Path
    junit: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0
    exit_code: int | None = None

    def counts(self) -> tuple[int, int]:
        """(run, passed) from the tier's JUnit file; (0, 0) when pytest wrote none."""
        if not self.junit.is_file():
            return 0, 0
        root = ET.parse(self.junit).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        if suite is None:
            return 0, 0
        run = int(suite.get("tests", 0))
        bad = sum(int(suite.get(k, 0)) for k in ("failures", "errors", "skipped"))
        return run, run - bad


def slowest_modules(junit: Path, top: int = 6) -> str:
    """'module 12.3 s, ...': where a tier's time went, summed per test module from its JUnit file."""
    if not junit.is_file():
        return ""
    seconds: dict[str, float] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = (case.get("classname") or "").rsplit(".", 1)[-1]
        seconds[module] = seconds.get(module, 0.0) + float(case.get("time") or 0)
    ranked = sorted(seconds.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{module} {secs:.0f} s" for module, secs in ranked)


def verdict(tier: Tier, expected: int | None) -> str:
    """'' when the tier passed and reached its count, else the one line that says why not."""
    run, passed = tier.counts()
    if tier.exit_code == 5:
        return f"tier {tier.name}: pytest collected no tests: that is a failure, not a pass"
    if tier.exit_code != 0:
        return f"tier {tier.name}: pytest exited {tier.exit_code} ({run - passed} of {run} not passed)"
    if expected is None:
        return f"tier {tier.name}: no expected count in {COUNTS.relative_to(REPO)}"
    if passed < expected:
        return (f"tier {tier.name}: {passed} tests passed, fewer than the {expected} expected "
                f"({COUNTS.relative_to(REPO)}): tests went missing from the collection, or were skipped")
    return ""


def order_args() -> list[str]:
    """A fixed order by default; PYCI_TEST_SEED=N shuffles (pytest-randomly), PYCI_TEST_ORDER=reverse
    reverses (tests/conftest.py): the suite must pass in any order."""
    seed = os.environ.get("PYCI_TEST_SEED")
    return ["-p", "randomly", f"--randomly-seed={seed}"] if seed else ["-p", "no:randomly"]


def start(tier: Tier, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *order_args(), "-ra", "--durations=15",
           f"--junit-xml={tier.junit}", *tier.args]
    print(f"== tests: {tier.name} started: {shlex.join(cmd[1:])}", flush=True)
    tier.started = time.monotonic()
    with tier.log.open("wb") as log:
        tier.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_all(tiers: list[Tier]) -> None:
    """Print each tier's log as it ends (whole, not interleaved with the others')."""
    running = list(tiers)
    while running:
        for tier in list(running):
            assert tier.proc is not None
            if tier.proc.poll() is None:
                continue
            tier.exit_code = tier.proc.returncode
            tier.seconds = time.monotonic() - tier.started
            running.remove(tier)
            print(f"\n== tests: {tier.name} ended (exit {tier.exit_code}, {minutes(tier.seconds)}); "
                  f"its log ({tier.log}):", flush=True)
            sys.stdout.write(tier.log.read_text(errors="replace"))
            sys.stdout.flush()
        time.sleep(1)


def cpu_busy() -> float:
    """Core-seconds the whole machine spent busy since boot (/proc/stat: all but idle and iowait). Kind's
    nodes run under dockerd, not under pytest, so only the machine's count sees what a tier costs."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:9]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def cpu_line(busy: float, wall: float) -> str:
    """How much of the machine a stretch of the run used: the floor under its wall time on this machine."""
    cores = os.cpu_count() or 1
    share = busy / (wall * cores) if wall > 0 else 0.0
    return (f"CPU busy {busy / 60:.1f} core-min of {wall * cores / 60:.1f} ({cores} cores, {share:.0%}): "
            f"no order of these tests runs them in under {minutes(busy / cores)} here")


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main(names: list[str]) -> int:
    env = dict(os.environ, PYCI_LAB_LEFTOVER_CHECK="tools-test")
    env[leftovers.MARK] = leftovers.mark_this_run()
    expected = expected_counts()
    work = Path(tempfile.mkdtemp(prefix="pyci-tests-"))
    tiers = [Tier(n, TIERS[n], work / f"{n}.log", work / f"{n}.xml") for n in names or TIERS]
    if nightly := os.environ.get("PYCI_TEST_NIGHTLY") == "1":
        print("== tests: PYCI_TEST_NIGHTLY=1: the nightly cases run too (the counts are minimums still)")
    else:
        for tier in tiers:
            tier.args += ["-m", "not nightly"]
    before = work / "daemon-before.json"
    if leftovers.main(["snapshot", str(before)]) != 0:
        return 1
    t0 = time.monotonic()
    by_name = {tier.name: tier for tier in tiers}
    chosen = WAVES_SPLIT if os.environ.get("PYCI_TEST_PARALLEL") == "0" else WAVES_ALL
    waves = [[n for n in wave if n in by_name] for wave in chosen]
    cpu0 = cpu_busy()
    for wave in [w for w in waves if w]:
        w0, c0 = time.monotonic(), cpu_busy()
        for name in wave:
            start(by_name[name], env)
        wait_all([by_name[name] for name in wave])
        print(f"== tests: wave {wave}: {minutes(time.monotonic() - w0)}; "
              f"{cpu_line(cpu_busy() - c0, time.monotonic() - w0)}", flush=True)
    wall = time.monotonic() - t0
    busy = cpu_busy() - cpu0
    print("\n== tests: leftover check (once, after every tier)", flush=True)
    left = leftovers.main(["check", str(before)])
    problems = [line for tier in tiers if (line := verdict(tier, expected.get(tier.name)))]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== tests: tiers in waves {waves} ({'with' if nightly else 'without'} the nightly cases; load "
          f"average now {load})")
    print(f"   {'tier':<12} {'wall':>14} {'tests':>6} {'passed':>7} {'expected':>9}")
    for tier in tiers:
        run, passed = tier.counts()
        print(f"   {tier.name:<12} {minutes(tier.seconds):>14} {run:>6} {passed:>7} "
              f"{expected.get(tier.name, '-'):>9}   slowest: {slowest_modules(tier.junit)}")
    print(f"   {'all tiers':<12} {minutes(wall):>14}")
    print(f"   {cpu_line(busy, wall)}")
    for line in problems:
        print(f"tools/test: {line}")
    if left:
        print("tools/test: the leftover check failed (above)")
    if problems or left:
        print(f"tools/test: the tiers' logs and JUnit files stay in {work}")
        return 1
    shutil.rmtree(work)  # a green run leaves no folder behind either
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
