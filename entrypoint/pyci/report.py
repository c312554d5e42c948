"""What a run found, for people and tools: JUnit XML, the Markdown step summary, and the outputs.

Everything here is a pure function of a RunResult; secrets passed in are replaced by `***` in any
text that could carry them (messages, logs), because reports are uploaded and kept.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from pyci import timeline
from pyci.results import (
    ExitCode,
    ResourceResult,
    RunResult,
    StageResult,
    Status,
    format_duration,
    rendering,
)
from pyci.text import REDACTED, clean, redact  # noqa: F401 - report's API (tests)

SUMMARY_LOG_LINES = 40  # a summary shows the tail; the artifacts keep everything


# --- JUnit ---
def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def _resource_seconds(resource: ResourceResult) -> float:
    return (resource.build_seconds or 0.0) + (resource.ready_seconds or 0.0)


def _suite(name: str, cases: list[ET.Element], seconds: float) -> ET.Element:
    # Attributes in the order junit-10.xsd declares them.
    suite = ET.Element("testsuite")
    suite.set("name", name)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("time", _seconds(seconds))
    suite.extend(cases)
    return suite


def _case(name: str, classname: str, seconds: float) -> ET.Element:
    case = ET.Element("testcase")
    case.set("name", name)
    case.set("time", _seconds(seconds))
    case.set("classname", classname)
    return case


def _problem(case: ET.Element, tag: str, kind: str, message: str) -> None:
    element = ET.SubElement(case, tag)
    element.set("type", kind)
    element.set("message", message.splitlines()[0] if message else kind)
    element.text = message


def stage_case(stage: StageResult, secrets: Iterable[str]) -> ET.Element:
    case = _case(clean(stage.name, secrets), "pyci.setup", stage.seconds)
    tag = rendering(stage.status).junit_stage
    if tag == "skipped":
        ET.SubElement(case, "skipped").set("message", clean(stage_words(stage), secrets))
    elif tag is not None:
        _problem(case, tag, "StageFailed", clean(stage.error, secrets) or f"{stage.name} failed")
    if stage.detail:
        ET.SubElement(case, "system-out").text = clean(stage.detail, secrets)
    return case


def stage_words(stage: StageResult) -> str:
    """`stopped: a component failed (payments)`; the status's word, with the reason when there is one."""
    word = rendering(stage.status).word
    return f"{word}: {stage.error}" if stage.error else word


def resource_case(resource: ResourceResult, secrets: Iterable[str]) -> ET.Element:
    case = _case(
        clean(resource.name, secrets), f"pyci.resources.{resource.source}", _resource_seconds(resource)
    )
    tag = rendering(resource.status).junit
    if tag == "skipped":
        ET.SubElement(case, "skipped").set("message", clean(component_words(resource), secrets))
    elif tag is not None:
        reason = clean(resource.reason, secrets) or "Unhealthy"
        _problem(case, tag, reason, clean(resource.message, secrets) or reason)
    out = [f"workloads: {', '.join(resource.workloads)}"] if resource.workloads else []
    if resource.logs:
        out.append(resource.logs)
    if out:
        ET.SubElement(case, "system-out").text = clean("\n".join(out), secrets)
    return case


def junit_element(result: RunResult, secrets: Iterable[str] = ()) -> ET.Element:
    secrets = tuple(secrets)
    setup = _suite(
        "pyci.setup", [stage_case(s, secrets) for s in result.stages], sum(s.seconds for s in result.stages)
    )
    resources = _suite(
        "pyci.resources",
        [resource_case(r, secrets) for r in result.resources],
        sum(_resource_seconds(r) for r in result.resources),
    )
    root = ET.Element("testsuites")
    root.set("name", "pyci")
    root.set("time", _seconds(result.duration))
    for attribute in ("tests", "failures", "errors"):
        root.set(attribute, str(sum(int(suite.get(attribute, "0")) for suite in (setup, resources))))
    root.extend([setup, resources])
    return root


def junit_xml(result: RunResult, secrets: Iterable[str] = ()) -> str:
    root = junit_element(result, secrets)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(result: RunResult, path: Path, secrets: Iterable[str] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(result, secrets), encoding="utf-8")
    return path


# --- Markdown summary ---
_ICON = {
    ExitCode.HEALTHY: "✅",
    ExitCode.APP_FAILED: "❌",
    ExitCode.BAD_INPUT: "⛔",
    ExitCode.INFRASTRUCTURE: "💥",
    ExitCode.CANCELLED: "⏹️",
}


def cell(text: str) -> str:
    """A table cell: one line, no HTML, no column breaks."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def fenced(text: str) -> str:
    """A code block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _tail(text: str, lines: int = SUMMARY_LOG_LINES) -> str:
    kept = text.rstrip("\n").splitlines()
    skipped = len(kept) - lines
    body = "\n".join(kept[-lines:])
    return f"… {skipped} earlier lines in the artifacts\n{body}" if skipped > 0 else body


NOT_FINISHED = "not finished: the run stopped on another component's failure"


def component_words(resource: ResourceResult) -> str:
    """What a component's status means, in words: `not finished: blocked by db (failed)`."""
    status = resource.status
    if status is Status.NOT_FINISHED:
        return f"not finished: {resource.message}" if resource.message else NOT_FINISHED
    if status is Status.FAILED:
        return f"failed: {resource.reason or 'unhealthy'}"
    return rendering(status).word


def _status(resource: ResourceResult, secrets: Iterable[str]) -> str:
    shown = rendering(resource.status)
    if resource.status is Status.FAILED:
        return f"{shown.icon} {cell(clean(resource.reason, secrets) or 'unhealthy')}"
    if resource.status is Status.NOT_FINISHED:
        why = f": {cell(clean(resource.message, secrets))}" if resource.message else ""
        return f"{shown.icon} {shown.word}{why}"
    return f"{shown.icon} {shown.word}"


def _resources_table(result: RunResult, secrets: tuple[str, ...]) -> list[str]:
    if not result.resources:
        return ["_No resources were reported._", ""]
    rows = ["| Component | Status | Build | Ready |", "| --- | --- | ---: | ---: |"]
    for r in result.resources:
        name = f"`{cell(clean(r.name, secrets))}`"
        if r.workloads:  # what the component applied, under its name
            name += f"<br><sub>{cell(clean(', '.join(r.workloads), secrets))}</sub>"
        rows.append(
            f"| {name} | {_status(r, secrets)} | {format_duration(r.build_seconds)} "
            f"| {format_duration(r.ready_seconds)} |"
        )
    return [*rows, ""]


def _failure_details(resource: ResourceResult, secrets: tuple[str, ...]) -> list[str]:
    name = html.escape(clean(resource.name, secrets))
    reason = html.escape(clean(resource.reason, secrets) or "unhealthy")
    message = html.escape(" ".join(clean(resource.message, secrets).split()))
    head = (
        f"<details><summary><strong>{name}</strong>: {reason}{' — ' + message if message else ''}</summary>"
    )
    logs = clean(resource.logs, secrets)
    body = [fenced(_tail(logs))] if logs.strip() else ["_No log lines were captured._"]
    return [head, "", *body, "", "</details>", ""]


def _stages_table(result: RunResult, secrets: tuple[str, ...]) -> list[str]:
    rows = ["| Stage | Status | Time |", "| --- | --- | ---: |"]
    for s in result.stages:
        shown = rendering(s.status)
        status = shown.icon
        if s.status is not Status.HEALTHY:
            status += f" {cell(clean(stage_words(s), secrets))}"
        if s.detail:
            status += f" {cell(clean(s.detail, secrets))}"
        rows.append(f"| {cell(s.name)} | {status} | {format_duration(s.seconds)} |")
    return rows


def summary_markdown(result: RunResult, secrets: Iterable[str] = ()) -> str:
    secrets = tuple(secrets)
    headline = cell(clean(result.headline, secrets))
    lines = [f"## {_ICON[result.exit_code]} pyci: {result.result} — {headline}", ""]
    lines.append(f"Finished in {format_duration(result.duration)}" + _where(result) + ".")
    lines += ["", "### Resources", "", *_resources_table(result, secrets)]
    failed = [r for r in result.resources if r.status is Status.FAILED]  # not the unfinished: no blame
    if failed:
        lines += ["### Failures", ""]
        for resource in failed:
            lines += _failure_details(resource, secrets)
    if result.stages:
        lines += ["### Setup stages", "", *_stages_table(result, secrets)]
    drawn = timeline.text(result, secrets)
    lines += ["", "### Timeline", "", fenced(drawn)] if drawn else []
    return "\n".join(lines).rstrip("\n") + "\n"


def _where(result: RunResult) -> str:
    parts = []
    if result.cluster_name:
        parts.append(f"cluster `{cell(result.cluster_name)}`")
    if result.registry:
        parts.append(f"registry `{cell(result.registry)}`")
    return " on " + ", ".join(parts) if parts else ""


# --- outputs ---
def outputs(result: RunResult, secrets: Iterable[str] = ()) -> dict[str, str]:
    """The action's outputs (kebab-case keys as in action.yml)."""
    secrets = tuple(secrets)
    values = {
        "result": result.result,
        "cluster-name": result.cluster_name,
        "kubeconfig": result.kubeconfig,
        "registry": result.registry,
        "junit": result.junit,
        "artifacts-dir": result.artifacts_dir,
        "duration": f"{max(result.duration, 0.0):.1f}",
        # the components by status, read through the same Status every renderer uses
        "failed": ",".join(r.name for r in result.resources if r.status is Status.FAILED),
        "not-finished": ",".join(r.name for r in result.resources if r.status is Status.NOT_FINISHED),
    }
    return {key: redact(value, secrets) for key, value in values.items()}
