from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import yaml

from pyci.cluster import get_provider
from pyci.cluster.kind import (
    CERTS_D_PATCH,
    KIND_API_VERSION,
    KindProvider,
    is_transient,
    load_user_config,
    merge_config,
    render_config,
    tail,
)
from pyci.results import InputError
from pyci.settings import Settings
from tests.unit.fixtures.tools import make_tool

USER = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: 30080
        hostPort: 8080
  - role: worker
networking:
  podSubnet: 10.244.0.0/16
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "native"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kind.yaml"
    path.write_text(text)
    return path


def test_no_user_config_gives_a_cluster_with_our_patch():
    config = merge_config(load_user_config(None))
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == KIND_API_VERSION
    assert config["containerdConfigPatches"] == [CERTS_D_PATCH]


def test_merge_keeps_the_users_nodes_networking_and_patches(tmp_path):
    user = load_user_config(write(tmp_path, USER))
    merged = merge_config(user)
    assert merged["nodes"] == user["nodes"]
    assert merged["networking"] == {"podSubnet": "10.244.0.0/16"}
    assert merged["containerdConfigPatches"][0] == user["containerdConfigPatches"][0]
    assert merged["containerdConfigPatches"][1] == CERTS_D_PATCH
    assert len(user["containerdConfigPatches"]) == 1, "the user's config must not be modified"


def test_merge_does_not_add_the_patch_twice():
    once = merge_config(load_user_config(None))
    assert merge_config(once)["containerdConfigPatches"] == [CERTS_D_PATCH]


def test_rendered_config_is_yaml_kind_can_read(tmp_path):
    merged = merge_config(load_user_config(write(tmp_path, USER)))
    assert yaml.safe_load(render_config(merged)) == merged
    assert 'config_path = "/etc/containerd/certs.d"' in render_config(merged)


@pytest.mark.parametrize(
    "text",
    [
        "kind: Pod\napiVersion: kind.x-k8s.io/v1alpha4\n",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n",
        "kind: Cluster\n",
        "- a\n- list\n",
        "kind: [unclosed\n",
    ],
)
def test_invalid_user_config_is_an_input_error_naming_the_input(tmp_path, text):
    with pytest.raises(InputError, match="kind-config"):
        load_user_config(write(tmp_path, text))


def test_missing_user_config_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="kind-config: cannot read"):
        load_user_config(tmp_path / "nope.yaml")


def test_patches_must_be_a_list():
    with pytest.raises(InputError, match="containerdConfigPatches"):
        merge_config({"kind": "Cluster", "apiVersion": KIND_API_VERSION, "containerdConfigPatches": "x"})


def test_create_args(tmp_path):
    provider = KindProvider("ci-1", tmp_path, node_image="kindest/node:v1.31.0")
    args = provider.create_args(Path("/c.yaml"), Path("/k"))
    assert args == [
        "create",
        "cluster",
        "--name",
        "ci-1",
        "--config",
        "/c.yaml",
        "--kubeconfig",
        "/k",
        "--wait",
        "0s",
        "--image",
        "kindest/node:v1.31.0",
    ]
    assert "--image" not in KindProvider("ci-1", tmp_path).create_args(Path("/c"), Path("/k"))
    assert provider.context == "kind-ci-1"


def test_provider_validates_the_kind_config_before_creating_anything(tmp_path):
    bad = write(tmp_path, "kind: Deployment\napiVersion: apps/v1\n")
    with pytest.raises(InputError, match="kind-config"):
        get_provider(Settings(kind_config=bad), tmp_path)


def test_get_provider_rejects_an_unknown_cluster(tmp_path):
    with pytest.raises(InputError, match="kind or existing"):
        get_provider(Settings(cluster="minikube"), tmp_path)


def test_get_provider_kind(tmp_path):
    provider = get_provider(Settings(cluster_name="x"), tmp_path)
    assert isinstance(provider, KindProvider)
    assert provider.name == "x"


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("ERROR: failed to create cluster: failed to init node with kubeadm: exit 1", True),
        ('could not find a log line that matches "Reached target .*Multi-User System.*"', True),
        ("ERROR: failed to create cluster: node(s) already exist for a cluster with the name", False),
        # seen in a shuffled CI run: the port kind found free in pyci's container was taken on the host
        ("Error response from daemon: driver failed programming external connectivity on endpoint "
         "x-control-plane (495b…): Error starting userland proxy: listen tcp4 127.0.0.1:36345: bind: "
         "address already in use", True),
        ("Bind for 127.0.0.1:36345 failed: port is already allocated", True),
        ("", False),
    ],
)
def test_transient_errors(stderr, expected):
    assert is_transient(stderr) is expected


def test_tail_keeps_the_last_lines():
    assert tail("\n".join(str(i) for i in range(100)), 3) == "97\n98\n99"


def test_kind_missing_is_an_infrastructure_error(tmp_path):
    from pyci.results import InfrastructureError

    provider = KindProvider("x", tmp_path, kind_bin=str(tmp_path / "no-kind"))
    with pytest.raises(InfrastructureError, match="kind not found"), contextlib.ExitStack() as stack:
        provider.create(stack)


FAKE_KIND = """#!/usr/bin/env bash
# A kind whose first `create cluster` loses the API server port race; it records every call.
echo "$*" >>"$CALLS"
case "$1 $2" in
  "get clusters") if [ -f "$STATE/created" ]; then echo x; fi ;;
  "create cluster")
    if [ ! -f "$STATE/lost-once" ]; then
      touch "$STATE/lost-once"
      echo 'ERROR: failed to create cluster: command "docker run --name x-control-plane ..." failed' >&2
      echo 'docker: Error starting userland proxy:' >&2
      echo 'listen tcp4 127.0.0.1:36345: bind: address already in use.' >&2
      exit 1
    fi
    touch "$STATE/created"
    while [ $# -gt 0 ]; do if [ "$1" = --kubeconfig ]; then echo "apiVersion: v1" >"$2"; fi; shift; done ;;
  "delete cluster") rm -f "$STATE/created" ;;
  "get kubeconfig") echo "apiVersion: v1" ;;
  "get nodes") echo x-control-plane ;;
esac
"""


def test_a_lost_api_server_port_race_is_retried_once_and_the_cluster_is_made(tmp_path, monkeypatch):
    kind = tmp_path / "kind"
    kind.write_text(FAKE_KIND)
    kind.chmod(0o755)
    calls, state = tmp_path / "calls", tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("CALLS", str(calls))
    monkeypatch.setenv("STATE", str(state))
    provider = KindProvider("x", tmp_path / "work", kind_bin=str(kind))
    with contextlib.ExitStack() as stack:
        info = provider.create(stack)
        assert info.nodes == ("x-control-plane",)
        made = [line.split()[:2] for line in calls.read_text().splitlines()]
        assert made.count(["create", "cluster"]) == 2 and ["delete", "cluster"] in made, made
        assert (state / "created").exists()
    assert not (state / "created").exists()  # the stack's cleanup deleted what the run made


@pytest.mark.parametrize("env_network, nodes_on, joined", [
    ("", "kind", "kind"),
    ("pyci-e2e-corpus-1", "kind bridge", "kind"),  # the variable names where kind would create, not this
    ("pyci-e2e-corpus-1", "pyci-e2e-corpus-1", "pyci-e2e-corpus-1"),
    ("other", "lab-net", "lab-net"),
])
def test_a_reused_cluster_is_reached_on_the_network_its_nodes_are_on(
        tmp_path, monkeypatch, env_network: str, nodes_on: str, joined: str) -> None:
    """Seen through the image: KIND_EXPERIMENTAL_DOCKER_NETWORK named a network that did not exist, the
    reused cluster's nodes were on `kind`, and joining the named one was an unexpected 404."""
    kind = tmp_path / "kind"
    kind.write_text(FAKE_KIND)
    kind.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    (state / "created").touch()  # the cluster exists: reused
    make_tool(tmp_path / "bin", "docker", nodes_on)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("TOOL_LOG", str(tmp_path / "tools.log"))
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("STATE", str(state))
    monkeypatch.setenv("KIND_EXPERIMENTAL_DOCKER_NETWORK", env_network)
    with contextlib.ExitStack() as stack:
        info = KindProvider("x", tmp_path / "work", kind_bin=str(kind)).create(stack)
    assert info.network == joined
    assert "docker inspect --format" in (tmp_path / "tools.log").read_text()
    assert (state / "created").exists()  # reused: never deleted
