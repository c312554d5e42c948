"""The cancel matrix on real kind (issue 12): start `pyci run`, cut it at a named point, check what is left.

Used by tools/cancel-matrix (every point x every way to cancel, a table) and by
tests/e2e/test_cancel.py (a parametrized subset). A point is hit either by pyci's test-only hook
(`PYCI_TEST_PAUSE_AT`, pyci/testhook.py: the run waits there) or by watching the daemon from outside
while kind runs (its node container appears, its API server answers). A way to cancel is a signal to
pyci's process (SIGTERM, SIGINT to its process group as Ctrl-C does, SIGTERM then a second one during
cleanup) or, with pyci in its image as a GitHub docker action, `docker stop` / `docker kill` of
its container (pyci and its children die with it; its reaper cleans up).

Every case gets its own cluster name, run id, kind docker network (KIND_EXPERIMENTAL_DOCKER_NETWORK)
and app folder, so what is left is checked exactly, on a daemon other people use too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Re-exported: the tests and tools/cancel-matrix reach the checks through this module.
from tests.lab.case_leftovers import (  # noqa: F401
    LAB_BIN,
    REPO,
    SHIM,
    _ids,
    _markers,
    apiserver_answers,
    docker,
    env_with_lab,
    leftovers,
    node_container,
    processes_mentioning,
    pushed_tag,
    registry_ports,
    scan_for_secrets,
    sweep,
    wait_until,
)

NODE_IMAGE = "pyci-lab/kind-node:v1.34.4"
LIMIT = 30.0  # seconds from the cancel to the exit (and, for a container, to nothing left)

# point -> (how it is hit, the app's variant). "hook:<name>": pyci waits at testhook.pause(<name>).
POINTS: dict[str, str] = {
    "claimed": "hook:claimed",          # boundary: ownership marker made, registry and cluster not yet
    "registry": "hook:registry",        # inside registry create: container started, not checked
    "kind-early": "log:creating kind cluster",  # kind just started: no node container yet
    "kind-middle": "node",              # kind's node container runs (kubeadm at work)
    "kind-late": "apiserver",           # the node's API server answers: kind installs CNI, storage
    "connect": "hook:connect",          # boundary: cluster and registry made, not wired
    "tilt": "pushed",                   # inside tilt ci: it has pushed an image to the run's registry
    "readiness": "hook:readiness",      # boundary: tilt ci done, readiness watch about to decide
    "diagnostics": "hook:diagnostics",  # a failing app: the bundle is about to be written
    "cleanup": "hook:cleanup",          # cleanup itself (of a green run)
}
HOW = ("SIGTERM", "SIGINT", "SIGTERM+SIGTERM", "docker-stop", "docker-kill")


@dataclass
class Case:
    point: str
    how: str
    seconds: float | None = None  # from the (first) cancel to pyci's exit
    exit_code: int | None = None
    leftovers: list[str] = field(default_factory=list)
    problem: str = ""  # the point was never reached, or the harness failed
    log: str = ""
    scanned: int = 0  # bytes of log and artifacts searched for the Tiltfile's token

    @property
    def ok(self) -> bool:
        return (not self.problem and not self.leftovers and self.seconds is not None
                and self.seconds <= LIMIT and self.exit_code in expected_exit(self.how))

    def row(self) -> str:
        took = f"{self.seconds:5.1f}" if self.seconds is not None else "    -"
        code = "-" if self.exit_code is None else str(self.exit_code)
        left = ", ".join(self.leftovers) or "none"
        verdict = "ok" if self.ok else "FAIL"
        extra = f"  ({self.problem})" if self.problem else ""
        return f"| {self.point:<11} | {self.how:<15} | {code:>4} | {took} | {left} | {verdict}{extra} |"


def expected_exit(how: str) -> tuple[int, ...]:
    if how == "docker-kill":
        return (137,)
    if how == "docker-stop":  # pyci's own cleanup within docker's 10 s grace: 130; else killed: 137
        return (130, 137)
    return (130,)


def make_app(where: Path, fail: bool = False, token: str = "") -> Path:
    """examples/hello, copied; `fail` adds a local_resource that fails (tilt ci fails in seconds);
    `token` makes the Tiltfile declare a secret (GitHub's `::add-mask::`) and then print it."""
    app = where / "app"
    shutil.copytree(REPO / "examples" / "hello", app)
    extra = ""
    if token:
        extra += (f"print('::add-mask::{token}')\nprint('the deploy token is {token}')\n"
                  f"local_resource('token', cmd='echo token again: {token}', labels=['hello'])\n")
    if fail:
        extra += "local_resource('boom', cmd='echo boom; exit 3', labels=['hello'])\n"
    if extra:
        with (app / "Tiltfile").open("a") as f:
            f.write(extra)
    return app


def pyci_args(app: Path, out: Path, cluster: str, node_image: str, *extra: str) -> list[str]:
    return ["--working-directory", str(app), "--cluster-name", cluster, "--node-image", node_image,
            "--registry-image", "pyci-lab/registry:latest", "--socat-image", "pyci-lab/socat:latest",
            "--junit", str(out / "junit.xml"),
            "--artifacts-dir", str(out / "artifacts"), "--timeout", "3m", "--wait-timeout", "2m",
            "--tilt-args=--base-image=pyci-lab/base:latest", *extra]


def github_files(out: Path) -> dict[str, str]:
    files = out / "github"
    files.mkdir(parents=True, exist_ok=True)
    (files / "output").touch()
    (files / "summary").touch()
    return {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_OUTPUT": str(files / "output"), "GITHUB_STEP_SUMMARY": str(files / "summary")}


# --- watching -------------------------------------------------------------------------------------
class Output:
    """pyci's output, read in a thread; `wait_for(text)` blocks until a line holds it."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self.times: list[float] = []  # time.monotonic() each line arrived
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.times.append(time.monotonic())
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def text(self) -> str:
        with self.cond:
            return "\n".join(self.lines)

    def timed(self, since: float) -> str:
        """The lines with the seconds since `since` (the cancel): where the time went."""
        with self.cond:
            pairs = zip(self.times, self.lines, strict=True)
            return "\n".join(f"{t - since:+7.1f}s {line}" for t, line in pairs)

    def has(self, needle: str) -> bool:
        with self.cond:
            return any(needle in line for line in self.lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(needle in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return False
                self.cond.wait(min(left, 0.5))
            return True


# --- one case -------------------------------------------------------------------------------------
def pyci_command(args: list[str], remote: Any = None) -> list[str]:
    """`python -m pyci <args>`; with `remote` (a tests.integration._pyci_helpers.RemoteDaemon) run in
    its network namespace, which reaches the daemon only over TCP: topology REMOTE, socat forwarders."""
    cmd = [sys.executable, "-m", "pyci", *args]
    return ["ip", "netns", "exec", remote.netns, *cmd] if remote is not None else cmd


def run_case(point: str, how: str, work: Path, node_image: str = NODE_IMAGE, image: str | None = None,
             keep_log: bool = False, remote: Any = None) -> Case:
    """Start a run, cancel it at `point` the way `how` says, and see what is left. `remote`: run
    pyci against the daemon as a remote one (REMOTE topology; not with docker-stop/kill)."""
    case = Case(point, how)
    tag = uuid.uuid4().hex[:6]
    cluster = f"cm-{tag}"
    network = f"pyci-cm-{tag}"
    out = work / f"{point}-{how}-{tag}"
    out.mkdir(parents=True)
    token = f"tok-{uuid.uuid4().hex}"
    app = make_app(out, fail=point == "diagnostics", token=token)
    trigger = POINTS[point]
    container = how.startswith("docker-")
    env_extra = {"KIND_EXPERIMENTAL_DOCKER_NETWORK": network}
    if trigger.startswith("hook:"):
        env_extra["PYCI_TEST_PAUSE_AT"] = trigger.removeprefix("hook:")
    if container:
        if image is None:
            case.problem = "no image for a docker-stop/kill case"
            return case
        proc, name = _start_container(image, app, out, cluster, node_image, env_extra)
    else:
        if remote is not None:
            env_extra["DOCKER_HOST"] = remote.docker_host
        env = env_with_lab({**os.environ, **github_files(out), **env_extra})
        cmd = pyci_command(["run", *pyci_args(app, out, cluster, node_image)], remote)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        name = ""
    output = Output(proc.stdout)
    run_id: str | None = None
    sent = None
    try:
        reached = _reach(point, trigger, output, cluster, proc)
        run_id = _run_id(cluster, output.text())
        if not reached:
            case.problem = f"point {point} not reached"
        else:
            sent = time.monotonic()
            _cancel(how, proc, name, output)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            case.problem = case.problem or "pyci did not exit within 120 s"
        if sent is not None and proc.returncode is not None:
            case.seconds = time.monotonic() - sent
        output.thread.join(timeout=10)
        run_id = run_id or _run_id(cluster, output.text())
        case.exit_code = proc.returncode
        ports = registry_ports(output.text())
        if container and sent is not None:
            # The container is gone; its reaper may still be at work: what matters is the state 30 s on.
            case.exit_code = _container_exit(out)
            deadline = sent + LIMIT
            while time.monotonic() < deadline and leftovers(cluster, network, run_id, ports, [cluster]):
                time.sleep(0.5)
            case.seconds = time.monotonic() - sent
        case.leftovers = leftovers(cluster, network, run_id, ports, [cluster, str(app)])
        case.scanned, leaks = scan_for_secrets([token], out, output.text(), skip=[app])
        case.leftovers += [f"secret in {where}" for where in leaks]
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if name:
            docker("rm", "-f", name)
        sweep(cluster, network, run_id, registry_ports(output.text()))
    if keep_log or not case.ok:
        case.log = output.timed(sent) if sent is not None else output.text()
    return case


def _reach(point: str, trigger: str, output: Output, cluster: str, proc: subprocess.Popen[str]) -> bool:
    alive = lambda: proc.poll() is None  # noqa: E731
    if trigger.startswith("hook:"):
        return output.wait_for(f"pyci-test-hook: paused at {trigger.removeprefix('hook:')}", 240)
    if trigger.startswith("log:"):
        return output.wait_for(trigger.removeprefix("log:"), 240)
    if trigger == "node":
        return wait_until(lambda: node_container(cluster) is not None, 240, alive)
    if trigger == "apiserver":
        return wait_until(lambda: apiserver_answers(cluster), 240, alive)
    if trigger == "pushed":
        return wait_until(lambda: pushed_tag(registry_ports(output.text())), 300, alive)
    raise ValueError(trigger)


def _cancel(how: str, proc: subprocess.Popen[str], name: str, output: Output) -> None:
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    elif how == "SIGINT":  # Ctrl-C: the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "SIGTERM+SIGTERM":
        proc.send_signal(signal.SIGTERM)
        if output.wait_for("group::cleanup", 30):
            time.sleep(0.3)  # inside it, not at its first line
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    elif how == "docker-stop":
        docker("stop", name, timeout=60)
    elif how == "docker-kill":
        docker("kill", name)
    else:
        raise ValueError(how)


def _run_id(cluster: str, log: str) -> str | None:
    found = re.search(r"run id (\S+)", log)
    if found:
        return found.group(1)
    for volume in _markers(cluster):
        labels = json.loads(docker("volume", "inspect", volume).stdout or "[{}]")[0].get("Labels") or {}
        if labels.get("io.pyci.run"):
            return str(labels["io.pyci.run"])
    for cid in _ids("ps", "-aq", "--filter", f"label=io.pyci.cluster={cluster}"):
        labels = json.loads(docker("inspect", cid).stdout or "[{}]")[0].get("Config", {}).get("Labels") or {}
        if labels.get("io.pyci.run"):
            return str(labels["io.pyci.run"])
    return None


# --- the image as a GitHub docker action ------------------------------------------------------------
def image_site(image: str) -> str:
    """Where pyci is installed in the image: the checkout's source is mounted there (no rebuild)."""
    done = docker("run", "--rm", "--entrypoint", "python3", image, "-c",
                  "import os, pyci; print(os.path.dirname(pyci.__file__))")
    return done.stdout.strip()


def _start_container(image: str, app: Path, out: Path, cluster: str, node_image: str,
                     env_extra: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    name = f"pyci-cm-{cluster}"
    files = out / "file_commands"
    files.mkdir()
    (files / "set_output").touch()
    (files / "step_summary").touch()
    env = {"GITHUB_ACTIONS": "true", "CI": "true", "HOME": "/github/home", "GITHUB_RUN_ID": "4242",
           "GITHUB_RUN_ATTEMPT": "1", "GITHUB_WORKSPACE": "/github/workspace",
           "GITHUB_OUTPUT": "/github/file_commands/set_output",
           "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
           "PATH": "/shim:/usr/local/bin:/usr/bin", **env_extra}
    args = pyci_args(Path("/github/workspace/app"), Path("/github/workspace"), cluster, node_image)
    site = _SITES.setdefault(image, image_site(image))
    cmd = ["docker", "run", "--name", name, "--label", "io.pyci.lab=true", "--workdir", "/github/workspace",
           *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
           "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{out}:/github/workspace",
           "-v", f"{files}:/github/file_commands", "-v", f"{SHIM}:/shim:ro",
           "-v", f"{REPO / 'entrypoint' / 'pyci'}:{site}:ro", image, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (out / "container").write_text(name)
    return proc, name


_SITES: dict[str, str] = {}


def _container_exit(out: Path) -> int | None:
    name = (out / "container").read_text()
    state = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    return int(state) if state.lstrip("-").isdigit() else None


def table(cases: list[Case]) -> str:
    lines = ["| point       | cancel          | exit |    s  | left | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    return "\n".join(lines + [c.row() for c in cases])


# --- runs together --------------------------------------------------------------------------------
@dataclass
class Together:
    count: int
    wall: float = 0.0
    codes: list[int | None] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    registries: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.codes == [0] * self.count and len(set(self.clusters)) == self.count
                and len(set(self.registries)) == self.count and not self.leftovers)

    def report(self) -> str:
        lines = [f"{self.count} runs started together with default inputs: exit codes {self.codes}, "
                 f"wall time {self.wall:.0f}s",
                 f"clusters {self.clusters}", f"registries {self.registries}",
                 f"left: {', '.join(self.leftovers) or 'nothing'}", "OK" if self.ok else "FAIL"]
        if not self.ok:
            lines += [log[-2500:] for log in self.logs]
        return "\n".join(lines)


def run_together(count: int, work: Path, node_image: str = NODE_IMAGE) -> Together:
    """`count` runs of examples/hello with pyci's defaults (no cluster-name, registry-port 0, kind's
    own docker network), started at once on one daemon."""
    from tests.lab.github import read_outputs

    result = Together(count)
    procs = []
    t0 = time.monotonic()
    for i in range(count):
        out = work / f"run{i}"
        out.mkdir(parents=True)
        app = make_app(out)
        env = env_with_lab({**os.environ, **github_files(out)})
        args = pyci_args(app, out, "", node_image)
        for flag in ("--cluster-name", "--timeout", "--wait-timeout"):  # pyci's defaults for these
            cut = args.index(flag)
            del args[cut:cut + 2]  # no cluster-name: a name of the run's own
        procs.append((subprocess.Popen([sys.executable, "-m", "pyci", "run", *args], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out))
    try:
        for proc, out in procs:
            log = proc.communicate(timeout=900)[0]
            result.logs.append(log)
            result.codes.append(proc.returncode)
            found = read_outputs(out / "github" / "output")
            result.clusters.append(found.get("cluster-name", ""))
            result.registries.append(found.get("registry", ""))
        result.wall = time.monotonic() - t0
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
    for cluster, log in zip(result.clusters, result.logs, strict=True):
        run_id = _run_id(cluster, log)
        ports = registry_ports(log)
        left = leftovers(cluster, "kind-network-not-checked", run_id, ports, [cluster])
        result.leftovers += left
        if left:
            sweep(cluster, "kind-network-not-checked", run_id, ports)
    return result
