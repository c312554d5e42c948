from __future__ import annotations

import socket

import pytest

from pyci.network import (
    choose_local_port,
    forwarder_command,
    loopback_server_port,
    orphan_forwarders,
    port_is_free,
    rewrite_server,
)
from pyci.results import InfrastructureError


def kubeconfig(server: str) -> dict:
    return {
        "apiVersion": "v1",
        "current-context": "kind-ci",
        "clusters": [
            {"name": "kind-ci", "cluster": {"server": server, "certificate-authority-data": "x"}},
            {"name": "other", "cluster": {"server": "https://10.0.0.1:6443"}},
        ],
        "contexts": [
            {"name": "kind-ci", "context": {"cluster": "kind-ci", "user": "kind-ci"}},
            {"name": "other", "context": {"cluster": "other", "user": "kind-ci"}},
        ],
        "users": [{"name": "kind-ci", "user": {}}],
    }


def test_forwarder_command_listens_on_loopback_only():
    command = forwarder_command("ci-pyci-socat", 41000, 39000)
    assert command == [
        "socat", "-t", "3600",  # half-closed connections wait for the late answer (LAB.md)
        "TCP-LISTEN:41000,bind=127.0.0.1,fork,reuseaddr",
        "EXEC:'docker exec -i ci-pyci-socat socat -t 3600 STDIO TCP:127.0.0.1:39000'",
    ]


def test_orphan_forwarders_are_the_socats_into_that_container_only(tmp_path):
    """`pyci cleanup` finds a killed run's forwarders by their command line, and nothing else."""
    def process(pid: int, argv: list[str]) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process(101, forwarder_command("ci-pyci-socat", 41000, 39000))
    process(102, ["/usr/bin/socat", *forwarder_command("ci-pyci-socat", 41001, 5001)[1:]])
    process(103, forwarder_command("ci2-pyci-socat", 41002, 39001))  # another run's
    process(104, ["docker", "exec", "-i", "ci-pyci-socat", "socat", "STDIO", "TCP:127.0.0.1:1"])  # not socat
    process(105, ["socat", "TCP-LISTEN:9,fork", "TCP:10.0.0.1:9"])  # a user's socat
    (tmp_path / "self").mkdir()  # not a pid
    (tmp_path / "106").mkdir()  # exited meanwhile: no cmdline
    assert orphan_forwarders("ci-pyci-socat", proc=tmp_path) == [101, 102]
    assert orphan_forwarders("ci2-pyci-socat", proc=tmp_path) == [103]
    assert orphan_forwarders("c-pyci-socat", proc=tmp_path) == []  # a name that is a suffix of another


def test_loopback_server_port():
    assert loopback_server_port(kubeconfig("https://127.0.0.1:39000"), "kind-ci") == 39000
    assert loopback_server_port(kubeconfig("https://127.0.0.1:39000"), "other") is None


def test_unknown_context_falls_back_to_the_current_one():
    assert loopback_server_port(kubeconfig("https://127.0.0.1:39000"), "nope") == 39000


def test_rewrite_server_changes_only_the_contexts_cluster():
    doc = kubeconfig("https://127.0.0.1:39000")
    out = rewrite_server(doc, "kind-ci", "https://127.0.0.1:41000")
    assert out["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:41000"
    assert out["clusters"][0]["cluster"]["certificate-authority-data"] == "x"
    assert out["clusters"][1]["cluster"]["server"] == "https://10.0.0.1:6443"
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:39000", "input left alone"


def test_kubeconfig_without_the_cluster_is_an_infrastructure_error():
    doc = kubeconfig("https://127.0.0.1:1")
    doc["clusters"] = []
    with pytest.raises(InfrastructureError):
        loopback_server_port(doc, "kind-ci")


def test_choose_local_port_avoids_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_is_free(port)
        other = choose_local_port(port)
        assert other != port
        assert port_is_free(other)
