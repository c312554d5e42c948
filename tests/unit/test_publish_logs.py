"""What `pyci run` leaves besides JUnit and the summary: per-component logs and the timeline in the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyci import cli, pipeline
from pyci.results import ExitCode, ResourceResult, RunResult, Span, StageResult
from tests.unit.fixtures.runs import SECRET

T0 = 1_700_000_000.0


def result(stages: list[StageResult]) -> RunResult:
    return RunResult(
        ExitCode.APP_FAILED, "the app did not start: api (CrashLoopBackOff)", duration=30.0, started_at=T0,
        stages=stages,
        resources=[ResourceResult("api", "tilt", ok=False, reason="CrashLoopBackOff",
                                  spans=[Span("build", T0 + 10, T0 + 14), Span("ready", T0 + 15, None)])])


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "Tiltfile").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "gh-output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "gh-summary.md"))
    monkeypatch.setenv("INPUT_REGISTRY-PASSWORD", SECRET)
    monkeypatch.setenv("INPUT_REGISTRY", "ghcr.io/org/ci")
    monkeypatch.setenv("INPUT_REGISTRY-USERNAME", "bot")
    return tmp_path


def stand_in(run: RunResult):  # replaces pipeline.run, which needs Docker
    return lambda settings, platform, cancel=None: run


def test_a_run_that_reached_tilt_leaves_component_logs_and_prints_its_timeline(
    github: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    artifacts = github / "pyci-artifacts"
    artifacts.mkdir()
    (artifacts / "tilt.log").write_text(f"          api │ crashed, password {SECRET}\n")
    monkeypatch.setattr(pipeline, "run", stand_in(result([
        StageResult("preflight", 0.5, started_at=T0), StageResult("tilt ci", 20.0, started_at=T0 + 9)])))
    assert cli.main([]) == ExitCode.APP_FAILED
    log = (artifacts / "logs" / "api.log").read_text()
    assert "crashed, password ***" in log and SECRET not in log
    out = capsys.readouterr().out
    assert "component logs: " in out
    assert "\ntilt ci            " in out and "\napi                " in out  # the timeline's rows
    assert "### Timeline" in (github / "gh-summary.md").read_text()


def test_a_tilt_log_of_an_earlier_run_is_not_split_when_this_run_stopped_before_tilt(
    github: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    artifacts = github / "pyci-artifacts"
    artifacts.mkdir()
    (artifacts / "tilt.log").write_text("          api │ from yesterday\n")
    monkeypatch.setattr(pipeline, "run", stand_in(result([StageResult("preflight", 0.5, ok=False)])))
    assert cli.main([]) == ExitCode.APP_FAILED
    assert not (artifacts / "logs").exists()
