"""Tests that can fail, shown to fail (tools/break-check): each mutant breaks the product (or blinds the
suite) in one exact place, and the checks that guard that place must fail against it, by name, while
passing against the real product.

Every mutant is one literal replacement that must match exactly once, so a mutant that no longer
applies (the code moved on) is an error here, never a silent pass. Mutants run in a copy of the
checkout's tracked files beside it (the repository alone: it tests itself), one at a time.

  tools/break-check                 every mutant, then the same checks against the real product
  tools/break-check --fast          without the real-kind mutant (about 1 min instead of 3)
  tools/break-check NAME...         only those mutants
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    why: str  # the breakage, in words, for the table
    tests: tuple[str, ...]  # node ids that must fail against it
    path: str = ""  # the file to break (empty: only the environment changes)
    old: str = ""
    new: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    expect_output: str = ""  # instead of failed node ids: text the failed session must print
    real_kind: bool = False


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "kind-cluster-kept", "pyci forgets to delete the kind cluster it made",
        ("tests/e2e/test_kind.py::test_hello_is_healthy_on_a_real_kind_cluster",),
        "entrypoint/pyci/cluster/kind.py",
        '        log.info("deleting kind cluster %s", self.name)\n',
        '        log.info("deleting kind cluster %s", self.name)\n        return  # MUTANT\n',
        real_kind=True),
    Mutant(
        "configmap-kept", "`cluster: existing` leaves the local-registry-hosting ConfigMap it wrote",
        ("tests/integration/test_pipeline.py::test_healthy_app_passes",),
        "entrypoint/pyci/pipeline.py",
        'restore_on=stack if s.cluster == "existing" else None',
        "restore_on=None"),
    Mutant(
        "tags-kept", "the run leaves tilt's localhost:<port>/... tags in the daemon",
        ("tests/integration/test_pipeline.py::test_healthy_app_passes",),
        "entrypoint/pyci/pipeline.py",
        '        reg_stack.callback(daemon.remove_tags, client, f"{reg_info.host}/")\n',
        "        pass  # MUTANT\n"),
    Mutant(
        "health-without-url", "the registry health check requests a URL it cannot reach yet",
        ("tests/unit/test_registry.py::test_no_health_url_means_checked_later",),
        "entrypoint/pyci/registry/local.py",
        '    if url is None:\n        log.info("registry health is checked once it is reachable from here")\n'
        "        return\n",
        '    url = url or f"http://127.0.0.1:{port}/v2/"\n'),
    Mutant(
        "existing-cluster-touched", "`cluster: existing`: delete removes the user's kubeconfig",
        ("tests/unit/test_existing_cluster.py::test_unreachable_api_server_is_an_infrastructure_error",),
        "entrypoint/pyci/cluster/existing.py",
        '        """Never: this cluster is not ours."""\n',
        '        """Never: this cluster is not ours."""\n        self.kubeconfig.unlink()  # MUTANT\n'),
    Mutant(
        "bystander-blamed", "a resource tilt had not built yet is blamed like the one that failed",
        ("tests/unit/test_tilt.py::test_real_failing_snapshot_names_the_broken_resource",),
        "entrypoint/pyci/tilt/snapshot.py",
        'reason, message = "NotBuilt", f"update',
        'reason, message = "BuildFailed", f"update'),
    Mutant(
        "dry-run-exit", "`--dry-run` prints the plan but exits 1",
        ("tests/unit/test_cli.py::test_dry_run_free_port_and_no_registry",),
        "entrypoint/pyci/cli.py",
        '        print("\\n".join(plan.plan(settings, platform) + plan.tiltfile_plan(settings)))\n'
        "        return ExitCode.HEALTHY\n",
        '        print("\\n".join(plan.plan(settings, platform) + plan.tiltfile_plan(settings)))\n'
        "        return 1  # MUTANT\n"),
    Mutant(
        "clusters-blind", "pyci cannot see kind clusters (so it would reuse or orphan one)",
        ("tests/integration/test_kind.py::test_clusters_lists_a_cluster_by_its_nodes",),
        "entrypoint/pyci/cluster/kind.py",
        '        return [line.strip() for line in self._check(["get", "clusters"]).splitlines()'
        ' if line.strip()]\n',
        "        return []  # MUTANT\n"),
    Mutant(
        "forwarders-orphaned", "`pyci cleanup` leaves the socat forwarders of a killed REMOTE run listening",
        ("tests/integration/test_network.py::test_pyci_cleanup_stops_the_forwarders_a_killed_remote_run_left",),
        "entrypoint/pyci/cleanup.py",
        "        problems += _stop_forwarders(container.name, dry_run)\n",
        "        pass  # MUTANT\n"),
    Mutant(
        "oom-at-start-waits", "a container OOM-killed before it was ever Ready waits out max-restarts",
        ("tests/unit/test_readiness.py::test_an_oom_kill_at_start_fails_at_the_first_back_off",),
        "entrypoint/pyci/readiness/classify.py",
        "            fatal = at_start or restarts > max_restarts\n            return Problem(\"OOMKilled\"",
        "            fatal = restarts > max_restarts\n            return Problem(\"OOMKilled\""),
    Mutant(
        "leftover-check-blind", "the Docker daemon does not answer the suite's leftover check",
        (), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        expect_output="LEFTOVER CHECK FAILED: the Docker daemon did not answer"),
)
# The blind mutant runs a test that needs no daemon itself: only the leftover check notices.
BLIND_TEST = "tests/integration/test_workflows_lint.py"


def apply(mutant: Mutant, tree: Path) -> None:
    if not mutant.path:
        return
    target = tree / mutant.path
    text = target.read_text(encoding="utf-8")
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"break-check: mutant {mutant.name}: its text occurs {count} times in "
                         f"{mutant.path}, not once (the code moved on: update the mutant)")
    target.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def copy_tree(into: Path) -> Path:
    """The checkout's tracked files as they are now (uncommitted edits included)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            dst = into / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return into


def pytest(tree: Path, tests: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-rfE",
           *tests]
    done = subprocess.run(cmd, cwd=tree, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=900)
    return done.returncode, done.stdout + done.stderr


def local_tags() -> set[str]:
    """The daemon's localhost:<port>/... tags: a mutant that keeps tilt's tags leaves them here."""
    done = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                          text=True, timeout=60, check=False)
    return {t for t in done.stdout.split() if t.startswith("localhost:")}


def failed_ids(output: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", output, re.M)}


def check(mutant: Mutant, tree: Path) -> tuple[bool, str]:
    """Against the mutant: did exactly what should fail, fail?"""
    tests = mutant.tests or (BLIND_TEST,)
    env = dict(mutant.env)
    if not mutant.expect_output:  # the named checks must catch it, not the session's leftover check
        env.setdefault("PYCI_LAB_SKIP_LEFTOVER_CHECK", "1")
    rc, out = pytest(tree, tests, env)
    if mutant.expect_output:
        caught = rc != 0 and mutant.expect_output in out
        return caught, mutant.expect_output if caught else f"exit {rc}; not seen: {mutant.expect_output}"
    failed = failed_ids(out)
    missed = [t for t in mutant.tests if not any(f == t or f.startswith(t + "[") for f in failed)]
    if rc == 0 or missed:
        return False, f"exit {rc}; not failed: {', '.join(missed) or '-'}\n{out[-2000:]}"
    first = next((line for line in out.splitlines() if line.startswith(("E ", "FAILED"))), "")
    return True, first.strip()[:160]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/break-check", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--fast", action="store_true", help="leave out the real-kind mutant")
    parser.add_argument("--no-real", action="store_true", help="skip the pass against the real product")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutants: {', '.join(unknown)} (known: {', '.join(known)})")
    chosen = [known[n] for n in args.names] if args.names else [
        m for m in MUTANTS if not (args.fast and m.real_kind)]
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix=".break-check-", dir=REPO.parent) as tmp:
        for mutant in chosen:
            tree = copy_tree(Path(tmp) / mutant.name / REPO.name)
            apply(mutant, tree)
            t0 = time.monotonic()
            before = local_tags()
            caught, detail = check(mutant, tree)
            left = sorted(local_tags() - before)  # what the broken product left: swept, not kept
            if left:
                subprocess.run(["docker", "rmi", *left], capture_output=True, timeout=120, check=False)
            rows.append((mutant.name, "caught" if caught else "MISSED", time.monotonic() - t0, mutant.why,
                         detail.splitlines()[0] if caught else detail))
            print(f"{mutant.name}: {'caught' if caught else 'MISSED'} in {rows[-1][2]:.0f}s: {mutant.why}"
                  + ("" if caught else f"\n{detail}"), flush=True)
            ok &= caught
            shutil.rmtree(Path(tmp) / mutant.name, ignore_errors=True)
    if not args.no_real:
        tests = sorted({t for m in chosen for t in m.tests})
        t0 = time.monotonic()
        rc, out = pytest(REPO, tests, {})
        print(f"real product: the same {len(tests)} checks {'pass' if rc == 0 else 'FAIL'} "
              f"in {time.monotonic() - t0:.0f}s" + ("" if rc == 0 else f"\n{out[-3000:]}"), flush=True)
        ok &= rc == 0
    print("\n| mutant | breakage | result | seconds | first failure line |\n| --- | --- | --- | --- | --- |")
    for name, result, seconds, why, detail in rows:
        print(f"| {name} | {why} | {result} | {seconds:.0f} | {detail.replace('|', '/')} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
