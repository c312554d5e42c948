from __future__ import annotations

import pytest

from pyci.results import InputError
from pyci.topology import (
    DockerHost,
    Kind,
    classify,
    container_id_candidates,
    detect,
    is_local_address,
    parse_docker_host,
)

CID = "3f1c" + "a" * 60
OTHER = "9b2e" + "b" * 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DockerHost("unix", "")),
        ("", DockerHost("unix", "")),
        ("unix:///var/run/docker.sock", DockerHost("unix", "")),
        ("tcp://10.1.2.3:2376", DockerHost("tcp", "10.1.2.3")),
        ("ssh://me@build-box", DockerHost("ssh", "build-box")),
        ("tcp://localhost:2375", DockerHost("tcp", "localhost")),
    ],
)
def test_parse_docker_host(value, expected):
    assert parse_docker_host(value) == expected


def test_loopback_and_own_addresses_are_local():
    assert is_local_address("localhost")
    assert is_local_address("127.0.0.1")
    assert is_local_address("127.9.9.9")
    assert is_local_address("")


def test_foreign_addresses_are_not_local():
    # TEST-NET-3 and a name that cannot resolve: neither belongs to this machine.
    assert not is_local_address("203.0.113.77")
    assert not is_local_address("no-such-host.invalid")


def test_container_id_from_cgroup_v1():
    cgroup = f"12:memory:/docker/{CID}\n11:cpu:/docker/{CID}\n1:name=systemd:/\n"
    assert container_id_candidates(cgroup, "") == [CID]


def test_container_id_from_systemd_scope():
    cgroup = f"0::/system.slice/docker-{CID}.scope\n"
    assert container_id_candidates(cgroup, "") == [CID]


def test_container_id_from_mountinfo_on_cgroup_v2():
    mountinfo = (
        f"600 590 0:50 / / rw - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/{OTHER}/diff\n"
        f"612 600 254:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
        f"613 600 254:1 /var/lib/docker/containers/{CID}/hosts /etc/hosts rw - ext4 /dev/vda1 rw\n"
    )
    # The overlay layer id is not a container id and must not be offered.
    assert container_id_candidates("0::/\n", mountinfo) == [CID]


def test_no_container_evidence():
    assert container_id_candidates("0::/\n", "27 1 254:0 / / rw - ext4 /dev/vda rw\n") == []


@pytest.mark.parametrize(
    ("docker_host", "own", "host_network", "expected"),
    [
        (DockerHost("unix", ""), None, False, Kind.HOST),
        (DockerHost("unix", ""), CID, False, Kind.SIBLING),
        (DockerHost("unix", ""), CID, True, Kind.HOST),
        (DockerHost("tcp", "203.0.113.77"), None, False, Kind.REMOTE),
        (DockerHost("ssh", "203.0.113.77"), None, False, Kind.REMOTE),
        (DockerHost("tcp", "127.0.0.1"), None, False, Kind.HOST),
        (DockerHost("tcp", "203.0.113.77"), CID, False, Kind.SIBLING),
    ],
)
def test_classify(docker_host, own, host_network, expected):
    assert classify(docker_host, own, host_network) is expected


def test_bad_override_is_an_input_error_before_touching_docker():
    with pytest.raises(InputError, match="auto, host, sibling or remote"):
        detect(None, "cloud")


class _Containers:
    """A stand-in for docker's containers collection: id -> NetworkMode (a fake, no daemon here)."""

    def __init__(self, modes: dict[str, str]) -> None:
        self.modes = modes

    def get(self, ref: str) -> object:
        import docker.errors

        if ref not in self.modes:
            raise docker.errors.NotFound(ref)
        return type("C", (), {"id": ref, "attrs": {"HostConfig": {"NetworkMode": self.modes[ref]}}})()


def test_network_owner_follows_container_modes_to_the_namespace_owner():
    from pyci.topology import network_owner

    client = type("Client", (), {"containers": _Containers(
        {"step": "container:job", "job": "bridge", "nested": "container:step", "solo": "default"})})()
    assert network_owner(client, "solo") is None  # its own namespace
    assert network_owner(client, "step") == "job"  # act's docker action in its job container's network
    assert network_owner(client, "nested") == "job"
    gone = type("Client", (), {"containers": _Containers({"step": "container:vanished"})})()
    assert network_owner(gone, "step") is None
