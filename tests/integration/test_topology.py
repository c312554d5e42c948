"""topology.detect on the real daemon: as a host process, as a sibling container, with --network host."""

from __future__ import annotations

import pytest

from pyci import topology
from pyci.results import InputError
from pyci.topology import Kind
from tests.integration._pyci_helpers import RemoteDaemon, last_json, run_pyci_in_container

DETECT = """
import json, docker
from pyci import topology
t = topology.detect(docker.from_env(timeout=30))
print(json.dumps({"kind": t.kind.value, "id": t.own_container_id, "evidence": t.evidence}))
"""


def test_this_process_is_host(docker_client):
    # This machine has a /.dockerenv of its own, but it is not a container on this daemon.
    detected = topology.detect(docker_client)
    assert detected.kind is Kind.HOST
    assert detected.own_container_id is None
    assert "DOCKER_HOST=unix://" in detected.evidence
    assert "own container on daemon: not found" in detected.evidence


def test_sibling_container_finds_itself(docker_client, lab_images):
    code, output, container_id = run_pyci_in_container(docker_client, lab_images.base, DETECT)
    assert code == 0, output
    found = last_json(output)
    assert found["kind"] == "sibling", found["evidence"]
    assert found["id"] == container_id


def test_sibling_found_even_with_a_custom_hostname(docker_client, lab_images):
    # The hostname no longer names the container: /proc must be enough.
    code, output, container_id = run_pyci_in_container(
        docker_client, lab_images.base, DETECT, hostname="not-the-id"
    )
    assert code == 0, output
    assert last_json(output)["id"] == container_id


def test_container_on_the_host_network_is_host(docker_client, lab_images):
    code, output, container_id = run_pyci_in_container(
        docker_client, lab_images.base, DETECT, network_mode="host"
    )
    assert code == 0, output
    found = last_json(output)
    assert found["kind"] == "host", found["evidence"]
    assert found["id"] == container_id


def test_override(docker_client):
    assert topology.detect(docker_client, "remote").kind is Kind.REMOTE
    assert "overridden" in topology.detect(docker_client, "host").evidence


def test_sibling_override_outside_a_container_is_an_input_error(docker_client):
    with pytest.raises(InputError, match="not a container"):
        topology.detect(docker_client, "sibling")


def test_remote_docker_host(remote_daemon: RemoteDaemon):
    """A daemon reached over TCP from a network namespace that shares nothing else with it."""
    code, output = remote_daemon.run_python(DETECT)
    assert code == 0, output
    found = last_json(output)
    assert found["kind"] == "remote", found["evidence"]
    assert "DOCKER_HOST=tcp://" in found["evidence"]


def test_docker_host_naming_this_machine_is_not_remote(docker_client, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert topology.detect(docker_client).kind is Kind.HOST
