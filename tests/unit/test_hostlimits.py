"""Host limits before anything is created: the judges on values, the stage on files standing in for
/proc/sys/fs/inotify (a tmp folder: the host's own limits are never touched here)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from pyci import daemon, hostlimits, pipeline, reaper, topology
from pyci.hostlimits import OK, RAISE, STOP, WARN, HostLimitError, judge_inotify
from pyci.platforms import Local
from pyci.results import ExitCode
from pyci.settings import Settings
from tests.unit.fixtures.docker_fake import FakeDockerClient, FakeObject

GB = 1024**3
HEALTHY_DAEMON = {"ServerVersion": "20.10.24+dfsg1", "CgroupVersion": "1", "DockerRootDir": "/var/lib/docker"}


class Daemon(FakeDockerClient):
    """The fake client with `docker info`."""

    def __init__(self, info: dict[str, str] | None = None, containers: list[FakeObject] | None = None):
        super().__init__(containers=containers)
        self._info = {**HEALTHY_DAEMON, **(info or {})}

    def info(self) -> dict[str, str]:
        return self._info


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/proc/sys/fs/inotify as a folder of files, writable by default (as for root on a host)."""
    folder = tmp_path / "inotify"
    folder.mkdir()
    monkeypatch.setattr(hostlimits, "writable", lambda path: True)
    return folder


def limits(folder: Path, instances: int, watches: int) -> None:
    (folder / "max_user_instances").write_text(f"{instances}\n")
    (folder / "max_user_watches").write_text(f"{watches}\n")


def read(folder: Path) -> tuple[int, int]:
    return (int((folder / "max_user_instances").read_text()), int((folder / "max_user_watches").read_text()))


def run_check(folder: Path, client: Any = None, topology_kind: str = "host", settings: Settings | None = None
              ) -> tuple[contextlib.ExitStack, list[str], list[str]]:
    said: list[str] = []
    warned: list[str] = []
    stack = contextlib.ExitStack()
    hostlimits.check(settings or Settings(), client or Daemon(), topology_kind, stack, said.append,
                     warned.append, folder=folder)
    return stack, said, warned


# --- the judges ---
@pytest.mark.parametrize(("name", "value", "can_raise", "action"), [
    ("max_user_instances", 8, False, STOP), ("max_user_instances", 127, False, STOP),
    ("max_user_instances", 128, False, WARN), ("max_user_instances", 511, False, WARN),
    ("max_user_instances", 8, True, RAISE), ("max_user_instances", 512, False, OK),
    ("max_user_instances", 8192, True, OK), ("max_user_watches", 8191, False, STOP),
    ("max_user_watches", 8192, False, WARN), ("max_user_watches", 192540, True, RAISE),
    ("max_user_watches", 524288, False, OK),
])
def test_inotify_verdicts(name: str, value: int, can_raise: bool, action: str):
    assert judge_inotify(name, value, can_raise)[0] == action


def test_a_stop_names_the_limit_and_the_fix_in_one_line():
    action, line = judge_inotify("max_user_instances", 8, can_raise=False)
    assert (action, line) == (STOP, "fs.inotify.max_user_instances is 8, below the 128 a kind cluster needs: "
                                    "run `sysctl -w fs.inotify.max_user_instances=512` on the Docker host")
    assert "sysctl -w fs.inotify.max_user_watches=524288" in judge_inotify("max_user_watches", 100, False)[1]


def test_disk_docker_version_and_cgroup_judges():
    assert hostlimits.disk_problem(3 * GB, "/var/lib/docker") is None
    assert hostlimits.disk_problem(int(2.5 * GB), "/var/lib/docker") == (
        "only 2.5 GB free in the Docker data root /var/lib/docker: a kind node image and the app's images "
        "need 3 GB; free some (`docker system prune`)")
    assert hostlimits.docker_problem("20.10.24+dfsg1") is None
    assert hostlimits.docker_problem("28.2.2") is None
    assert hostlimits.docker_problem("") is None  # unreadable: no reason to stop
    assert hostlimits.docker_problem("19.03.15") == (
        "Docker 19.03.15 is older than 20.10, the oldest kind supports: upgrade the Docker daemon")
    assert hostlimits.cgroup_problem("1", (1, 34)) is None
    assert hostlimits.cgroup_problem("2", (1, 36)) is None
    assert hostlimits.cgroup_problem("1", None) is None  # an image whose tag does not say
    assert hostlimits.cgroup_problem("1", (1, 35)) == (
        "Kubernetes 1.35 does not run on cgroup v1, which this Docker host uses: pick kubernetes-version "
        "1.34 or older, or a host with cgroup v2")


# --- the stage, on stand-in files ---
def test_instances_at_8_that_cannot_be_raised_stop_with_one_line_exit_2(proc: Path, monkeypatch):
    limits(proc, 8, 524288)
    monkeypatch.setattr(hostlimits, "writable", lambda path: False)
    with pytest.raises(HostLimitError) as caught:
        run_check(proc)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert caught.value.message.splitlines() == [judge_inotify("max_user_instances", 8, False)[1]]
    assert read(proc) == (8, 524288)


def test_instances_at_8_as_root_are_raised_for_the_run_and_restored_at_cleanup(proc: Path):
    limits(proc, 8, 192540)
    stack, said, warned = run_check(proc)
    assert read(proc) == (512, 524288)
    assert said == [
        "fs.inotify.max_user_instances: raised from 8 to 512 for this run",
        "fs.inotify.max_user_watches: raised from 192540 to 524288 for this run"]
    assert warned == []
    said.clear()
    stack.close()  # the run's cleanup
    assert read(proc) == (8, 192540)
    assert said == ["fs.inotify.max_user_watches: restored to 192540",
                    "fs.inotify.max_user_instances: restored to 8"]


def test_a_value_changed_by_someone_else_during_the_run_is_left_alone(proc: Path):
    limits(proc, 128, 524288)
    stack, said, _ = run_check(proc)
    (proc / "max_user_instances").write_text("1024\n")  # an admin raised it further meanwhile
    stack.close()
    assert read(proc) == (1024, 524288)


def test_a_limit_that_will_not_take_the_write_is_judged_as_not_raisable(proc: Path, monkeypatch):
    limits(proc, 200, 524288)
    monkeypatch.setattr(hostlimits, "write_limit", lambda path, value: False)  # e.g. EPERM in a container
    stack, said, warned = run_check(proc)
    assert said == [] and len(warned) == 1 and "max_user_instances is 200" in warned[0]
    stack.close()
    assert read(proc) == (200, 524288)


def test_a_stop_elsewhere_comes_before_any_raise(proc: Path):
    limits(proc, 8, 8192)
    with pytest.raises(HostLimitError, match="^Docker 19.03.15 is older than 20.10"):
        run_check(proc, Daemon({"ServerVersion": "19.03.15"}))
    assert read(proc) == (8, 8192)  # nothing changed on the host


def test_cgroup_v1_with_kubernetes_1_35_stops(proc: Path):
    limits(proc, 512, 524288)
    with pytest.raises(HostLimitError, match="^Kubernetes 1.35 does not run on cgroup v1"):
        run_check(proc, settings=Settings(node_image="kindest/node:v1.35.0"))
    run_check(proc, Daemon({"CgroupVersion": "2"}), settings=Settings(node_image="kindest/node:v1.35.0"))
    run_check(proc, settings=Settings(kubernetes_version="1.34.0"))  # v1 and 1.34: fine


def test_free_disk_is_checked_where_pyci_sees_the_daemons_file_system(proc: Path, monkeypatch):
    limits(proc, 512, 524288)
    seen: list[str] = []

    def usage(path: str) -> Any:
        seen.append(path)
        return type("Usage", (), {"free": 1 * GB})()

    monkeypatch.setattr(hostlimits.shutil, "disk_usage", usage)
    with pytest.raises(HostLimitError, match=r"^only 1.0 GB free in the Docker data root /data/docker"):
        run_check(proc, Daemon({"DockerRootDir": "/data/docker"}), "host")
    run_check(proc, Daemon({"DockerRootDir": "/data/docker"}), "sibling")  # not our file system
    run_check(proc, Daemon({"DockerRootDir": "/data/docker"}), "remote")
    assert seen == ["/data/docker"]


def test_a_remote_daemons_inotify_is_another_machines(proc: Path, monkeypatch):
    limits(proc, 8, 100)
    monkeypatch.setattr(hostlimits, "writable", lambda path: False)
    assert run_check(proc, topology_kind="remote")[1:] == ([], [])
    with pytest.raises(HostLimitError):
        run_check(proc, topology_kind="sibling")  # the same kernel as the daemon's


def test_no_proc_no_inotify_check(tmp_path: Path):
    assert run_check(tmp_path / "missing")[1:] == ([], [])


def test_the_real_reader_reads_this_hosts_values():
    value = hostlimits.read_limit(hostlimits.INOTIFY / "max_user_instances")
    assert value is None or value > 0


def test_only_a_run_that_creates_a_kind_cluster_checks():
    node = FakeObject("reuse-control-plane", {"io.x-k8s.kind.cluster": "reuse"})
    client = Daemon(containers=[node])
    assert hostlimits.applies(Settings(cluster_name="fresh"), client)
    assert not hostlimits.applies(Settings(cluster_name="reuse"), client)  # reused: created already
    assert not hostlimits.applies(Settings(cluster="existing"), client)


# --- in the pipeline: before the reaper, so a stop leaves nothing ---
def test_a_stop_at_host_limits_starts_no_reaper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    client = Daemon({"ServerVersion": "19.03.15"})
    started: list[str] = []
    monkeypatch.setattr(daemon, "docker_client", lambda: client)
    client.close = lambda: None  # type: ignore[attr-defined]
    sibling = topology.Topology(topology.Kind.SIBLING, "c0ffee", "test")
    monkeypatch.setattr(topology, "detect", lambda c, o: sibling)
    monkeypatch.setattr(reaper, "start", lambda *a: started.append("reaper"))
    state = pipeline.Run(settings=Settings(cluster_name="fresh"), platform=Local(io.StringIO(), {}))
    stack = contextlib.ExitStack()
    with pytest.raises(HostLimitError):
        pipeline._docker(state, stack)
    assert started == []
    assert [(s.name, s.ok) for s in state.stages] == [
        ("docker", True), ("topology", True), ("host limits", False)]
    client._info["ServerVersion"] = "28.2.2"
    monkeypatch.setattr(hostlimits, "INOTIFY", tmp_path)  # the /proc path, as a folder of files
    limits(tmp_path, 8, 524288)
    monkeypatch.setattr(hostlimits, "writable", lambda path: True)
    pipeline._docker(state, stack)  # the acceptance's other half: a raised limit, and the run goes on
    assert started == ["reaper"] and read(tmp_path) == (512, 524288)
    stack.close()
    assert read(tmp_path) == (8, 524288)
