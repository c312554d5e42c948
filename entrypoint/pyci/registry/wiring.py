"""Wiring a registry into the cluster: containerd's hosts.toml on every kind node (local), an
imagePullSecret on the default service account (remote), and the KEP-1755 `local-registry-hosting`
ConfigMap that tilt reads, put back as it was when the cluster outlives the run."""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import logging
import tarfile
from collections.abc import Callable, Sequence

import docker
import kubernetes.client
import urllib3.exceptions
import yaml
from kubernetes.client.rest import ApiException

from pyci.cluster.base import ClusterInfo
from pyci.registry.info import RegistryInfo
from pyci.registry.networks import connect_network
from pyci.results import InfrastructureError
from pyci.settings import LABEL_MANAGED

log = logging.getLogger(__name__)

CONFIGMAP_NAME = "local-registry-hosting"
CONFIGMAP_NAMESPACE = "kube-public"
PULL_SECRET_NAME = "pyci-registry-auth"
HELP_URL = "https://kind.sigs.k8s.io/docs/user/local-registry/"


def connect_to_cluster(
    client: docker.DockerClient,
    info: RegistryInfo,
    cluster: ClusterInfo,
    api_client: kubernetes.client.ApiClient,
    *,
    namespaces: Sequence[str] = ("default",),
    restore_on: contextlib.ExitStack | None = None,
) -> None:
    """Wire the registry into the cluster; with `restore_on`, the ConfigMap is put back at cleanup."""
    if info.mode == "none":
        return
    if info.mode == "local":
        if cluster.network and info.container_name:
            connect_network(client, info.container_name, cluster.network)
            for node in cluster.nodes:
                write_hosts_toml(client, node, info)
        else:
            log.warning(
                "cluster %s has no docker network pyci knows: nodes may not reach the registry", cluster.name
            )
    else:
        grant_pull_access(api_client, info, namespaces)
    previous = apply_local_registry_hosting(api_client, info)
    if restore_on is not None:
        # A cluster that outlives the run must not keep pointing tilt at a registry that is gone.
        restore_on.callback(restore_local_registry_hosting, api_client, previous)


def hosts_toml(info: RegistryInfo) -> str:
    return f'[host."http://{info.host_from_cluster}"]\n'


def hosts_toml_tar(info: RegistryInfo) -> bytes:
    """A tar that, unpacked at /, holds /etc/containerd/certs.d/localhost:<port>/hosts.toml."""
    return certs_d_tar(str(info.host), hosts_toml(info))


def certs_d_tar(host: str, hosts_toml_text: str) -> bytes:
    """A tar that, unpacked at /, holds /etc/containerd/certs.d/<host>/hosts.toml (containerd's
    per-registry config, which it reads on each pull: no restart)."""
    directory = f"etc/containerd/certs.d/{host}"
    content = hosts_toml_text.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in ("etc/containerd", "etc/containerd/certs.d", directory):
            entry = tarfile.TarInfo(path)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(entry)
        entry = tarfile.TarInfo(f"{directory}/hosts.toml")
        entry.size, entry.mode = len(content), 0o644
        tar.addfile(entry, io.BytesIO(content))
    return buffer.getvalue()


def write_hosts_toml(client: docker.DockerClient, node: str, info: RegistryInfo) -> None:
    if not client.containers.get(node).put_archive("/", hosts_toml_tar(info)):
        raise InfrastructureError(f"could not write the registry hosts.toml on node {node}")
    log.info("node %s maps %s to http://%s", node, info.host, info.host_from_cluster)


def local_registry_hosting(info: RegistryInfo) -> dict[str, str]:
    """The KEP-1755 `localRegistryHosting.v1` document."""
    if info.mode == "remote":
        prefix = info.prefix or ""
        return {
            "host": prefix,
            "hostFromContainerRuntime": prefix,
            "hostFromClusterNetwork": prefix,
            "help": HELP_URL,
        }
    # Nodes resolve localhost:<port> through hosts.toml, so the runtime uses the same name as pushes.
    return {
        "host": info.host or "",
        "hostFromContainerRuntime": info.host or "",
        "hostFromClusterNetwork": info.host_from_cluster or "",
        "help": HELP_URL,
    }


def apply_local_registry_hosting(
    api_client: kubernetes.client.ApiClient, info: RegistryInfo, timeout: float = 30.0
) -> kubernetes.client.V1ConfigMap | None:
    """Create or replace the ConfigMap; return the one that was there before (None if none was)."""
    core = kubernetes.client.CoreV1Api(api_client)
    try:
        previous = core.read_namespaced_config_map(
            CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, _request_timeout=timeout
        )
    except ApiException as err:
        if err.status != 404:
            raise InfrastructureError(f"Kubernetes API refused to read ConfigMap: {err.reason}",
                                      str(err.body)) from err
        previous = None
    body = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(
            name=CONFIGMAP_NAME, namespace=CONFIGMAP_NAMESPACE, labels={LABEL_MANAGED: "true"}
        ),
        data={"localRegistryHosting.v1": yaml.safe_dump(local_registry_hosting(info), sort_keys=False)},
    )
    _create_or_replace(
        lambda: core.create_namespaced_config_map(CONFIGMAP_NAMESPACE, body, _request_timeout=timeout),
        lambda: core.replace_namespaced_config_map(
            CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, body, _request_timeout=timeout
        ),
    )
    log.info("applied ConfigMap %s/%s", CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
    return previous


def restore_local_registry_hosting(
    api_client: kubernetes.client.ApiClient,
    previous: kubernetes.client.V1ConfigMap | None,
    timeout: float = 30.0,
) -> None:
    """Put back the ConfigMap a run found, or delete the one it made; never fails the cleanup."""
    core = kubernetes.client.CoreV1Api(api_client)
    try:
        if previous is None:
            core.delete_namespaced_config_map(CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, _request_timeout=timeout)
            log.info("removed ConfigMap %s/%s", CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
            return
        meta = previous.metadata or kubernetes.client.V1ObjectMeta()
        body = kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(
                name=CONFIGMAP_NAME, namespace=CONFIGMAP_NAMESPACE,
                labels=meta.labels, annotations=meta.annotations),
            data=previous.data, binary_data=previous.binary_data,
        )
        core.replace_namespaced_config_map(
            CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, body, _request_timeout=timeout
        )
        log.info("restored ConfigMap %s/%s as it was before the run", CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
    except (ApiException, OSError, urllib3.exceptions.HTTPError) as err:
        log.warning("could not restore ConfigMap %s/%s: %s", CONFIGMAP_NAMESPACE, CONFIGMAP_NAME, err)


def _create_or_replace(create: Callable[[], object], replace: Callable[[], object]) -> None:
    try:
        create()
    except ApiException as err:
        if err.status != 409:
            raise InfrastructureError(
                f"Kubernetes API refused the object: {err.reason}", str(err.body)
            ) from err
        replace()


def docker_config_json(info: RegistryInfo) -> str:
    token = base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
    return json.dumps(
        {"auths": {info.host: {"username": info.username, "password": info.password, "auth": token}}}
    )


def grant_pull_access(
    api_client: kubernetes.client.ApiClient,
    info: RegistryInfo,
    namespaces: Sequence[str],
    timeout: float = 30.0,
) -> None:
    """An imagePullSecret on each namespace's default service account, so kubelets can pull.

    Chosen over containerd credentials on the nodes because it also works for `cluster: existing`
    and keeps the password out of files on the docker host.
    """
    if not (info.username and info.password):
        return  # a public registry needs nothing
    core = kubernetes.client.CoreV1Api(api_client)
    for namespace in namespaces:
        ensure_namespace(core, namespace, timeout)
        secret = kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=PULL_SECRET_NAME, labels={LABEL_MANAGED: "true"}),
            type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": base64.b64encode(docker_config_json(info).encode()).decode()},
        )
        _create_or_replace(
            functools.partial(core.create_namespaced_secret, namespace, secret, _request_timeout=timeout),
            functools.partial(
                core.replace_namespaced_secret, PULL_SECRET_NAME, namespace, secret, _request_timeout=timeout
            ),
        )
        add_pull_secret_to_default_sa(core, namespace, timeout)
        log.info("namespace %s pulls from %s with secret %s", namespace, info.host, PULL_SECRET_NAME)


def ensure_namespace(core: kubernetes.client.CoreV1Api, namespace: str, timeout: float) -> None:
    body = kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=namespace))
    try:
        core.create_namespace(body, _request_timeout=timeout)
    except ApiException as err:
        if err.status != 409:
            raise InfrastructureError(f"could not create namespace {namespace}: {err.reason}") from err


def add_pull_secret_to_default_sa(core: kubernetes.client.CoreV1Api, namespace: str, timeout: float) -> None:
    try:
        account = core.read_namespaced_service_account("default", namespace, _request_timeout=timeout)
    except ApiException as err:
        if err.status != 404:
            raise
        # The service-account controller may not have made it yet.
        account = kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name="default"))
        with contextlib.suppress(ApiException):
            core.create_namespaced_service_account(namespace, account, _request_timeout=timeout)
        account = core.read_namespaced_service_account("default", namespace, _request_timeout=timeout)
    secrets = [s.name for s in (account.image_pull_secrets or [])]
    if PULL_SECRET_NAME in secrets:
        return
    patch = {"imagePullSecrets": [{"name": n} for n in [*secrets, PULL_SECRET_NAME]]}
    core.patch_namespaced_service_account("default", namespace, patch, _request_timeout=timeout)
