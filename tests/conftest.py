"""Session fixtures for the lab (real dockerd, registry, control plane, tilt) and the leftover check.

Unit tests (tests/unit) use none of these and run anywhere. Integration and e2e tests fail with a
message naming `tools/lab` when a lab part is missing: they never pass silently without it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab import leftovers

REPO = Path(__file__).resolve().parents[1]
LAB_CACHE = Path(os.environ.get("PYCI_LAB_CACHE")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyci-lab")
LAB_BIN = LAB_CACHE / "bin"

# The lab's Go-built tools come first on PATH for every test and every subprocess it starts.
if LAB_BIN.is_dir():
    os.environ["PATH"] = f"{LAB_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("TILT_DISABLE_ANALYTICS", "1")
# Subprocesses (`python -m pyci`, containers mounting the source) run this checkout's code, whichever
# checkout the editable install points at.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO / "entrypoint"), os.environ.get("PYTHONPATH", "")) if p)


def lab_missing(what: str) -> None:
    pytest.fail(f"lab part missing: {what}. Set the lab up with `tools/lab` (see README).", pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYCI_TEST_ORDER") == "reverse":  # order independence, with pytest-randomly's shuffle
        items.reverse()
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


# --- lab fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means the same thing here
        lab_missing(f"no Docker daemon answers ({e})")
    yield client
    client.close()


@dataclass(frozen=True)
class LabImages:
    base: str = "pyci-lab/base:latest"
    registry: str = "pyci-lab/registry:latest"
    socat: str = "pyci-lab/socat:latest"


@pytest.fixture(scope="session")
def lab_images(docker_client) -> LabImages:
    import docker

    images = LabImages()
    for name in (images.base, images.registry, images.socat):
        try:
            docker_client.images.get(name)
        except docker.errors.ImageNotFound:
            lab_missing(f"image {name}")
    return images


@pytest.fixture(scope="session")
def lab_bin() -> Path:
    if not LAB_BIN.is_dir():
        lab_missing(f"Go tools folder {LAB_BIN}")
    return LAB_BIN


def created_since(client, since: float, token: str) -> list[str]:
    """Containers, networks and volumes created on the daemon since `since` whose name or labels carry
    `token` (a run id's suffix, a cluster name): what one run made, whatever other tiers make beside it
    (a before/after listing of the whole daemon sees their objects, and races their removals)."""
    import json

    events = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                           filters={"event": "create"})
    return [f"{e.get('Type')} {e.get('Actor', {}).get('Attributes', {}).get('name', e.get('id', '?'))}"
            for e in events if e.get("Type") in ("container", "network", "volume")
            and token in json.dumps(e.get("Actor", {}))]


def run_token(stdout: str) -> str:
    """The suffix of the run id pyci prints first: its cluster (pyci-<suffix>) and all it makes carry it."""
    import re

    found = re.search(r"^run id (\S+)", stdout, re.M)
    assert found, f"no run id in pyci's output: {stdout[:500]}"
    return found.group(1).rsplit("-", 1)[-1]


def lab_tool(name: str) -> Path:
    path = LAB_BIN / name
    if not os.access(path, os.X_OK):
        lab_missing(f"Go tool {name} in {LAB_BIN}")
    return path


@pytest.fixture(scope="session")
def control_plane(lab_bin: Path) -> Iterator[object]:
    from tests.lab.controlplane import ControlPlane

    for tool in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "etcd"):
        lab_tool(tool)
    cp = ControlPlane(bin_dir=lab_bin, etcd_bin=str(lab_bin / "etcd"))
    try:
        cp.start()
    except Exception:
        cp.stop()
        raise
    yield cp
    cp.stop()


@dataclass(frozen=True)
class LabRegistry:
    name: str
    port: int

    @property
    def host(self) -> str:
        return f"localhost:{self.port}"


@pytest.fixture(scope="session")
def lab_registry(docker_client, lab_images: LabImages) -> Iterator[LabRegistry]:
    """A registry container shared by the session's tests (tests of registry.py make their own)."""
    import requests

    name = f"pyci-lab-registry-{os.getpid()}"
    container = docker_client.containers.run(
        lab_images.registry, name=name, detach=True, labels={"io.pyci.lab": "true"},
        ports={"5000/tcp": ("127.0.0.1", 0)})
    try:
        container.reload()
        port = int(container.ports["5000/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"lab registry on port {port} did not answer /v2/")
            time.sleep(0.1)
        yield LabRegistry(name=name, port=port)
    finally:
        container.remove(force=True, v=True)
        # tilt tags what it pushes as localhost:<port>/<image>:tilt-<hash> in the daemon: they go too.
        for image in docker_client.images.list():
            for tag in image.tags:
                if tag.startswith(f"localhost:{port}/"):
                    docker_client.images.remove(tag, noprune=False)


# --- the leftover check ---------------------------------------------------------------------------
# tests/lab/leftovers.py says what is counted and how it is scoped to this run. tools/test runs the
# tiers side by side and checks once after all of them (PYCI_LAB_LEFTOVER_CHECK=tools-test); a pytest
# session on its own checks itself (under xdist: the controller, before and after all workers).
leftovers.mark_this_run()
_SKIPPED = ("LEFTOVER CHECK SWITCHED OFF (PYCI_LAB_SKIP_LEFTOVER_CHECK=1): nothing checks that this "
            "session cleans up after itself")


def _check_mode(config: pytest.Config) -> str:
    if os.environ.get("PYCI_LAB_SKIP_LEFTOVER_CHECK") == "1":
        return "off"
    if os.environ.get("PYCI_LAB_LEFTOVER_CHECK") == "tools-test" or hasattr(config, "workerinput"):
        return "elsewhere"
    if config.getoption("collectonly"):  # nothing runs, nothing can be left (and others' runs may be)
        return "skip-collect"
    return "skip-unit" if _unit_only(config) else "here"


def _say(config: pytest.Config, line: str, red: bool = False) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(line, red=red, bold=red)
    else:
        print(line)


def pytest_sessionstart(session: pytest.Session) -> None:
    mode = _check_mode(session.config)
    if mode == "off":
        _say(session.config, _SKIPPED, red=True)
    if mode != "here":
        return
    try:
        session.config.stash[_before_key] = leftovers.snapshot(os.environ[leftovers.MARK])
    except leftovers.Blind as e:
        session.config.stash[_blind_key] = str(e)


def _unit_only(config: pytest.Config) -> bool:
    """Unit tests touch no daemon, process or cluster: they need (and get) no leftover check."""
    args = [a for a in config.args if not a.startswith("-")]
    return bool(args) and all(Path(a.split("::")[0]).resolve().is_relative_to(REPO / "tests" / "unit")
                              for a in args)


_before_key = pytest.StashKey[dict[str, str]]()
_blind_key = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if _check_mode(config) == "off":  # said again at the end, where a reader looks
        terminalreporter.write_line(_SKIPPED, red=True, bold=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the suite if the tests left containers, networks, images, processes or clusters behind."""
    if _check_mode(session.config) != "here":
        return
    left: list[str] = []
    blind = session.config.stash.get(_blind_key, "")
    if not blind:
        try:
            left = leftovers.left_behind(session.config.stash[_before_key], os.environ[leftovers.MARK])
        except leftovers.Blind as e:
            blind = str(e)
        if not left and not blind:
            return
    if blind:
        lines = [f"LEFTOVER CHECK FAILED: {blind}. Start the lab with `tools/lab`, or set "
                 "PYCI_LAB_SKIP_LEFTOVER_CHECK=1 to run without the check on purpose."]
    else:
        lines = leftovers.report(left, REPO)
    _say(session.config, "\n".join(lines), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
