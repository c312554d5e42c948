"""pyci.cache.mirror against the lab daemon: a third-party image pulled through the pull-through mirror on
a cold run comes from the cache dir on a warm run, with the upstream stopped.

A registry of the lab's own stands in for Docker Hub (on the default bridge, reached over plain http at
its address); the image is a small one built FROM scratch and pushed there.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import tarfile
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from pyci.cache import mirror, open_store
from pyci.settings import LABEL_MANAGED

pytestmark = pytest.mark.integration


def tiny_image(client: Any, tag: str) -> None:
    payload = secrets.token_bytes(256 * 1024)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY blob /blob\n"), ("blob", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)


# The stand-in's registry runs under a shell that outlives it: "stopping the upstream" kills the
# registry and keeps the container, so its address stays taken (a stopped container's address went to
# the next container started, the mirror itself, which then proxied to itself).
UPSTREAM_SHELL = ("/bin/registry serve /etc/docker/registry/config.yml & echo $! > /tmp/registry.pid; "
                  "wait; exec sleep infinity")


def start_upstream(client: Any, image: str, name: str) -> Any:
    container = client.containers.run(image, ["-c", UPSTREAM_SHELL], entrypoint="sh", name=name, detach=True,
                                      labels={LABEL_MANAGED: "true"}, ports={"5000/tcp": ("127.0.0.1", None)})
    deadline = time.monotonic() + 30
    while b"listening on" not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    return container


def silence(container: Any) -> None:
    """The upstream stops answering (connection refused) while its container keeps its address."""
    done = container.exec_run(["sh", "-c", "kill $(cat /tmp/registry.pid)"])
    assert done.exit_code == 0, done.output


@pytest.fixture
def upstream(docker_client, lab_images) -> Any:
    """The stand-in upstream with `lab/tiny:1` in it: (its host as image names spell it, container)."""
    name = f"pyci-test-upstream-{secrets.token_hex(3)}"
    container = start_upstream(docker_client, lab_images.registry, name)
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"]
        address = container.attrs["NetworkSettings"]["IPAddress"]
        pushed = f"localhost:{port}/lab/tiny:1"
        tiny_image(docker_client, pushed)
        for line in docker_client.api.push(f"localhost:{port}/lab/tiny", tag="1", stream=True, decode=True):
            assert "error" not in line, line
        docker_client.images.remove(pushed)
        yield f"{address}:5000", container
    finally:
        container.remove(force=True, v=True)


def run_once(client: Any, store: Any, host: str, image: str, ref: str) -> mirror.Mirror:
    """One run's mirror: start (restored), pull the image through it, save, remove."""
    mirrors = mirror.Mirrors()
    try:
        made = mirror.start(client, store, host, f"http://{host}", f"pyci-test-mirror-{secrets.token_hex(3)}",
                            image, {LABEL_MANAGED: "true"}, mirrors)
        assert mirror.pull_via(client.api, ref, mirrors.via())
        assert ref in client.images.get(ref).tags
        mirror.save(client, store, made)
        return made
    finally:
        mirror.remove_all(client, mirrors, print)
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref)


def test_a_warm_run_pulls_the_third_party_image_from_the_cache_dir_with_the_upstream_stopped(
        docker_client, lab_images, upstream, tmp_path: Path) -> None:
    host, container = upstream
    ref = f"{host}/lab/tiny:1"
    store = open_store(tmp_path / "cache", 1024**3)
    cold = run_once(docker_client, store, host, lab_images.registry, ref)
    assert cold.restored == 0 and cold.saved > 256 * 1024 and not cold.offline
    silence(container)  # from here on, nothing can come from upstream
    warm = run_once(docker_client, store, host, lab_images.registry, ref)
    # The registry's proxy mode will not start without its upstream: the mirror serves the cache's copy.
    assert warm.restored == cold.saved and warm.offline
    [entry] = store.entries(mirror.SECTION)
    assert entry.meta == {"host": host, "url": f"http://{host}"}


def test_image_names_resolve_to_their_registry_as_docker_does() -> None:
    assert mirror.split_ref("nginx:1.27") == ("docker.io", "library/nginx:1.27")
    assert mirror.split_ref("bitnami/redis") == ("docker.io", "bitnami/redis")
    assert mirror.split_ref("ghcr.io/a/b:1") == ("ghcr.io", "a/b:1")
    assert mirror.split_ref("10.0.0.5:5000/lab/tiny:1") == ("10.0.0.5:5000", "lab/tiny:1")
    assert mirror.upstreams(["nginx", "docker.io/library/redis", "localhost:5000/x", "quay.io/a@sha256:ab"]) \
        == ["docker.io"]
    assert mirror.upstream_url("docker.io") == "https://registry-1.docker.io"
    assert mirror.upstream_url("up:5000", ["up:5000"]) == "http://up:5000"
