"""Fixtures shared by the e2e tests: the product image, built offline only when its inputs change."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, lab_missing, lab_tool
from tests.lab.leftovers import E2E_IMAGE

# Concurrent sessions on one daemon (several worktrees) each set their own tag.
IMAGE = E2E_IMAGE


@pytest.fixture(scope="session")
def image(docker_client, lab_images) -> str:
    """Built when its inputs changed (a hash of them is its label), else reused; xdist workers asking at
    once wait for one build (tools/build-image holds a lock)."""
    for tool in ("kind", "kubectl", "tilt"):
        lab_tool(tool)
    done = subprocess.run([str(REPO / "tools" / "build-image"), "--reuse", IMAGE], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)  # reused, or the image size and its layers, for the -s / -ra report
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


# --- running side by side (pytest-xdist, --dist loadgroup) ---------------------------------------------
# Tests whose runs use kind's default docker network `kind` check that the run which made it removes
# it, and that it is gone: two of them at once would see each other's clusters on it. They run one
# after another on one worker; every other test (its own cluster on a network of its own, or none)
# goes wherever a worker is free, except tests that must not meet (TOGETHER: same group, one worker).
KIND_NETWORK = {
    "test_kind.py", "test_kind_share.py", "test_kind_buildahead.py", "test_remote.py", "test_gitlab.py",
    "test_image.py::test_green_on_real_kind_as_a_github_docker_action_sibling",
    "test_image.py::test_docker_kill_of_the_action_container_leaves_nothing",
    "test_arm64.py::test_hello_green_with_the_arm64_image_as_a_sibling_on_real_kind",
    # all of both: act names its containers after the workflow and job (act-e2e/pyci), the same in every
    # test of them, and removes a running one of the same name (two workers split test_act.py once:
    # its sibling run's container was removed mid-run and left kind's network behind)
    "test_act.py", "test_act_host.py",
}
TOGETHER = {
    "test_corpus.py": "corpus",  # the breakages' module-scoped cluster
    "test_cancel.py::test_sigkill_then_pyci_cleanup_leaves_nothing_and_spares_a_users_cluster": "users",
}


def group_of(module: str, test: str) -> str | None:
    """The xdist group of `module::test`: one worker runs a group's tests one after another."""
    key = f"{module}::{test}"
    if module in KIND_NETWORK or key in KIND_NETWORK:
        return "kind-network"
    return TOGETHER.get(key) or TOGETHER.get(module)


def _group(item: pytest.Item) -> str | None:
    name = item.originalname if isinstance(item, pytest.Function) else ""
    return group_of(Path(str(item.fspath)).name, name)


# tryfirst: xdist's worker reads the marks in its own pytest_collection_modifyitems, and a plugin
# registered after this conftest is called before it. Without it no group ever took effect (two
# workers ran act tests side by side, and the kind-network tests too: 6 failures).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here and (group := _group(item)):
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under --dist loadgroup, xdist suffixes a grouped test's id with `@group`. Without it the group is
    ignored and two runs on kind's network may meet (pytest 9.2 dropped the suffix: pytest-xdist#1386;
    pyproject pins pytest below it): such a test fails saying so, rather than flake."""
    mark = item.get_closest_marker("xdist_group")
    if mark and item.config.getoption("loadgroup", False) and not item.nodeid.endswith(f"@{mark.args[0]}"):
        pytest.fail(f"pytest-xdist did not put this test in its group {mark.args[0]!r} (pytest "
                    f"{pytest.__version__}: see pytest-dev/pytest-xdist#1386)", pytrace=False)
