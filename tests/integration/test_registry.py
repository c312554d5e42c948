"""registry.py against the real daemon and the lab registry image (a real distribution registry v2)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import socket
import subprocess
import tarfile
import uuid
import warnings

import docker.errors
import docker.types
import pytest
import requests

from pyci import registry
from pyci.cluster.base import ClusterInfo
from pyci.registry import RegistryInfo, wiring
from pyci.results import InfrastructureError
from pyci.settings import LABEL_CLUSTER, LABEL_MANAGED, LABEL_RUN, Settings
from pyci.topology import Kind, Topology
from tests.integration._pyci_helpers import (
    network,
    push,
    remove_image,
    run_pyci_in_container,
    running_container,
    tiny_image,
    unique,
)

HOST = Topology(Kind.HOST, None, "test")


def settings(lab_images, **kw) -> Settings:
    values = {
        "cluster_name": unique("it"),
        "registry_port": 0,
        "registry_image": lab_images.registry,
        "run_id": "run-it",
    }
    values.update(kw)
    return Settings(**values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_addresses() -> list[str]:
    """This machine's own non-loopback IPv4 addresses (only ever connect to those)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout
    return [a for a in out.split() if "." in a and not a.startswith("127.")]


def test_local_registry_lifecycle(docker_client, lab_images):
    s = settings(lab_images)
    name = registry.registry_name(s.cluster_name)
    with contextlib.ExitStack() as stack:
        info = registry.provision(s, docker_client, HOST, stack)
        assert info.mode == "local"
        assert info.container_name == name
        assert info.host == f"localhost:{info.port}" and info.port and info.port != 0
        assert info.host_from_cluster == f"{name}:5000"
        container = docker_client.containers.get(name)
        assert container.labels[LABEL_MANAGED] == "true"
        assert container.labels[LABEL_RUN] == "run-it"
        assert container.labels[LABEL_CLUSTER] == s.cluster_name
        assert requests.get(f"http://127.0.0.1:{info.port}/v2/", timeout=5).status_code == 200

        ref = tiny_image(docker_client, f"{info.host}/tiny")
        try:
            push(docker_client, ref)
            catalog = requests.get(f"http://127.0.0.1:{info.port}/v2/_catalog", timeout=5).json()
            assert "tiny" in catalog["repositories"]
            remove_image(docker_client, ref)
            docker_client.images.pull(f"{info.host}/tiny", tag="it")
            assert docker_client.images.get(ref)
        finally:
            remove_image(docker_client, ref)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)


def test_registry_is_bound_to_loopback_only(docker_client, lab_images):
    addresses = machine_addresses() + ["172.17.0.1"]  # the docker bridge gateway, on this machine
    with contextlib.ExitStack() as stack:
        info = registry.provision(settings(lab_images), docker_client, HOST, stack)
        bindings = docker_client.containers.get(info.container_name).attrs["HostConfig"]["PortBindings"]
        assert bindings["5000/tcp"][0]["HostIp"] == "127.0.0.1"
        for address in addresses:
            with socket.socket() as probe:
                probe.settimeout(2)
                assert probe.connect_ex((address, info.port)) != 0, f"registry reachable on {address}"


def test_healthy_registry_is_reused_and_left_alone(docker_client, lab_images):
    s = settings(lab_images)
    with contextlib.ExitStack() as first:
        info = registry.provision(s, docker_client, HOST, first)
        container_id = docker_client.containers.get(info.container_name).id
        with contextlib.ExitStack() as second:
            again = registry.provision(s, docker_client, HOST, second)
        assert again == info
        # The second run did not create it, so closing its stack must not remove it.
        assert docker_client.containers.get(info.container_name).id == container_id
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(info.container_name)


def test_stopped_registry_of_ours_is_replaced(docker_client, lab_images):
    s = settings(lab_images)
    with contextlib.ExitStack() as stack:
        info = registry.provision(s, docker_client, HOST, stack)
        docker_client.containers.get(info.container_name).stop(timeout=5)
        with contextlib.ExitStack() as second:
            again = registry.provision(s, docker_client, HOST, second)
            assert requests.get(f"http://127.0.0.1:{again.port}/v2/", timeout=5).status_code == 200
        # The replacement was created by the second run, so the second run removed it.
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(info.container_name)


def test_foreign_container_with_our_name_is_refused(docker_client, lab_images):
    s = settings(lab_images)
    name = registry.registry_name(s.cluster_name)
    with running_container(docker_client, lab_images.base, name=name), contextlib.ExitStack() as stack:
        with pytest.raises(InfrastructureError, match="pyci did not create it"):
            registry.provision(s, docker_client, HOST, stack)
        assert docker_client.containers.get(name).status == "running"


def test_fixed_port_and_a_taken_port(docker_client, lab_images):
    port = free_port()
    with contextlib.ExitStack() as stack:
        first = registry.provision(settings(lab_images, registry_port=port), docker_client, HOST, stack)
        assert first.port == port
        # Another run with another cluster name asks for the same port: it gets its own.
        second = registry.provision(settings(lab_images, registry_port=port), docker_client, HOST, stack)
        assert second.port != port
        assert second.container_name != first.container_name
        assert requests.get(f"http://127.0.0.1:{second.port}/v2/", timeout=5).status_code == 200


def test_concurrent_runs_do_not_collide(docker_client, lab_images):
    with contextlib.ExitStack() as stack, concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(registry.provision, settings(lab_images), docker_client, HOST, stack)
            for _ in range(2)
        ]
        infos = [f.result(timeout=120) for f in futures]
        assert len({i.container_name for i in infos}) == 2
        assert len({i.port for i in infos}) == 2


def test_registry_that_never_serves_fails_naming_the_port_and_cleans_up(docker_client, lab_images):
    # The base image runs a shell that exits at once: nothing will ever answer /v2/.
    s = settings(lab_images, registry_image=lab_images.base)
    with contextlib.ExitStack() as stack:
        with pytest.raises(InfrastructureError, match="registry"):
            registry.provision(s, docker_client, HOST, stack)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(registry.registry_name(s.cluster_name))


def test_none_registry(docker_client, lab_images):
    with contextlib.ExitStack() as stack:
        assert (
            registry.provision(settings(lab_images, registry="none"), docker_client, HOST, stack).mode
            == "none"
        )


# --- wiring: network, hosts.toml, ConfigMap ----------------------------------------------------------


def test_connect_network_is_idempotent(docker_client, lab_images):
    with contextlib.ExitStack() as stack, network(docker_client) as net:
        info = registry.provision(settings(lab_images), docker_client, HOST, stack)
        assert info.container_name  # a local registry: a container of ours
        registry.connect_network(docker_client, info.container_name, net.name)
        registry.connect_network(docker_client, info.container_name, net.name)
        net.reload()
        attached = docker_client.containers.get(info.container_name).attrs["NetworkSettings"]["Networks"]
        assert net.name in attached
        # A container on that network reaches the registry by name, as kind's nodes do.
        with running_container(docker_client, lab_images.base, network=net.name) as node:
            code = node.exec_run(
                [
                    "python3",
                    "-c",
                    "import urllib.request as u;"
                    f"print(u.urlopen('http://{info.host_from_cluster}/v2/').status)",
                ]
            )
            assert code.exit_code == 0 and code.output.decode().strip() == "200"


def test_joining_the_cluster_network_reports_the_port_the_registry_then_has(docker_client, lab_images):
    # With port 0, Docker 20.10 publishes the registry on another host port once it joins an
    # IPv6-enabled network like kind's (seen with a real kind cluster: 32834, then 32835).
    subnet = f"fd{os.getpid() % 256:02x}:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}:1::/64"
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    net = docker_client.networks.create(unique("it-kindlike"), enable_ipv6=True, ipam=ipam,
                                        labels={"io.pyci.lab": "true"})
    try:
        with contextlib.ExitStack() as stack:
            info = registry.provision(settings(lab_images, registry_port=0), docker_client, HOST, stack)
            cluster = ClusterInfo(name="x", kubeconfig=None, internal_kubeconfig=None,  # type: ignore[arg-type]
                                  context="kind-x", nodes=(), network=net.name)
            joined = registry.join_cluster_network(docker_client, info, cluster)
            actual = registry.published_port(docker_client.containers.get(info.container_name))
            print(f"registry port before joining {info.port}, after {actual}")
            assert joined.port == actual
            assert joined.host == joined.prefix == f"localhost:{actual}"
            assert requests.get(f"http://127.0.0.1:{actual}/v2/", timeout=10).status_code == 200
            assert registry.join_cluster_network(docker_client, joined, cluster) == joined  # idempotent
    finally:
        net.remove()


def test_hosts_toml_written_on_nodes(docker_client, lab_images):
    info = RegistryInfo(
        mode="local",
        host="localhost:5123",
        host_from_cluster="ci-registry:5000",
        container_name="ci-registry",
        port=5123,
    )
    with running_container(docker_client, lab_images.base) as node:
        registry.write_hosts_toml(docker_client, node.name, info)
        result = node.exec_run(["cat", "/etc/containerd/certs.d/localhost:5123/hosts.toml"])
        assert result.exit_code == 0
        assert result.output.decode() == '[host."http://ci-registry:5000"]\n'


def test_connect_to_cluster_on_a_kind_like_network(docker_client, lab_images, monkeypatch):
    """Everything but the ConfigMap, on a network and "node" containers made to look like kind's."""

    class NoKubernetes:
        pass

    with (
        contextlib.ExitStack() as stack,
        network(docker_client) as net,
        running_container(docker_client, lab_images.base, network=net.name) as node,
    ):
        info = registry.provision(settings(lab_images), docker_client, HOST, stack)
        cluster = ClusterInfo(
            name="x",
            kubeconfig=None,  # type: ignore[arg-type]  # never read: the ConfigMap step is stubbed out below
            internal_kubeconfig=None,
            context="kind-x",
            nodes=(node.name,),
            network=net.name,
        )
        calls: list[RegistryInfo] = []
        # connect_to_cluster looks it up in its own module (pyci.registry.wiring)
        monkeypatch.setattr(wiring, "apply_local_registry_hosting", lambda api, i: calls.append(i))
        registry.connect_to_cluster(docker_client, info, cluster, NoKubernetes())
        assert calls == [info]
        toml = node.exec_run(["cat", f"/etc/containerd/certs.d/{info.host}/hosts.toml"]).output.decode()
        assert toml == f'[host."http://{info.host_from_cluster}"]\n'
        docker_client.containers.get(info.container_name).reload()
        assert (
            net.name in docker_client.containers.get(info.container_name).attrs["NetworkSettings"]["Networks"]
        )


def test_local_registry_hosting_configmap_on_the_lab_control_plane(control_plane, registry_hosting):
    import yaml

    info = RegistryInfo(
        mode="local",
        host="localhost:5001",
        host_from_cluster="pyci-registry:5000",
        container_name="pyci-registry",
        port=5001,
    )
    api = control_plane.api_client()
    assert registry.apply_local_registry_hosting(api, info) is None  # there was none
    previous = registry.apply_local_registry_hosting(api, info)  # replace, not conflict
    assert previous is not None
    cm = registry_hosting.read()
    doc = yaml.safe_load(cm.data["localRegistryHosting.v1"])
    assert doc["host"] == "localhost:5001"
    assert doc["hostFromClusterNetwork"] == "pyci-registry:5000"
    assert doc["hostFromContainerRuntime"] == "localhost:5001"
    assert doc["help"].startswith("https://kind.sigs.k8s.io")
    registry.restore_local_registry_hosting(api, None)  # the run made it: it goes
    assert registry_hosting.read() is None


def test_a_configmap_the_user_had_is_restored(control_plane, registry_hosting):
    """`cluster: existing`: the user's own registry hosting comes back exactly as it was."""
    registry_hosting.apply("registry.example:5000", "the user's own")
    api = control_plane.api_client()
    info = RegistryInfo(mode="local", host="localhost:5999", host_from_cluster="pyci-registry:5000",
                        container_name="pyci-registry", port=5999)
    previous = registry.apply_local_registry_hosting(api, info)
    assert "localhost:5999" in registry_hosting.read().data["localRegistryHosting.v1"]
    registry.restore_local_registry_hosting(api, previous)
    assert registry_hosting.read().data == {
        "localRegistryHosting.v1": 'host: "registry.example:5000"\nhelp: "the user\'s own"\n'}


def test_pull_secret_on_default_service_account(control_plane):
    import kubernetes.client

    info = RegistryInfo(
        mode="remote",
        host="registry.example:5443",
        prefix="registry.example:5443/t/r",
        username="bot",
        password="pw",
    )
    api = control_plane.api_client()
    core = kubernetes.client.CoreV1Api(api)
    namespace = unique("pyci-it")
    try:
        registry.grant_pull_access(api, info, [namespace])
        registry.grant_pull_access(api, info, [namespace])  # idempotent
        account = core.read_namespaced_service_account("default", namespace)
        assert [s.name for s in account.image_pull_secrets or []] == [registry.PULL_SECRET_NAME]
        secret = core.read_namespaced_secret(registry.PULL_SECRET_NAME, namespace)
        assert secret.type == "kubernetes.io/dockerconfigjson"
    finally:
        with contextlib.suppress(kubernetes.client.ApiException):
            core.delete_namespace(namespace)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # bcrypt for htpasswd through the system's libcrypt; no extra package

# --- remote registry ---------------------------------------------------------------------------------


@contextlib.contextmanager
def htpasswd_registry(client, image, user, password):
    """A lab registry that wants basic auth, like a private remote registry."""
    htpasswd = f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n".encode()
    container = client.containers.create(
        image,
        name=unique("pyci-it-remote"),
        ports={"5000/tcp": ("127.0.0.1", None)},
        labels={"io.pyci.test": "true"},
        environment={
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": "pyci-it",
            "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd",
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        },
    )
    try:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            d = tarfile.TarInfo("auth")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(d)
            f = tarfile.TarInfo("auth/htpasswd")
            f.size = len(htpasswd)
            tar.addfile(f, io.BytesIO(htpasswd))
        container.put_archive("/", buffer.getvalue())
        container.start()
        port = registry.published_port(container)
        registry.wait_healthy(f"http://127.0.0.1:{port}/v2/", port)
        yield port
    finally:
        container.remove(force=True, v=True)


def test_remote_registry_login_prefix_and_cleanup(docker_client, lab_images):
    user, password = "ci-bot", "pyci-" + unique("pw")
    with htpasswd_registry(docker_client, lab_images.registry, user, password) as port:
        s = settings(
            lab_images,
            registry=f"localhost:{port}/team/pyci",
            registry_username=user,
            registry_password=password,
            run_id=unique("run"),
        )
        auth = (user, password)
        with contextlib.ExitStack() as stack:
            info = registry.provision(s, docker_client, HOST, stack)
            assert info.mode == "remote"
            assert info.prefix == f"localhost:{port}/team/pyci/{s.run_id}"
            assert password not in repr(info)
            refs = [tiny_image(docker_client, f"{info.prefix}/{n}") for n in ("api", "web")]
            try:
                for ref in refs:
                    push(docker_client, ref)  # works only because of the login
            finally:
                for ref in refs:
                    remove_image(docker_client, ref)
            tags = requests.get(
                f"http://127.0.0.1:{port}/v2/team/pyci/{s.run_id}/api/tags/list", auth=auth, timeout=5
            ).json()
            assert tags["tags"] == ["it"]
        # The stack deleted the run's manifests.
        for name in ("api", "web"):
            head = requests.head(
                f"http://127.0.0.1:{port}/v2/team/pyci/{s.run_id}/{name}/manifests/it", auth=auth, timeout=5
            )
            assert head.status_code == 404


def test_remote_cleanup_tolerates_a_registry_without_delete(docker_client, lab_images, caplog):
    container = docker_client.containers.run(
        lab_images.registry,
        name=unique("pyci-it-nodelete"),
        detach=True,
        ports={"5000/tcp": ("127.0.0.1", None)},
        environment={"REGISTRY_STORAGE_DELETE_ENABLED": "false"},
    )
    try:
        port = registry.published_port(container)
        registry.wait_healthy(f"http://127.0.0.1:{port}/v2/", port)
        ref = tiny_image(docker_client, f"localhost:{port}/team/r1/app")
        try:
            push(docker_client, ref)
        finally:
            remove_image(docker_client, ref)
        info = RegistryInfo(mode="remote", host=f"localhost:{port}", prefix=f"localhost:{port}/team/r1")
        assert registry.delete_run_images(info) == 0
        assert "does not allow deleting" in caplog.text
    finally:
        container.remove(force=True, v=True)


def test_failed_login_is_an_infrastructure_error_without_the_password(docker_client, lab_images):
    with htpasswd_registry(docker_client, lab_images.registry, "ci-bot", "right-password") as port:
        s = settings(
            lab_images,
            registry=f"localhost:{port}/team",
            registry_username="ci-bot",
            registry_password="wrong-password-xyz",
        )
        with contextlib.ExitStack() as stack, pytest.raises(InfrastructureError) as err:
            registry.provision(s, docker_client, HOST, stack)
        assert "wrong-password-xyz" not in f"{err.value.message} {err.value.detail}"


SIBLING_PROVISION = """
import contextlib, json, docker
from pyci import registry, topology
from pyci.settings import Settings
client = docker.from_env(timeout=60)
t = topology.detect(client)
s = Settings(cluster_name="{cluster}", registry_port=0, registry_image="{image}", run_id="it")
with contextlib.ExitStack() as stack:
    info = registry.provision(s, client, t, stack)
    networks = sorted(client.containers.get(info.container_name).attrs["NetworkSettings"]["Networks"])
print(json.dumps({{"kind": t.kind.value, "port": info.port, "networks": networks}}))
"""


def test_sibling_checks_health_from_its_own_network(docker_client, lab_images):
    """A sibling on a user-defined network (like a GitHub docker action) still health-checks the
    registry, and leaves the registry off its network afterwards."""
    cluster = unique("it")
    with network(docker_client, "pyci-it-job") as net:
        script = SIBLING_PROVISION.format(cluster=cluster, image=lab_images.registry)
        code, output, _ = run_pyci_in_container(docker_client, lab_images.base, script, network=net.name)
    assert code == 0, output
    found = json.loads(output.strip().splitlines()[-1])
    assert found["kind"] == "sibling"
    assert found["networks"] == ["bridge"]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(registry.registry_name(cluster))
