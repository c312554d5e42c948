"""A local registry on docker networks: joined to kind's network (where docker may move its host port)
or, for a health check from a sibling container, to ours."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import docker
import docker.errors
from docker.models.containers import Container

from pyci.cluster.base import ClusterInfo
from pyci.registry.info import REGISTRY_PORT, RegistryInfo
from pyci.results import InfrastructureError

log = logging.getLogger(__name__)


def published_port(container: Container) -> int:
    """The host port docker publishes the registry on (joining a network may move it)."""
    container.reload()
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{REGISTRY_PORT}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    raise InfrastructureError(f"registry {container.name} has no published port (is it running?)")


def shared_address(
    client: docker.DockerClient, container: Container, own_id: str
) -> tuple[str | None, str | None]:
    """The registry's IP on a network our own container is on, and the network it joined to get one."""
    own_networks = client.containers.get(own_id).attrs["NetworkSettings"]["Networks"] or {}
    container.reload()
    theirs = container.attrs["NetworkSettings"]["Networks"] or {}
    for network in own_networks:
        if network in theirs and theirs[network].get("IPAddress"):
            return str(theirs[network]["IPAddress"]), None
    for network in own_networks:
        if network in ("host", "none"):
            continue
        connect_network(client, str(container.name), network)
        container.reload()
        return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]), network
    return None, None


def join_cluster_network(
    client: docker.DockerClient, info: RegistryInfo, cluster: ClusterInfo
) -> RegistryInfo:
    """Put a local registry on the cluster's network, and return its info with the host port it has
    once there: Docker 20.10 re-picks an ephemeral (port 0) binding when the container joins a
    network, so a port read before that is stale and tilt's pushes would be refused."""
    return _join(client, info, cluster.network)


def join_network_when_made(client: docker.DockerClient, info: RegistryInfo, network: str,
                           cancel: threading.Event, timeout: float = 60.0) -> RegistryInfo:
    """Join the network as soon as kind has made it (kind makes it before its nodes), so that the
    registry's host port is final while kind still boots; unchanged info when it never appears."""
    deadline = time.monotonic() + timeout
    while not cancel.is_set() and time.monotonic() < deadline:
        if any(n.name == network for n in client.networks.list(names=[network])):
            return _join(client, info, network)
        cancel.wait(0.25)  # kind makes it within a second of starting; no event stream for that
    return info


def _join(client: docker.DockerClient, info: RegistryInfo, network: str | None) -> RegistryInfo:
    if info.mode != "local" or not (network and info.container_name):
        return info
    connect_network(client, info.container_name, network)
    port = published_port(client.containers.get(info.container_name))
    if port == info.port:
        return info
    log.info("registry %s: docker moved its host port from %s to %d on joining %s",
             info.container_name, info.port, port, network)
    return dataclasses.replace(info, host=f"localhost:{port}", prefix=f"localhost:{port}", port=port)


def connect_network(client: docker.DockerClient, container_name: str, network_name: str) -> None:
    """Join the container to the network; doing it twice is fine."""
    network = client.networks.get(network_name)
    try:
        network.connect(container_name)
    except docker.errors.APIError as err:
        if "already exists" not in str(err) and "already attached" not in str(err):
            raise InfrastructureError(
                f"could not connect {container_name} to network {network_name}", str(err)
            ) from err
    log.info("%s is on docker network %s", container_name, network_name)
