"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.integration._pyci_helpers import RemoteDaemon, remote_daemon_lab


@pytest.fixture(scope="session")
def api(control_plane) -> Iterator[client.ApiClient]:
    """A client of the lab control plane (its kwok node takes pods as soon as the fixture is up)."""
    api_client = control_plane.api_client()
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def remote_daemon() -> Iterator[RemoteDaemon]:
    with remote_daemon_lab() as daemon:
        yield daemon
