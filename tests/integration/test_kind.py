"""cluster/kind.py with the real kind binary. No node image exists offline, so a cluster cannot come
up here: these tests cover listing, deleting, config acceptance by kind, and the failure paths."""

from __future__ import annotations

import contextlib
import time

import docker.errors
import pytest

from pyci.cluster.kind import KindProvider
from pyci.results import InfrastructureError, InputError
from tests.conftest import lab_tool
from tests.integration._pyci_helpers import unique

USER_CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".containerd]
      discard_unpacked_layers = false
"""


@pytest.fixture
def kind_bin() -> str:
    return str(lab_tool("kind"))


@pytest.fixture
def kind_network(docker_client, monkeypatch):
    """kind's docker network, named for this test so a real `kind` network is never touched."""
    name = unique("kind-test")
    monkeypatch.setenv("KIND_EXPERIMENTAL_DOCKER_NETWORK", name)
    yield name
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.networks.get(name).remove()


def leftovers(client, cluster: str) -> list[str]:
    return [
        c.name
        for c in client.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={cluster}"})
    ]


def test_clusters_lists_a_cluster_by_its_nodes(kind_bin, tmp_path, docker_client, lab_images):
    """kind knows a cluster by its node containers' label: a stand-in node (created, never started)
    makes one appear, and removing it makes it go; a clusters() that saw nothing would fail here."""
    provider = KindProvider(unique("it"), tmp_path, kind_bin=kind_bin)
    assert provider.name not in provider.clusters()
    assert provider.exists() is False
    node = docker_client.containers.create(lab_images.base, ["true"], name=f"{provider.name}-control-plane",
                                           labels={"io.x-k8s.kind.cluster": provider.name})
    try:
        assert provider.name in provider.clusters()
        assert provider.exists() is True
    finally:
        node.remove(force=True)
    assert provider.exists() is False


def test_deleting_a_cluster_that_does_not_exist_is_fine(kind_bin, tmp_path, docker_client):
    """kind exits 0 for a cluster it does not know, so delete() returns; a kind that exits non-zero
    makes the same call raise, so returning means kind said yes."""
    provider = KindProvider(unique("nonexistent"), tmp_path, kind_bin=kind_bin)
    assert provider.exists() is False
    provider.delete()
    assert provider.exists() is False and leftovers(docker_client, provider.name) == []
    with pytest.raises(InfrastructureError, match=r"`kind delete cluster --name .*` failed \(exit 1\)"):
        KindProvider(provider.name, tmp_path, kind_bin="false").delete()


def test_create_with_an_image_that_cannot_be_pulled_fails_fast(
    kind_bin, tmp_path, docker_client, kind_network
):
    config = tmp_path / "kind.yaml"
    config.write_text(USER_CONFIG)
    name = unique("it")
    provider = KindProvider(
        name,
        tmp_path,
        kind_config=config,
        node_image="pyci-lab/no-such-node:v0",
        kind_bin=kind_bin,
        create_timeout=120,
    )
    started = time.monotonic()
    with contextlib.ExitStack() as stack, pytest.raises(InfrastructureError) as err:
        provider.create(stack)
    assert time.monotonic() - started < 120
    assert f"could not create cluster {name}" in err.value.message
    # kind read our merged config (no "failed to load config") and failed on the image.
    assert "failed to load config" not in err.value.detail.lower(), err.value.detail
    assert "pyci-lab/no-such-node:v0" in err.value.detail
    assert (tmp_path / name / "kind-config.yaml").stat().st_mode & 0o777 == 0o600
    assert leftovers(docker_client, name) == []
    assert not provider.exists()


def test_create_timeout_is_an_infrastructure_error_and_cleans_up(
    kind_bin, tmp_path, docker_client, kind_network
):
    name = unique("it")
    provider = KindProvider(
        name, tmp_path, node_image="pyci-lab/no-such-node:v0", kind_bin=kind_bin, create_timeout=1
    )
    with contextlib.ExitStack() as stack, pytest.raises(InfrastructureError, match="timed out after 1s"):
        provider.create(stack)
    assert leftovers(docker_client, name) == []


def test_a_config_kind_rejects_is_an_input_error(kind_bin, tmp_path, kind_network):
    # pyci checks kind/apiVersion; kind validates the rest of what the user wrote.
    config = tmp_path / "kind.yaml"
    config.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: captain\n")
    provider = KindProvider(unique("it"), tmp_path, kind_config=config, kind_bin=kind_bin, create_timeout=60)
    with contextlib.ExitStack() as stack, pytest.raises(InputError, match="kind-config") as err:
        provider.create(stack)
    assert "captain" in err.value.detail
