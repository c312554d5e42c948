"""`pyci cleanup` (pyci.cleanup) without a Docker daemon: what it removes, by label and run id, through
the CLI's own output."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyci import cleanup, cli
from pyci.ownership import LABEL_OWNS
from pyci.results import ExitCode
from pyci.settings import LABEL_CLUSTER, LABEL_MANAGED, LABEL_RUN
from tests.unit.fixtures.docker_fake import FakeDockerClient, FakeObject
from tests.unit.fixtures.tools import make_tool


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only a stand-in for kind, which logs its arguments."""
    make_tool(tmp_path / "bin", "kind", "")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("TOOL_LOG", str(tmp_path / "tools.log"))
    return tmp_path / "tools.log"


def owner(cluster: str, run: str) -> FakeObject:
    """The ownership marker (a volume) a run makes before `kind create`."""
    return FakeObject(f"pyci-owner-{cluster}", {LABEL_MANAGED: "true", LABEL_RUN: run, LABEL_OWNS: cluster})


def managed(name: str, run: str, cluster: str | None = None) -> FakeObject:
    labels = {LABEL_MANAGED: "true", LABEL_RUN: run}
    if cluster:
        labels[LABEL_CLUSTER] = cluster
    return FakeObject(name, labels)


@pytest.fixture
def docker_objects(monkeypatch: pytest.MonkeyPatch) -> FakeDockerClient:
    client = FakeDockerClient(
        containers=[
            managed("pyci-registry", "run-1", "pyci"),
            managed("pr-2-registry", "run-2", "pr-2"),
            managed("weird", "run-3", "Not A Name; rm -rf /"),
            FakeObject("someone-elses", {"other": "true"}),
            managed("mine-registry", "run-4", "mine"),
        ],
        networks=[managed("pyci-net", "run-1")],
        # run-4 only reused the user's cluster "mine": its registry names it, no marker does.
        volumes=[owner("pyci", "run-1"), owner("pr-2", "run-2"), owner("Not A Name; rm -rf /", "run-3")],
    )
    monkeypatch.setattr(cli, "docker_client", lambda: client)
    return client


def test_cleanup_removes_everything_labelled(
    tools: Path, docker_objects: FakeDockerClient, capsys: pytest.CaptureFixture[str]
):
    assert cli.main(["cleanup"]) == ExitCode.INFRASTRUCTURE  # the bad cluster label is reported
    captured = capsys.readouterr()
    assert [c.removed for c in docker_objects.containers.items] == [True, True, True, False, True]
    assert docker_objects.networks.items[0].removed
    assert [c for c in tools.read_text().splitlines() if " delete " in c] == [  # never "mine"
        "kind delete cluster --name pr-2",
        "kind delete cluster --name pyci",
    ]
    assert [v.removed for v in docker_objects.volumes.items] == [True, True, False]
    assert captured.err.splitlines() == [
        f"pyci: error: label {LABEL_OWNS}='Not A Name; rm -rf /' is not a kind cluster name: skipped"
    ]
    assert "removed network pyci-net" in captured.out
    assert docker_objects.containers.filters == [{"label": [f"{LABEL_MANAGED}=true"]}]


def test_cleanup_of_one_run(
    tools: Path, docker_objects: FakeDockerClient, capsys: pytest.CaptureFixture[str]
):
    assert cli.main(["cleanup", "--run-id", "run-2"]) == 0
    assert [c.removed for c in docker_objects.containers.items] == [False, True, False, False, False]
    deletes = [c for c in tools.read_text().splitlines() if " delete " in c]
    assert deletes == ["kind delete cluster --name pr-2"]
    assert [v.removed for v in docker_objects.volumes.items] == [False, True, False]
    assert docker_objects.containers.filters == [{"label": [f"{LABEL_MANAGED}=true", f"{LABEL_RUN}=run-2"]}]


def test_cleanup_dry_run_removes_nothing(
    tools: Path, docker_objects: FakeDockerClient, capsys: pytest.CaptureFixture[str]
):
    assert cli.main(["cleanup", "--dry-run", "--run-id", "run-1"]) == 0
    out = capsys.readouterr().out
    assert "would remove container pyci-registry" in out and "would delete kind cluster pyci" in out
    assert not any(c.removed for c in docker_objects.containers.items)
    assert not tools.exists()


def test_cleanup_reports_what_it_could_not_remove(
    tools: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    stuck = managed("stuck", "run-9")
    stuck.fail = True
    monkeypatch.setattr(cli, "docker_client", lambda: FakeDockerClient(containers=[stuck]))
    assert cli.main(["cleanup"]) == ExitCode.INFRASTRUCTURE
    assert capsys.readouterr().err == "pyci: error: could not remove container stuck: 409 Conflict: in use\n"


def test_cleanup_without_kind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("PATH", str(tmp_path))
    client = FakeDockerClient(containers=[managed("pyci-registry", "r", "pyci")],
                              volumes=[owner("pyci", "r")])
    problems = cleanup.remove_labelled(client, None)
    assert problems == ["kind not found on PATH: cannot delete kind cluster pyci"]
    assert not client.volumes.items[0].removed  # kept: the cluster is still there


def test_cleanup_without_a_daemon(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    def no_daemon() -> object:
        raise ConnectionError("no socket")

    monkeypatch.setattr(cli, "docker_client", no_daemon)
    assert cli.main(["cleanup"]) == ExitCode.INFRASTRUCTURE
    assert capsys.readouterr().err == "pyci: error: docker daemon not reachable: no socket\n"


def test_cleanup_of_one_run_removes_its_temp_folder_only(
    tools: Path, docker_objects: FakeDockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine, other = tmp_path / "pyci-run-2-abc123", tmp_path / "pyci-run-22-abc123"
    for folder in (mine, other):
        (folder / "pr-2").mkdir(parents=True)
        (folder / "pr-2" / "kubeconfig").write_text("secret")
    assert cli.main(["cleanup", "--run-id", "run-2"]) == 0
    assert not mine.exists() and other.exists()
    assert f"removed temporary folder {mine}" in capsys.readouterr().out


def test_the_reaper_removes_what_its_run_made_once_the_container_is_gone(
    tools: Path, docker_objects: FakeDockerClient, capsys: pytest.CaptureFixture[str]
):
    """The reaper's `pyci reap` ends in this module's cleanup (it once went through the CLI module)."""
    from pyci import reaper

    assert reaper.reap(docker_objects, "0123456789abcdef", "run-2") == []  # no such container: at once
    assert [c.removed for c in docker_objects.containers.items] == [False, True, False, False, False]
    deletes = [c for c in tools.read_text().splitlines() if " delete " in c]
    assert deletes == ["kind delete cluster --name pr-2"]
    out = capsys.readouterr().out
    assert "pyci reaper: container 0123456789ab ended; removing what run run-2 made" in out
