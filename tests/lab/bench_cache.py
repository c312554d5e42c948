"""tools/bench --mode cache: warm starts (issue 23) on real kind.

The app: one image whose dependency-install-like layer takes ≥ 30 s from nothing (a RUN that byte-compiles
the Python standard library at three optimisation levels nine times: real work with the base image's
own tools, offline; ~90 s here, longer than the cluster boot it overlaps), and one third-party image
from a stand-in for Docker Hub (a registry of the lab's own on the default bridge, reached over plain
http at its address; the image is the lab base plus a 20 MB layer of its own, so a pull has something
to fetch).

Each repetition, with a fresh nonce in the dependency step (no earlier build cache matches it):
  plain  the plain recipe (bench_kind's: kind's local-registry script, `kind load`, `tilt ci`), on a
         fresh runner: the third-party image pulled from the stand-in first (timed with it);
  cold   `pyci run --cache-dir DIR` with DIR empty, the app's images absent;
  warm   the same with DIR kept, on a daemon emptied as a fresh runner's: the app's images and the
         build-cache records of this nonce's steps removed (only ours: the daemon is shared), the
         third-party image removed, and the stand-in upstream stopped.
  change the warm run again after a one-line change to the server's source (a COPY after the
         dependency step): only that layer may be rebuilt (the image built ahead in seconds, not the
         dependency step's minute and more), and the run is green only if the image holds the
         changed line (the pod's readiness probe greps its source: a stale image never gets ready).
Reported: times to green, warm/cold (target ≤ 0.6), the bytes the stand-in served during each pyci run
(from its log; on the warm run it is stopped, so anything pyci needed from it fails the run), and the
plain recipe's time. Each run holds /tmp/realkind.lock (taken before its clock starts).
"""

from __future__ import annotations

import fcntl
import json
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# This checkout's pyci (the test helpers import it), not whichever checkout `pip install -e` points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "entrypoint"))

from tests.integration.test_cache_mirror import UPSTREAM_SHELL  # noqa: E402
from tests.lab import bench_kind  # noqa: E402
from tests.lab.bench_kind import (  # noqa: E402
    BASE_IMAGE,
    NODE_IMAGE,
    REGISTRY_IMAGE,
    App,
    Runner,
    stage_seconds,
)

LOCK = "/tmp/realkind.lock"
# The dependency step: byte-compile the standard library (three optimisation levels) nine times, about
# 90 s here, keeping only a listing: a build longer than the cluster boot it overlaps, with a small layer
# (a 300 MB one cost more to push into each run's empty registry than the cache saved).
DEPS = ("RUN echo {nonce} > /nonce && for i in 1 2 3 4 5 6 7 8 9; do cp -r /usr/lib/python3.11 /tmp/d && "
        "python3 -m compileall -q -f -o 0 -o 1 -o 2 /tmp/d > /dev/null && "
        "find /tmp/d -name '*.pyc' | wc -l >> /deps.txt && rm -rf /tmp/d; done")
WRITTEN = re.compile(r'http\.request\.method=GET .*?http\.response\.written=(\d+)')


@contextmanager
def realkind_lock() -> Iterator[None]:
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


def server_source(marker: str) -> str:
    """The app's server; it prints the marker first, so its log shows which source the pod runs."""
    return (f"print('serving {marker}', flush=True)\nimport http.server\nhttp.server.HTTPServer(('', 8000), "
            "http.server.SimpleHTTPRequestHandler).serve_forever()\n")


def manifests(image: str, marker: str, third_party: str) -> str:
    """The app's Deployments; warm-api is ready only once its image holds the source with the marker: a
    stale image never gets ready, and the run is not green."""
    probe = {"exec": {"command": ["grep", "-q", f"serving {marker}", "/app/server.py"]}, "periodSeconds": 1}
    return "\n---\n".join(json.dumps(deployment(n, i, cmd, p)) for n, i, cmd, p in (
        ("warm-api", image, None, probe), ("warm-tp", third_party, ["sleep", "infinity"], None)))


def write_app(root: Path, nonce: str, third_party: str) -> Path:
    files = {
        "Tiltfile": ("config.define_string('base-image')\ncfg = config.parse()\n"
                     f"docker_build('warm-api', 'api', build_args={{'BASE_IMAGE': cfg.get('base-image', "
                     f"'{BASE_IMAGE}')}})\nk8s_yaml('k8s.yaml')\n"),
        "api/Dockerfile": ("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n" + DEPS.format(nonce=nonce) + "\n"
                           "COPY server.py /app/server.py\nCMD [\"python3\", \"/app/server.py\"]\n"),
        "api/server.py": server_source(f"{nonce}-first"),
        "k8s.yaml": manifests("warm-api", f"{nonce}-first", third_party),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def deployment(name: str, image: str, command: list[str] | None, probe: dict | None = None) -> dict:
    container: dict = {"name": name, "image": image}
    if command:
        container["command"] = command
    if probe:
        container["readinessProbe"] = probe
    template = {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template}}


class Upstream:
    """The stand-in for Docker Hub, made anew each repetition (its address is part of the image name)."""

    def __init__(self, prefix: str, source: str) -> None:
        self.name = f"{prefix}-upstream-{secrets.token_hex(2)}"
        docker("run", "-d", "--name", self.name, "-p", "127.0.0.1::5000", "--label", "io.pyci.managed=true",
               "--entrypoint", "sh", REGISTRY_IMAGE, "-c", UPSTREAM_SHELL)
        self.port = docker("port", self.name, "5000/tcp").splitlines()[0].rsplit(":", 1)[1]
        self.address = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", self.name)
        deadline = time.monotonic() + 30
        while "listening on" not in self.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        pushed = f"localhost:{self.port}/lab/tp:1"
        docker("tag", source, pushed)
        docker("push", pushed)
        docker("rmi", pushed)
        self.ref = f"{self.address}:5000/lab/tp:1"  # as the manifests name it

    def logs(self, since: float | None = None) -> str:
        cmd = ["docker", "logs", *(["--since", f"{since:.3f}"] if since else []), self.name]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        return done.stdout + done.stderr

    def silence(self) -> None:
        """Stops answering (its address stays taken: see tests/integration/test_cache_mirror.py)."""
        docker("exec", self.name, "sh", "-c", "kill $(cat /tmp/registry.pid)")

    def served_since(self, since: float) -> int:
        return sum(int(m) for m in WRITTEN.findall(self.logs(since)))

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


def empty_daemon(nonce: str, refs: list[str]) -> None:
    """As a fresh runner: the app's images and this nonce's build-cache records gone (only ours)."""
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    doomed = [t for t in tags if "warm-api" in t or t in refs]
    if doomed:
        docker("rmi", "-f", *doomed, check=False)
    import docker as sdk

    from tests.integration.test_cache import prune_records

    client = sdk.from_env(timeout=300)
    try:
        prune_records(client, nonce)
    finally:
        client.close()


def pyci_run(runner: Runner, src: Path, name: str, log: Path, work: Path, cache: Path, host: str
             ) -> tuple[float, bool, dict[str, float]]:
    junit = work / f"{name}.junit.xml"
    cmd = [sys.executable, "-m", "pyci", "run", "--working-directory", str(src), "--cluster-name", name,
           "--node-image", NODE_IMAGE, "--registry-image", REGISTRY_IMAGE, "--junit", str(junit),
           "--artifacts-dir", str(work / f"{name}-artifacts"), "--summary", "false",
           "--timeout", bench_kind.TIMEOUT, "--cache-dir", str(cache)]
    runner.clusters.append(name)
    t0 = time.monotonic()
    code = runner.run(cmd, log, check=False, extra_env={"PYCI_MIRROR_PLAIN_HTTP": host})
    total = time.monotonic() - t0
    runner.sweep_pyci(name)
    runner.clusters.remove(name)
    return total, code == 0, stage_seconds(junit)


def ahead_seconds(log: str) -> float:
    """How long building the app's image ahead took (-1: not built ahead)."""
    found = re.findall(r"build ahead: warm-api\S* built in ([\d.]+)s", log)
    return float(found[-1]) if found else -1.0


def seconds_list(rows: list[dict], key: str) -> str:
    return ", ".join(f"{r[key]:.1f}" for r in rows)


def printed(artifacts: Path, line: str) -> bool:
    """The pod printed it, as far as tilt streamed the pod's output before it ended (per-component logs)."""
    return any(line in f.read_text(errors="replace") for f in artifacts.rglob("*.log") if f.is_file())


def main(reps: int) -> int:
    bench_kind.check_lab()
    for sig in (signal.SIGINT, signal.SIGTERM):  # both end the run in progress, then sweep
        signal.signal(sig, bench_kind._interrupt)
    work = Path(tempfile.mkdtemp(prefix="pyci-bench-cache-"))
    runner = Runner(work)
    source = f"{runner.prefix}-tp:1"
    print(f"bench --mode cache on real kind: {reps} repetitions; logs in {work}", flush=True)
    rows: list[dict] = []
    try:
        for rep in range(reps):
            rows.append(repetition(runner, work, source, rep))
            print(describe(rep, rows[-1]), flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted", flush=True)
    finally:
        runner.sweep()
        docker("rmi", "-f", source, check=False)
    if rows:
        med = {k: statistics.median(r[k] for r in rows) for k in ("plain", "cold", "warm")}
        ratios = [r["warm"] / r["cold"] for r in rows]
        med["change"] = statistics.median(r["change"] for r in rows)
        print(f"\n{len(rows)} repetitions. Medians: plain {med['plain']:.1f} s, cold {med['cold']:.1f} s, "
              f"warm {med['warm']:.1f} s. warm/cold median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target <= 0.6); warm/plain "
              f"{med['warm'] / med['plain']:.2f}. Bytes from the stand-in upstream on warm runs: "
              f"{sorted({r['warm_bytes'] for r in rows})} (target 0). One-line change: median "
              f"{med['change']:.1f} s; image built ahead in {seconds_list(rows, 'ahead_change')} s against "
              f"{seconds_list(rows, 'ahead_cold')} s cold; the changed line served: "
              f"{sum(r['change_served'] for r in rows)}/{len(rows)}.")
    shutil.rmtree(work / "apps", ignore_errors=True)
    return 0 if rows and all(r["cold_ok"] and r["warm_ok"] and r["plain_ok"] and r["change_ok"]
                             and r["change_served"] for r in rows) else 1


def describe(rep: int, r: dict) -> str:
    def ok(key: str) -> str:
        return "ok" if r[f"{key}_ok"] else "NOT OK"

    return (f"rep {rep + 1}: plain {r['plain']:.1f} s ({ok('plain')}), "
            f"cold {r['cold']:.1f} s ({ok('cold')}, upstream {r['cold_bytes']} B), "
            f"warm {r['warm']:.1f} s ({ok('warm')}, upstream {r['warm_bytes']} B, stopped), "
            f"warm/cold {r['warm'] / r['cold']:.2f}; one-line change {r['change']:.1f} s ({ok('change')}, "
            f"built ahead in {r['ahead_change']:.1f} s against {r['ahead_cold']:.1f} s cold, the changed "
            f"line {'served' if r['change_served'] else 'NOT served'}"
            f"{', printed in its log' if r['change_printed'] else ''})\n  cold: {r['cold_cache']}\n"
            f"  warm: {r['warm_cache']}\n  change: {r['change_cache']}")


def repetition(runner: Runner, work: Path, source: str, rep: int) -> dict:
    nonce = secrets.token_hex(8)
    # The third-party image: the lab base plus a 20 MB layer of its own, pushed to the stand-in and
    # then removed here, so that a pull has that layer to fetch.
    build = subprocess.run(["docker", "build", "-q", "-t", source, "-"], input=(
        f"FROM {BASE_IMAGE}\nRUN head -c 20000000 /dev/urandom > /blob-{nonce}\n"), capture_output=True,
        text=True, timeout=600, check=False)
    if build.returncode != 0:
        raise RuntimeError(f"bench: could not build the third-party image: {build.stderr[-300:]}")
    upstream = Upstream(runner.prefix, source)
    docker("rmi", source)
    try:
        app_dir = write_app(work / "apps" / f"rep{rep}", nonce, upstream.ref)
        cache = work / f"cache-{rep}"
        out: dict = {}
        # plain: a fresh runner pulls the third-party image itself (timed with the recipe).
        empty_daemon(nonce, [upstream.ref])
        name = runner.next_name("plain", "warm")
        with realkind_lock():
            t0 = time.monotonic()
            docker("pull", f"localhost:{upstream.port}/lab/tp:1")
            docker("tag", f"localhost:{upstream.port}/lab/tp:1", upstream.ref)
            pulled = time.monotonic() - t0
            app = App("warm", (upstream.ref,), True)
            verdict, _, out["plain_ok"], _, _ = runner.plain(app, app_dir, name, work / f"{name}.log")
        out["plain"] = pulled + verdict
        docker("rmi", f"localhost:{upstream.port}/lab/tp:1", check=False)
        for label, stop in (("cold", False), ("warm", True), ("change", False)):
            empty_daemon(nonce, [upstream.ref])
            if stop:
                upstream.silence()
            if label == "change":  # one line of the server's source: the COPY after the dependency step
                (app_dir / "api" / "server.py").write_text(server_source(f"{nonce}-changed"))
                (app_dir / "k8s.yaml").write_text(manifests("warm-api", f"{nonce}-changed", upstream.ref))
            name = runner.next_name(f"pyci-{label}", "warm")
            since = time.time()
            with realkind_lock():
                out[label], out[f"{label}_ok"], stages = pyci_run(runner, app_dir, name, work / f"{name}.log",
                                                                  work, cache, f"{upstream.address}:5000")
            out[f"{label}_bytes"] = upstream.served_since(since)
            log = (work / f"{name}.log").read_text(errors="replace")
            out[f"{label}_cache"] = "; ".join(re.findall(r"cache: ([^\n]*)", log))[:600]
            out[f"ahead_{label}"] = ahead_seconds(log)
            if label == "change":  # green means ready, and ready means its image has the changed line
                out["change_served"] = out["change_ok"]
                out["change_printed"] = printed(work / f"{name}-artifacts", f"serving {nonce}-changed")
        empty_daemon(nonce, [upstream.ref])
        return out
    finally:
        upstream.remove()
