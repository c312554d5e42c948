"""Every renderer says the same: generated run states, each component's and stage's status read back
from the summary, JUnit, annotations, GitLab's Code Quality, the log group's closing line, the outputs and
the exit code."""

from __future__ import annotations

import functools
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyci import components, gitlab, report
from pyci.platforms import GitHubActions, detect
from pyci.results import RENDERING, ExitCode, ResourceResult, RunResult, StageResult, Status, rendering

NAMES = st.text(alphabet="abcdefghij-", min_size=1, max_size=8).filter(lambda n: n.strip("-"))
REASONS = st.sampled_from([None, "CrashLoopBackOff", "NotReady", "NotBuilt", "BuildFailed", "Timeout",
                          "Blocked"])


@st.composite
def component(draw: st.DrawFn, name: str) -> ResourceResult:
    ok = draw(st.booleans())
    return ResourceResult(
        name=name,
        source=draw(st.sampled_from(["tilt", "kubernetes"])),
        ok=ok,
        finished=True if ok else draw(st.booleans()),
        reason=None if ok else draw(REASONS),
        message=draw(st.sampled_from([None, "starting: 6s into its 30s window", "exit status 3"])),
        logs=draw(st.sampled_from(["", "boom\n"])),
        build_seconds=draw(st.sampled_from([None, 1.5])),
        ready_seconds=draw(st.sampled_from([None, 2.0])),
    )


@st.composite
def stage(draw: st.DrawFn, name: str) -> StageResult:
    status = draw(st.sampled_from([Status.HEALTHY, Status.FAILED, Status.STOPPED, Status.SKIPPED]))
    return StageResult(name, draw(st.sampled_from([0.0, 2.5])), ok=status is not Status.FAILED,
                       skipped=status is Status.SKIPPED, stopped=status is Status.STOPPED,
                       error=None if status is Status.HEALTHY else "why")


@st.composite
def run_state(draw: st.DrawFn) -> RunResult:
    names = draw(st.lists(NAMES, min_size=0, max_size=6, unique=True))
    stage_names = draw(st.lists(st.sampled_from(["preflight", "registry + cluster", "tilt ci", "readiness",
                                                  "diagnostics"]), max_size=5, unique=True))
    resources = [draw(component(n)) for n in names]
    code = ExitCode.APP_FAILED if components.app_failed(resources) else ExitCode.HEALTHY
    return RunResult(code, "headline", 10.0, stages=[draw(stage(n)) for n in stage_names],
                     resources=resources)


def junit_status(case: ET.Element) -> str | None:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return None


def summary_rows(text: str, section: str) -> dict[str, str]:
    """name -> the status cell, from one of the summary's tables."""
    body = text.split(f"### {section}", 1)[1].split("###", 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] not in ("Component", "Stage", "---"):
            rows[re.sub(r"<br>.*", "", cells[0]).strip("`")] = cells[1]
    return rows


def github(tmp_path: Path) -> tuple[GitHubActions, io.StringIO]:
    out = io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "out"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    platform = detect(env, out)
    assert isinstance(platform, GitHubActions)
    return platform, out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_state())
def test_every_renderer_agrees_on_every_status_and_count(tmp_path: Path, result: RunResult) -> None:
    statuses = {r.name: r.status for r in result.resources}
    # JUnit: each component's and stage's element, and the suites' counts
    root = report.junit_element(result)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    for case in suites["pyci.resources"].iter("testcase"):
        assert junit_status(case) == rendering(statuses[str(case.get("name"))]).junit
    for case, st_ in zip(suites["pyci.setup"].iter("testcase"), result.stages, strict=True):
        assert junit_status(case) == rendering(st_.status).junit_stage
    failed = [r for r in result.resources if r.status is Status.FAILED]
    assert int(suites["pyci.resources"].get("failures", "0")) == len(failed)
    assert int(suites["pyci.resources"].get("skipped", "0")) == sum(
        1 for r in result.resources if r.status is Status.NOT_FINISHED)
    assert int(root.get("failures", "0")) == len(failed)
    # the step summary: each row's icon; details only for the failed
    text = report.summary_markdown(result)
    if result.resources:
        rows = summary_rows(text, "Resources")
        assert len(rows) == len(result.resources)
        for name, status_cell in rows.items():
            assert status_cell.startswith(rendering(statuses[name]).icon)
    assert text.count("<details>") == len(failed)
    if result.stages:
        rows = summary_rows(text, "Setup stages")
        for st_ in result.stages:
            assert rows[st_.name].startswith(rendering(st_.status).icon)
    # annotations: exactly the failed, never a bystander
    platform, out = github(tmp_path)
    for r in components.root_causes(result.resources):
        platform.error(f"{r.name}: {r.reason or 'failed'}", r.message or "not healthy")
    titles = re.findall(r"^::error title=(.+?)%3A", out.getvalue(), re.M)  # `:` in a property is %3A
    assert titles == [r.name for r in failed]
    # GitLab's Code Quality findings on the merge request: the same causes, never a bystander
    findings = gitlab.code_quality(result.resources, Path("/project"), "Tiltfile")
    assert [f["description"].split(":")[0] for f in findings] == [r.name for r in failed]
    # the log group's closing line: its mark
    for st_ in result.stages:
        platform, out = github(tmp_path)
        with platform.group(st_.name, status=functools.partial(getattr, st_, "status")):
            pass
        closing = out.getvalue().splitlines()[-1]
        assert closing.startswith(rendering(st_.status).log_mark + " " + st_.name)
    # the exit code and the `result` output
    unhealthy = any(r.status in (Status.FAILED, Status.NOT_FINISHED) for r in result.resources)
    assert (result.exit_code is ExitCode.APP_FAILED) == unhealthy
    values = report.outputs(result)
    assert values["result"] == ("failure" if unhealthy else "success")
    assert values["failed"] == ",".join(r.name for r in failed)
    unfinished = [r.name for r in result.resources if r.status is Status.NOT_FINISHED]
    assert values["not-finished"] == ",".join(unfinished)


def test_the_table_covers_every_status() -> None:
    assert set(RENDERING) == set(Status)
    assert len({r.icon for r in RENDERING.values()}) == len(Status)  # a reader tells them apart
    assert [s for s, r in RENDERING.items() if r.annotate] == [Status.FAILED]
    assert [s for s, r in RENDERING.items() if r.code_quality] == [Status.FAILED]
