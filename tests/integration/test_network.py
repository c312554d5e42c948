"""network.make_reachable for real: HOST, SIBLING (a container joins a kind-like network), REMOTE (a
network namespace that reaches the daemon only over TCP, through socat forwarders to the lab API server)."""

from __future__ import annotations

import contextlib
import json
import shutil

import docker.errors
import pytest

from pyci import network, registry
from pyci.cluster.base import ClusterInfo
from pyci.settings import Settings
from pyci.topology import Kind, Topology
from tests.integration._pyci_helpers import RemoteDaemon, last_json, run_pyci_in_container, unique


def test_host_uses_the_external_kubeconfig(tmp_path, docker_client):
    cluster = ClusterInfo("c", tmp_path / "k", tmp_path / "ki", "kind-c", (), "kind")
    info = registry.RegistryInfo(mode="local", host="localhost:5009", port=5009)
    with contextlib.ExitStack() as stack:
        reach = network.make_reachable(docker_client, Topology(Kind.HOST, None, ""), cluster, info, stack)
    assert reach == network.Reachability(tmp_path / "k", "localhost:5009")


SIBLING = """
import contextlib, json, docker, requests
from pathlib import Path
from pyci import network, registry, topology
from pyci.cluster.base import ClusterInfo
client = docker.from_env(timeout=30)
t = topology.detect(client)
Path("/tmp/internal").write_text("internal")
cluster = ClusterInfo("c", Path("/tmp/external"), Path("/tmp/internal"), "kind-c", (), "{net}")
info = registry.RegistryInfo(mode="local", host="localhost:1", host_from_cluster="{reg}:5000",
                             container_name="{reg}", port=1)
out = {{"kind": t.kind.value}}
with contextlib.ExitStack() as stack:
    reach = network.make_reachable(client, t, cluster, info, stack)
    out["kubeconfig"] = str(reach.kubeconfig)
    out["registry_host"] = reach.registry_host
    out["status"] = requests.get(f"http://{{reach.registry_host}}/v2/", timeout=10).status_code
    again = network.make_reachable(client, t, cluster, info, stack)  # idempotent
client.networks.get("{net}").reload()
out["still_attached"] = t.own_container_id in (client.networks.get("{net}").attrs.get("Containers") or {{}})
print(json.dumps(out))
"""


def test_sibling_joins_the_cluster_network_and_leaves_it(docker_client, lab_images):
    s = Settings(cluster_name=unique("it"), registry_port=0, registry_image=lab_images.registry)
    net = docker_client.networks.create(unique("kind-test"), driver="bridge")
    try:
        with contextlib.ExitStack() as stack:
            info = registry.provision(s, docker_client, Topology(Kind.HOST, None, ""), stack)
            assert info.container_name  # a local registry: a container of ours
            registry.connect_network(docker_client, info.container_name, net.name)
            script = SIBLING.format(net=net.name, reg=info.container_name)
            code, output, _ = run_pyci_in_container(docker_client, lab_images.base, script)
        assert code == 0, output
        found = last_json(output)
        assert found["kind"] == "sibling"
        assert found["kubeconfig"] == "/tmp/internal"
        assert found["registry_host"] == f"{info.container_name}:5000"
        assert found["status"] == 200  # by name, across the kind-like network
        assert found["still_attached"] is False
    finally:
        net.remove()


REMOTE = """
import contextlib, json, shutil, socket, docker, kubernetes, requests
from pathlib import Path
from pyci import network, registry, topology
from pyci.cluster.base import ClusterInfo
from pyci.settings import Settings

def reachable(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0

client = docker.from_env(timeout=60)
t = topology.detect(client)
out = {{"kind": t.kind.value, "api_direct": reachable({api_port})}}
settings = Settings(cluster_name="{name}", registry_port=0, registry_image="{registry_image}", run_id="it")
cluster = ClusterInfo("{name}", Path("{kubeconfig}"), None, "{context}")
with contextlib.ExitStack() as stack:
    info = registry.provision(settings, client, t, stack)
    out["registry_direct"] = reachable(info.port)
    reach = network.make_reachable(client, t, cluster, info, stack, socat_image="{socat_image}")
    out["registry_host"] = reach.registry_host
    out["registry_status"] = requests.get(f"http://{{reach.registry_host}}/v2/", timeout=10).status_code
    api = kubernetes.config.new_client_from_config(config_file=str(reach.kubeconfig))
    out["version"] = kubernetes.client.VersionApi(api).get_code(_request_timeout=20).git_version
    out["server"] = api.configuration.host
    out["socat_running"] = client.containers.get("{name}-pyci-socat").status
out["socat_left"] = [c.name for c in client.containers.list(all=True, filters={{"name": "{name}"}})]
print(json.dumps(out))
"""


def test_remote_forwards_api_server_and_registry(
    docker_client, lab_images, control_plane, remote_daemon: RemoteDaemon, tmp_path
):
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(control_plane.kubeconfig, kubeconfig)
    api_port = int(control_plane.server.rsplit(":", 1)[1])
    name = unique("it-remote")
    script = REMOTE.format(
        name=name,
        api_port=api_port,
        kubeconfig=kubeconfig,
        context=control_plane.context,
        registry_image=lab_images.registry,
        socat_image=lab_images.socat,
    )
    code, output = remote_daemon.run_python(script)
    assert code == 0, output
    found = last_json(output)
    assert found["kind"] == "remote"
    # The namespace really is cut off from what the daemon publishes ...
    assert found["api_direct"] is False and found["registry_direct"] is False
    # ... and the forwarders bring both back, on its own loopback.
    assert found["registry_status"] == 200
    assert found["registry_host"].startswith("127.0.0.1:")
    assert found["version"].startswith("v1.")
    assert found["server"].startswith("https://127.0.0.1:")
    assert found["socat_running"] == "running"
    assert found["socat_left"] == []
    assert (tmp_path / "kubeconfig-forwarded").stat().st_mode & 0o777 == 0o600
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(registry.registry_name(name))


def test_forwarder_on_a_taken_port_is_an_infrastructure_error():
    import socket

    from pyci.results import InfrastructureError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InfrastructureError, match=f"port {port + 1}: 127.0.0.1:{port} is already in use"):
            network.start_forwarder("no-such-container", port + 1, port, timeout=5)


def test_forwarder_that_dies_is_an_infrastructure_error(monkeypatch, tmp_path):
    from pyci.results import InfrastructureError

    # socat refuses an address it cannot parse and exits at once; its stderr becomes the detail.
    monkeypatch.setattr(network, "forwarder_command", lambda c, lp, rp: ["socat", "BOGUS-ADDRESS:1", "STDIO"])
    port = network.choose_local_port(1)
    with pytest.raises(InfrastructureError, match="exited") as err:
        network.start_forwarder("no-such-container", 9, port, timeout=5)
    assert "BOGUS" in err.value.detail or "unknown" in err.value.detail.lower()


def test_forwarders_wait_for_the_answer_after_the_client_half_closes(docker_client, lab_images):
    """A client that sends its request and then closes its sending side (shutdown SHUT_WR, as `docker
    exec` does at the end of stdin) still gets an answer that comes seconds later: socat's default
    half-close timeout (0.5 s), in the local forwarder or in the one it execs into, would cut it."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))  # on the daemon's host: the socat container has its network
    server.listen()
    port = server.getsockname()[1]

    def answer_late(conn: socket.socket) -> None:
        with conn:
            request = b""
            while chunk := conn.recv(1024):  # until the client's half-close
                request += chunk
            threading.Event().wait(2)
            with contextlib.suppress(OSError):
                conn.sendall(b"late answer to " + request)

    def serve() -> None:  # every connection: start_forwarder's own probe connects too
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=answer_late, args=(server.accept()[0],), daemon=True).start()

    name = unique("it-halfclose")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with contextlib.ExitStack() as stack:
        stack.callback(server.close)
        network.start_socat_container(docker_client, name, lab_images.socat, {"io.pyci.test": "true"})
        stack.callback(registry.remove_container, docker_client, name)
        forwarder = network.start_forwarder(name, port, network.choose_local_port(port))
        stack.callback(network.stop_process, forwarder.process)
        with socket.create_connection(("127.0.0.1", forwarder.local_port), timeout=20) as client:
            client.sendall(b"ping")
            client.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := client.recv(1024):
                reply += chunk
    assert reply == b"late answer to ping"


def test_sibling_in_another_containers_network_joins_through_that_container(docker_client, lab_images):
    """act runs a docker action with `--network container:<job container>`: Docker refuses to connect
    such a container to a network, so pyci connects the container whose network it shares."""
    s = Settings(cluster_name=unique("it"), registry_port=0, registry_image=lab_images.registry)
    net = docker_client.networks.create(unique("kind-test"), driver="bridge")
    job = docker_client.containers.run(lab_images.base, ["sleep", "infinity"], name=unique("pyci-it-job"),
                                       detach=True)
    try:
        with contextlib.ExitStack() as stack:
            info = registry.provision(s, docker_client, Topology(Kind.HOST, None, ""), stack)
            assert info.container_name  # a local registry: a container of ours
            registry.connect_network(docker_client, info.container_name, net.name)
            script = SIBLING.format(net=net.name, reg=info.container_name).replace(
                "t.own_container_id in", "t.network_container in") + (
                "print(json.dumps({'owner': t.network_container_id}))\n")
            code, output, _ = run_pyci_in_container(docker_client, lab_images.base, script,
                                                    network_mode=f"container:{job.id}")
        assert code == 0, output
        found = json.loads(output.strip().splitlines()[-2])
        assert json.loads(output.strip().splitlines()[-1])["owner"] == job.id
        assert found["kind"] == "sibling"
        assert found["status"] == 200  # the registry by name, through the job container's new interface
        assert found["still_attached"] is False  # and the job container left the network again
    finally:
        job.remove(force=True)
        net.remove()


def test_pyci_cleanup_stops_the_forwarders_a_killed_remote_run_left(docker_client, lab_images):
    """A REMOTE run killed with SIGKILL leaves its socat container on the daemon and its local socat
    forwarders listening here (each leads a session of its own): `pyci cleanup --run-id` removes both,
    and a forwarder of another run stays."""
    import socket

    from pyci import cleanup
    from pyci.settings import LABEL_CLUSTER, LABEL_MANAGED, LABEL_RUN

    run_id, other_run = unique("it-fwd"), unique("it-fwd")
    names = {run: network.socat_container_name(unique("it-killed")) for run in (run_id, other_run)}
    forwarders = {}
    with contextlib.ExitStack() as stack:
        for run, name in names.items():
            labels = {LABEL_MANAGED: "true", LABEL_RUN: run, LABEL_CLUSTER: name.removesuffix("-pyci-socat")}
            network.start_socat_container(docker_client, name, lab_images.socat, labels)
            stack.callback(registry.remove_container, docker_client, name)
            forwarders[run] = network.start_forwarder(name, 9, network.choose_local_port(40000))
            stack.callback(network.stop_process, forwarders[run].process)
        assert network.orphan_forwarders(names[run_id]) == [forwarders[run_id].process.pid]

        assert cleanup.remove_labelled(docker_client, run_id) == []
        assert forwarders[run_id].process.wait(10) is not None  # stopped (pyci's own child here)
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(names[run_id])
        with socket.socket() as probe:  # its port is free again
            probe.bind(("127.0.0.1", forwarders[run_id].local_port))
        assert network.orphan_forwarders(names[run_id]) == []
        # The other run's forwarder and container are untouched.
        assert forwarders[other_run].process.poll() is None
        assert docker_client.containers.get(names[other_run]).status == "running"
