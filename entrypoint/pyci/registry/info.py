"""What a run's registry is (local, remote or none) and how its names derive from the cluster's."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyci.settings import LABEL_CLUSTER, LABEL_MANAGED, LABEL_RUN, Settings

REGISTRY_PORT = 5000  # inside the container


@dataclass(frozen=True)
class RegistryInfo:
    mode: str  # local | remote | none
    host: str | None = None  # what pushes use, from the daemon: localhost:5001 or ghcr.io
    host_from_cluster: str | None = None  # from the cluster network: pyci-registry:5000
    container_name: str | None = None
    prefix: str | None = None  # where this run's images go: localhost:5001 or ghcr.io/org/pyci/<run>
    port: int | None = None  # host port of a local registry
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def registry_name(cluster_name: str) -> str:
    """Derived from the cluster name so runs with different clusters on one daemon do not collide."""
    return f"{cluster_name}-registry"


def labels(settings: Settings) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_RUN: settings.run_id, LABEL_CLUSTER: settings.cluster_name}
