"""Fixtures shared by the e2e tests: the product image, built offline once per session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import REPO, lab_missing, lab_tool

# Concurrent sessions on one daemon (several worktrees) each set their own tag.
IMAGE = os.environ.get("PYCI_E2E_IMAGE", "pyci-lab/pyci:e2e")


@pytest.fixture(scope="session")
def image(docker_client, lab_images) -> str:
    for tool in ("kind", "kubectl", "tilt"):
        lab_tool(tool)
    done = subprocess.run([str(REPO / "tools" / "build-image"), IMAGE], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)  # the image size and its layers, for the -s / -ra report
    return IMAGE


@pytest.fixture
def names(docker_client) -> Iterator[list[str]]:
    """Container names a test starts (with --rm); whatever is still there afterwards is removed."""
    started: list[str] = []
    yield started
    for name in started:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, timeout=60)


NODE_IMAGE = "pyci-lab/kind-node:v1.34.4"


@pytest.fixture(scope="session")
def node_image(docker_client, lab_images) -> str:
    try:
        docker_client.images.get(NODE_IMAGE)
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound
        lab_missing(f"kind node image {NODE_IMAGE} (tools/build-kind-node)")
    lab_tool("kind")
    return NODE_IMAGE
