"""One component, one verdict: tilt resources merged with the workloads they applied."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from pyci import components, report, tiltfile
from pyci.results import ExitCode, ResourceResult, RunResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HELLO = tiltfile.parse_result(json.loads((FIXTURES / "tiltfile-result-hello.json").read_text()))


def tilt(name: str, ok: bool = True, reason: str | None = None, **kw) -> ResourceResult:
    return ResourceResult(name, "tilt", ok, reason=reason, **kw)


def k8s(name: str, ok: bool = True, reason: str | None = None, **kw) -> ResourceResult:
    return ResourceResult(name, "kubernetes", ok, reason=reason, **kw)


def test_a_failed_job_is_one_component_with_one_cause():
    found = [tilt("api"), tilt("web"), tilt("migrate", False, "Error", message="exit 1"),
             k8s("deployment/default/api"), k8s("deployment/default/web"),
             k8s("job/default/migrate", False, "JobFailed", message="BackoffLimitExceeded", logs="boom")]
    merged = components.merge(found, HELLO)
    assert [c.name for c in merged] == ["api", "web", "migrate"]
    migrate = merged[2]
    assert (migrate.verdict, migrate.reason, migrate.logs) == ("failed", "JobFailed", "boom")
    assert migrate.workloads == ["job/default/migrate"]
    assert components.root_causes(merged) == [migrate]


def test_bystanders_are_not_finished_and_never_blamed():
    found = [tilt("api", False, "BuildFailed", message="exit code: 3"), tilt("web", False, "NotReady"),
             tilt("migrate", False, "NotBuilt"),
             k8s("deployment/default/web", False, "NotReady", finished=False)]
    merged = {c.name: c for c in components.merge(found, HELLO)}
    assert merged["api"].verdict == "failed"
    assert merged["web"].verdict == merged["migrate"].verdict == "not finished"
    assert components.root_causes(list(merged.values())) == [merged["api"]]
    root = report.junit_element(RunResult(ExitCode.APP_FAILED, "x", resources=list(merged.values())))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["api"].find("failure") is not None
    assert cases["web"].find("skipped") is not None and cases["web"].find("failure") is None
    summary = report.summary_markdown(RunResult(ExitCode.APP_FAILED, "x", resources=list(merged.values())))
    assert "⏸️ not finished" in summary and summary.count("<details>") == 1


def test_with_no_concrete_cause_every_failure_stays_a_failure():
    merged = components.merge([tilt("api", False, "NotReady"), tilt("web")], HELLO)
    assert merged[0].verdict == "failed"


def test_a_workload_no_tilt_resource_owns_keeps_its_own_row():
    found = [tilt("api"), k8s("deployment/default/api"),
             k8s("statefulset/ops/operator-made", False, "CrashLoopBackOff")]
    merged = components.merge(found, HELLO)
    assert [c.name for c in merged] == ["api", "statefulset/ops/operator-made"]
    assert merged[1].verdict == "failed"


def test_ownership_comes_from_the_tiltfile_when_names_differ():
    backend = tiltfile.Component("backend", objects=("deployment/api",))
    evaluation = tiltfile.Evaluation(0.0, components=(backend,))
    merged = components.merge([tilt("backend"), k8s("deployment/default/api", False, "ImagePullBackOff")],
                              evaluation)
    assert [(c.name, c.reason, c.workloads) for c in merged] == [
        ("backend", "ImagePullBackOff", ["deployment/default/api"])]


def test_junit_lists_a_components_workloads():
    merged = components.merge([tilt("api"), k8s("deployment/default/api")], HELLO)
    root = report.junit_element(RunResult(ExitCode.HEALTHY, "ok", resources=merged))
    case = next(root.iter("testcase"))
    assert ET.tostring(case, encoding="unicode").count("workloads: deployment/default/api") == 1
