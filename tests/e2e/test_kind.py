"""The product end to end on a real kind cluster: `pyci run` with its defaults (cluster: kind,
registry: local) on the bundled examples, on this machine's daemon (topology host).

The node image is the lab's, built offline by tools/build-kind-node (no kindest/node can be pulled
here): systemd, containerd, a real kubelet and kube-proxy, CoreDNS and the control plane as static
pods, pod networking by a static bridge CNI config (single node). The only lab workaround is
tools/kind-node/shim/docker, first in PATH: this daemon lacks CAP_SYS_RESOURCE, so `--privileged`,
which kind asks for every node, fails; the shim turns it into every capability the daemon has.
Here, unlike on the kwok control plane, containers really run: a crash loop is a process that
exits, and its log lines are real.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import LAB_BIN, REPO, lab_tool
from tests.lab.github import read_outputs

SHIM = REPO / "tools" / "kind-node" / "shim"


def without_kind_network(docker_client) -> None:
    """Start as a fresh runner would: kind has not made its network yet, so this run makes it."""
    for net in docker_client.networks.list(names=["kind"]):
        net.reload()
        if net.name == "kind" and not net.attrs.get("Containers"):
            net.remove()


def pyci_command(tmp_path: Path, example: str, cluster: str | None, node_image: str,
                 *extra: str) -> tuple[list[str], dict[str, str], Path]:
    """`pyci run` as a GitHub job step would start it on a runner (outputs and summary as files);
    cluster None: pyci's default, a name of the run's own."""
    files = tmp_path / "github"
    files.mkdir(parents=True)
    env = dict(os.environ, PATH=f"{SHIM}{os.pathsep}{LAB_BIN}{os.pathsep}{os.environ['PATH']}",
               GITHUB_ACTIONS="true", GITHUB_RUN_ID="4242", GITHUB_RUN_ATTEMPT="1",
               GITHUB_OUTPUT=str(files / "output"), GITHUB_STEP_SUMMARY=str(files / "summary"))
    cmd = [sys.executable, "-m", "pyci", "run",
           "--working-directory", str(REPO / "examples" / example),
           *(["--cluster-name", cluster] if cluster else []), "--node-image", node_image,
           "--registry-image", "pyci-lab/registry:latest",
           "--junit", str(tmp_path / "junit.xml"), "--artifacts-dir", str(tmp_path / "artifacts"),
           "--timeout", "5m", "--tilt-args=--base-image=pyci-lab/base:latest", *extra]
    return cmd, env, files


def pyci_run(tmp_path: Path, example: str, cluster: str | None, node_image: str,
             *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    cmd, env, files = pyci_command(tmp_path, example, cluster, node_image, *extra)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return done, files


def assert_nothing_left(docker_client, cluster: str, registry: str, kind_network: bool = True) -> None:
    clusters = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                              timeout=60)
    assert cluster not in clusters.stdout.split(), clusters.stdout
    for label in (f"io.pyci.cluster={cluster}", f"io.x-k8s.kind.cluster={cluster}"):
        left = docker_client.containers.list(all=True, filters={"label": label})
        assert left == [], [c.name for c in left]
    markers = docker_client.volumes.list(filters={"label": f"io.pyci.owns-cluster={cluster}"})
    assert markers == [], [v.name for v in markers]
    # kind makes the network "kind" and never removes it; the run that made it does.
    if kind_network:
        assert "kind" not in {n.name for n in docker_client.networks.list()}
    assert registry.startswith("localhost:"), registry
    tags = [t for i in docker_client.images.list() for t in i.tags if t.startswith(f"{registry}/")]
    assert tags == []  # tilt's <registry>/<image>:tilt-<hash> tags go with the registry


@contextlib.contextmanager
def checked_cleanup(docker_client, cluster: str, kind_network: bool = True) -> Iterator[dict[str, str]]:
    """Check that pyci itself removed everything, and only then sweep what it left for the next test.

    The check runs before the sweep: a pyci that forgot to delete its cluster fails here.
    """
    found = {"registry": "localhost:unknown"}
    try:
        yield found
        assert_nothing_left(docker_client, cluster, found["registry"], kind_network)
    finally:
        kind = str(lab_tool("kind"))
        clusters = subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, timeout=60)
        if cluster in clusters.stdout.split():
            subprocess.run([kind, "delete", "cluster", "--name", cluster], capture_output=True, timeout=120)


def failures(junit: Path) -> dict[str, str]:
    root = ET.parse(junit).getroot()
    return {case.get("name", ""): f"{failure.get('type')}: {failure.get('message') or ''}"
            for case in root.iter("testcase") if (failure := case.find("failure")) is not None}


def test_hello_is_healthy_on_a_real_kind_cluster(tmp_path: Path, node_image: str, docker_client) -> None:
    cluster = f"e2e-hello-{os.getpid()}"
    without_kind_network(docker_client)
    with checked_cleanup(docker_client, cluster) as found:
        done, files = pyci_run(tmp_path, "hello", cluster, node_image)
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-6000:]
        assert "topology: host" in log, log[-3000:]
        outputs = read_outputs(files / "output")
        found["registry"] = outputs["registry"]
        assert outputs["result"] == "success", outputs
        assert outputs["cluster-name"] == cluster
        assert failures(tmp_path / "junit.xml") == {}
        cases = {c.get("name") for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
        assert {"api", "web", "migrate"} <= cases, cases
        summary = (files / "summary").read_text()
        assert "`api`" in summary and "`migrate`" in summary


def test_host_limits_then_green_with_node_image_winning_over_kubernetes_version(
        tmp_path: Path, node_image: str, docker_client) -> None:
    """Issue 22: the host limits stage runs before anything is made; where it raised inotify (root on
    this host, where instances are 128) the run is green and the old values are back after it; the
    lab's node image wins over kubernetes-version, in one line."""
    inotify = Path("/proc/sys/fs/inotify")
    names = ("max_user_instances", "max_user_watches")
    before = {n: int((inotify / n).read_text()) for n in names}
    may_raise = os.geteuid() == 0 and all(os.access(inotify / n, os.W_OK) for n in names)
    cluster = f"e2e-limits-{os.getpid()}"
    without_kind_network(docker_client)
    with checked_cleanup(docker_client, cluster) as found:
        done, files = pyci_run(tmp_path, "hello", cluster, node_image, "--kubernetes-version", "1.33")
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-6000:]
        found["registry"] = read_outputs(files / "output")["registry"]
        assert f"node-image {node_image} wins over kubernetes-version 1.33.4" in log, log[-3000:]
        cases = {c.get("name") for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
        assert "host limits" in cases, cases
        if may_raise and before["max_user_instances"] < 512:
            assert f"fs.inotify.max_user_instances: raised from {before['max_user_instances']} to 512" in log
            assert f"fs.inotify.max_user_instances: restored to {before['max_user_instances']}" in log
    assert {n: int((inotify / n).read_text()) for n in names} == before


def test_a_crashing_api_fails_the_run_with_its_real_log(tmp_path: Path, node_image: str,
                                                         docker_client) -> None:
    cluster = f"e2e-broken-{os.getpid()}"
    without_kind_network(docker_client)
    with checked_cleanup(docker_client, cluster) as found:
        done, files = pyci_run(tmp_path, "broken", cluster, node_image, "--wait-timeout", "3m")
        log = done.stdout + done.stderr
        assert done.returncode == 1, log[-6000:]
        outputs = read_outputs(files / "output")
        found["registry"] = outputs["registry"]
        assert outputs["result"] == "failure", outputs
        failed = failures(tmp_path / "junit.xml")
        # The failure's type, exactly (a substring such as "Error" would match any failure at all).
        assert "api" in failed and failed["api"].startswith("CrashLoopBackOff: "), failed
        assert "crash" in failed["api"], failed  # "crashes on start" / "keeps crashing"
        # The container really ran: its own last words are in the report and the bundle.
        assert "DATABASE_URL is not set" in (tmp_path / "junit.xml").read_text()
        bundle = tmp_path / "artifacts" / "diagnostics"
        logs = [p.read_text(errors="replace") for p in bundle.rglob("*.log")]
        assert any("DATABASE_URL is not set" in text for text in logs), sorted(map(str, bundle.rglob("*")))
