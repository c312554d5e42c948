"""Runs that share one daemon, and runs cut short, on a real kind cluster (issue 12).

- Two runs started together with default inputs each get a cluster and a registry of their own.
- SIGTERM while `kind create` runs: exit 130 and nothing left (it used to orphan the cluster).
- SIGKILL of the whole run (what `docker kill` does to an action's container and its children) while
  `kind create` runs: the ownership marker made before kind started lets `pyci cleanup` remove
  everything, and a kind cluster a user made by hand on the same daemon survives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LAB_BIN, lab_tool
from tests.e2e.test_kind import (
    SHIM,
    assert_nothing_left,
    checked_cleanup,
    pyci_command,
    without_kind_network,
)
from tests.lab.github import read_outputs

OWNS = "io.pyci.owns-cluster"


def kind_clusters() -> list[str]:
    done = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    return done.stdout.split()


def wait_for(what: str, check, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.2)


def node_started(docker_client, cluster: str) -> bool:
    return bool(docker_client.containers.list(filters={"label": f"io.x-k8s.kind.cluster={cluster}"}))


def test_two_runs_with_default_inputs_each_get_their_own_cluster(tmp_path: Path, node_image: str,
                                                                   docker_client) -> None:
    """The second starts once the first's kind made the `kind` network: only the first made it. When the
    first ends while the second's nodes are still on it, it hands the network over and the second
    removes it (before, the empty network stayed: seen in a side-by-side suite run)."""
    without_kind_network(docker_client)
    runs = []
    for i in (1, 2):
        if i == 2:
            wait_for("kind's network", lambda: "kind" in {n.name for n in docker_client.networks.list()}, 60)
        cmd, env, files = pyci_command(tmp_path / f"run{i}", "hello", None, node_image)
        runs.append((subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True), files))
    names, registries = [], []
    try:
        for proc, files in runs:
            log = proc.communicate(timeout=600)[0]
            assert proc.returncode == 0, log[-5000:]
            outputs = read_outputs(files / "output")
            assert outputs["result"] == "success"
            names.append(outputs["cluster-name"])
            registries.append(outputs["registry"])
    finally:
        for proc, _ in runs:
            if proc.poll() is None:
                proc.kill()
    assert len(set(names)) == 2 and all(n.startswith("pyci-") for n in names), names
    assert len(set(registries)) == 2, registries
    for name, registry in zip(names, registries, strict=True):
        assert_nothing_left(docker_client, name, registry)
    assert not docker_client.volumes.list(filters={"label": "io.pyci.made-network"})


@pytest.mark.nightly  # README: test_cancel's kind-early, kind-middle and kind-late cut kind create every run
def test_sigterm_during_kind_create_leaves_nothing(tmp_path: Path, node_image: str, docker_client) -> None:
    cluster = f"e2e-term-{os.getpid()}"
    without_kind_network(docker_client)
    with checked_cleanup(docker_client, cluster):
        cmd, env, _ = pyci_command(tmp_path, "hello", cluster, node_image)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for("kind's node container", lambda: node_started(docker_client, cluster))
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            log = proc.communicate(timeout=60)[0]
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, log[-4000:]
        assert took < 30, took
        assert cluster not in kind_clusters(), log[-3000:]


def test_sigkill_then_pyci_cleanup_removes_the_run_and_spares_a_users_cluster(
        tmp_path: Path, node_image: str, docker_client) -> None:
    cluster, users = f"e2e-kill-{os.getpid()}", f"e2e-user-{os.getpid()}"
    env = dict(os.environ, PATH=f"{SHIM}{os.pathsep}{LAB_BIN}{os.pathsep}{os.environ['PATH']}")
    user = subprocess.Popen([str(lab_tool("kind")), "create", "cluster", "--name", users,
                             "--image", node_image, "--wait", "0s"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # The user's cluster keeps kind's network: the one thing of kind's a run may not remove.
        with checked_cleanup(docker_client, cluster, kind_network=False):
            cmd, run_env, _ = pyci_command(tmp_path, "hello", cluster, node_image)
            # Its own session: the kill takes pyci and every child (kind) at once, as `docker kill` does.
            proc = subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                wait_for("kind's node container", lambda: node_started(docker_client, cluster))
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
            assert user.wait(timeout=300) == 0, user.stderr.read() if user.stderr else ""
            markers = docker_client.volumes.list(filters={"label": f"{OWNS}={cluster}"})
            assert len(markers) == 1, "no ownership marker: cleanup could not know the cluster is the run's"
            run_id = markers[0].attrs["Labels"]["io.pyci.run"]
            done = subprocess.run([sys.executable, "-m", "pyci", "cleanup", "--run-id", run_id], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"kind cluster {cluster}" in done.stdout, done.stdout
            assert users in kind_clusters()  # a user's own cluster is never a run's
            registries = docker_client.containers.list(all=True, filters={"label": f"io.pyci.run={run_id}"})
            assert registries == [], [c.name for c in registries]
    finally:
        if user.poll() is None:
            user.kill()
        subprocess.run([str(lab_tool("kind")), "delete", "cluster", "--name", users], env=env,
                       capture_output=True, timeout=120)


@pytest.fixture(autouse=True)
def _no_kind_network_left(docker_client):
    yield
    without_kind_network(docker_client)
