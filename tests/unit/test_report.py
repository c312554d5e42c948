"""JUnit XML (validated against junit-10.xsd), the Markdown summary (rendered and screenshotted), outputs."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from markdown_it import MarkdownIt

from pyci.report import (
    format_duration,
    junit_xml,
    outputs,
    redact,
    summary_markdown,
    write_junit,
)
from pyci.results import ExitCode, ResourceResult, RunResult, StageResult
from tests.schemas import SCHEMAS
from tests.unit.fixtures.runs import SECRET, load_run

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd")


@pytest.fixture
def failed() -> RunResult:
    return load_run("failed_run")


@pytest.fixture
def healthy() -> RunResult:
    return load_run("healthy_run")


# --- JUnit ---
@pytest.mark.parametrize("name", ["failed_run", "healthy_run"])
def test_junit_validates_against_the_schema(junit_schema: xmlschema.XMLSchema, name: str):
    junit_schema.validate(junit_xml(load_run(name), secrets=(SECRET,)))


def test_junit_validates_with_nothing_in_it(junit_schema: xmlschema.XMLSchema):
    junit_schema.validate(junit_xml(RunResult(exit_code=ExitCode.INFRASTRUCTURE, headline="docker is down")))


def test_junit_structure(failed: RunResult):
    root = ET.fromstring(junit_xml(failed, secrets=(SECRET,)))
    assert root.tag == "testsuites"
    assert [s.get("name") for s in root] == ["pyci.setup", "pyci.resources"]
    setup, resources = root
    assert [c.get("name") for c in setup] == [s.name for s in failed.stages]
    assert [c.get("name") for c in resources] == [r.name for r in failed.resources]
    assert (setup.get("tests"), setup.get("errors"), setup.get("failures"), setup.get("skipped")) == (
        "10",
        "2",
        "0",
        "1",
    )
    assert (resources.get("tests"), resources.get("failures"), resources.get("errors")) == ("6", "2", "0")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("16", "2", "2")
    assert root.get("time") == "214.600"


def test_junit_attribute_order_follows_the_schema(failed: RunResult):
    root = ET.fromstring(junit_xml(failed))
    assert list(root.attrib) == ["name", "time", "tests", "failures", "errors"]
    assert list(root[0].attrib) == ["name", "tests", "failures", "errors", "skipped", "time"]
    assert list(root[1][0].attrib) == ["name", "time", "classname"]


def test_junit_resource_case(failed: RunResult):
    root = ET.fromstring(junit_xml(failed, secrets=(SECRET,)))
    web = root.find("testsuite[@name='pyci.resources']/testcase[@name='web']")
    assert web is not None
    assert web.get("time") == "31.200"  # build + ready, ready unknown
    assert web.get("classname") == "pyci.resources.tilt"
    failure = web.find("failure")
    assert failure is not None
    assert failure.get("type") == "BuildFailed"
    assert failure.get("message") == "docker build failed: npm ci exited 1"
    system_out = web.find("system-out")
    assert system_out is not None and "did not complete successfully" in (system_out.text or "")
    worker = root.find("testsuite/testcase[@name='deployment/default/worker']")
    assert worker is not None and worker.get("classname") == "pyci.resources.kubernetes"
    api = root.find("testsuite/testcase[@name='api']")
    assert api is not None and api.get("time") == "28.500" and len(api) == 0


def test_junit_stage_case(failed: RunResult):
    root = ET.fromstring(junit_xml(failed))
    tilt = root.find("testsuite[@name='pyci.setup']/testcase[@name='tilt']")
    assert tilt is not None
    error = tilt.find("error")
    assert error is not None and error.get("type") == "StageFailed"
    assert error.get("message") == "tilt ci exited 1: web build failed"
    skipped = root.find("testsuite/testcase[@name='kind-logs']")
    assert skipped is not None and skipped.find("skipped") is not None


def test_junit_is_redacted_and_clean_of_terminal_codes(failed: RunResult):
    text = junit_xml(failed, secrets=(SECRET,))
    assert SECRET not in text
    assert "postgres://app:***@db" in text
    assert "\x1b" not in text and "\x07" not in text
    ET.fromstring(text)  # well-formed despite the control characters in the logs


def test_junit_survives_hostile_text(junit_schema: xmlschema.XMLSchema):
    nasty = '\x00\x1b[1mbold\x1b[0m <tag> & "quote" ]]> \ud800 \ufffe end'
    result = RunResult(
        exit_code=ExitCode.APP_FAILED,
        headline=nasty,
        duration=-1.0,
        stages=[StageResult(name=nasty, seconds=-3.0, ok=False, error=nasty)],
        resources=[ResourceResult(name=nasty, source="tilt", ok=False, reason=nasty, message="", logs=nasty)],
    )
    junit_schema.validate(junit_xml(result))


def test_write_junit_creates_the_folder(tmp_path: Path, failed: RunResult, junit_schema: xmlschema.XMLSchema):
    path = write_junit(failed, tmp_path / "reports" / "pyci.xml", secrets=(SECRET,))
    junit_schema.validate(str(path))


# --- summary ---
def test_summary_headline_and_tables(failed: RunResult):
    text = summary_markdown(failed, secrets=(SECRET,))
    assert text.startswith("## ❌ pyci: failure — 2 of 5 resources are not healthy")
    assert "| `web` | ❌ BuildFailed | 31.2s | – |" in text
    assert "| `api` | ✅ healthy | 23.4s | 5.1s |" in text
    assert "| cluster | ✅ | 41.7s |" in text
    assert "| tilt | ❌ failed: tilt ci exited 1: web build failed | 1m 36s |" in text
    assert "| kind-logs | ⏭️ skipped | 0.0s |" in text
    assert "Finished in 3m 35s on cluster `pyci-gh-123-1`, registry `localhost:5001`." in text


def test_summary_failures_in_details_with_fenced_logs(failed: RunResult):
    text = summary_markdown(failed, secrets=(SECRET,))
    assert text.count("<details><summary>") == 2
    assert "<summary><strong>deployment/default/worker</strong>: CrashLoopBackOff — container worker" in text
    assert "````text\n" in text  # the log contains ``` so the fence is longer
    assert "… 21 earlier lines in the artifacts" in text  # the build log is cut to its tail
    assert SECRET not in text and "\x1b" not in text


def test_summary_of_a_healthy_run(healthy: RunResult):
    text = summary_markdown(healthy)
    assert text.startswith("## ✅ pyci: success — all 3 resources are healthy")
    assert "<details>" not in text and "### Failures" not in text


def test_summary_escapes_table_cells():
    result = RunResult(
        exit_code=ExitCode.APP_FAILED,
        headline="a | b",
        resources=[ResourceResult(name="x|y", source="tilt", ok=False, reason="<b>Bad</b>\nReason")],
    )
    text = summary_markdown(result)
    assert "| `x\\|y` | ❌ &lt;b&gt;Bad&lt;/b&gt; Reason |" in text
    assert "— a \\| b" in text


@pytest.mark.parametrize(
    ("code", "icon"),
    [(ExitCode.BAD_INPUT, "⛔"), (ExitCode.INFRASTRUCTURE, "💥"), (ExitCode.CANCELLED, "⏹️")],
)
def test_summary_icons(code: ExitCode, icon: str):
    assert summary_markdown(RunResult(exit_code=code, headline="h")).startswith(f"## {icon} pyci: ")


def render_github_style(markdown: str) -> str:
    """HTML as GitHub would show it: GFM tables, raw HTML for <details>."""
    body = MarkdownIt("gfm-like").disable("linkify").render(markdown)
    style = (
        "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:960px;"
        "margin:16px auto;font-size:14px;color:#1f2328}table{border-collapse:collapse}"
        "th,td{border:1px solid #d1d9e0;padding:6px 13px}"
        "pre{background:#f6f8fa;padding:12px;overflow:auto}code{font-size:12px}"
    )
    head = f'<meta charset="utf-8"><style>{style}</style>'
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def test_summary_renders_as_github_markdown(failed: RunResult):
    html = render_github_style(summary_markdown(failed, secrets=(SECRET,)))
    assert html.count("<table>") == 2
    assert "<details><summary><strong>web</strong>" in html
    assert '<code class="language-text">' in html
    assert "<script>" not in html  # log text is escaped inside the code block


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: no screenshot")
def test_summary_screenshot(tmp_path: Path, failed: RunResult):
    ARTIFACTS.mkdir(exist_ok=True)
    # Open the failures so the screenshot shows the logs too.
    markdown = summary_markdown(failed, secrets=(SECRET,)).replace("<details>", "<details open>")
    page = ARTIFACTS / "summary.html"
    page.write_text(render_github_style(markdown), encoding="utf-8")
    png = ARTIFACTS / "summary.png"
    png.unlink(missing_ok=True)
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1000,900",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert png.exists(), done.stderr[-2000:]
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- outputs and helpers ---
def test_outputs(failed: RunResult):
    assert outputs(failed, secrets=(SECRET,)) == {
        "result": "failure",
        "cluster-name": "pyci-gh-123-1",
        "kubeconfig": "/tmp/pyci/kubeconfig",
        "registry": "localhost:5001",
        "junit": "pyci-junit.xml",
        "artifacts-dir": "pyci-artifacts",
        "duration": "214.6",
        "failed": "web,deployment/default/worker",
        "not-finished": "",
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (0, "0.0s"),
        (4.54, "4.5s"),
        (59.9, "59.9s"),
        (83, "1m 23s"),
        (3599.4, "59m 59s"),
        (3725, "1h 02m"),
        (-2, "0.0s"),
    ],
)
def test_format_duration(seconds: float | None, text: str):
    assert format_duration(seconds) == text


def test_redact_multi_line_and_overlapping_secrets():
    assert redact("a abc abcdef\nline2 x", ["abcdef", "abc", "line2\n", ""]) == "a *** ***\n*** x"


def test_build_ahead_profile_is_in_junit_and_the_summary(junit_schema: xmlschema.XMLSchema):
    detail = ("2/2 images built ahead in 3.4s, 3.4s of it during the 12.1s cluster boot; tilt waited 0.0s "
              "for them; tilt: 4/4 build steps cached")
    result = RunResult(exit_code=ExitCode.HEALTHY, headline="ok", duration=30.0, stages=[
        StageResult("registry + cluster", 12.1), StageResult("build ahead", 0.0, detail=detail)])
    xml = junit_xml(result)
    junit_schema.validate(xml)
    case = next(c for c in ET.fromstring(xml).iter("testcase") if c.get("name") == "build ahead")
    out = case.find("system-out")
    assert out is not None and out.text == detail
    assert f"| build ahead | ✅ {detail} | 0.0s |" in summary_markdown(result)
