"""Pure parts of pyci.tilt: command line, snapshot parsing, Session summaries, log parsing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyci import tilt
from pyci.results import Cancelled, InputError, ResourceResult
from pyci.settings import Settings
from pyci.tiltfile import SourceLocation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def ui(name, update="ok", runtime="ok", history=(), ready=None, pod_status=None, waiting=None, specs=None):
    status = {"updateStatus": update, "runtimeStatus": runtime, "buildHistory": list(history)}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", **ready}]
    if pod_status:
        status["k8sResourceInfo"] = {"podName": f"{name}-abc", "podStatus": pod_status}
    if waiting:
        status["waiting"] = waiting
    if specs:
        status["specs"] = specs
    return {"metadata": {"name": name}, "status": status}


def snap(*resources, start="2026-11-22T10:00:00.000000Z"):
    return {"view": {"uiResources": list(resources), "uiSession": {"status": {"tiltStartTime": start}}}}


# --- command and environment -----------------------------------------------------------------------


def test_tilt_command_has_timeout_port_snapshot_and_args_after_double_dash():
    cmd = tilt.tilt_command("tilt", Path("/w/Tiltfile"), 90.4, 10350, Path("/a/s.json"), ["--env", "ci"])
    assert cmd == [
        "tilt", "ci", "--file", "/w/Tiltfile", "--timeout", "90s", "--port", "10350",
        "--output-snapshot-on-exit", "/a/s.json", "--", "--env", "ci",
    ]  # fmt: skip


def test_tilt_command_without_args_has_no_double_dash():
    assert "--" not in tilt.tilt_command("tilt", Path("T"), 0.2, 1, Path("s"), [])
    assert tilt.tilt_command("tilt", Path("T"), 0.2, 1, Path("s"), [])[5] == "1s"


def test_tilt_env_sets_kubeconfig_and_disables_analytics():
    env = tilt.tilt_env({"PATH": "/bin", "TILT_DISABLE_ANALYTICS": ""}, Path("/k/config"))
    assert env == {"PATH": "/bin", "KUBECONFIG": "/k/config", "TILT_DISABLE_ANALYTICS": "1"}


def test_free_port_is_a_port():
    assert 0 < tilt.free_port() < 65536


# --- times -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:01Z", 1795341601.0),
        ("2026-11-22T10:00:01.500000Z", 1795341601.5),
        ("2026-11-22T10:00:01.123456789Z", 1795341601.123456),
        ("2026-11-22T11:00:01+01:00", 1795341601.0),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_parse_time(text, expected):
    got = tilt.parse_time(text)
    assert got == pytest.approx(expected) if expected is not None else got is None


# --- snapshot ----------------------------------------------------------------------------------------


def test_healthy_resource_has_build_and_ready_time():
    history = [
        {"startTime": "2026-11-22T10:00:02.000000Z", "finishTime": "2026-11-22T10:00:05.500000Z"},
    ]
    ready = {"status": "True", "lastTransitionTime": "2026-11-22T10:00:08Z"}
    [res] = tilt.resources_from_snapshot(snap(ui("api", history=history, ready=ready)))
    assert res == ResourceResult("api", "tilt", True, build_seconds=3.5, ready_seconds=8.0)


def test_build_seconds_sum_all_builds():
    history = [
        {"startTime": "2026-11-22T10:01:00Z", "finishTime": "2026-11-22T10:01:01Z"},
        {"startTime": "2026-11-22T10:00:00Z", "finishTime": "2026-11-22T10:00:02Z"},
        {"startTime": "2026-11-22T10:02:00Z"},  # unfinished: ignored
    ]
    [res] = tilt.resources_from_snapshot(snap(ui("api", history=history)))
    assert res.build_seconds == 3.0


def test_build_error_is_build_failed_with_the_error():
    history = [{"error": "docker build failed: exit 1", "startTime": "2026-11-22T10:00:00Z"}]
    [res] = tilt.resources_from_snapshot(snap(ui("api", update="error", runtime="none", history=history)))
    assert (res.ok, res.reason, res.message) == (False, "BuildFailed", "docker build failed: exit 1")


def test_runtime_error_takes_pod_status_as_reason():
    ready = {"status": "False", "message": "container crashed"}
    [res] = tilt.resources_from_snapshot(
        snap(ui("web", runtime="error", ready=ready, pod_status="CrashLoopBackOff"))
    )
    assert (res.ok, res.reason, res.message) == (False, "CrashLoopBackOff", "container crashed")


def test_runtime_error_without_pod_status():
    [res] = tilt.resources_from_snapshot(snap(ui("srv", runtime="error")))
    assert (res.ok, res.reason) == (False, "RuntimeError")


def test_pending_update_is_not_built_and_names_what_it_waits_on():
    waiting = {"reason": "waiting-for-dep", "on": [{"kind": "UIResource", "name": "db"}]}
    [res] = tilt.resources_from_snapshot(snap(ui("api", update="pending", runtime="none", waiting=waiting)))
    assert (res.ok, res.reason, res.message) == (False, "NotBuilt", "update pending: waiting on db")


def test_pending_runtime_is_not_ready():
    [res] = tilt.resources_from_snapshot(snap(ui("web", runtime="pending", pod_status="ContainerCreating")))
    assert (res.ok, res.reason) == (False, "NotReady")
    assert "ContainerCreating" in (res.message or "")


def test_local_resource_not_applicable_runtime_is_ok():
    [res] = tilt.resources_from_snapshot(snap(ui("lint", runtime="not_applicable")))
    assert res.ok


def test_tiltfile_left_out_when_ok_kept_first_as_tiltfile_when_failed():
    ok = snap(ui("(Tiltfile)", runtime="not_applicable"), ui("b"), ui("a"))
    assert [r.name for r in tilt.resources_from_snapshot(ok)] == ["a", "b"]
    error = ("Traceback (most recent call last):\n  /w/Tiltfile:4:1: in <toplevel>\n"
             "Error in load: no such repo")
    bad_tf = ui("(Tiltfile)", update="error", runtime="not_applicable", history=[{"error": error}])
    bad = snap(ui("b"), bad_tf)
    tf, b = tilt.resources_from_snapshot(bad)
    # Reported as `Tiltfile` (was `(Tiltfile)`, tilt's internal name) at its traceback's line.
    assert (tf.name, tf.reason, b.name) == ("Tiltfile", "TiltfileError", "b")
    assert tf.message == "Error in load: no such repo"
    assert tf.location == SourceLocation("/w/Tiltfile", 4, 1)


def test_disabled_resources_are_left_out():
    res = ui("off", update="none", runtime="none")
    res["status"]["disableStatus"] = {"state": "Disabled"}
    assert tilt.resources_from_snapshot(snap(res)) == []


def test_snapshot_without_view_key_and_empty():
    assert tilt.resources_from_snapshot({}) == []
    assert [r.name for r in tilt.resources_from_snapshot({"uiResources": [ui("x")]})] == ["x"]


# --- real snapshots captured from tilt v0.37.6 on the lab control plane ---------------------------


def _fixture(name):
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"{path} missing: captured by tests/integration/test_tilt.py (see its docstring)")
    return json.loads(path.read_text())


def test_real_ok_snapshot_all_resources_ok_with_times():
    """tilt ci exited 0; the snapshot may still show a resource pending (seen), exit 0 overrules that."""
    results = tilt.resources_from_snapshot(_fixture("tilt-snapshot-ok.json"), exit_code=0)
    assert results and all(r.ok for r in results), results
    assert {"api", "web"} <= {r.name for r in results}
    for r in results:
        if r.name in ("api", "web"):
            assert r.build_seconds is not None and r.build_seconds > 0
            assert r.ready_seconds is not None and r.ready_seconds > 0


def test_real_failing_snapshot_names_the_broken_resource():
    by = {r.name: r for r in tilt.resources_from_snapshot(_fixture("tilt-snapshot-fail.json"), exit_code=1)}
    assert (by["broken"].ok, by["broken"].reason) == (False, "BuildFailed")
    assert "exit code: 3" in (by["broken"].message or "")
    # tilt ci stopped at the first failure, before the healthy resource was built: in this snapshot
    # it is still "update in progress", never blamed with the build failure.
    assert (by["ok"].ok, by["ok"].reason) == (False, "NotBuilt"), by["ok"]


def test_log_facts_from_log_list():
    snapshot = {"view": {"logList": {
        "spans": {"build:1": {"manifestName": "api"}, "monitor:api:p": {"manifestName": "api"}},
        "segments": [
            {"spanId": "build:1", "time": "2026-11-22T10:00:01Z", "text": "     DONE IN: 1.50s \n"},
            {"spanId": "monitor:api:p", "time": "2026-11-22T10:00:02Z",
             "text": "     ┊ Ready   - (…) Pending\n"},
            {"spanId": "monitor:api:p", "time": "2026-11-22T10:00:03Z", "text": "     ┊ Ready   - <1s\n"},
            {"spanId": "nope", "time": "2026-11-22T10:00:04Z", "text": "DONE IN: 9s"},
        ],
    }}}  # fmt: skip
    facts = tilt.log_facts(snapshot)
    assert facts == {
        "api": tilt.LogFacts(build_seconds=1.5, ready_at=tilt.parse_time("2026-11-22T10:00:03Z"))
    }


def test_exit_code_zero_overrules_stale_pending_but_not_errors():
    s = snap(
        ui("web", update="pending", runtime="pending"), ui("bad", update="error", history=[{"error": "x"}])
    )
    by = {r.name: r for r in tilt.resources_from_snapshot(s, exit_code=0)}
    assert by["web"].ok and not by["bad"].ok


# --- session -> waiting line ----------------------------------------------------------------------


def target(name, state, type_="job", resources=None):
    return {"name": name, "type": type_, "resources": resources or [name.rsplit(":", 1)[0]], "state": state}


def session(*targets):
    return {"metadata": {"name": "Tiltfile"}, "status": {"targets": list(targets), "done": False}}


def test_waiting_line_from_session_only():
    s = session(
        target("tiltfile:update", {"terminated": {"startTime": "x"}}, resources=["(Tiltfile)"]),
        target("api:update", {"active": {"startTime": "x"}}),
        target("api:runtime", {"waiting": {"waitReason": "waiting-for-dep"}}, "server"),
        target("web:update", {"terminated": {}}),
        target("web:runtime", {"active": {"ready": False}}, "server"),
        target("db:update", {"terminated": {}}),
        target("db:runtime", {"active": {"ready": True}}, "server"),
    )
    assert tilt.waiting_line(s) == "waiting on: api (updating), web (not ready)"


def test_waiting_line_uses_uiresources_to_say_why():
    s = session(
        target("api:update", {"active": {"startTime": "x"}}),
        target("web:runtime", {"active": {"ready": False}}, "server"),
        target("after:update", {"waiting": {"waitReason": "waiting-for-dep"}}),
    )
    uires = {
        "items": [
            ui("api", update="in_progress", runtime="pending", specs=[{"type": "image", "id": "api"}]),
            ui("web", runtime="pending", pod_status="Running",
               ready={"status": "False", "message": "readiness probe failing"}),
            ui("after", update="pending", runtime="none",
               waiting={"reason": "waiting-for-dep", "on": [{"name": "web"}]}),
        ]
    }  # fmt: skip
    assert tilt.waiting_line(s, uires) == (
        "waiting on: api (image build), web (pod not ready: readiness probe failing), "
        "after (update pending: waiting on web)"
    )


def test_waiting_line_reports_failed_targets():
    s = session(target("broken:update", {"terminated": {"error": "exit status 3"}}))
    assert tilt.waiting_line(s) == "waiting on: broken (failed: exit status 3)"


def test_waiting_line_empty_when_nothing_waits_or_tilt_gone():
    assert tilt.waiting_line({}) == ""
    assert tilt.waiting_line(session(target("a:update", {"terminated": {}}))) == ""


def test_session_errors_map_targets_to_resources():
    s = session(
        target("api:update", {"terminated": {"error": "build failed"}}),
        target("web:runtime", {"terminated": {"error": "pod crashed"}}, "server"),
        target("ok:update", {"terminated": {}}),
    )
    assert tilt.session_errors(s) == {
        "api": ("BuildFailed", "build failed"),
        "web": ("RuntimeError", "pod crashed"),
    }


# --- log --------------------------------------------------------------------------------------------


def test_split_log_line():
    assert tilt.split_log_line("     api │ Step 1/3 : FROM x") == ("api", "Step 1/3 : FROM x")
    assert tilt.split_log_line("(Tiltfile) │ loading") == ("(Tiltfile)", "loading")
    assert tilt.split_log_line("SUCCESS. All workloads are healthy.") == (
        None,
        "SUCCESS. All workloads are healthy.",
    )


def test_error_line_takes_the_last():
    lines = ["a", "Error: first", "b", 'Error: Command "x" failed: exit status 3']
    assert tilt.error_line(lines) == 'Command "x" failed: exit status 3'
    assert tilt.error_line(["fine"]) is None


def test_merge_errors_fills_what_the_snapshot_lags_on():
    res = [
        ResourceResult("api", "tilt", True, build_seconds=1.0),
        ResourceResult("web", "tilt", False, reason="NotReady", message="runtime pending"),
        ResourceResult("db", "tilt", False, reason="BuildFailed", message="known"),
    ]
    merged = tilt.merge_errors(
        res,
        {"api": ("BuildFailed", "exit status 3"), "extra": ("RuntimeError", "boom")},
        {"db": ["line 1", "line 2"]},
        "Timeout after 30s",
    )
    by = {r.name: r for r in merged}
    assert (by["api"].ok, by["api"].reason, by["api"].message) == (False, "BuildFailed", "exit status 3")
    assert by["api"].build_seconds == 1.0
    assert by["web"].message == "runtime pending"
    assert by["db"].logs == "line 1\nline 2"
    assert (by["extra"].ok, by["extra"].message) == (False, "boom")
    assert res[0].ok  # the input is not changed


# --- run_ci without tilt: a stand-in script proves streaming, exit codes and cancel ------------------
# (the real tilt runs in tests/integration/test_tilt.py; this stand-in only exercises process handling)

FAKE_TILT = """#!{python}
import json, os, sys, time, signal
args = sys.argv[1:]
if args[0] == "get":
    print(os.environ.get("FAKE_SESSION", ""))
    sys.exit(0)
snap = args[args.index("--output-snapshot-on-exit") + 1]
with open(os.environ["FAKE_ARGS"], "w") as f:
    json.dump({{"argv": args, "cwd": os.getcwd(), "kubeconfig": os.environ.get("KUBECONFIG"),
               "analytics": os.environ.get("TILT_DISABLE_ANALYTICS"),
               "pgid": os.getpgid(0), "pid": os.getpid()}}, f)
print("     api │ building", flush=True)
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
with open(snap, "w") as f:
    json.dump({{"view": {{"uiResources": [{{"metadata": {{"name": "api"}},
              "status": {{"updateStatus": "error", "runtimeStatus": "none",
                          "buildHistory": [{{"error": "boom"}}]}}}}]}}}}, f)
print("Error: Build Failed: boom", flush=True)
sys.exit(int(os.environ.get("FAKE_EXIT", "1")))
"""


@pytest.fixture
def fake_tilt(tmp_path, monkeypatch):
    script = tmp_path / "fake-tilt"
    script.write_text(FAKE_TILT.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_ARGS", str(tmp_path / "args.json"))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Tiltfile").write_text("")
    return script


def test_run_ci_streams_log_and_reads_snapshot(fake_tilt, tmp_path):
    lines: list[str] = []
    settings = Settings(tiltfile=tmp_path / "app" / "Tiltfile", timeout=60, tilt_args=("--x", "1"))
    out = tilt.run_ci(settings, tmp_path / "kcfg", tmp_path / "art", lines.append, tilt_bin=str(fake_tilt))
    assert out.exit_code == 1
    assert out.error == "Build Failed: boom"
    assert [(r.name, r.reason, r.message) for r in out.resources] == [("api", "BuildFailed", "boom")]
    assert out.resources[0].logs == "building"
    assert out.snapshot == tmp_path / "art" / "tilt-snapshot.json"
    assert "     api │ building" in lines
    assert out.log_path.read_text() == "     api │ building\nError: Build Failed: boom\n"
    args = json.loads((tmp_path / "args.json").read_text())
    assert args["cwd"] == str(tmp_path / "app")
    assert args["kubeconfig"] == str(tmp_path / "kcfg")
    assert args["analytics"] == "1"
    assert args["argv"][-3:] == ["--", "--x", "1"]
    assert args["pgid"] == args["pid"]  # its own process group


def test_run_ci_missing_tiltfile_is_input_error(tmp_path):
    with pytest.raises(InputError):
        tilt.run_ci(Settings(tiltfile=tmp_path / "nope"), tmp_path / "k", tmp_path / "a", print)


def test_run_ci_logs_waiting_lines(fake_tilt, tmp_path, monkeypatch):
    s = session(target("api:update", {"active": {}}))
    monkeypatch.setenv("FAKE_SESSION", json.dumps(s))
    monkeypatch.setenv("FAKE_SLEEP", "1.5")
    lines: list[str] = []
    settings = Settings(tiltfile=tmp_path / "app" / "Tiltfile", progress_interval=0.3)
    out = tilt.run_ci(settings, tmp_path / "k", tmp_path / "a", lines.append, tilt_bin=str(fake_tilt))
    assert out.waiting_lines and out.waiting_lines[0] == "waiting on: api (updating)"
    assert "waiting on: api (updating)" in lines


def test_run_ci_cancel_kills_the_process_group(fake_tilt, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "60")
    cancel = threading.Event()
    settings = Settings(tiltfile=tmp_path / "app" / "Tiltfile")
    threading.Timer(1.0, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        tilt.run_ci(settings, tmp_path / "k", tmp_path / "a", lambda _: None, cancel, str(fake_tilt))
    assert time.monotonic() - t0 < 10
    pid = json.loads((tmp_path / "args.json").read_text())["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_terminate_escalates_to_sigkill(tmp_path):
    script = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, text=True, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    t0 = time.monotonic()
    tilt._terminate(proc, grace=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - t0 < 3


def test_log_error_and_a_lagging_snapshot_with_a_build_error_in_its_log():
    assert (
        tilt.log_error(["x", "ERROR: Build Failed: ImageBuild: exit code: 3"]) == "ImageBuild: exit code: 3"
    )
    assert tilt.log_error(["fine"]) is None
    s = snap(ui("broken", update="pending", runtime="pending"))
    s["view"]["logList"] = {
        "spans": {"build:2": {"manifestName": "broken"}},
        "segments": [{"spanId": "build:2", "text": "ERROR: Build Failed: exit code: 3\n"}],
    }
    [res] = tilt.resources_from_snapshot(s, exit_code=1)
    assert (res.ok, res.reason, res.message) == (False, "BuildFailed", "exit code: 3")


def test_merge_errors_takes_a_build_error_from_the_log_tail():
    res = [ResourceResult("broken", "tilt", False, reason="NotBuilt", message="update pending")]
    [out] = tilt.merge_errors(res, {}, {"broken": ["step", "ERROR: Build Failed: exit code: 3"]}, None)
    assert (out.reason, out.message) == ("BuildFailed", "exit code: 3")


# --- a resource tilt holds for an enable status it already has (real snapshot, fresh-clone CI) ----


def _held_snapshot():
    return _fixture("tilt-snapshot-held.json")


def test_real_held_snapshot_is_reported_as_tilts_race_not_a_bare_wait():
    """tilt ci timed out after 3 min with `seed` never started: `waiting on seed`, which said nothing."""
    [res] = tilt.resources_from_snapshot(_held_snapshot(), exit_code=1)
    assert (res.name, res.ok, res.reason) == ("seed", False, "NotBuilt")
    assert res.message is not None
    assert "held for its own enable status" in res.message and "tilt race" in res.message, res.message


def test_held_on_enable_names_the_resource_once_the_tiltfile_loaded_a_while_ago():
    snapshot = _held_snapshot()
    loaded = tilt.parse_time(snapshot["view"]["uiResources"][0]["status"]["buildHistory"][0]["finishTime"])
    assert loaded is not None
    assert tilt.held_on_enable(snapshot, loaded + tilt.HELD_GRACE + 0.1) == ["seed"]
    assert tilt.held_on_enable(snapshot, loaded + 1.0) == []  # tilt settles this in milliseconds
    # `tilt get uiresources -o json` has the same objects under `items`
    assert tilt.held_on_enable({"items": snapshot["view"]["uiResources"]}, loaded + 60) == ["seed"]


@pytest.mark.parametrize("change", ["tiltfile-reloading", "enable-pending", "other-reason", "building"])
def test_held_on_enable_leaves_expected_holds_alone(change):
    snapshot = json.loads(json.dumps(_held_snapshot()))
    tiltfile, seed = snapshot["view"]["uiResources"]
    if change == "tiltfile-reloading":
        tiltfile["status"]["updateStatus"] = "in_progress"
    elif change == "enable-pending":
        seed["status"]["disableStatus"]["state"] = ""
    elif change == "other-reason":
        seed["status"]["waiting"]["reason"] = "waiting-for-dep"
    else:
        seed["status"]["updateStatus"] = "in_progress"
    assert tilt.held_on_enable(snapshot, float("inf")) == []


def test_nudge_is_a_tilt_patch_of_an_annotation():
    cmd = tilt.nudge_command("tilt", "seed", 10350, 2)
    assert cmd[:6] == ["tilt", "patch", "uiresource", "seed", "--type", "merge"]
    assert json.loads(cmd[7]) == {"metadata": {"annotations": {tilt.NUDGE_ANNOTATION: "2"}}}
    assert cmd[-2:] == ["--port", "10350"]


def test_poller_nudges_a_held_resource_at_most_nudges_times(monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(tilt.session.subprocess, "run", fake_run)
    poller = tilt._Poller("tilt", 10350, {}, 1.0)
    for _ in range(tilt.NUDGES + 2):
        poller._unhold(_held_snapshot())
    assert [c[3] for c in calls] == ["seed"] * tilt.NUDGES
    notes = [poller.notes.get_nowait() for _ in range(poller.notes.qsize())]
    assert len(notes) == tilt.NUDGES and all("seed is held for its enable status" in n and "nudged it" in n
                                            for n in notes)


def test_a_resource_held_for_its_own_enable_status_is_not_listed_as_its_own_dependency():
    from pyci.tilt import uiresource

    # Seen in the verdict matrix: `uncategorized` "held for the enable status of compile, uncategorized".
    on = [{"kind": "UIResource", "name": "compile"}, {"kind": "UIResource", "name": "uncategorized"}]
    status = {"waiting": {"reason": "tiltfile-reload", "on": on}}
    assert uiresource.waiting_on(status, "uncategorized") == (
        "held for its own enable status and that of compile")
    alone = {"waiting": {"reason": "tiltfile-reload", "on": [{"kind": "UIResource", "name": "db"}]}}
    assert uiresource.waiting_on(alone, "db") == "held for its own enable status"
