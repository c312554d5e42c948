"""Where the Docker daemon is, seen from this process: HOST, SIBLING or REMOTE.

HOST: the daemon shares our network (published ports on 127.0.0.1 are ours).
SIBLING: we are a container on that daemon (socket mounted); its loopback is not ours, but we can
join its networks. REMOTE: the daemon is another machine (DOCKER_HOST tcp:// or ssh://) and we are
not one of its containers; nothing it publishes is reachable from us.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from pyci.results import InputError

log = logging.getLogger(__name__)

_CONTAINER_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class Kind(enum.Enum):
    HOST = "host"
    SIBLING = "sibling"
    REMOTE = "remote"


@dataclass(frozen=True)
class Topology:
    kind: Kind
    own_container_id: str | None
    evidence: str
    # The container whose network namespace ours is, when we share another's (`--network
    # container:<id>`, as act runs a docker action in its job container's network); None: our own.
    network_container_id: str | None = None

    @property
    def network_container(self) -> str | None:
        """The container to connect to networks (and to read networks from): ours or its owner."""
        return self.network_container_id or self.own_container_id


@dataclass(frozen=True)
class DockerHost:
    """DOCKER_HOST split into what decides the topology."""

    scheme: str  # unix | npipe | tcp | ssh | http | https
    host: str  # "" for sockets

    @property
    def is_network(self) -> bool:
        return self.scheme in ("tcp", "ssh", "http", "https")


def parse_docker_host(value: str | None) -> DockerHost:
    if not value:
        return DockerHost("unix", "")
    parsed = urllib.parse.urlsplit(value)
    return DockerHost(parsed.scheme or "unix", parsed.hostname or "")


def is_local_address(host: str) -> bool:
    """True when `host` names this machine (loopback, or an address we can bind to)."""
    if not host or host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    for family, _, _, _, sockaddr in infos:
        address = str(sockaddr[0])
        if address.startswith("127.") or address == "::1":
            return True
        # Binding succeeds only for an address of one of our own interfaces.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, 0))
                return True
            except OSError:
                continue
    return False


def container_id_candidates(cgroup: str, mountinfo: str) -> list[str]:
    """Container ids that /proc/self/cgroup (v1) or /proc/self/mountinfo (v2) mention, best first."""
    found: list[str] = []
    for line in cgroup.splitlines():
        found.extend(_CONTAINER_ID.findall(line))
    for line in mountinfo.splitlines():
        # Docker bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from
        # /var/lib/docker/containers/<id>/; overlay paths hold layer ids, not container ids.
        if "/containers/" in line and any(f in line for f in ("/hostname", "/hosts", "/resolv.conf")):
            found.extend(_CONTAINER_ID.findall(line.split("/containers/", 1)[1]))
    return list(dict.fromkeys(found))


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def find_own_container(client: docker.DockerClient, candidates: list[str], hostname: str) -> str | None:
    """The full id of the container we run in, if it is on this daemon."""
    for candidate in candidates:
        try:
            return str(client.containers.get(candidate).id)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as err:
            log.debug("inspecting %s: %s", candidate[:12], err)
    if hostname:
        # Docker's default hostname is the short id; check the container really has it.
        try:
            container = client.containers.get(hostname)
        except (docker.errors.NotFound, docker.errors.APIError):
            return None
        if container.attrs.get("Config", {}).get("Hostname") == hostname:
            return str(container.id)
    return None


def detect(client: docker.DockerClient, override: str = "auto") -> Topology:
    if override not in ("auto", "host", "sibling", "remote"):
        raise InputError(f"topology must be auto, host, sibling or remote, not {override!r}")
    docker_host = parse_docker_host(os.environ.get("DOCKER_HOST"))
    hostname = socket.gethostname()
    candidates = container_id_candidates(_read("/proc/self/cgroup"), _read("/proc/self/mountinfo"))
    own_id = find_own_container(client, candidates, hostname)
    evidence = [
        f"DOCKER_HOST={docker_host.scheme}://{docker_host.host}",
        f"/.dockerenv {'present' if os.path.exists('/.dockerenv') else 'absent'}",
        f"container id candidates from /proc: {[c[:12] for c in candidates] or 'none'}",
        f"own container on daemon: {own_id[:12] if own_id else 'not found'} (hostname {hostname})",
    ]
    try:
        evidence.append(f"daemon name {client.info().get('Name')!r}")
    except docker.errors.APIError as err:
        evidence.append(f"daemon info failed: {err}")

    net_owner = network_owner(client, own_id) if own_id else None
    if net_owner:
        evidence.append(f"our container shares the network of container {net_owner[:12]}")
    host_network = own_id is not None and uses_host_network(client, net_owner or own_id)
    if host_network:
        evidence.append("our container uses the host network: the daemon's loopback is ours")
    kind = classify(docker_host, own_id, host_network)
    if override != "auto":
        evidence.append(f"auto-detection said {kind.value}; overridden by topology input")
        kind = Kind(override)
        if kind is Kind.SIBLING and own_id is None:
            raise InputError(
                "topology: sibling, but this process is not a container on the Docker daemon",
                "; ".join(evidence),
            )
    result = Topology(kind, own_id, "; ".join(evidence), net_owner)
    log.info("topology %s: %s", result.kind.value, result.evidence)
    return result


def network_owner(client: docker.DockerClient, container_id: str, hops: int = 5) -> str | None:
    """The container whose network namespace `container_id` joined (`container:<id>`), or None."""
    owner = None
    current = container_id
    for _ in range(hops):  # container:a -> container:b -> ...: follow to the one that owns it
        try:
            mode = str(client.containers.get(current).attrs["HostConfig"]["NetworkMode"])
        except (docker.errors.APIError, KeyError):
            return owner
        if not mode.startswith("container:"):
            return owner
        try:
            current = str(client.containers.get(mode.removeprefix("container:")).id)
        except docker.errors.APIError:
            return owner
        owner = current
    return owner


def uses_host_network(client: docker.DockerClient, container_id: str) -> bool:
    try:
        mode = client.containers.get(container_id).attrs["HostConfig"]["NetworkMode"]
    except (docker.errors.APIError, KeyError):
        return False
    return bool(mode == "host")


def classify(docker_host: DockerHost, own_container_id: str | None, host_network: bool = False) -> Kind:
    if own_container_id:
        # `docker run --network host` shares the daemon host's loopback: published ports are ours.
        return Kind.HOST if host_network else Kind.SIBLING
    if docker_host.is_network and not is_local_address(docker_host.host):
        return Kind.REMOTE
    # Either the daemon is local and we are not one of its containers (a host process, or a
    # container running its own dockerd), or we could not find ourselves: HOST is the safe guess.
    return Kind.HOST
