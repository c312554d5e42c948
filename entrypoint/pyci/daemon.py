"""The run's handles on Docker and Kubernetes, and the checks and sweeps on the daemon around them."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from pyci.results import InfrastructureError

log = logging.getLogger("pyci.pipeline")


def raise_if_infrastructure_lost(client: Any, reg_info: Any, kind_nodes: tuple[str, ...]) -> None:
    """InfrastructureError naming the registry container or kind node that is no longer running."""
    import docker.errors

    watched = [("kind node", name) for name in kind_nodes]
    if reg_info.mode == "local" and reg_info.container_name:
        watched.append(("the local registry", reg_info.container_name))
    for what, name in watched:
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            raise InfrastructureError(f"{what} {name} was removed during the run") from None
        except Exception as err:  # noqa: BLE001 - the daemon itself is gone
            raise InfrastructureError(f"the Docker daemon stopped answering during the run: {err}") from err
        if container.status != "running":
            code = (container.attrs.get("State") or {}).get("ExitCode")
            raise InfrastructureError(f"{what} {name} stopped during the run "
                                      f"(status {container.status}, exit code {code})")


def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:  # noqa: BLE001 - docker raises many kinds for "no daemon"
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise InfrastructureError(f"cannot reach the Docker daemon at {where}: {e}") from e
    return client


def api_client(kubeconfig: Path) -> Any:
    from kubernetes import config

    try:
        return config.new_client_from_config(config_file=str(kubeconfig))
    except Exception as e:  # noqa: BLE001
        raise InfrastructureError(f"cannot load kubeconfig {kubeconfig}: {e}") from e


def remove_tags(client: Any, prefix: str) -> None:
    from pyci import images

    for tag in images.tags(client):
        if tag.startswith(prefix):
            with contextlib.suppress(Exception):
                client.images.remove(tag)


def network_exists(client: Any, name: str) -> bool:
    return any(n.name == name for n in client.networks.list(names=[name]))  # the filter is a substring


def remove_network_if_unused(client: Any, name: str) -> bool:
    """Remove network `name` when no container is on it; whether it is gone."""
    gone = True
    for network in client.networks.list(names=[name]):
        if network.name != name:  # `names` matches by substring
            continue
        gone = False
        with contextlib.suppress(Exception):
            network.reload()
            if not network.attrs.get("Containers"):
                network.remove()
                log.info("removed docker network %s", name)
                gone = True
    return gone
