"""tools/test's tiers (tests/lab/tiers.py) and the leftover check's scope (tests/lab/leftovers.py), on real
pytest sessions and real processes."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab import leftovers, tiers


def run_tier(tmp_path: Path, tests: str) -> tiers.Tier:
    """A real pytest session on a folder holding `tests`, as tools/test runs a tier."""
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_some.py").write_text(tests)
    tier = tiers.Tier("unit", [str(folder)], tmp_path / "unit.log", tmp_path / "unit.xml")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "-p", "no:xdist", "--rootdir", str(folder), "-c", os.devnull,
                           f"--junit-xml={tier.junit}", str(folder)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    tier.exit_code = done.returncode
    return tier


def test_the_checked_in_counts_name_every_tier():
    counts = tiers.expected_counts()
    assert set(counts) == set(tiers.TIERS)
    assert all(n > 0 for n in counts.values()), counts


def test_counts_file_reads_tiers_and_skips_comments(tmp_path: Path):
    path = tmp_path / "counts"
    path.write_text("# a comment\nunit 12  # trailing\n\ne2e 3\n")
    assert tiers.expected_counts(path) == {"unit": 12, "e2e": 3}


def test_a_tier_at_its_count_passes(tmp_path: Path):
    tier = run_tier(tmp_path, "def test_a(): pass\ndef test_b(): pass\n")
    assert tier.counts() == (2, 2)
    assert tiers.verdict(tier, 2) == ""


def test_a_tier_below_its_count_fails_with_a_line_saying_so(tmp_path: Path):
    tier = run_tier(tmp_path, "import pytest\ndef test_a(): pass\n"
                              "@pytest.mark.skip(reason='spread')\ndef test_b(): pass\n")
    assert tier.exit_code == 0 and tier.counts() == (2, 1)
    line = tiers.verdict(tier, 2)
    assert line.startswith("tier unit: 1 tests passed, fewer than the 2 expected"), line


def test_a_tier_that_collects_nothing_fails(tmp_path: Path):
    tier = run_tier(tmp_path, "def helper(): pass\n")
    assert tier.exit_code == 5
    assert tiers.verdict(tier, 0) == "tier unit: pytest collected no tests: that is a failure, not a pass"


def test_a_failing_tier_fails_whatever_its_count(tmp_path: Path):
    tier = run_tier(tmp_path, "def test_a(): pass\ndef test_b(): assert False\n")
    assert tiers.verdict(tier, 1) == "tier unit: pytest exited 1 (1 of 2 not passed)"


@pytest.mark.parametrize("mine", [True, False])
def test_only_processes_carrying_this_runs_mark_are_counted(tmp_path: Path, mine: bool):
    """A lab process (here a `kind` that only sleeps) counts as this run's only by the mark it inherited:
    another session's control plane or tilt on the same machine is never this run's leftover."""
    kind = tmp_path / "kind"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", kind)
    token = leftovers.mark_this_run()
    env = dict(os.environ, **{leftovers.MARK: token if mine else "someone-else"})
    proc = subprocess.Popen([str(kind), "30"], env=env)
    try:
        # until it has exec'd: before that, /proc shows the forked test process (seen beside a busy tier)
        deadline = time.monotonic() + 10
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        while str(kind) not in cmdline.read_bytes().decode(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.02)
        found = leftovers.lab_processes(token)
        assert (f"process {proc.pid}" in found) is mine, found
    finally:
        proc.kill()
        proc.wait()


@functools.cache  # three tests ask for the same collections
def collected(*args: str) -> tuple[str, ...]:
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "--collect-only", "-q", *args], capture_output=True, text=True, timeout=120,
                          cwd=tiers.REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return tuple(line for line in done.stdout.splitlines() if "::" in line)


def test_every_e2e_grouping_names_a_collected_test():
    """A renamed test or module must not drop out of its xdist group in silence (two runs on kind's
    default network side by side would then see each other's clusters)."""
    from tests.e2e import conftest as e2e

    ids = {i.removeprefix("tests/e2e/").split("[")[0] for i in collected("tests/e2e")}
    for entry in [*e2e.KIND_NETWORK, *e2e.TOGETHER]:
        assert any(i == entry or i.startswith(entry + "::") for i in ids), entry


def test_no_e2e_module_is_split_between_two_xdist_groups():
    """Two groups in one module may land on two workers: test_act.py was once half `kind-network`, half
    `act-e2e`, and two act runs of one job name removed each other's containers."""
    from tests.e2e import conftest as e2e

    groups: dict[str, set[str]] = {}
    for i in collected("tests/e2e"):
        module, _, test = i.removeprefix("tests/e2e/").split("[")[0].partition("::")
        if (group := e2e.group_of(module, test)) is not None:
            groups.setdefault(module, set()).add(group)
    split = {m: g for m, g in groups.items() if len(g) > 1}
    assert split == {}, split
    assert groups["test_act.py"] == groups["test_act_host.py"] == {"kind-network"}


def test_the_readme_lists_every_nightly_case():
    nightly = collected("-m", "nightly", "tests")
    readme = (tiers.REPO / "README.md").read_text()
    assert nightly, "no nightly case: the e2e workflow's schedule job would run nothing"
    missing = [i for i in nightly if f"`{i}`" not in readme]
    assert missing == [], missing


def test_the_cpu_line_names_the_floor_under_the_wall_time(monkeypatch) -> None:
    monkeypatch.setattr(tiers.os, "cpu_count", lambda: 2)
    line = tiers.cpu_line(busy=600.0, wall=900.0)  # 10 core-min in 15 min on 2 cores
    assert line.startswith("CPU busy 10.0 core-min of 30.0 (2 cores, 33%)"), line
    assert "in under 5 min 00.0 s here" in line, line
    assert tiers.cpu_busy() > 0  # /proc/stat on Linux


def test_the_slowest_modules_are_summed_from_the_junit_file(tmp_path: Path) -> None:
    junit = tmp_path / "t.xml"
    junit.write_text('<testsuites><testsuite name="pytest" tests="3">'
                     '<testcase classname="tests.e2e.test_a" name="x" time="10.5"/>'
                     '<testcase classname="tests.e2e.test_b" name="y" time="3"/>'
                     '<testcase classname="tests.e2e.test_a" name="z" time="2"/></testsuite></testsuites>')
    assert tiers.slowest_modules(junit) == "test_a 12 s, test_b 3 s"
    assert tiers.slowest_modules(tmp_path / "none.xml") == ""
