"""pyci.tilt.failures: a failed command, build or Tiltfile load comes out of tilt's results as the
cause, with its command, exit code and output; the resource that waits on it as blocked by it.

The texts are tilt v0.37.6's own (the lab build), seen in tests/fixtures/tilt-snapshot-toolless.json
(captured by tests/integration/test_tilt.py) and in the snapshots beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyci import tilt
from pyci.results import ResourceResult
from pyci.tilt import failures, logs
from pyci.tiltfile import SourceLocation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _fixture(name: str) -> dict:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"{path} missing: captured by tests/integration/test_tilt.py (PYCI_UPDATE_FIXTURES=1)")
    return json.loads(path.read_text())


# --- the failed command's own words ------------------------------------------------------------------


@pytest.mark.parametrize(("error", "command", "code", "image"), [
    ('Command "nosuchtool build -o build/app ./" failed: exit status 127', "nosuchtool build -o build/app ./",
     127, False),
    ('Command "bash -c \\"exit 3\\"" failed: exit status 3', 'bash -c "exit 3"', 3, False),
    ('Custom build "./build.sh $EXPECTED_REF" failed: exit status 1', "./build.sh $EXPECTED_REF", 1, False),
    ("ImageBuild: The command '/bin/sh -c echo \"compiling...\" && exit 3' returned a non-zero code: 3",
     '/bin/sh -c echo "compiling..." && exit 3', 3, True),
    ('ImageBuild: process "/bin/sh -c make" did not complete successfully: exit code: 2', "/bin/sh -c make",
     2, True),
    ('ImageBuild: executor failed running [/bin/sh -c echo "compiling..." && exit 3]: exit code: 3',
     '/bin/sh -c echo "compiling..." && exit 3', 3, True),
])
def test_parse_failure_names_the_command_and_its_exit_code(error, command, code, image):
    assert failures.parse_failure(error) == failures.CommandFailure(command, code, image)


def test_parse_failure_of_a_signal_and_of_no_command():
    killed = failures.parse_failure('Command "sleep 99" failed: signal: killed')
    assert killed == failures.CommandFailure("sleep 99", None, False, "signal: killed")
    assert failures.parse_failure("ImageBuild: failed to compute cache key: not found") is None


@pytest.mark.parametrize(("line", "tool"), [
    ("sh: go: not found", "go"),  # busybox (pyci's image)
    ("sh: 1: nosuchtool: not found", "nosuchtool"),  # dash
    ("/bin/sh: 1: make: not found", "make"),
    ("bash: npm: command not found", "npm"),
    ("bash: line 1: yarn: command not found", "yarn"),
    ('exec: "cargo": executable file not found in $PATH', "cargo"),
])
def test_the_missing_tool_from_the_shells_words(line, tool):
    failure = failures.CommandFailure("whatever", 127, False)
    assert failures.missing_tool(["Running cmd: whatever", line], failure) == tool


def test_a_command_tilt_could_not_start_names_its_program():
    error = ('Command "nosuchtool build" failed: failed to start: exec: "nosuchtool": executable file '
             "not found in $PATH")
    failure = failures.parse_failure(error)
    assert failure is not None and (failure.command, failure.exit_code) == ("nosuchtool build", None)
    assert failures.missing_tool([], failure) == "nosuchtool"
    assert failures.describe(failure, [], inside_image=False) == (
        "command `nosuchtool build` could not start: `nosuchtool` not found on this machine")


def test_the_missing_tool_on_exit_127_without_words_is_the_commands_first_word():
    assert failures.missing_tool([], failures.CommandFailure("go build ./", 127, False)) == "go"
    assert failures.missing_tool([], failures.CommandFailure("sh -c go build", 127, False)) == "go"
    make = failures.CommandFailure("make", 2, False)
    assert failures.missing_tool(["make: *** [all] Error 2"], make) is None


def test_describe_points_to_the_host_action_only_inside_the_image():
    failure = failures.CommandFailure("go build ./", 127, False)
    output = ["Running cmd: go build ./", "sh: go: not found"]
    inside = failures.describe(failure, output, inside_image=True)
    assert inside.startswith("command `go build ./` exited 127: `go` is not in pyci's image"), inside
    assert failures.HOST_ACTION in inside
    outside = failures.describe(failure, output, inside_image=False)
    assert outside == "command `go build ./` exited 127: `go` not found on this machine"
    assert failures.HOST_ACTION not in outside


def test_describe_a_plain_failure_ends_with_its_last_own_line():
    failure = failures.CommandFailure("make test", 2, False)
    lines = ["Running cmd: make test", "FAIL: test_x", "make: *** [test] Error 2",
             'ERROR: Command "make test" failed: exit status 2']
    assert failures.describe(failure, lines, True) == "command `make test` exited 2: make: *** [test] Error 2"


def test_a_real_image_build_failure_names_its_step_and_the_steps_own_output():
    """tests/fixtures/tilt-snapshot-fail.json: a Dockerfile `RUN echo "compiling..." && exit 3`."""
    by = {r.name: r for r in failures.results(_fixture("tilt-snapshot-fail.json"), 1, {}, {}, None, True)}
    broken = by["broken"]
    assert (broken.ok, broken.reason) == (False, "BuildFailed")
    step = '/bin/sh -c echo "compiling..." && exit 3'
    assert broken.message == f"image build step `{step}` exited 3: compiling..."
    assert "→ compiling..." in broken.logs
    assert failures.HOST_ACTION not in broken.message  # the image being built lacks it, not pyci's
    assert (by["ok"].reason, by["ok"].blocked_by) == ("NotBuilt", [])  # still building: not blocked


def test_a_tool_missing_in_an_image_build_step_is_the_built_images_not_pyci_s():
    failure = failures.CommandFailure("/bin/sh -c make app", 127, True)
    assert failures.describe(failure, ["  → /bin/sh: 1: go: not found"], inside_image=True) == (
        "image build step `/bin/sh -c make app` exited 127: `go` not found in the image being built")


def test_in_image_reads_the_dockerfiles_env():
    assert failures.in_image({"PYCI_IN_IMAGE": "1"}) and not failures.in_image({})


# --- cut log prefixes ------------------------------------------------------------------------------


def test_a_cut_prefix_is_the_one_resource_it_begins():
    names = ["example-go-compile", "example-go", "api"]
    assert logs.resolve_prefix("example-go-…", names) == "example-go-compile"
    assert logs.resolve_prefix("api", names) == "api"
    assert logs.resolve_prefix("exa…", names) is None  # two fit: say nothing rather than guess
    assert logs.by_resource({"example-go-…": ["sh: go: not found"]}, names) == {
        "example-go-compile": ["sh: go: not found"]}


# --- merge and explain ------------------------------------------------------------------------------


def test_explain_turns_a_failed_local_command_into_command_failed_with_its_output():
    res = [ResourceResult("compile", "tilt", False, reason="BuildFailed",
                          message='Command "go build ./" failed: exit status 127'),
           ResourceResult("app", "tilt", False, reason="NotBuilt",
                          message="update pending: waiting on compile", blocked_by=["compile"])]
    output = {"compile": ["Initial Build", "Running cmd: go build ./", "sh: go: not found",
                          'ERROR: Command "go build ./" failed: exit status 127']}
    compile_, app = failures.explain(res, output, in_image=True)
    assert (compile_.ok, compile_.reason) == (False, "CommandFailed")
    message = compile_.message or ""
    assert "`go build ./` exited 127" in message and failures.HOST_ACTION in message
    assert compile_.logs.splitlines()[:2] == ["Running cmd: go build ./", "sh: go: not found"]
    assert app == res[1]  # blocked, untouched


def test_explain_names_the_tiltfile_at_its_line_relative_to_the_workspace(tmp_path):
    error = (f"Traceback (most recent call last):\n  {tmp_path}/app/Tiltfile:4:1: in <toplevel>\n"
             "Error in load: cannot load ext://restart_process: extension repo default: fetch failed")
    res = [ResourceResult("(Tiltfile)", "tilt", False, reason="BuildFailed", message=error)]
    [tf] = failures.explain(res, {}, in_image=False, roots=[tmp_path])
    assert (tf.name, tf.reason) == ("Tiltfile", "TiltfileError")
    assert tf.location == SourceLocation("app/Tiltfile", 4, 1)
    assert tf.message == ("app/Tiltfile:4:1: Error in load: cannot load ext://restart_process: "
                          "extension repo default: fetch failed")


def test_a_session_error_of_the_tiltfile_is_not_a_second_tiltfile_result():
    res = [ResourceResult("Tiltfile", "tilt", False, reason="TiltfileError", message="Error in load: x")]
    merged = failures.merge_errors(res, {"(Tiltfile)": ("BuildFailed", "Error in load: x")}, {}, None)
    assert [r.name for r in merged] == ["Tiltfile"]


def test_a_blocked_resource_that_the_log_shows_failing_is_not_blocked_any_more():
    res = [ResourceResult("b", "tilt", False, reason="NotBuilt", message="update pending: waiting on a",
                          blocked_by=["a"])]
    [out] = failures.merge_errors(res, {"b": ("BuildFailed", "exit status 1")}, {}, None)
    assert (out.reason, out.blocked_by) == ("BuildFailed", [])


# --- blocked by ------------------------------------------------------------------------------------


def test_a_resource_waiting_on_another_is_blocked_by_it():
    status = {"updateStatus": "pending", "runtimeStatus": "none",
              "waiting": {"reason": "waiting-for-dep", "on": [{"kind": "UIResource", "name": "db"},
                                                              {"kind": "UIResource", "name": "cache"}]}}
    res = tilt.resource_result({"metadata": {"name": "api"}, "status": status}, None)
    assert (res.ok, res.reason, res.blocked_by) == (False, "NotBuilt", ["db", "cache"])
    assert res.message == "update pending: waiting on db, cache"


def test_a_resource_held_for_its_own_enable_status_is_not_blocked_by_itself():
    [res] = tilt.resources_from_snapshot(_fixture("tilt-snapshot-held.json"), exit_code=1)
    assert res.blocked_by == []


# --- the case of issue 21: a lagging snapshot, and a live log that cuts the resource's name ----------

# tilt v0.37.6's live log of a local_resource whose tool is missing (the lab's build, real output).
LIVE = (FIXTURES / "tilt-log-toolless.txt").read_text()


def _pending(name: str, on: list[str]) -> dict:
    status: dict = {"updateStatus": "pending", "runtimeStatus": "none"}
    if on:
        refs = [{"kind": "UIResource", "name": n} for n in on]
        status["waiting"] = {"reason": "waiting-for-dep", "on": refs}
    return {"metadata": {"name": name}, "status": status}


def test_a_failed_command_the_snapshot_still_shows_pending_is_found_in_the_live_log():
    """Issue 21 saw `example-go-compile (NotBuilt): update pending` and `example-go (NotBuilt): update
    pending: waiting on example-go-compile`: the snapshot lagged, and the live log's `example-go-c…`
    prefix matched no resource. The compile is the cause; the image built from it is blocked."""
    snapshot = {"view": {"uiResources": [_pending("example-go-compile", []),
                                         _pending("example-go", ["example-go-compile"])]}}
    tails: dict[str, list[str]] = {}
    for line in LIVE.splitlines():
        prefix, text = logs.split_log_line(line)
        if prefix:
            tails.setdefault(prefix, []).append(text)
    error = logs.error_line(LIVE.splitlines())
    by = {r.name: r for r in failures.results(snapshot, 1, tails, {}, error, in_image=True)}
    cause = by["example-go-compile"]
    assert (cause.ok, cause.reason) == (False, "CommandFailed")
    assert (cause.message or "").startswith(
        "command `nosuchtool build -o build/x ./` exited 127: `nosuchtool` is not in pyci's image")
    assert cause.logs.splitlines() == ["Running cmd: nosuchtool build -o build/x ./",
                                       "sh: 1: nosuchtool: not found"]
    blocked = by["example-go"]
    assert (blocked.ok, blocked.reason, blocked.blocked_by) == (False, "NotBuilt", ["example-go-compile"])
    assert blocked.message == "update pending: waiting on example-go-compile"


def test_the_real_toolless_snapshot_names_the_compile_and_blocks_the_deployment():
    """tilt ci of tests/integration/apps/toolless on the lab (tilt 0.37.6): the snapshot lags, its
    compile still `pending` (held for its enable status) though its log holds the failure."""
    snapshot = _fixture("tilt-snapshot-toolless.json")
    by = {r.name: r for r in failures.results(snapshot, 1, {}, {}, None, True)}
    cause, blocked = by["example-go-compile"], by["example-go"]
    assert (cause.reason, cause.blocked_by) == ("CommandFailed", [])
    assert (cause.message or "").startswith("command `nosuchtool build -o build/tilt-example-go ./` "
                                            "exited 127")
    assert cause.logs.splitlines()[-1] == "sh: 1: nosuchtool: not found"
    assert (blocked.ok, blocked.reason, blocked.blocked_by) == (False, "NotBuilt", ["example-go-compile"])
    assert blocked.message == "update pending: waiting on example-go-compile"  # no "tilt race": it ran


def test_a_stale_hold_in_the_snapshot_gives_way_to_the_resource_deps():
    """Seen 1 run in 3 of the same app: the deployment still "held for the enable status of" the
    compile (tilt's start-up hold, not a dependency) after the compile had failed."""
    snapshot = _fixture("tilt-snapshot-toolless.json")
    for r in snapshot["view"]["uiResources"]:
        if r["metadata"]["name"] == "example-go":
            r["status"]["waiting"]["reason"] = "tiltfile-reload"
    alone = {r.name: r for r in failures.results(snapshot, 1, {}, {}, None, True)}
    assert alone["example-go"].blocked_by == []  # a hold names no dependency
    deps = {"example-go": ["example-go-compile"]}
    by = {r.name: r for r in failures.results(snapshot, 1, {}, {}, None, True, deps=deps)}
    assert (by["example-go"].blocked_by, by["example-go"].message) == (
        ["example-go-compile"], "update pending: waiting on example-go-compile")


def test_blocked_only_by_what_is_not_healthy():
    res = [ResourceResult("db", "tilt", True), ResourceResult("cache", "tilt", False, reason="CommandFailed"),
           ResourceResult("api", "tilt", False, reason="NotBuilt", message="update pending")]
    api = failures.blocked(res, {"api": ["db", "cache"]})[2]
    assert (api.blocked_by, api.message) == (["cache"], "update pending: waiting on cache")


def test_the_real_tiltfile_load_error_snapshot_is_one_tiltfile_result():
    [tf] = failures.results(_fixture("tilt-snapshot-tiltfile-error.json"), 1, {}, {}, None, False)
    assert (tf.name, tf.reason) == ("Tiltfile", "TiltfileError")
    assert isinstance(tf.location, SourceLocation) and (tf.location.line, tf.location.col) == (4, 1)
    assert "cannot load ext://restart_process" in (tf.message or "")


def test_a_tiltfile_error_the_snapshot_lags_on_is_read_from_the_live_log(tmp_path):
    # Seen in CI: tilt ci stopped on the load error while its snapshot still had `(Tiltfile)` "update
    # in progress" with no log; the live log (unprefixed lines) had printed the traceback.
    res = [ResourceResult("Tiltfile", "tilt", False, reason="TiltfileError", message="update in progress")]
    live = {"(Tiltfile)": ["Tilt started on http://localhost:40067/",
                           f"Loading Tiltfile at: {tmp_path}/Tiltfile",
                           "Traceback (most recent call last):",
                           f"  {tmp_path}/Tiltfile:4:1: in <toplevel>",
                           "Error: cannot load ext://restart_process: loading extension repo default"]}
    [tf] = failures.explain(res, failures.resource_tails(live, {}, ["Tiltfile"]), False, [tmp_path])
    assert tf.location == SourceLocation("Tiltfile", 4, 1), tf
    assert tf.message == ("Tiltfile:4:1: Error: cannot load ext://restart_process: "
                          "loading extension repo default")
    assert "Traceback" in tf.logs


def test_a_tiltfile_error_already_located_is_not_overwritten_by_the_live_log(tmp_path):
    error = f"Traceback (most recent call last):\n  {tmp_path}/Tiltfile:2:1: in <toplevel>\nError: x"
    res = [ResourceResult("(Tiltfile)", "tilt", False, reason="BuildFailed", message=error)]
    live = {"(Tiltfile)": ["Traceback (most recent call last):", f"  {tmp_path}/Tiltfile:9:1: in <toplevel>",
                           "Error: y"]}
    [tf] = failures.explain(res, live, False, [tmp_path])
    assert tf.location == SourceLocation("Tiltfile", 2, 1)
