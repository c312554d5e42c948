"""`pyci run | doctor | cleanup | version` end to end through main(), without a Docker daemon."""

from __future__ import annotations

import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyci import cli, pipeline
from pyci.results import ExitCode, InfrastructureError, RunResult
from pyci.settings import INPUTS, Settings
from tests.unit.fixtures.docker_fake import FakeDockerClient
from tests.unit.fixtures.runs import SECRET, load_run
from tests.unit.fixtures.tools import make_tool

CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "CIRCLECI",
    "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY",
    "RUNNER_DEBUG",
    "NO_COLOR",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test runner's own CI variables and inputs must not leak into these runs."""
    for name in list(os.environ):
        if name.startswith(("INPUT_", "PYCI_", "GITHUB_", "CIRCLE")) or name in CI_VARIABLES:
            monkeypatch.delenv(name)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "Tiltfile").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def github_env(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(workspace / "gh-output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(workspace / "gh-summary.md"))
    return workspace


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only stand-ins for kind and tilt (kubectl and docker are missing)."""
    folder = tmp_path / "bin"
    make_tool(folder, "kind", "kind v0.27.0 go1.23.4 linux/amd64")
    make_tool(folder, "tilt", "v0.33.21, built 2024-11-01")
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("TOOL_LOG", str(tmp_path / "tools.log"))
    return tmp_path / "tools.log"


# --- run: bad input ---
def test_bad_input_prints_one_line_per_problem_and_exits_2(
    workspace: Path, capsys: pytest.CaptureFixture[str]
):
    code = cli.main(["run", "--cluster-name", "Bad_Name", "--timeout", "soon", "--registry-port", "99999"])
    err = capsys.readouterr().err.splitlines()
    assert code == ExitCode.BAD_INPUT
    assert [line.split(":")[:3] for line in err] == [
        ["pyci", " error", " timeout"],
        ["pyci", " error", " cluster-name"],
        ["pyci", " error", " registry-port"],
    ]
    assert all("; allowed: " in line for line in err)


def test_no_subcommand_is_run_and_reads_github_inputs(
    github_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("INPUT_WAIT", "perhaps")
    monkeypatch.setenv("INPUT_REGISTRY", "ghcr.io/org/ci")
    monkeypatch.setenv("INPUT_REGISTRY-PASSWORD", SECRET)
    assert cli.main([]) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "pyci: error: registry-username: is missing: registry-password is set for 'ghcr.io/org/ci'; allowed: "
        "a user name without spaces, given together with registry-password",
        "pyci: error: wait: 'perhaps' is not valid; allowed: true or false (also yes/no, on/off, 1/0)",
    ]
    out = captured.out.splitlines()
    assert out[0] == f"::add-mask::{SECRET}"  # masked before anything else is printed
    assert out[1].startswith("::error title=pyci%3A 2 invalid inputs::registry-username: is missing")
    assert SECRET not in captured.err


def test_a_missing_tiltfile_is_a_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main([]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.startswith("pyci: error: tiltfile: 'Tiltfile' is not a file")


def test_argparse_problems_exit_2(workspace: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["run", "--no-such-flag"]) == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "doctor" in capsys.readouterr().out


def test_every_input_is_a_flag():
    parser = cli.build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    run = commands.choices["run"]
    flags = {option for action in run._actions for option in action.option_strings}
    assert {f"--{spec.name}" for spec in INPUTS} | {"--dry-run"} <= flags


def test_boolean_flags_need_no_value(workspace: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--dry-run", "--keep-cluster", "--wait", "off"]) == 0
    out = capsys.readouterr().out
    assert "keep everything (keep-cluster)" in out
    assert "readiness     skipped (wait: false)" in out
    assert "build ahead   the Tiltfile's images while the cluster boots" in out


# --- run --dry-run ---
def test_dry_run_prints_the_plan_and_creates_nothing(workspace: Path, capsys: pytest.CaptureFixture[str]):
    before = sorted(p.name for p in workspace.iterdir())
    code = cli.main(
        ["run", "--dry-run", "--cluster-name", "pr-7", "--registry-port", "5999", "--tilt-args", "--env ci",
         "--readiness-timeouts", "job/migrate=10m", "--namespaces", "shop"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "pyci run --dry-run: nothing is created" in out
    assert "kind cluster pr-7 (kind's default node image)" in out
    assert "node container pr-7-control-plane, kube context kind-pr-7" in out
    assert "container pr-7-registry (registry:2) on 127.0.0.1:5999, pushes to localhost:5999" in out
    assert "tilt ci --timeout 1800s -- --env ci" in out
    assert "wait up to 5m 00s in shop, fail after 3 restarts" in out
    assert "job/migrate up to 10m 00s" in out
    assert sorted(p.name for p in workspace.iterdir()) == before


def test_dry_run_existing_cluster_and_remote_registry(workspace: Path, capsys: pytest.CaptureFixture[str]):
    (workspace / "kc").write_text("")
    code = cli.main(
        ["run", "--dry-run", "--cluster", "existing", "--kubeconfig", "kc", "--registry", "ghcr.io/org/ci",
         "--registry-username", "bot", "--registry-password", SECRET]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "existing cluster from kubeconfig kc" in out
    assert "remote ghcr.io/org/ci/local-" not in out  # the run id is random locally, not "local"
    assert "registry      remote ghcr.io/org/ci/" in out and " as bot" in out
    assert SECRET not in out


def test_dry_run_free_port_and_no_registry(workspace: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--dry-run", "--registry-port", "0"]) == 0
    assert "on 127.0.0.1:a free port" in capsys.readouterr().out
    assert cli.main(["--dry-run", "--registry", "none"]) == 0
    assert "registry      none" in capsys.readouterr().out


# --- run: publishing what the pipeline found ---
@dataclass
class PipelineStandIn:
    """Replaces pyci.pipeline.run, which needs Docker: records its call, returns a fixture."""

    result: RunResult | None = None
    error: Exception | None = None
    calls: list[Settings] = field(default_factory=list)

    def __call__(self, settings: Settings, platform: object, cancel: object = None) -> RunResult:
        self.calls.append(settings)
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def test_run_publishes_junit_summary_and_outputs_on_github(
    github_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    stand_in = PipelineStandIn(result=load_run("failed_run"))
    monkeypatch.setattr(pipeline, "run", stand_in)
    monkeypatch.setenv("INPUT_JUNIT", "reports/junit.xml")
    monkeypatch.setenv("INPUT_REGISTRY", "ghcr.io/org/ci")
    monkeypatch.setenv("INPUT_REGISTRY-USERNAME", "bot")
    monkeypatch.setenv("INPUT_REGISTRY-PASSWORD", SECRET)
    monkeypatch.setenv("GITHUB_RUN_ID", "123")
    assert cli.main([]) == ExitCode.APP_FAILED
    assert re.fullmatch(r"gh-123-1-[0-9a-f]{6}", stand_in.calls[0].run_id), stand_in.calls[0].run_id
    junit = (github_env / "reports" / "junit.xml").read_text()
    assert SECRET not in junit
    ET.fromstring(junit)
    outputs = (github_env / "gh-output").read_text()
    assert "result=failure\n" in outputs and "duration=214.6\n" in outputs
    assert "junit=reports/junit.xml\n" in outputs  # where pyci wrote it, whatever the pipeline said
    summary = (github_env / "gh-summary.md").read_text()
    assert summary.startswith("## ❌ pyci: failure") and SECRET not in summary
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"::add-mask::{SECRET}"
    assert "::error title=pyci%3A failure::2 of 5 resources are not healthy" in out


def test_run_fills_report_paths_from_settings(
    github_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(pipeline, "run", PipelineStandIn(result=RunResult(ExitCode.HEALTHY, "all healthy")))
    monkeypatch.setenv("INPUT_SUMMARY", "false")
    assert cli.main(["--junit", "out/j.xml", "--cluster-name", "c1"]) == 0
    assert (github_env / "out" / "j.xml").exists()
    assert not (github_env / "gh-summary.md").exists()
    outputs = (github_env / "gh-output").read_text()
    assert "junit=out/j.xml\n" in outputs and "cluster-name=c1\n" in outputs
    assert "✅ all healthy" in capsys.readouterr().out


def test_run_on_circleci_stores_junit_where_the_orb_collects(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("CIRCLECI", "true")
    monkeypatch.setenv("PYCI_STORE_TEST_RESULTS", str(workspace / "results"))
    monkeypatch.setenv("PYCI_STORE_ARTIFACTS", str(workspace / "artifacts"))
    monkeypatch.setenv("PYCI_OUTPUTS_ENV", str(workspace / "outputs.env"))
    monkeypatch.setenv("PYCI_CLUSTER_NAME", "circle")
    stand_in = PipelineStandIn(result=RunResult(ExitCode.HEALTHY, "ok"))
    monkeypatch.setattr(pipeline, "run", stand_in)
    assert cli.main(["run"]) == 0
    assert stand_in.calls[0].cluster_name == "circle"
    assert stand_in.calls[0].artifacts_dir == workspace / "artifacts"
    assert (workspace / "results" / "pyci-junit.xml").exists()
    assert (workspace / "artifacts" / "summary.md").exists()
    assert "export PYCI_OUTPUT_RESULT=success" in (workspace / "outputs.env").read_text()


def test_junit_is_copied_to_the_ci_folder_when_the_user_put_it_elsewhere(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("CIRCLECI", "true")
    monkeypatch.setenv("PYCI_STORE_TEST_RESULTS", str(workspace / "results"))
    monkeypatch.setenv("PYCI_STORE_ARTIFACTS", str(workspace / "artifacts"))
    monkeypatch.setenv("PYCI_OUTPUTS_ENV", str(workspace / "outputs.env"))
    monkeypatch.setattr(pipeline, "run", PipelineStandIn(result=RunResult(ExitCode.HEALTHY, "ok")))
    assert cli.main(["--junit", "mine.xml"]) == 0
    assert (workspace / "mine.xml").exists() and (workspace / "results" / "pyci-junit.xml").exists()


def test_a_pipeline_error_still_reports(
    github_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    error = InfrastructureError("docker daemon not reachable", "connection refused")
    monkeypatch.setattr(pipeline, "run", PipelineStandIn(error=error))
    assert cli.main([]) == ExitCode.INFRASTRUCTURE
    assert "result=error\n" in (github_env / "gh-output").read_text()
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == "pyci: error: docker daemon not reachable"


def test_an_unwritable_report_path_is_bad_input_before_anything_runs(
    github_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    (github_env / "blocker").write_text("a file where a folder should be")
    stand_in = PipelineStandIn(result=RunResult(ExitCode.HEALTHY, "ok"))
    monkeypatch.setattr(pipeline, "run", stand_in)
    assert cli.main(["--junit", "blocker/junit.xml"]) == ExitCode.BAD_INPUT
    assert stand_in.calls == []  # caught up front, not after a 10-minute run
    err = capsys.readouterr().err
    assert "junit: 'blocker/junit.xml' cannot be created: 'blocker' is not a directory" in err, err
    assert cli.main(["--artifacts-dir", "blocker"]) == ExitCode.BAD_INPUT
    assert "artifacts-dir: 'blocker' is a file, not a directory" in capsys.readouterr().err


def test_a_report_that_still_cannot_be_written_is_a_warning(
    github_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(pipeline, "run", PipelineStandIn(result=RunResult(ExitCode.HEALTHY, "ok")))

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.report, "write_junit", disk_full)
    assert cli.main(["--junit", "junit.xml"]) == 0
    assert "::warning::could not write the JUnit report junit.xml" in capsys.readouterr().out


# --- version and doctor ---
def test_version_tolerates_missing_tools(tools: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        "pyci 0.1.0",
        "kind: kind v0.27.0 go1.23.4 linux/amd64",
        "tilt: v0.33.21, built 2024-11-01",
        "kubectl: not found",
        "docker: not found",
    ]
    assert tools.read_text().splitlines() == ["kind version", "tilt version"]


def test_doctor_without_a_daemon(
    tools: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    def no_daemon() -> object:
        raise ConnectionError("Error while fetching server API version: connection refused")

    monkeypatch.setattr(cli, "docker_client", no_daemon)
    assert cli.main(["doctor"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "✗ docker daemon: not reachable (Error while fetching server API version: connection refused)",
        "✓ kind: kind v0.27.0 go1.23.4 linux/amd64",
        "✓ tilt: v0.33.21, built 2024-11-01",
        "✗ kubectl: not found on PATH (or it did not answer)",
        "topology: unavailable (no docker daemon)",
    ]


def test_doctor_when_topology_cannot_be_imported(
    tools: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    make_tool(tools.parent / "bin", "kubectl", "Client Version: v1.31.0")
    monkeypatch.setattr(cli, "docker_client", lambda: FakeDockerClient())
    monkeypatch.setitem(sys.modules, "pyci.topology", None)  # import fails like a missing module
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✓ docker daemon: reachable, Docker 28.2.2 (API 1.50)"
    assert out[-1] == "topology: unavailable"


def test_arguments_after_a_double_dash_go_to_the_tiltfile(workspace: Path,
                                                        capsys: pytest.CaptureFixture[str]):
    """tilt's own convention: `pyci run [flags] -- <Tiltfile args>`."""
    assert cli.main(["run", "--dry-run", "--", "--base-image=x", "two words"]) == 0
    assert "tilt ci --timeout 1800s -- --base-image=x two words" in capsys.readouterr().out
    assert cli.main(["--dry-run", "--timeout", "5m", "--", "--flag"]) == 0  # run is the default command
    assert "tilt ci --timeout 300s -- --flag" in capsys.readouterr().out


def test_tiltfile_arguments_twice_is_one_clear_error(workspace: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["run", "--dry-run", "--tilt-args=--a", "--", "--b"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyci: error: tilt-args:"), err

def test_dry_run_says_when_build_ahead_is_off(workspace: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["run", "--dry-run", "--build-ahead", "false"]) == 0
    assert "build ahead   off (build-ahead: false)" in capsys.readouterr().out


def test_dry_run_names_the_cache_dir_and_creates_it_not(workspace: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--dry-run"]) == 0
    assert "cache         none (cache-dir not set)" in capsys.readouterr().out
    assert cli.main(["--dry-run", "--cache-dir", str(tmp_path / "c"), "--cache-size", "1GB"]) == 0
    out = capsys.readouterr().out
    assert f"cache         {tmp_path / 'c'} (at most 1.0 GiB): layers of the images built ahead" in out
    assert not (tmp_path / "c").exists()
