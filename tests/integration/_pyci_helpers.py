"""Small helpers shared by the integration tests of topology, registry, kind and network."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from tests.conftest import lab_missing


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tiny_image(client: docker.DockerClient, repository: str, tag: str = "it") -> str:
    """A one-file image made with `docker import`: nothing to pull, seconds to push."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        content = repository.encode()
        entry = tarfile.TarInfo("hello.txt")
        entry.size = len(content)
        tar.addfile(entry, io.BytesIO(content))
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag)
    return f"{repository}:{tag}"


def remove_image(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
        client.images.remove(ref, force=True)


def push(client: docker.DockerClient, ref: str) -> None:
    repository, _, tag = ref.rpartition(":")
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise AssertionError(f"push {ref}: {line['error']}")


@contextlib.contextmanager
def running_container(
    client: docker.DockerClient, image: str, **kwargs: object
) -> Iterator[docker.models.containers.Container]:
    name = kwargs.pop("name", None) or unique("pyci-it")
    container = client.containers.run(image, ["sleep", "infinity"], name=name, detach=True, **kwargs)
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


@contextlib.contextmanager
def network(
    client: docker.DockerClient, prefix: str = "kind-test"
) -> Iterator[docker.models.networks.Network]:
    net = client.networks.create(unique(prefix), driver="bridge", labels={"io.pyci.test": "true"})
    try:
        yield net
    finally:
        net.reload()
        for container_id in net.attrs.get("Containers") or {}:
            with contextlib.suppress(docker.errors.APIError):
                net.disconnect(container_id, force=True)
        net.remove()


SOURCE = Path(__file__).resolve().parents[2] / "entrypoint"


def host_site_packages() -> str:
    """Where this interpreter's docker/requests/yaml/kubernetes live; mounted read-only into lab containers.

    The lab base image has python3 (3.11) but none of these libraries; the host's are pure Python or
    cp311 builds against the same glibc, so they import there unchanged.
    """
    return os.path.dirname(os.path.dirname(docker.__file__))


def run_pyci_in_container(
    client: docker.DockerClient, image: str, script: str, timeout: float = 120, **kwargs: Any
) -> tuple[int, str, str]:
    """Run `script` with pyci in a sibling container; returns (exit code, output, container id)."""
    container = client.containers.run(
        image,
        ["python3", "-c", script],
        name=unique("pyci-it-sibling"),
        detach=True,
        environment={"PYTHONPATH": "/src:/hostsite"},
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(SOURCE): {"bind": "/src", "mode": "ro"},
            host_site_packages(): {"bind": "/hostsite", "mode": "ro"},
        },
        **kwargs,
    )
    try:
        status = container.wait(timeout=timeout)
        return int(status["StatusCode"]), container.logs().decode(errors="replace"), str(container.id)
    finally:
        container.remove(force=True, v=True)


@dataclass(frozen=True)
class RemoteDaemon:
    """The lab's stand-in for a remote Docker host.

    A network namespace made for the test, linked to this machine by a veth pair on a private
    10.250.x.0/30, sees the daemon only as tcp://10.250.x.1:2375 (a socat on this machine's end of the
    pair, forwarding to the daemon's socket). Its loopback is its own, so nothing the daemon publishes
    on 127.0.0.1 is reachable from it: the situation of a CircleCI `setup_remote_docker` job.
    """

    netns: str
    docker_host: str

    def run_python(self, script: str, timeout: float = 180) -> tuple[int, str]:
        env = {**os.environ, "DOCKER_HOST": self.docker_host, "PYTHONPATH": str(SOURCE)}
        result = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        return result.returncode, result.stdout + result.stderr


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def remote_daemon_lab() -> Iterator[RemoteDaemon]:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("socat"):
        lab_missing("the remote-daemon lab: root, iproute2 (`ip`) and socat on PATH")
    tag = uuid.uuid4().hex[:6]
    netns, outer, inner = f"pyci-rd-{tag}", f"vh{tag}", f"vn{tag}"
    subnet = f"10.250.{int(tag[:2], 16) % 250 + 1}"
    forwarder: subprocess.Popen[bytes] | None = None
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", netns)
        _ip("addr", "add", f"{subnet}.1/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", netns, "addr", "add", f"{subnet}.2/30", "dev", inner)
        _ip("-n", netns, "link", "set", inner, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        forwarder = subprocess.Popen(
            # -t 3600: with socat's default 0.5 s half-close timeout, `docker exec` streams are cut
            # 0.5 s after the client ends stdin (kind create then fails: LAB.md).
            ["socat", "-t", "3600", f"TCP-LISTEN:2375,bind={subnet}.1,fork,reuseaddr",
             "UNIX-CONNECT:/var/run/docker.sock"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex((f"{subnet}.1", 2375)) == 0:
                    break
            time.sleep(0.1)
        yield RemoteDaemon(netns, f"tcp://{subnet}.1:2375")
    finally:
        if forwarder is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(forwarder.pid, signal.SIGTERM)
            forwarder.wait(10)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "link", "del", outer], capture_output=True, timeout=30, check=False)


def last_json(output: str) -> dict:
    """The JSON object a containerised pyci call printed last."""
    return json.loads(output.strip().splitlines()[-1])
