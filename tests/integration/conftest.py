"""Fixtures shared by the integration tests."""

from __future__ import annotations

import contextlib
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


class RegistryHosting:
    """The lab control plane's KEP-1755 `local-registry-hosting` ConfigMap, which tilt reads."""

    NAME, NAMESPACE = "local-registry-hosting", "kube-public"

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)

    def read(self) -> client.V1ConfigMap | None:
        try:
            return self.core.read_namespaced_config_map(self.NAME, self.NAMESPACE, _request_timeout=30)
        except client.ApiException as e:
            if e.status != 404:
                raise
            return None

    def apply(self, host: str, help_url: str = "pyci lab registry") -> None:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=self.NAME, namespace=self.NAMESPACE),
            data={"localRegistryHosting.v1": f'host: "{host}"\nhelp: "{help_url}"\n'})
        if self.read() is None:
            self.core.create_namespaced_config_map(self.NAMESPACE, body, _request_timeout=30)
        else:
            self.core.replace_namespaced_config_map(self.NAME, self.NAMESPACE, body, _request_timeout=30)

    def delete(self) -> None:
        with contextlib.suppress(client.ApiException):
            self.core.delete_namespaced_config_map(self.NAME, self.NAMESPACE, _request_timeout=30)


@pytest.fixture
def registry_hosting(api) -> Iterator[RegistryHosting]:
    """The one way tests touch the ConfigMap: absent before each test (no test or `pyci run` may leave
    it behind), removed after it, whatever order the tests run in."""
    hosting = RegistryHosting(api)
    left = hosting.read()
    if left is not None:
        hosting.delete()
        pytest.fail(f"ConfigMap {hosting.NAMESPACE}/{hosting.NAME} was left behind by an earlier test or "
                    f"run: {left.data}", pytrace=False)
    yield hosting
    hosting.delete()
