"""Make the cluster API and the registry reachable from this process, whatever the topology.

HOST: what the daemon publishes on 127.0.0.1 is ours. SIBLING: join our own container to the
cluster's docker network and use the internal kubeconfig. REMOTE: a socat container with host
networking on the daemon's machine plus, per port, a local `socat` that pipes each connection through
`docker exec` into it (ctlptl's approach): it needs nothing but the Docker API to be reachable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

from pyci import registry as registry_mod
from pyci.cluster.base import ClusterInfo, write_private
from pyci.registry import RegistryInfo
from pyci.results import InfrastructureError
from pyci.settings import LABEL_CLUSTER, LABEL_MANAGED
from pyci.topology import Kind, Topology

log = logging.getLogger(__name__)

DEFAULT_SOCAT_IMAGE = "alpine/socat"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Reachability:
    kubeconfig: Path  # for tilt and the readiness watch
    registry_host: str  # where this process reaches the registry ("" without one)


def make_reachable(
    client: docker.DockerClient,
    topology: Topology,
    cluster: ClusterInfo,
    registry: RegistryInfo,
    stack: contextlib.ExitStack,
    *,
    socat_image: str = DEFAULT_SOCAT_IMAGE,
    labels: dict[str, str] | None = None,
) -> Reachability:
    """`labels`: the run's own (managed, run id, cluster), put on the forwarding container so that
    `pyci cleanup --run-id` finds it after a run that was killed."""
    if topology.kind is Kind.SIBLING:
        return _sibling(client, topology, cluster, registry, stack)
    if topology.kind is Kind.REMOTE:
        run_labels = labels or {LABEL_MANAGED: "true", LABEL_CLUSTER: cluster.name}
        return _remote(client, cluster, registry, stack, socat_image, run_labels)
    host = f"localhost:{registry.port}" if registry.mode == "local" else registry.host or ""
    return Reachability(cluster.kubeconfig, host)


# --- SIBLING ----------------------------------------------------------------------------------------


def _sibling(
    client: docker.DockerClient,
    topology: Topology,
    cluster: ClusterInfo,
    registry: RegistryInfo,
    stack: contextlib.ExitStack,
) -> Reachability:
    container = topology.network_container  # ours, or the one whose network we share
    if not cluster.network or not container:
        log.warning("no docker network to join: using the cluster's kubeconfig as it is")
        return Reachability(cluster.kubeconfig, registry.host or "")
    if join_network(client, container, cluster.network):
        stack.callback(leave_network, client, container, cluster.network)
    host = registry.host_from_cluster if registry.mode == "local" else registry.host
    return Reachability(cluster.internal_kubeconfig or cluster.kubeconfig, host or "")


def join_network(client: docker.DockerClient, container_id: str, network_name: str) -> bool:
    """Connect our container to the network; False when it already was (then we must not leave)."""
    network = client.networks.get(network_name)
    network.reload()
    if container_id in (network.attrs.get("Containers") or {}):
        return False
    network.connect(container_id)
    log.info("joined docker network %s", network_name)
    return True


def leave_network(client: docker.DockerClient, container_id: str, network_name: str) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.networks.get(network_name).disconnect(container_id, force=True)
        log.info("left docker network %s", network_name)


# --- REMOTE -----------------------------------------------------------------------------------------


def _remote(
    client: docker.DockerClient,
    cluster: ClusterInfo,
    registry: RegistryInfo,
    stack: contextlib.ExitStack,
    socat_image: str,
    labels: dict[str, str],
) -> Reachability:
    kubeconfig_doc = yaml.safe_load(cluster.kubeconfig.read_text())
    api_port = loopback_server_port(kubeconfig_doc, cluster.context)
    wanted = [p for p in (api_port, registry.port if registry.mode == "local" else None) if p]
    if not wanted:
        return Reachability(cluster.kubeconfig, registry.host or "")
    name = socat_container_name(cluster.name)
    start_socat_container(client, name, socat_image, labels)
    stack.callback(registry_mod.remove_container, client, name)
    local: dict[int, int] = {}
    for port in wanted:
        forwarder = start_forwarder(name, port, choose_local_port(port))
        stack.callback(stop_process, forwarder.process)
        local[port] = forwarder.local_port
    kubeconfig = cluster.kubeconfig
    if api_port:
        rewritten = rewrite_server(kubeconfig_doc, cluster.context, f"https://{LOOPBACK}:{local[api_port]}")
        kubeconfig = write_private(
            cluster.kubeconfig.with_name("kubeconfig-forwarded"), yaml.safe_dump(rewritten)
        )
    host = registry.host or ""
    if registry.mode == "local" and registry.port:
        host = f"{LOOPBACK}:{local[registry.port]}"
        registry_mod.wait_healthy(f"http://{host}/v2/", registry.port)
    return Reachability(kubeconfig, host)


def _context_cluster(doc: dict[str, Any], context: str) -> dict[str, Any]:
    contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
    wanted = contexts.get(context) or contexts.get(doc.get("current-context", "")) or {}
    for entry in doc.get("clusters") or []:
        if entry["name"] == wanted.get("cluster"):
            return dict(entry["cluster"])
    raise InfrastructureError(f"kubeconfig has no cluster for context {context}")


def loopback_server_port(doc: dict[str, Any], context: str) -> int | None:
    """The API server's port when it is published on the daemon host's loopback (kind's default)."""
    server = urllib.parse.urlsplit(_context_cluster(doc, context)["server"])
    if server.hostname in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return server.port or 443
    return None


def rewrite_server(doc: dict[str, Any], context: str, server: str) -> dict[str, Any]:
    target = _context_cluster(doc, context)
    out = yaml.safe_load(yaml.safe_dump(doc))  # a deep copy
    for entry in out.get("clusters") or []:
        if entry["cluster"].get("server") == target["server"]:
            entry["cluster"]["server"] = server
    return dict(out)


def socat_container_name(cluster_name: str) -> str:
    return f"{cluster_name}{SOCAT_SUFFIX}"


SOCAT_SUFFIX = "-pyci-socat"


def start_socat_container(client: docker.DockerClient, name: str, image: str, labels: dict[str, str]) -> None:
    """A long-lived container in the daemon host's network namespace that local socats exec into."""
    registry_mod.remove_container(client, name)  # a leftover from a killed run
    try:
        client.containers.run(
            image,
            entrypoint=["/bin/sh", "-c", "while true; do sleep 1000; done"],
            name=name,
            detach=True,
            network_mode="host",
            labels=labels,
        )
    except docker.errors.APIError as err:
        registry_mod.remove_container(client, name)
        raise InfrastructureError(
            f"could not start the port-forwarding container {name} ({image})", str(err)
        ) from err


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def choose_local_port(remote_port: int) -> int:
    """The same number as on the daemon's host when it is free here (fewer surprises), else any."""
    if port_is_free(remote_port):
        return remote_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Forwarder:
    process: subprocess.Popen[bytes]
    local_port: int
    remote_port: int


# How long socat keeps a connection's other direction open after one side ended its sending (a
# half-close). socat's default, 0.5 s, cuts every answer that comes later: a client that sends its
# request and then shuts down its writing side (as `docker exec` does at the end of stdin) lost it.
# The forwarders live as long as the run; cleanup stops them and their connections.
HALF_CLOSE_TIMEOUT = "3600"


def forwarder_command(
    container: str, local_port: int, remote_port: int, docker_bin: str = "docker"
) -> list[str]:
    listen = f"TCP-LISTEN:{local_port},bind={LOOPBACK},fork,reuseaddr"
    # socat itself splits the quoted EXEC string; no shell is involved. Both socats, the local one and
    # the one in the container, wait for the late direction (HALF_CLOSE_TIMEOUT).
    target = (f"EXEC:'{docker_bin} exec -i {container} "
              f"socat -t {HALF_CLOSE_TIMEOUT} STDIO TCP:{LOOPBACK}:{remote_port}'")
    return ["socat", "-t", HALF_CLOSE_TIMEOUT, listen, target]


def start_forwarder(container: str, remote_port: int, local_port: int, timeout: float = 10.0) -> Forwarder:
    if not port_is_free(local_port):
        # Otherwise the readiness probe below would find the other listener and call it ours.
        raise InfrastructureError(
            f"cannot forward port {remote_port}: {LOOPBACK}:{local_port} is already in use"
        )
    command = forwarder_command(container, local_port, remote_port)
    # A file, not a pipe: nobody reads socat's stderr while it runs, and a full pipe would block it.
    errors = tempfile.TemporaryFile()
    try:
        # Its own session, so cleanup can stop the per-connection children and their `docker exec` too.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )
    except FileNotFoundError as err:
        errors.close()
        raise InfrastructureError("socat not found: the REMOTE topology needs socat on PATH") from err
    forwarder = Forwarder(process, local_port, remote_port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
            errors.close()
            raise InfrastructureError(f"socat forwarder for port {remote_port} exited", stderr[-2000:])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            if probe.connect_ex((LOOPBACK, local_port)) == 0:
                errors.close()
                log.info("forwarding %s:%d to port %d on the docker host", LOOPBACK, local_port, remote_port)
                return forwarder
        time.sleep(0.1)
    stop_process(process)
    errors.close()
    raise InfrastructureError(f"socat forwarder on {LOOPBACK}:{local_port} did not start in {timeout:.0f}s")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a forwarder and the children it forked (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


# --- forwarders a killed run left ------------------------------------------------------------------


def orphan_forwarders(container: str, proc: Path = Path("/proc")) -> list[int]:
    """The local socat forwarders that pipe into `container` (a run's socat container), by their
    command line: a run killed with SIGKILL leaves them listening, in sessions of their own.

    Only processes that are socat and exec into exactly that container: nothing else is touched."""
    needle = f"exec -i {container} socat "
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        words = [a.decode(errors="replace") for a in argv if a]
        if words and os.path.basename(words[0]) == "socat" and any(needle in w for w in words[1:]):
            found.append(int(entry.name))
    return sorted(found)


def stop_orphan_forwarder(pid: int, timeout: float = 5.0) -> None:
    """Stop a forwarder and its per-connection children (its process group: it leads its session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                return
            time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
