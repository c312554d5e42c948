"""What a cancelled case left, checked and swept (the cancel matrix's second half, tests/lab/cancel.py):
containers, volumes, networks and kind clusters by the run's labels, tags pushed to its registry, its
processes and temporary folders, and secrets in its log and artifacts."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "tools" / "kind-node" / "shim"
LAB_BIN = Path(os.environ.get("PYCI_LAB_CACHE")
               or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyci-lab") / "bin"


def env_with_lab(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(base if base is not None else os.environ)
    env["PATH"] = f"{SHIM}{os.pathsep}{LAB_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "entrypoint"), env.get("PYTHONPATH")) if p)
    env.setdefault("TILT_DISABLE_ANALYTICS", "1")
    return env


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _ids(*args: str) -> list[str]:
    return docker(*args).stdout.split()


def _markers(cluster: str) -> list[str]:
    return _ids("volume", "ls", "-q", "--filter", f"label=io.pyci.owns-cluster={cluster}")


def node_container(cluster: str) -> str | None:
    found = _ids("ps", "-q", "--filter", f"label=io.x-k8s.kind.cluster={cluster}")
    return found[0] if found else None


def apiserver_answers(cluster: str) -> bool:
    node = node_container(cluster)
    if not node:
        return False
    ports = docker("port", node, "6443/tcp").stdout.split()
    if not ports:
        return False
    host, _, port = ports[0].rpartition(":")
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host.strip("[]") or "127.0.0.1", int(port))) != 0:
            return False
    # It accepts connections: is kube-apiserver really serving (not just docker-proxy)?
    done = subprocess.run(["curl", "-sk", "--max-time", "1", f"https://{host}:{port}/livez"],
                          capture_output=True, text=True, check=False, timeout=5)
    return done.stdout.strip() == "ok"


def registry_ports(log: str) -> set[int]:
    ports = {int(p) for p in re.findall(r"local registry \S+ at 127\.0\.0\.1:(\d+)", log)}
    ports |= {int(p) for p in re.findall(r"host port from \S+ to (\d+)", log)}
    return ports


def pushed_tag(ports: set[int]) -> bool:
    tags = docker("images", "--format", "{{.Repository}}").stdout.split()
    return any(t.startswith((f"localhost:{p}/", f"127.0.0.1:{p}/")) for t in tags for p in ports)


def wait_until(check: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if not alive():
            return False
        time.sleep(0.15)
    return False


# --- leftovers ------------------------------------------------------------------------------------
def leftovers(cluster: str, network: str, run_id: str | None, ports: set[int], marks: list[str]) -> list[str]:
    """What of this case is still there: containers, volumes, networks, clusters, tags, processes,
    temporary folders."""
    left: list[str] = []
    labels = [f"io.pyci.cluster={cluster}", f"io.x-k8s.kind.cluster={cluster}"]
    if run_id:
        labels += [f"io.pyci.run={run_id}", f"io.pyci.reaper={run_id}"]
    seen: set[str] = set()
    for label in labels:
        for name in docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}").stdout.split():
            if name not in seen:
                seen.add(name)
                left.append(f"container {name}")
    left += [f"volume {name}" for name in _markers(cluster)]
    if network in docker("network", "ls", "--format", "{{.Name}}").stdout.split():
        left.append(f"network {network}")
    kind = subprocess.run([str(LAB_BIN / "kind"), "get", "clusters"], capture_output=True, text=True,
                          timeout=60, check=False)
    if cluster in kind.stdout.split():
        left.append(f"kind cluster {cluster}")
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    left += [f"tag {t}" for t in tags if _run_tag(t, ports, run_id)]
    left += [f"process {p}" for p in processes_mentioning(marks)]
    if run_id:
        left += [f"folder {p}" for p in Path(tempfile.gettempdir()).glob(f"pyci-{run_id}-*")]
    return left


def _run_tag(tag: str, ports: set[int], run_id: str | None) -> bool:
    """A tag of the run's: tilt's pushes to its registry (a REMOTE run reaches it as 127.0.0.1), or
    build-ahead's throwaway ones."""
    return (any(tag.startswith((f"localhost:{p}/", f"127.0.0.1:{p}/")) for p in ports)
            or bool(run_id and tag.startswith(f"pyci-ahead/{run_id}:")))


def scan_for_secrets(secrets: list[str], folder: Path, log: str,
                     skip: Sequence[Path] = ()) -> tuple[int, list[str]]:
    """(bytes scanned, where a secret or its base64 was found) in `log` and every file under `folder`
    but the app's own sources (`skip`: the Tiltfile holds the token, as a user's would)."""
    needles = [n.encode() for s in secrets for n in (s, base64.b64encode(s.encode()).decode())]
    # `::add-mask::<secret>` is pyci telling the runner what to mask: the runner shows no such line.
    shown = "\n".join(line for line in log.splitlines() if not line.startswith("::add-mask::")).encode()
    found, scanned = [], len(shown)
    if any(n in shown for n in needles):
        found.append("the log")
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink() or any(path.is_relative_to(p) for p in skip):
            continue
        data = path.read_bytes()
        scanned += len(data)
        if any(n in data for n in needles):
            found.append(str(path.relative_to(folder)))
    return scanned, found


def processes_mentioning(marks: list[str]) -> list[str]:
    found = []
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(m in argv for m in marks):
                found.append(f"{pid} {argv[:80]}")
    return found


def sweep(cluster: str, network: str, run_id: str | None, ports: set[int]) -> None:
    """Remove what a failed case left, so the next case (and the next test) starts clean."""
    env = env_with_lab()
    if run_id:
        subprocess.run([sys.executable, "-m", "pyci", "cleanup", "--run-id", run_id], env=env,
                       capture_output=True, timeout=300, check=False)
    for label in (f"io.pyci.cluster={cluster}", f"io.x-k8s.kind.cluster={cluster}"):
        ids = _ids("ps", "-aq", "--filter", f"label={label}")
        if ids:
            docker("rm", "-f", "-v", *ids)
    subprocess.run([str(LAB_BIN / "kind"), "delete", "cluster", "--name", cluster], env=env,
                   capture_output=True, timeout=120, check=False)
    vols = _markers(cluster)
    if vols:
        docker("volume", "rm", "-f", *vols)
    docker("network", "rm", network)
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    doomed = [t for t in tags if _run_tag(t, ports, run_id)]
    if doomed:
        docker("rmi", "-f", *doomed)
    if run_id:
        for path in Path(tempfile.gettempdir()).glob(f"pyci-{run_id}-*"):
            shutil.rmtree(path, ignore_errors=True)
