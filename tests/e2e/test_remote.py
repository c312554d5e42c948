"""REMOTE on a real kind cluster, through the image: CircleCI's docker executor with
setup_remote_docker, where the job runs in pyci's image on one machine and Docker is another machine's
daemon, reached over TCP.

The lab's stand-in (tests/integration/_pyci_helpers.remote_daemon_lab): a network namespace that sees
this machine's daemon only as tcp://10.250.x.1:2375 (a `socat -t 3600` to the daemon's socket); its
loopback is its own, so nothing the daemon publishes on 127.0.0.1 (kind's API server, the registry) is
reachable from it. The job container: the image's root filesystem (docker export) run with
`unshare --root` in that namespace, in a PID namespace of its own. Not a container on that daemon, as
CircleCI's primary container is not one on the remote daemon: pyci must find topology remote by
itself, and it cannot see or join the daemon's networks. The orb's own script (orb/src/scripts/run.sh)
starts pyci, as the tilt-ci-docker job does.

Lab differences: the kind node image and the docker shim (tools/kind-node/shim, first in PATH, with
PYCI_SHIM_CAPBND set to the daemon's capability set, read here from dockerd's /proc status).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, lab_tool
from tests.e2e.test_corpus import (
    KITCHEN_SINK_ARGS,
    SHIM,
    check_kitchen_sink_green,
    corpus_workspace,
    time_to_green,
)
from tests.e2e.test_kind import without_kind_network
from tests.integration._pyci_helpers import RemoteDaemon, remote_daemon_lab

ORB_SCRIPT = REPO / "orb" / "src" / "scripts" / "run.sh"


@pytest.fixture
def remote_daemon() -> Iterator[RemoteDaemon]:
    with remote_daemon_lab() as daemon:
        yield daemon


def dockerd_capbnd() -> str:
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "dockerd":
                status = (proc / "status").read_text()
                return next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd:"))
        except (OSError, StopIteration):
            continue
    pytest.fail("no dockerd process on this machine: the lab's daemon runs here", pytrace=False)


@pytest.fixture
def job_rootfs(image: str, tmp_path: Path) -> Iterator[Path]:
    """The image's files, as CircleCI's primary container would have them."""
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    name = f"pyci-e2e-rootfs-{os.getpid()}"
    subprocess.run(["docker", "create", "--name", name, "--label", "io.pyci.lab=true", image],
                   capture_output=True, check=True, timeout=120)
    try:
        archive = tmp_path / "rootfs.tar"
        subprocess.run(["docker", "export", "--output", str(archive), name], check=True, timeout=300)
        subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(rootfs)], check=True, timeout=300)
        archive.unlink()
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, timeout=60)
    for dev, (major, minor) in {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}.items():
        path = rootfs / "dev" / dev
        path.parent.mkdir(exist_ok=True)
        path.unlink(missing_ok=True)
        os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))  # S_IFCHR
        path.chmod(0o666)
    (rootfs / "etc" / "hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    for folder in ("tmp", "root"):
        (rootfs / folder).mkdir(exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    yield rootfs
    # Every process that ran in it is gone (its PID namespace died with the orb's script).
    inside = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _root_of(p) == rootfs]
    shutil.rmtree(rootfs, ignore_errors=True)
    assert inside == [], f"processes left running in the job's root: {inside}"


def _root_of(proc: Path) -> Path | None:
    try:
        return Path(os.readlink(proc / "root"))
    except OSError:
        return None


def run_in_the_job(daemon: RemoteDaemon, rootfs: Path, workdir: str, env: dict[str, str],
                   *command: str) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", daemon.netns,
           "unshare", "--pid", "--fork", "--mount-proc", "--root", str(rootfs), "--wd", workdir, *command]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_kitchen_sink_is_green_against_a_remote_daemon(image: str, node_image: str, docker_client,
                                                       remote_daemon: RemoteDaemon, job_rootfs: Path,
                                                       lab_images) -> None:
    project = corpus_workspace(job_rootfs / "root" / "project", "kitchen-sink")
    (job_rootfs / "orb").mkdir()
    shutil.copy(ORB_SCRIPT, job_rootfs / "orb" / "run.sh")
    shutil.copytree(SHIM, job_rootfs / "shim")
    cluster = f"e2e-remote-{os.getpid()}"
    had_kind_network = bool(docker_client.networks.list(names=["kind"]))
    # What CircleCI and the orb's run-pyci command set in the docker executor's primary container.
    env = {"CIRCLECI": "true", "CI": "true", "CIRCLE_WORKING_DIRECTORY": "/root/project", "HOME": "/root",
           "PATH": "/shim:/usr/local/bin:/usr/bin:/bin", "DOCKER_HOST": remote_daemon.docker_host,
           "PYCI_IMAGE": image, "PYCI_WORKING_DIRECTORY": "kitchen-sink", "PYCI_CLUSTER_NAME": cluster,
           "PYCI_NODE_IMAGE": node_image, "PYCI_REGISTRY_IMAGE": lab_images.registry,
           "PYCI_SOCAT_IMAGE": lab_images.socat, "PYCI_TILT_ARGS": KITCHEN_SINK_ARGS,
           "PYCI_TIMEOUT": "4m", "PYCI_WAIT_TIMEOUT": "1m",
           "CORPUS_EXTENSIONS": "file:///root/project/extensions-repo",
           "PYCI_SHIM_CAPBND": dockerd_capbnd()}
    started = time.monotonic()
    try:
        done = run_in_the_job(remote_daemon, job_rootfs, "/root/project", env, "/bin/sh", "/orb/run.sh")
    finally:
        wall = time.monotonic() - started
        leftovers = _leftovers(docker_client, cluster)
        _sweep(cluster)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-8000:]
    assert "topology: remote" in done.stdout, done.stdout[-3000:]
    assert "forwarding 127.0.0.1:" in log, log[-3000:]  # the API server and the registry, via socat
    outputs = _circleci_outputs(job_rootfs / "tmp" / "pyci" / "outputs.env")
    assert outputs["PYCI_OUTPUT_RESULT"] == "success", outputs
    assert outputs["PYCI_OUTPUT_CLUSTER_NAME"] == cluster
    junit = job_rootfs / outputs["PYCI_OUTPUT_JUNIT"].lstrip("/")
    assert junit == job_rootfs / "tmp" / "pyci" / "test-results" / "pyci-junit.xml"  # store_test_results
    summary = (job_rootfs / "tmp" / "pyci" / "artifacts" / "summary.md").read_text()  # store_artifacts
    check_kitchen_sink_green(log, junit, summary)
    assert ET.parse(junit).getroot().get("failures") in ("0", None)
    time_to_green("kitchen-sink", "remote", wall, outputs["PYCI_OUTPUT_DURATION"], junit)
    assert leftovers == [], leftovers
    registry = outputs["PYCI_OUTPUT_REGISTRY"]  # as the daemon's host sees it: localhost:<port>
    assert registry.startswith("localhost:"), registry
    tags = [t for i in docker_client.images.list() for t in i.tags if t.startswith(f"{registry}/")]
    assert tags == [], tags  # tilt's tilt-<hash> tags go with the registry
    if not had_kind_network:
        without_kind_network(docker_client)
    assert project.is_dir()


def _circleci_outputs(path: Path) -> dict[str, str]:
    """outputs.env: `export PYCI_OUTPUT_<NAME>=<shell-quoted value>` lines."""
    found = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        found[name] = shlex.split(value)[0] if value else ""
    return found


def _leftovers(docker_client, cluster: str) -> list[str]:
    """What pyci must have removed itself: checked before the sweep."""
    found = [f"cluster {cluster}"] if cluster in _kind_clusters() else []
    for label in (f"io.pyci.cluster={cluster}", f"io.x-k8s.kind.cluster={cluster}"):
        found += [c.name for c in docker_client.containers.list(all=True, filters={"label": label})]
    marker = {"label": f"io.pyci.owns-cluster={cluster}"}
    found += [v.name for v in docker_client.volumes.list(filters=marker)]
    return found


def _kind_clusters() -> list[str]:
    done = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    return done.stdout.split()


def _sweep(cluster: str) -> None:
    if cluster in _kind_clusters():
        subprocess.run([str(lab_tool("kind")), "delete", "cluster", "--name", cluster], capture_output=True,
                       timeout=180)
