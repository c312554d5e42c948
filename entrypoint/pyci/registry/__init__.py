"""The image registry: a local registry container, a remote registry, or none; and its wiring to the cluster.

Local (kind's local-registry recipe, KEP-1755): a registry container published on the daemon host's
127.0.0.1:<port>, joined to the kind network, a containerd hosts.toml on every node mapping
`localhost:<port>` to `http://<name>:5000`, and the `local-registry-hosting` ConfigMap that tilt reads.
Remote: `docker login` on the daemon, a per-run repository prefix, an imagePullSecret on the default
service account so nodes can pull, and deletion of the run's tags at the end.

The package, along its seams: info (what the registry is), local (the container and its health),
remote (login, prefix, deleting the run's tags), networks (joining docker networks), and wiring (into
the cluster: hosts.toml, pull secrets, the KEP-1755 ConfigMap). `registry.X` names them all.
"""

from __future__ import annotations

import contextlib
import threading

import docker

from pyci.registry.info import REGISTRY_PORT, RegistryInfo, labels, registry_name
from pyci.registry.local import (
    check_health,
    create_registry,
    find_container,
    provision_local,
    remove_container,
    reuse_registry,
    wait_healthy,
)
from pyci.registry.networks import (
    connect_network,
    join_cluster_network,
    join_network_when_made,
    published_port,
    shared_address,
)
from pyci.registry.remote import (
    MANIFEST_TYPES,
    RegistryAPI,
    delete_run_images,
    parse_challenge,
    provision_remote,
    remote_prefix,
    split_remote,
)
from pyci.registry.wiring import (
    CONFIGMAP_NAME,
    CONFIGMAP_NAMESPACE,
    HELP_URL,
    PULL_SECRET_NAME,
    add_pull_secret_to_default_sa,
    apply_local_registry_hosting,
    connect_to_cluster,
    docker_config_json,
    ensure_namespace,
    grant_pull_access,
    hosts_toml,
    hosts_toml_tar,
    local_registry_hosting,
    restore_local_registry_hosting,
    write_hosts_toml,
)
from pyci.settings import Settings
from pyci.topology import Topology

__all__ = [
    "CONFIGMAP_NAME", "CONFIGMAP_NAMESPACE", "HELP_URL", "MANIFEST_TYPES", "PULL_SECRET_NAME",
    "REGISTRY_PORT", "RegistryAPI", "RegistryInfo",
    "add_pull_secret_to_default_sa", "apply_local_registry_hosting", "check_health", "connect_network",
    "connect_to_cluster", "create_registry", "delete_run_images", "docker_config_json", "ensure_namespace",
    "find_container", "grant_pull_access", "hosts_toml", "hosts_toml_tar", "join_cluster_network",
    "join_network_when_made", "labels", "local_registry_hosting", "parse_challenge", "provision",
    "provision_local", "provision_remote", "published_port", "registry_name", "remote_prefix",
    "remove_container", "restore_local_registry_hosting", "reuse_registry", "shared_address",
    "split_remote", "wait_healthy", "write_hosts_toml",
]


def provision(
    settings: Settings, client: docker.DockerClient, topology: Topology, stack: contextlib.ExitStack,
    cancel: threading.Event | None = None,
) -> RegistryInfo:
    if settings.registry == "none":
        return RegistryInfo(mode="none")
    if settings.registry == "local":
        return provision_local(settings, client, topology, stack, cancel)
    return provision_remote(settings, client, stack)
