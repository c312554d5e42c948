"""The local registry container (kind's local-registry recipe): created, or reused when one of ours is
healthy, on the daemon host's 127.0.0.1, and checked with GET /v2/ from wherever pyci runs."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import docker
import docker.errors
import requests
from docker.models.containers import Container

from pyci import testhook
from pyci.registry.info import REGISTRY_PORT, RegistryInfo, labels, registry_name
from pyci.registry.networks import published_port, shared_address
from pyci.results import InfrastructureError
from pyci.settings import LABEL_MANAGED, Settings
from pyci.topology import Kind, Topology

log = logging.getLogger(__name__)


def provision_local(
    settings: Settings, client: docker.DockerClient, topology: Topology, stack: contextlib.ExitStack,
    cancel: threading.Event | None = None,
) -> RegistryInfo:
    name = registry_name(settings.cluster_name)
    container = reuse_registry(client, name, topology)
    if container is None:
        container = create_registry(
            client, name, settings.registry_image, settings.registry_port, labels(settings)
        )
        stack.callback(remove_container, client, name)
        testhook.pause("registry", cancel)
        check_health(client, container, topology)
    port = published_port(container)
    log.info("local registry %s at 127.0.0.1:%d (cluster side %s:%d)", name, port, name, REGISTRY_PORT)
    return RegistryInfo(
        mode="local",
        host=f"localhost:{port}",
        host_from_cluster=f"{name}:{REGISTRY_PORT}",
        container_name=name,
        prefix=f"localhost:{port}",
        port=port,
    )


def find_container(client: docker.DockerClient, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def reuse_registry(client: docker.DockerClient, name: str, topology: Topology) -> Container | None:
    """A running, healthy pyci registry of that name; a broken one of ours is removed."""
    container = find_container(client, name)
    if container is None:
        return None
    if container.labels.get(LABEL_MANAGED) != "true":
        raise InfrastructureError(
            f"a container named {name} exists but pyci did not create it: "
            "remove it or use another cluster-name"
        )
    if container.status == "running":
        try:
            check_health(client, container, topology, attempts=2)
            log.info("reusing healthy registry %s (it will not be removed)", name)
            return container
        except InfrastructureError as err:
            log.warning("registry %s is not healthy (%s): recreating it", name, err.message)
    container.remove(force=True, v=True)
    return None


def create_registry(
    client: docker.DockerClient, name: str, image: str, port: int, container_labels: dict[str, str]
) -> Container:
    """Start the registry on 127.0.0.1 only; port 0, or a port already taken, lets docker pick one."""
    try:
        return _run_registry(client, name, image, port or None, container_labels)
    except docker.errors.APIError as err:
        if not port or not _is_port_conflict(err):
            raise InfrastructureError(
                f"could not start registry {name} ({image}) on port {port}", str(err)
            ) from err
        log.warning("registry port %d is already in use on the docker host; letting docker pick one", port)
    try:
        return _run_registry(client, name, image, None, container_labels)
    except docker.errors.APIError as err:
        raise InfrastructureError(f"could not start registry {name} ({image})", str(err)) from err


def _is_port_conflict(err: docker.errors.APIError) -> bool:
    text = str(err)
    return "port is already allocated" in text or "address already in use" in text


def _run_registry(
    client: docker.DockerClient, name: str, image: str, port: int | None, container_labels: dict[str, str]
) -> Container:
    try:
        return client.containers.run(
            image,
            name=name,
            detach=True,
            labels=container_labels,
            ports={f"{REGISTRY_PORT}/tcp": ("127.0.0.1", port)},
            environment={"REGISTRY_STORAGE_DELETE_ENABLED": "true"},
        )
    except docker.errors.APIError:
        # A container that was created but could not start (port taken) still holds the name.
        remove_container(client, name)
        raise



def check_health(
    client: docker.DockerClient, container: Container, topology: Topology, attempts: int = 8
) -> None:
    """GET /v2/ from wherever this process can reach the registry.

    HOST: the published port. SIBLING: the registry's address on a network our container is on; when
    none is shared the registry joins ours just for the check, so nothing lingers on the user's
    network. REMOTE: not reachable yet; network.make_reachable checks it through its forwarder.
    """
    port = published_port(container)
    if topology.kind is Kind.HOST:
        wait_healthy(f"http://127.0.0.1:{port}/v2/", port, attempts)
    elif topology.kind is Kind.SIBLING and topology.own_container_id:
        address, joined = shared_address(client, container, topology.own_container_id)
        try:
            wait_healthy(f"http://{address}:{REGISTRY_PORT}/v2/" if address else None, port, attempts)
        finally:
            if joined:
                with contextlib.suppress(docker.errors.APIError):
                    client.networks.get(joined).disconnect(container.id, force=True)
    else:
        wait_healthy(None, port, attempts)



def wait_healthy(url: str | None, port: int, attempts: int = 8, first_delay: float = 0.25) -> None:
    """GET /v2/ with exponential backoff; any answer below 500 (401 included) means it serves."""
    if url is None:
        log.info("registry health is checked once it is reachable from here")
        return
    delay, last = first_delay, ""
    for attempt in range(attempts):
        try:
            response = requests.get(url, timeout=5)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as err:
            last = type(err).__name__
        if attempt < attempts - 1:
            time.sleep(delay)
            delay *= 2
    raise InfrastructureError(
        f"the local registry on port {port} did not answer GET /v2/ ({url}): {last}",
        "check `docker logs` of the registry container and that the port is free",
    )


def remove_container(client: docker.DockerClient, name: str) -> None:
    container = find_container(client, name)
    if container is not None:
        log.info("removing container %s", name)
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
