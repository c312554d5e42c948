"""pyci.tilt with the real tilt (lab build of v0.37.6) against the lab control plane and registry.

Each test copies its app from tests/integration/apps into a temp folder and deploys into a fresh
namespace (a kubeconfig copy whose context names it). kwok runs no containers: images are built by
the real daemon and pushed to the real lab registry, pods turn Ready without pulling them.

`PYCI_UPDATE_FIXTURES=1` makes the healthy and the broken test save their snapshots as
tests/fixtures/tilt-snapshot-ok.json and tilt-snapshot-fail.json (used by the unit tests).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pyci import components, readiness, tilt, tiltfile
from pyci.results import Cancelled, Status
from pyci.settings import Settings
from pyci.tilt import failures
from tests.conftest import lab_tool
from tests.integration.test_readiness import delete_namespace, new_namespace

pytestmark = pytest.mark.integration

APPS = Path(__file__).resolve().parent / "apps"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
UPDATE_FIXTURES = os.environ.get("PYCI_UPDATE_FIXTURES") == "1"


@pytest.fixture
def app(api, registry_hosting, lab_registry, control_plane, tmp_path, request) -> Iterator[dict]:
    """A copy of apps/<name> (the indirect parameter), a namespace and a kubeconfig using it."""
    registry_hosting.apply(lab_registry.host)  # what registry.py applies in a real run
    name = request.param
    folder = tmp_path / name
    shutil.copytree(APPS / name, folder)
    namespace = new_namespace(api, "pyci-tilt")
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    kubeconfig.chmod(0o600)
    yield {"dir": folder, "namespace": namespace, "kubeconfig": kubeconfig, "artifacts": tmp_path / "art"}
    delete_namespace(api, namespace)


def run(app: dict, lines: list[str], timeout: float = 120, progress: float = 1.0, cancel=None,
        tilt_bin: str = "tilt", resource_deps: dict | None = None):
    settings = Settings(tiltfile=app["dir"] / "Tiltfile", timeout=timeout, progress_interval=progress)
    return tilt.run_ci(settings, app["kubeconfig"], app["artifacts"], lines.append, cancel, tilt_bin=tilt_bin,
                       resource_deps=resource_deps)


def tilt_processes(marker: str) -> list[int]:
    """pids of tilt processes whose command line mentions `marker` (the test's temp folder)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode()) == "tilt" and marker.encode() in b" ".join(argv):
            found.append(int(pid))
    return found


def uiresource_status(snapshot: Path | None, name: str) -> dict:
    """One uiResource's status in the snapshot tilt left (for an assertion's message)."""
    data = json.loads(snapshot.read_text()) if snapshot is not None else {}
    found = [r for r in data.get("view", {}).get("uiResources", []) if r["metadata"]["name"] == name]
    return found[0].get("status", {}) if found else {}


def save_fixture(snapshot: Path | None, name: str) -> None:
    if UPDATE_FIXTURES and snapshot is not None:
        FIXTURES.mkdir(exist_ok=True)
        data = json.loads(snapshot.read_text())
        (FIXTURES / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("app", ["healthy"], indirect=True)
def test_healthy_two_services(app, api):
    lines: list[str] = []
    t0 = time.time()  # wall clock, as tilt's own timestamps
    out = run(app, lines)
    elapsed = time.time() - t0
    assert out.exit_code == 0, "\n".join(lines[-40:])
    assert out.error is None
    assert any("SUCCESS" in line for line in lines)
    by = {r.name: r for r in out.resources}
    assert {"api", "web"} <= set(by), out.resources
    assert out.snapshot is not None and out.snapshot.is_file()
    # The snapshot is written as tilt exits and may lag behind its engine: a resource whose Ready
    # condition is True there must have a ready time; one not yet True there may lack it. Seen on a
    # fresh-clone run: neither api nor web was Ready in the snapshot yet, only the Tiltfile, so the
    # check below requires the snapshot's conditions to have been read at all, not api's or web's.
    ui_resources = json.loads(out.snapshot.read_text())["view"]["uiResources"]
    ready_in_snapshot = {r["metadata"]["name"] for r in ui_resources
                         for c in (r.get("status") or {}).get("conditions") or []
                         if c.get("type") == "Ready" and c.get("status") == "True"}
    assert ready_in_snapshot, ui_resources  # at least the Tiltfile's: the conditions were read
    for name in ("api", "web"):
        assert by[name].ok and by[name].source == "tilt"
        assert by[name].build_seconds and by[name].build_seconds > 0
        ready = by[name].ready_seconds
        if name in ready_in_snapshot:
            # tilt's clock starts just before ours
            assert ready is not None and 0 < ready < elapsed + 1, (ready, elapsed)
        else:
            assert ready is None or 0 < ready < elapsed + 1, (ready, elapsed)  # from the log's Ready line
    tilt_lines = [x for x in lines if not x.startswith(("waiting on", "tilt: "))]
    assert out.log_path.read_text().splitlines() == tilt_lines
    save_fixture(out.snapshot, "tilt-snapshot-ok.json")

    results = readiness.wait_healthy(api, [app["namespace"]], 60, {}, 3, lines.append)
    assert sorted(r.name for r in results) == [f"deployment/{app['namespace']}/{n}" for n in ("api", "web")]
    assert all(r.ok for r in results), results


@pytest.mark.parametrize("app", ["broken"], indirect=True)
def test_build_failure(app):
    lines: list[str] = []
    t0 = time.monotonic()
    out = run(app, lines)
    assert time.monotonic() - t0 < 100
    assert out.exit_code != 0
    assert out.error, lines[-20:]
    by = {r.name: r for r in out.resources}
    bad = [by["broken"]]
    assert (bad[0].ok, bad[0].reason) == (False, "BuildFailed"), out.resources
    # tilt ci stops at the first failure: the healthy one may not have been seen Ready by then, but
    # it is never blamed with a cause of its own.
    assert by["ok"].reason in (None, "NotReady", "NotBuilt"), by["ok"]
    assert by["ok"].ok is (by["ok"].reason is None), by["ok"]
    print(bad[0], out.error, sep="\n")
    assert "3" in (bad[0].message or "")
    assert "compiling..." in bad[0].logs or "compiling..." in out.log_path.read_text()
    save_fixture(out.snapshot, "tilt-snapshot-fail.json")


@pytest.mark.parametrize("app", ["slow"], indirect=True)
def test_timeout_logs_waiting_lines(app):
    lines: list[str] = []
    t0 = time.monotonic()
    out = run(app, lines, timeout=8, progress=1.0)
    took = time.monotonic() - t0
    assert out.exit_code != 0
    assert 8 <= took < 40, took
    assert out.error and "imeout" in out.error, out.error
    assert out.waiting_lines, lines
    assert all(line.startswith("waiting on: ") for line in out.waiting_lines)
    assert any("slow (" in line for line in out.waiting_lines), out.waiting_lines
    slow = {r.name: r for r in out.resources}["slow"]
    assert not slow.ok
    print("\n".join(out.waiting_lines[-3:]))


@pytest.mark.parametrize("app", ["slow"], indirect=True)
def test_cancel_stops_tilt(app):
    lines: list[str] = []
    cancel = threading.Event()
    threading.Timer(4.0, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        run(app, lines, timeout=120, cancel=cancel)
    assert time.monotonic() - t0 < 20
    assert tilt_processes(str(app["dir"])) == []


@pytest.mark.parametrize("app", ["crashing"], indirect=True)
def test_crashing_service_then_readiness_explains_it(app, api):
    lines: list[str] = []
    out = run(app, lines, timeout=60)
    print(f"tilt ci exit {out.exit_code}: {out.error}")
    assert out.exit_code != 0
    t0 = time.monotonic()
    results = readiness.wait_healthy(api, [app["namespace"]], 120, {}, 3, lines.append)
    assert time.monotonic() - t0 < 10
    by = {r.name.split("/")[-1]: r for r in results}
    assert by["fine"].ok
    assert (by["crasher"].ok, by["crasher"].reason) == (False, "CrashLoopBackOff")


SEED_TILTFILE = (
    """local_resource("seed", cmd=["bash", "-c", 'echo "seed: fixtures/orders.csv missing" >&2; exit 3'])\n"""
)


def run_held(tmp_path: Path, timeout: float) -> tuple[tilt.TiltOutcome, list[str], float]:
    """`tilt ci` of a one-local_resource Tiltfile by the lab's tilt-race build, with the race on."""
    (tmp_path / "Tiltfile").write_text(SEED_TILTFILE)
    app = {"dir": tmp_path, "kubeconfig": tmp_path / "no-cluster-needed", "artifacts": tmp_path / "art"}
    lines: list[str] = []
    started = time.monotonic()
    out = run(app, lines, timeout=timeout, tilt_bin=str(lab_tool("tilt-race")))
    return out, lines, time.monotonic() - started


def test_a_resource_tilt_holds_for_its_enable_status_is_nudged_and_fails_for_its_own_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen once on real kind (the fresh-clone CI's corpus local-bash way): tilt ci waited out its
    whole 3 min timeout on `seed:update tiltfile-reload`. The lab's tilt-race build makes that race
    happen every time; pyci's nudge lets the resource run, so it fails with its own error at once."""
    monkeypatch.setenv("PYCI_LAB_TILT_UIRESOURCE_RACE", "1")
    out, lines, took = run_held(tmp_path, timeout=60)
    assert out.exit_code == 1, lines[-20:]
    [seed] = out.resources
    assert (seed.name, seed.ok, seed.reason) == ("seed", False, "CommandFailed"), seed
    assert "exited 3: seed: fixtures/orders.csv missing" in (seed.message or ""), seed
    assert any("seed is held for its enable status" in line and "nudged it" in line for line in lines), lines
    assert took < 25, f"{took:.1f} s: the nudge should come {tilt.HELD_GRACE} s after the Tiltfile loaded"
    print(f"held resource nudged; tilt ci over in {took:.1f} s (timeout 60 s)")


def test_without_the_nudge_the_held_resource_waits_out_the_timeout_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the race is real in the tilt-race build, and the report names it when it wins."""
    monkeypatch.setenv("PYCI_LAB_TILT_UIRESOURCE_RACE", "1")
    monkeypatch.setattr(tilt.session, "NUDGES", 0)  # read where the poller lives
    out, lines, took = run_held(tmp_path, timeout=8)
    assert out.exit_code == 1 and out.error and "tiltfile-reload" in out.error, (out.error, lines[-10:])
    [seed] = out.resources
    assert (seed.name, seed.reason) == ("seed", "NotBuilt"), seed
    message = seed.message or ""
    assert "held for its own enable status" in message and "tilt race" in message, message
    assert 8 <= took < 30, took


@pytest.mark.parametrize("app", ["toolless"], indirect=True)
def test_a_local_command_the_machine_lacks_is_the_cause_and_the_image_built_from_it_is_blocked(
        app, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: tilt-dev/tilt-example-go through the image: its local_resource ran `go build`, the
    shell said `sh: go: not found` (exit 127), and pyci said `example-go-compile (NotBuilt): update
    pending`. Here the same shape with a tool no machine has: the compile is the cause, with its
    command, exit code, output and the host-action hint; the deployment that waits on it is blocked."""
    monkeypatch.setenv(failures.IN_IMAGE_ENV, "1")  # what the image's ENV sets: the hint is given
    lines: list[str] = []
    # As the pipeline does: the preflight's resource_deps, for when tilt's snapshot lags (seen here
    # 1 run in 3: the deployment still "held for the enable status of" the failed compile).
    deps = tiltfile.resource_deps(tiltfile.evaluate(app["dir"] / "Tiltfile"))
    assert deps == {"example-go": ("example-go-compile",)}, deps
    t0 = time.monotonic()
    out = run(app, lines, timeout=60, resource_deps=deps)
    took = time.monotonic() - t0
    assert out.exit_code == 1, lines[-20:]
    by = {r.name: r for r in out.resources}
    assert set(by) == {"example-go-compile", "example-go"}, out.resources
    cause = by["example-go-compile"]
    message = cause.message or ""
    assert (cause.ok, cause.reason) == (False, "CommandFailed"), cause
    assert message.startswith("command `nosuchtool build -o build/tilt-example-go ./` exited 127"), message
    assert "`nosuchtool` is not in pyci's image" in message and failures.HOST_ACTION in message, message
    assert "nosuchtool: not found" in cause.logs, cause.logs  # the shell's own words
    assert cause.blocked_by == []
    blocked = by["example-go"]
    assert (blocked.ok, blocked.reason, blocked.blocked_by) == (False, "NotBuilt", ["example-go-compile"]), (
        blocked, uiresource_status(out.snapshot, "example-go"), lines[-20:])
    assert blocked.message == "update pending: waiting on example-go-compile", blocked
    # Through the component model: one cause, and a bystander that is not finished, never blamed.
    verdicts = {c.name: c.status for c in components.merge(out.resources)}
    assert verdicts == {"example-go-compile": Status.FAILED, "example-go": Status.NOT_FINISHED}, verdicts
    save_fixture(out.snapshot, "tilt-snapshot-toolless.json")
    print(f"tilt ci over in {took:.1f} s: {cause.message}")


TILTFILE_LOAD_ERROR = (
    "allow_k8s_contexts('pyci-lab')\n"
    "# the extension's repo cannot be fetched: the lab has no internet, and this URL no repository\n"
    "v1alpha1.extension_repo(name='default', url='file:///nonexistent/pyci-tilt-verdicts/extensions')\n"
    "load('ext://restart_process', 'docker_build_with_restart')\n"
)


def test_a_tiltfile_that_fails_to_load_under_tilt_ci_is_one_tiltfile_result_at_its_line(
        tmp_path: Path) -> None:
    (tmp_path / "Tiltfile").write_text(TILTFILE_LOAD_ERROR)
    app = {"dir": tmp_path, "kubeconfig": tmp_path / "no-cluster-needed", "artifacts": tmp_path / "art"}
    lines: list[str] = []
    out = run(app, lines, timeout=60)
    assert out.exit_code == 1, lines[-20:]
    [tf] = out.resources
    assert (tf.name, tf.ok, tf.reason) == ("Tiltfile", False, "TiltfileError"), tf
    assert tf.location is not None and (tf.location.line, tf.location.col) == (4, 1), tf.location
    assert Path(tf.location.path).name == "Tiltfile"
    assert "restart_process" in (tf.message or ""), tf.message
    save_fixture(out.snapshot, "tilt-snapshot-tiltfile-error.json")
    print(tf.message)
