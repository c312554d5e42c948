from __future__ import annotations

import base64
import io
import json
import tarfile
import time

import pytest
import requests
import yaml

from pyci.registry import (
    RegistryInfo,
    docker_config_json,
    hosts_toml,
    hosts_toml_tar,
    local_registry_hosting,
    parse_challenge,
    registry_name,
    remote_prefix,
    split_remote,
    wait_healthy,
)
from pyci.results import InfrastructureError

LOCAL = RegistryInfo(
    mode="local",
    host="localhost:5001",
    host_from_cluster="ci-registry:5000",
    container_name="ci-registry",
    prefix="localhost:5001",
    port=5001,
)


def test_registry_name_follows_the_cluster_name():
    assert registry_name("pyci") == "pyci-registry"
    assert registry_name("pr-17") != registry_name("pr-18")


@pytest.mark.parametrize(
    ("registry", "host", "path"),
    [
        ("ghcr.io/org/pyci", "ghcr.io", "org/pyci"),
        ("registry.example.com:5443/team", "registry.example.com:5443", "team"),
        ("https://ghcr.io/org/", "ghcr.io", "org"),
        ("localhost:5000", "localhost:5000", ""),
    ],
)
def test_split_remote(registry, host, path):
    assert split_remote(registry) == (host, path)


def test_remote_prefix_is_per_run():
    assert remote_prefix("ghcr.io/org/pyci", "123-1") == "ghcr.io/org/pyci/123-1"
    assert remote_prefix("localhost:5000", "r") == "localhost:5000/r"


def test_parse_bearer_challenge():
    challenge = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    assert parse_challenge(challenge) == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }


def test_hosts_toml_points_localhost_port_at_the_registry_container():
    assert hosts_toml(LOCAL) == '[host."http://ci-registry:5000"]\n'


def test_hosts_toml_tar_unpacks_at_root():
    with tarfile.open(fileobj=io.BytesIO(hosts_toml_tar(LOCAL))) as tar:
        names = tar.getnames()
        member = tar.extractfile("etc/containerd/certs.d/localhost:5001/hosts.toml")
        assert member is not None
        assert member.read().decode() == hosts_toml(LOCAL)
    assert "etc/containerd/certs.d/localhost:5001" in names


def test_local_registry_hosting_document():
    doc = local_registry_hosting(LOCAL)
    assert doc == {
        "host": "localhost:5001",
        "hostFromContainerRuntime": "localhost:5001",
        "hostFromClusterNetwork": "ci-registry:5000",
        "help": "https://kind.sigs.k8s.io/docs/user/local-registry/",
    }
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc


def test_remote_registry_hosting_points_at_the_run_prefix():
    info = RegistryInfo(mode="remote", host="ghcr.io", prefix="ghcr.io/org/pyci/7")
    doc = local_registry_hosting(info)
    assert (
        doc["host"]
        == doc["hostFromContainerRuntime"]
        == doc["hostFromClusterNetwork"]
        == "ghcr.io/org/pyci/7"
    )


def test_password_stays_out_of_repr_but_in_the_pull_secret():
    info = RegistryInfo(mode="remote", host="ghcr.io", username="bot", password="s3cret")
    assert "s3cret" not in repr(info)
    auths = json.loads(docker_config_json(info))["auths"]["ghcr.io"]
    assert base64.b64decode(auths["auth"]).decode() == "bot:s3cret"


def test_health_failure_names_the_port():
    # Port 1 on loopback refuses at once; two quick attempts keep the test fast.
    with pytest.raises(InfrastructureError, match="port 1 "):
        wait_healthy("http://127.0.0.1:1/v2/", 1, attempts=2, first_delay=0.01)


def test_no_health_url_means_checked_later(monkeypatch: pytest.MonkeyPatch):
    def no_request(*args: object, **kwargs: object) -> None:
        raise AssertionError("no request may be made before the registry is reachable from here")

    monkeypatch.setattr(requests, "get", no_request)
    t0 = time.monotonic()
    wait_healthy(None, 5001)  # returns at once, no request made (no_request would raise)
    assert time.monotonic() - t0 < 0.1  # no back-off either
