"""JUnit and summary built from real tilt snapshots (captured from tilt v0.37.6 on the lab by
tests/integration/test_tilt.py), validated against the strict JUnit schema and rendered as GitHub does."""

from __future__ import annotations

import json
from pathlib import Path

import xmlschema
from markdown_it import MarkdownIt

from pyci import report, tilt
from pyci.results import ExitCode, RunResult, StageResult
from tests.schemas import SCHEMAS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
XSD = SCHEMAS / "junit-10.xsd"


def run_from(snapshot: str, code: ExitCode) -> RunResult:
    resources = tilt.resources_from_snapshot(json.loads((FIXTURES / snapshot).read_text()),
                                             exit_code=0 if code == ExitCode.HEALTHY else 1)
    healthy = code == ExitCode.HEALTHY
    stages = [StageResult("registry + cluster", 0.5), StageResult("tilt ci", 7.2, ok=healthy)]
    return RunResult(exit_code=code, headline="from a real snapshot", duration=9.9, stages=stages,
                     resources=resources, cluster_name="pyci", registry="localhost:5001")


def test_failing_snapshot_gives_valid_junit_naming_the_broken_resource(tmp_path: Path):
    result = run_from("tilt-snapshot-fail.json", ExitCode.APP_FAILED)
    assert {r.name for r in result.resources} >= {"ok", "broken"}
    path = report.write_junit(result, tmp_path / "junit.xml")
    xmlschema.XMLSchema(str(XSD)).validate(str(path))
    xml = path.read_text()
    assert 'name="broken"' in xml and "<failure" in xml


def test_ok_snapshot_gives_valid_junit_without_failures(tmp_path: Path):
    result = run_from("tilt-snapshot-ok.json", ExitCode.HEALTHY)
    path = report.write_junit(result, tmp_path / "junit.xml")
    xmlschema.XMLSchema(str(XSD)).validate(str(path))
    assert "<failure" not in path.read_text()


def test_summary_of_a_real_failure_renders_as_github_markdown():
    md = report.summary_markdown(run_from("tilt-snapshot-fail.json", ExitCode.APP_FAILED))
    html = MarkdownIt("gfm-like").disable("linkify").render(md)
    assert "<table>" in html and "<details>" in html
    assert "broken" in html
