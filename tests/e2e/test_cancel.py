"""Cancel at every point, on real kind (issue 12): a representative subset of tools/cancel-matrix.

Every point of tests/lab/cancel.py once, the ways to cancel rotated across them (SIGTERM, SIGINT to
the process group as Ctrl-C, SIGTERM and a second SIGTERM during cleanup, `docker stop` and
`docker kill` of pyci's container as GitHub cancels a docker action). Each: exit 130 (a killed
container: 137, its reaper cleans up) within 30 s, and nothing of the case left: containers,
volumes, the case's kind network, the cluster, pushed tags, processes, pyci's temp folder; the
Tiltfile's token in no log or artifact. The full matrix (~50 runs) is `tools/cancel-matrix`.

Then SIGKILL of the whole run at three stages (a fourth, during kind create, is test_kind_share's)
followed by `pyci cleanup --run-id`: nothing left, and a kind cluster a user made by hand on the
same daemon survives every one of them.

And a REMOTE run (pyci in a network namespace that reaches the daemon only over TCP, as CircleCI's
setup_remote_docker; the API server and registry through socat forwarders): SIGTERM, and SIGKILL
then `pyci cleanup --run-id` from the same namespace: no forwarder, no socat container left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LAB_BIN, lab_tool
from tests.integration._pyci_helpers import RemoteDaemon, remote_daemon_lab
from tests.lab import cancel

SUBSET = [
    ("claimed", "SIGINT"),
    ("registry", "SIGTERM"),
    ("kind-early", "SIGTERM+SIGTERM"),
    ("kind-middle", "docker-stop"),
    ("kind-late", "SIGINT"),
    ("connect", "SIGTERM"),
    ("tilt", "docker-kill"),
    ("readiness", "SIGTERM+SIGTERM"),
    ("diagnostics", "SIGTERM"),
    ("cleanup", "SIGINT"),
]
BYTES_SCANNED: list[int] = []


def test_the_subset_covers_every_point_and_every_way():
    assert {p for p, _ in SUBSET} == set(cancel.POINTS)
    assert {h for _, h in SUBSET} == set(cancel.HOW)


@pytest.mark.parametrize("point,how", SUBSET, ids=[f"{p}-{h}" for p, h in SUBSET])
def test_cancel_leaves_nothing(point: str, how: str, tmp_path: Path, node_image: str, request) -> None:
    image = request.getfixturevalue("image") if how.startswith("docker-") else None
    case = cancel.run_case(point, how, tmp_path, node_image=node_image, image=image)
    BYTES_SCANNED.append(case.scanned)
    print(f"{case.row()}  scanned {case.scanned} bytes")
    assert not case.problem, case.problem + "\n" + case.log[-4000:]
    assert case.exit_code in cancel.expected_exit(how), f"exit {case.exit_code}\n{case.log[-4000:]}"
    assert case.seconds is not None and case.seconds <= cancel.LIMIT, f"{case.seconds}s\n{case.log[-3000:]}"
    assert case.leftovers == [], case.log[-3000:]
    assert case.scanned > 0


# --- SIGKILL, then pyci cleanup -------------------------------------------------------------------
@pytest.fixture(scope="module")
def users_cluster(node_image: str, docker_client):
    """A kind cluster made by hand, as a user would, on the same daemon; it must outlive every case.
    On a docker network of its own, so it runs beside the tests that use kind's default network."""
    tag = uuid.uuid4().hex[:6]
    name, network = f"e2e-user-{tag}", f"pyci-e2e-user-{tag}"
    env = cancel.env_with_lab({**os.environ, "KIND_EXPERIMENTAL_DOCKER_NETWORK": network})
    kind = str(lab_tool("kind"))
    try:
        done = subprocess.run([kind, "create", "cluster", "--name", name, "--image", node_image,
                               "--wait", "0s"], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        yield name
    finally:
        subprocess.run([kind, "delete", "cluster", "--name", name], env=env, capture_output=True, timeout=120)
        for net in docker_client.networks.list(names=[network]):  # kind delete leaves its network
            net.remove()


# kind-middle: tests/e2e/test_kind_share.py (SIGKILL during kind create, then pyci cleanup).
# Nightly (README): registry and tilt repeat what readiness and kind-middle show on every run.
@pytest.mark.parametrize("point", [pytest.param("registry", marks=pytest.mark.nightly),
                                   pytest.param("tilt", marks=pytest.mark.nightly), "readiness"])
def test_sigkill_then_pyci_cleanup_leaves_nothing_and_spares_a_users_cluster(
        point: str, tmp_path: Path, node_image: str, users_cluster: str) -> None:
    tag = uuid.uuid4().hex[:6]
    cluster, network = f"ck-{tag}", f"pyci-ck-{tag}"
    app = cancel.make_app(tmp_path)
    trigger = cancel.POINTS[point]
    env = cancel.env_with_lab({**os.environ, **cancel.github_files(tmp_path),
                               "KIND_EXPERIMENTAL_DOCKER_NETWORK": network})
    if trigger.startswith("hook:"):
        env["PYCI_TEST_PAUSE_AT"] = trigger.removeprefix("hook:")
    cmd = [sys.executable, "-m", "pyci", "run", *cancel.pyci_args(app, tmp_path, cluster, node_image)]
    # Its own session: the kill takes pyci and every child (kind, tilt) at once, as `docker kill` does.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    output = cancel.Output(proc.stdout)
    run_id = None
    try:
        assert cancel._reach(point, trigger, output, cluster, proc), output.text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        output.thread.join(timeout=10)
        run_id = cancel._run_id(cluster, output.text())
        assert run_id, output.text()[-2000:]
        ports = cancel.registry_ports(output.text())
        before = cancel.leftovers(cluster, network, run_id, ports, [cluster])
        assert before, "SIGKILL left nothing to clean up: the point was not really reached"
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pyci", "cleanup", "--run-id", run_id],
                              env=cancel.env_with_lab(), capture_output=True, text=True, timeout=300)
        print(f"{point}: SIGKILL left {before}; pyci cleanup took {time.monotonic() - t0:.1f}s")
        assert done.returncode == 0, done.stdout + done.stderr
        assert cancel.leftovers(cluster, network, run_id, ports, [cluster, str(app)]) == [], done.stdout
        assert users_cluster in kind_clusters()  # a user's own cluster is never a run's
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        cancel.sweep(cluster, network, run_id, cancel.registry_ports(output.text()))


def kind_clusters() -> list[str]:
    done = subprocess.run([str(LAB_BIN / "kind"), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    return done.stdout.split()


# --- a REMOTE run: its socat forwarders and socat container ----------------------------------------
@pytest.fixture
def remote_daemon() -> Iterator[RemoteDaemon]:
    with remote_daemon_lab() as daemon:
        yield daemon


def forwarders_of(cluster: str) -> list[str]:
    """This machine's processes that forward into the run's socat container (the local socats and the
    `docker exec` each connection forks)."""
    return cancel.processes_mentioning([f"{cluster}-pyci-socat"])


def test_sigterm_of_a_remote_run_stops_its_forwarders(tmp_path: Path, node_image: str,
                                                      remote_daemon: RemoteDaemon) -> None:
    case = cancel.run_case("readiness", "SIGTERM", tmp_path, node_image=node_image, remote=remote_daemon,
                           keep_log=True)
    print(f"{case.row()}  (remote)")
    assert "topology: remote" in case.log, case.log[-3000:]
    assert "forwarding 127.0.0.1:" in case.log, case.log[-3000:]  # the forwarders were up when cut
    assert not case.problem, case.problem + "\n" + case.log[-4000:]
    assert case.exit_code == 130, case.log[-3000:]
    assert case.seconds is not None and case.seconds <= cancel.LIMIT, case.log[-3000:]
    assert case.leftovers == [], case.log[-3000:]


def test_sigkill_of_a_remote_run_then_pyci_cleanup_stops_its_forwarders(
        tmp_path: Path, node_image: str, remote_daemon: RemoteDaemon) -> None:
    tag = uuid.uuid4().hex[:6]
    cluster, network = f"cr-{tag}", f"pyci-cr-{tag}"
    app = cancel.make_app(tmp_path)
    remote_env = {"DOCKER_HOST": remote_daemon.docker_host}
    env = cancel.env_with_lab({**os.environ, **cancel.github_files(tmp_path), **remote_env,
                               "KIND_EXPERIMENTAL_DOCKER_NETWORK": network,
                               "PYCI_TEST_PAUSE_AT": "readiness"})
    cmd = cancel.pyci_command(["run", *cancel.pyci_args(app, tmp_path, cluster, node_image)], remote_daemon)
    # SIGKILL of pyci alone: its forwarders lead sessions of their own and outlive it.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    output = cancel.Output(proc.stdout)
    run_id = None
    try:
        assert output.wait_for("pyci-test-hook: paused at readiness", 300), output.text()[-3000:]
        assert "topology: remote" in output.text(), output.text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        output.thread.join(timeout=10)
        run_id = cancel._run_id(cluster, output.text())
        assert run_id, output.text()[-2000:]
        ports = cancel.registry_ports(output.text())
        orphans = forwarders_of(cluster)
        assert orphans, "the killed run left no forwarder: the point was not really reached"
        before = cancel.leftovers(cluster, network, run_id, ports, [cluster])
        t0 = time.monotonic()
        done = subprocess.run(cancel.pyci_command(["cleanup", "--run-id", run_id], remote_daemon),
                              env=cancel.env_with_lab({**os.environ, **remote_env}),
                              capture_output=True, text=True, timeout=300)
        took = time.monotonic() - t0
        print(f"remote: SIGKILL left {before} and {len(orphans)} forwarder processes; "
              f"pyci cleanup took {took:.1f}s:\n{done.stdout}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "stopped socat forwarder" in done.stdout, done.stdout
        assert f"removed container {cluster}-pyci-socat" in done.stdout, done.stdout
        assert forwarders_of(cluster) == [], done.stdout
        assert cancel.leftovers(cluster, network, run_id, ports, [cluster, str(app)]) == [], done.stdout
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in forwarders_of(cluster):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid.split()[0]), signal.SIGKILL)
        cancel.sweep(cluster, network, run_id, cancel.registry_ports(output.text()))
