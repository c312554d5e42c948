"""Issue 21's verdict scenarios on real kind, N rounds in a row: each round's rows, annotations and time.

    python3 -m tests.lab.verdicts [ROUNDS] [SCENARIO ...]     (tools/verdict-matrix)

One kind cluster (made as pyci makes its own) is reused by every run; each round deploys into a fresh
namespace (`-- --ns=...`), so no run sees another's leftovers. pyci runs as a GitHub job step would
start it on a runner (host topology; annotations on stdout, outputs and summary as files). A round
passes when exactly the expected components are failed, the others are healthy or not finished as
expected, and only the failed are annotated. Prints one line per round and a table at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyci.cluster.kind import KIND_API_VERSION, merge_config, render_config
from pyci.tilt.failures import HOST_ACTION
from tests.conftest import LAB_BIN, REPO, lab_tool

SHIM = REPO / "tools" / "kind-node" / "shim"
KEPT = REPO / "tests" / "artifacts" / "verdicts"  # each scenario's last summary, JUnit and screenshot
CORPUS = REPO / "tests" / "corpus" / "breakages"
NODE_IMAGE = "pyci-lab/kind-node:v1.34.4"
IMAGE = os.environ.get("PYCI_E2E_IMAGE", "pyci-lab/pyci:e2e")  # built by tools/build-image --reuse
BASE = "--base-image=pyci-lab/base:latest"


@dataclass
class Round:
    exit_code: int
    seconds: float
    rows: dict[str, tuple[str, str]]  # component -> (status, message)
    annotations: list[str]
    headline: str
    log: str = ""
    summary: str = ""  # the step summary a reader opens


@dataclass
class Scenario:
    way: str
    exit_code: int
    failed: set[str]
    # component -> the statuses it may have (a slow starter may be healthy by then, or not finished)
    others: dict[str, set[str]]
    checks: list[Callable[[Round], str | None]] = field(default_factory=list)
    timeout: str = "3m"
    through_image: bool = False  # run as GitHub runs the docker action: pyci's image, a sibling container


def _summary_has(*words: str) -> Callable[[Round], str | None]:
    def check(found: Round) -> str | None:
        missing = [w for w in words if w not in found.summary]
        return f"the summary lacks {missing}" if missing else None
    return check


def _message_has(component: str, *words: str) -> Callable[[Round], str | None]:
    def check(found: Round) -> str | None:
        message = found.rows.get(component, ("", ""))[1]
        missing = [w for w in words if w not in message]
        return f"{component}'s message lacks {missing}: {message!r}" if missing else None
    return check


SCENARIOS = {
    "crash": Scenario("verdict-crash", 1, {"payments"},
                      {"cart": {"healthy", "not finished"}, "web": {"healthy", "not finished"}},
                      [_message_has("payments", "crashes on start")]),
    "chain": Scenario("verdict-chain", 1, {"db"}, {"api": {"not finished"}, "web": {"not finished"}},
                      [_message_has("api", "blocked by db"), _message_has("web", "blocked by api")]),
    "never-ready": Scenario("verdict-never-ready", 1, {"search"}, {},
                            [_message_has("search", "after its first pod was created",
                                          "Readiness probe failed", "503")], timeout="60s"),
    "healthy": Scenario("verdict-healthy", 0, set(), {"cart": {"healthy"}, "web": {"healthy"}}),
    "toolless": Scenario("verdict-toolless", 1, {"compile"}, {"server": {"not finished"}},
                         [_message_has("compile", "nosuchtool build -o build/server ./", "exited 127",
                                       "not in pyci's image", HOST_ACTION),
                          _summary_has("nosuchtool: not found"),  # the shell's own words, in its log block
                          _message_has("server", "blocked by compile")], through_image=True),
}

JUNIT_STATUS = {"failure": "failed", "error": "failed"}


def junit_rows(path: Path) -> dict[str, tuple[str, str]]:
    rows = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        if not (case.get("classname") or "").startswith("pyci.resources"):
            continue
        status, message = "healthy", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                message = element.get("message") or ""
                if tag == "skipped":
                    status = "not finished"
                    message = message.removeprefix("not finished: ")
                else:
                    status, message = "failed", element.text or message
        rows[str(case.get("name"))] = (status, message)
    return rows


def env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{SHIM}{os.pathsep}{LAB_BIN}{os.pathsep}{os.environ['PATH']}")


def make_cluster(name: str, folder: Path) -> None:
    config = folder / "kind-config.yaml"
    config.write_text(render_config(merge_config({"kind": "Cluster", "apiVersion": KIND_API_VERSION})))
    done = subprocess.run([str(lab_tool("kind")), "create", "cluster", "--name", name, "--image",
                           NODE_IMAGE, "--config", str(config), "--kubeconfig", str(folder / "kubeconfig"),
                           "--wait", "0s"], env=env(), capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"kind create failed: {done.stderr[-2000:]}")


def delete_cluster(name: str, network_was_there: bool) -> None:
    """Deletes the cluster, and kind's `kind` network when this run's cluster made it (kind leaves it)."""
    subprocess.run([str(lab_tool("kind")), "delete", "cluster", "--name", name], env=env(),
                   capture_output=True, timeout=180)
    if not network_was_there:
        subprocess.run(["docker", "network", "rm", "kind"], capture_output=True, timeout=60)


def kind_network_exists() -> bool:
    return subprocess.run(["docker", "network", "inspect", "kind"], capture_output=True,
                          timeout=60).returncode == 0


def run_once(scenario: Scenario, cluster: str, namespace: str, folder: Path) -> Round:
    files = folder / "github"
    files.mkdir(parents=True)
    run_env = env() | {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
                       "GITHUB_OUTPUT": str(files / "output"), "GITHUB_STEP_SUMMARY": str(files / "summary")}
    cmd = [sys.executable, "-m", "pyci", "run", "--working-directory", str(CORPUS), "--cluster-name", cluster,
           "--node-image", NODE_IMAGE, "--registry-image", "pyci-lab/registry:latest",
           "--junit", str(folder / "junit.xml"), "--artifacts-dir", str(folder / "artifacts"),
           "--timeout", scenario.timeout, "--wait-timeout", "1m", "--namespaces", namespace,
           f"--tilt-args={BASE} --break={scenario.way} --ns={namespace}"]
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - t0
    rows = junit_rows(folder / "junit.xml") if (folder / "junit.xml").exists() else {}
    annotations = [line for line in done.stdout.splitlines()
                   if line.startswith("::error") and "title=pyci" not in line]
    heads = re.findall(r"^::error title=pyci[^:]*::(.*)$", done.stdout, re.M)
    summary = files / "summary"
    return Round(done.returncode, seconds, rows, annotations, heads[-1] if heads else "",
                 done.stdout + done.stderr, summary.read_text(encoding="utf-8") if summary.exists() else "")


def run_through_image(scenario: Scenario, cluster: str, namespace: str, folder: Path) -> Round:
    """As GitHub starts the docker action: pyci's image beside the cluster, inputs as INPUT_*."""
    from tests.e2e.test_corpus import as_github_action
    from tests.lab.github import read_outputs

    names: list[str] = []
    t0 = time.monotonic()
    done, commands, workspace = as_github_action(
        folder, names, IMAGE, "breakages", NODE_IMAGE,
        **{"tilt-args": f"{BASE} --break={scenario.way} --ns={namespace}", "cluster-name": cluster,
           "namespaces": namespace, "timeout": scenario.timeout})  # type: ignore[arg-type]
    seconds = time.monotonic() - t0
    junit_in_container = read_outputs(commands / "set_output").get("junit", "-")
    junit = workspace / junit_in_container.removeprefix("/github/workspace/")
    (folder / "github").mkdir()
    (folder / "github" / "summary").write_bytes((commands / "step_summary").read_bytes())
    if junit.is_file():
        (folder / "junit.xml").write_bytes(junit.read_bytes())
    rows = junit_rows(junit) if junit.is_file() else {}
    annotations = [line for line in done.stdout.splitlines()
                   if line.startswith("::error") and "title=pyci" not in line]
    heads = re.findall(r"^::error title=pyci[^:]*::(.*)$", done.stdout, re.M)
    return Round(done.returncode, seconds, rows, annotations, heads[-1] if heads else "",
                 done.stdout + done.stderr, (commands / "step_summary").read_text(encoding="utf-8"))


def judge(scenario: Scenario, found: Round) -> list[str]:
    wrong = []
    if found.exit_code != scenario.exit_code:
        wrong.append(f"exit {found.exit_code}, expected {scenario.exit_code}")
    failed = {name for name, (status, _) in found.rows.items() if status == "failed"}
    if failed != scenario.failed:
        wrong.append(f"failed {sorted(failed)}, expected {sorted(scenario.failed)}")
    for name, allowed in scenario.others.items():
        status = found.rows.get(name, ("missing", ""))[0]
        if status not in allowed:
            wrong.append(f"{name} is {status}, expected {' or '.join(sorted(allowed))}")
    annotated = {name for name in found.rows if any(f"title={name}%3A" in a for a in found.annotations)}
    if annotated != scenario.failed or len(found.annotations) != len(scenario.failed):
        wrong.append(f"annotations {found.annotations}")
    wrong += [problem for check in scenario.checks if (problem := check(found))]
    return wrong


def keep(name: str, folder: Path) -> None:
    """The round's summary (and a screenshot of it as GitHub renders it) and JUnit, for people."""
    KEPT.mkdir(parents=True, exist_ok=True)
    summary = folder / "github" / "summary"
    if summary.exists():
        text = summary.read_text(encoding="utf-8")
        (KEPT / f"{name}-summary.md").write_text(text, encoding="utf-8")
        screenshot(text.replace("<details>", "<details open>"), KEPT / f"{name}-summary.png")
    if (folder / "junit.xml").exists():
        (KEPT / f"{name}-junit.xml").write_bytes((folder / "junit.xml").read_bytes())


def screenshot(markdown: str, png: Path) -> None:
    from tests.unit.test_report import CHROMIUM, render_github_style

    if not CHROMIUM.exists():
        return
    page = png.with_suffix(".html")
    page.write_text(render_github_style(markdown), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1100,1000",
                        page.resolve().as_uri()], capture_output=True, timeout=120, check=False)


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv and argv[0].isdigit() else 10
    names = [a for a in argv if not a.isdigit()] or list(SCENARIOS)
    cluster = f"verdicts-{os.getpid()}"
    tally: dict[str, list[float]] = {name: [] for name in names}
    wrong_rounds = 0
    started = time.monotonic()
    if any(SCENARIOS[name].through_image for name in names):
        subprocess.run([str(REPO / "tools" / "build-image"), "--reuse", IMAGE], check=True,
                       stdout=subprocess.DEVNULL, timeout=900)
    with tempfile.TemporaryDirectory(prefix="pyci-verdicts-") as tmp:
        network_was_there = kind_network_exists()
        make_cluster(cluster, Path(tmp))
        try:
            for name in names:
                scenario = SCENARIOS[name]
                for i in range(1, rounds + 1):
                    folder = Path(tmp) / f"{name}-{i}"
                    runner = run_through_image if scenario.through_image else run_once
                    found = runner(scenario, cluster, f"v-{name}-{i}-{os.getpid()}", folder)
                    wrong = judge(scenario, found)
                    rows = "; ".join(f"{n}: {s}" + (f" ({m[:90]})" if m else "")
                                     for n, (s, m) in sorted(found.rows.items()))
                    verdict = "OK" if not wrong else "WRONG"
                    print(f"{name} round {i}: {verdict} exit {found.exit_code} in {found.seconds:.1f}s | "
                          f"{rows} | {len(found.annotations)} annotation(s)", flush=True)
                    if wrong:
                        wrong_rounds += 1
                        print(f"  wrong: {wrong}\n  log tail:\n{found.log[-3000:]}", flush=True)
                    tally[name].append(found.seconds)
                    keep(name, folder)
        finally:
            delete_cluster(cluster, network_was_there)
    for name, times in tally.items():
        if times:
            mean = sum(times) / len(times)
            print(f"{name}: {len(times)} rounds, {min(times):.1f}-{max(times):.1f}s (mean {mean:.1f}s)")
    print(f"verdicts: {wrong_rounds} wrong round(s) in {time.monotonic() - started:.0f}s")
    return 1 if wrong_rounds else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
