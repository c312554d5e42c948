"""The image registry: a local registry container, a remote registry, or none; and its wiring to the cluster.

Local (kind's local-registry recipe, KEP-1755): a registry container published on the daemon host's
127.0.0.1:<port>, joined to the kind network, a containerd hosts.toml on every node mapping
`localhost:<port>` to `http://<name>:5000`, and the `local-registry-hosting` ConfigMap that tilt reads.
Remote: `docker login` on the daemon, a per-run repository prefix, an imagePullSecret on the default
service account so nodes can pull, and deletion of the run's tags at the end.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import io
import json
import logging
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import docker
import docker.errors
import kubernetes.client
import requests
import urllib3.exceptions
import yaml
from docker.models.containers import Container
from kubernetes.client.rest import ApiException

from pyci import testhook
from pyci.cluster.base import ClusterInfo
from pyci.results import InfrastructureError
from pyci.settings import LABEL_CLUSTER, LABEL_MANAGED, LABEL_RUN, Settings
from pyci.topology import Kind, Topology

log = logging.getLogger(__name__)

REGISTRY_PORT = 5000  # inside the container
CONFIGMAP_NAME = "local-registry-hosting"
CONFIGMAP_NAMESPACE = "kube-public"
PULL_SECRET_NAME = "pyci-registry-auth"
HELP_URL = "https://kind.sigs.k8s.io/docs/user/local-registry/"
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


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


def provision(
    settings: Settings, client: docker.DockerClient, topology: Topology, stack: contextlib.ExitStack,
    cancel: threading.Event | None = None,
) -> RegistryInfo:
    if settings.registry == "none":
        return RegistryInfo(mode="none")
    if settings.registry == "local":
        return provision_local(settings, client, topology, stack, cancel)
    return provision_remote(settings, client, stack)


# --- local ------------------------------------------------------------------------------------------


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


def published_port(container: Container) -> int:
    container.reload()
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{REGISTRY_PORT}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    raise InfrastructureError(f"registry {container.name} has no published port (is it running?)")


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


# --- remote -----------------------------------------------------------------------------------------


def split_remote(registry: str) -> tuple[str, str]:
    """`ghcr.io/org/pyci` -> (`ghcr.io`, `org/pyci`)."""
    registry = registry.removeprefix("https://").removeprefix("http://").strip("/")
    host, _, path = registry.partition("/")
    return host, path


def remote_prefix(registry: str, run_id: str) -> str:
    host, path = split_remote(registry)
    return "/".join(part for part in (host, path, run_id) if part)


def provision_remote(
    settings: Settings, client: docker.DockerClient, stack: contextlib.ExitStack
) -> RegistryInfo:
    host, _ = split_remote(settings.registry)
    if settings.registry_username and settings.registry_password:
        try:
            client.login(
                username=settings.registry_username,
                password=settings.registry_password,
                registry=host,
                reauth=True,
            )
        except docker.errors.APIError as err:
            # The daemon's message never contains the password.
            raise InfrastructureError(
                f"docker login to {host} as {settings.registry_username} failed", str(err)
            ) from err
        log.info("logged in to %s as %s", host, settings.registry_username)
    info = RegistryInfo(
        mode="remote",
        host=host,
        host_from_cluster=remote_prefix(settings.registry, settings.run_id),
        prefix=remote_prefix(settings.registry, settings.run_id),
        username=settings.registry_username,
        password=settings.registry_password,
    )
    stack.callback(delete_run_images, info)
    return info


class RegistryAPI:
    """The few Registry v2 calls cleanup needs, with basic or bearer-token auth."""

    def __init__(self, host: str, username: str | None, password: str | None, timeout: float = 15.0) -> None:
        local = host.startswith(("localhost", "127.", "[::1]"))
        self.base = f"{'http' if local else 'https'}://{host}/v2"
        self.auth = (username, password) if username and password else None
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        url = f"{self.base}/{path}"
        response = self.session.request(method, url, headers=headers, auth=self.auth, timeout=self.timeout)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and challenge.lower().startswith("bearer"):
            token = self._token(challenge)
            headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
            response = self.session.request(method, url, headers=headers, timeout=self.timeout)
        return response

    def _token(self, challenge: str) -> str:
        params = parse_challenge(challenge)
        realm = params.pop("realm", "")
        response = self.session.get(realm, params=params, auth=self.auth, timeout=self.timeout)
        response.raise_for_status()
        body = response.json()
        return str(body.get("token") or body.get("access_token") or "")

    def repositories(self, under: str) -> list[str]:
        """Repositories at or below `under`, following the catalog's pagination."""
        names: list[str] = []
        path: str | None = "_catalog?n=100"
        while path:
            response = self.request("GET", path)
            response.raise_for_status()
            names.extend(response.json().get("repositories") or [])
            link = response.links.get("next", {}).get("url", "")
            path = link.split("/v2/", 1)[1] if "/v2/" in link else None
        return [n for n in names if n == under or n.startswith(under + "/")]

    def tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"{repository}/tags/list")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json().get("tags") or [])

    def digest(self, repository: str, tag: str) -> str | None:
        response = self.request("HEAD", f"{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers.get("Docker-Content-Digest")

    def delete_manifest(self, repository: str, digest: str) -> int:
        return self.request("DELETE", f"{repository}/manifests/{digest}").status_code


def parse_challenge(challenge: str) -> dict[str, str]:
    """`Bearer realm="https://x/token",service="x",scope="repository:a:pull"` -> its parameters."""
    _, _, rest = challenge.partition(" ")
    params: dict[str, str] = {}
    for part in _split_params(rest):
        key, _, value = part.partition("=")
        params[key.strip()] = value.strip().strip('"')
    return params


def _split_params(text: str) -> Iterable[str]:
    current, quoted = "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield current
            current = ""
        else:
            current += char
    if current.strip():
        yield current


def delete_run_images(info: RegistryInfo, repositories: Sequence[str] | None = None) -> int:
    """Delete every tag under the run's prefix; returns how many manifests were deleted.

    Registries that do not allow deletion (405) or listing get a warning, never a failure: cleanup
    must not turn a green run red.
    """
    if info.mode != "remote" or not info.host or not info.prefix:
        return 0
    api = RegistryAPI(info.host, info.username, info.password)
    under = info.prefix.removeprefix(info.host + "/")
    deleted = 0
    try:
        names = list(repositories) if repositories is not None else api.repositories(under)
        for repository in names:
            for tag in api.tags(repository):
                digest = api.digest(repository, tag)
                if digest is None:
                    continue
                status = api.delete_manifest(repository, digest)
                if status in (405, 501):
                    log.warning(
                        "registry %s does not allow deleting manifests (HTTP %d): delete %s by hand",
                        info.host,
                        status,
                        info.prefix,
                    )
                    return deleted
                if status < 300:
                    deleted += 1
                elif status != 404:
                    log.warning("deleting %s@%s: HTTP %d", repository, digest, status)
    except (requests.RequestException, ValueError) as err:
        log.warning("could not clean up %s: %s", info.prefix, err)
    log.info("deleted %d manifests under %s", deleted, info.prefix)
    return deleted


# --- wiring to the cluster --------------------------------------------------------------------------


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


def hosts_toml(info: RegistryInfo) -> str:
    return f'[host."http://{info.host_from_cluster}"]\n'


def hosts_toml_tar(info: RegistryInfo) -> bytes:
    """A tar that, unpacked at /, holds /etc/containerd/certs.d/localhost:<port>/hosts.toml."""
    directory = f"etc/containerd/certs.d/{info.host}"
    content = hosts_toml(info).encode()
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
