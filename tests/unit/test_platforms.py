"""GitHub Actions, CircleCI and a local terminal: groups, masks, annotations, outputs, summary, folders."""

from __future__ import annotations

import io
import logging
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pyci.platforms import (
    SUMMARY_LIMIT,
    CircleCI,
    GitHubActions,
    Local,
    Platform,
    detect,
    escape_data,
    escape_property,
    format_output,
    route_logging,
)


class Clock:
    """Stands in for time.monotonic: each call moves 2.5 seconds on."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 2.5
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def github(tmp_path: Path, **extra: str) -> tuple[GitHubActions, io.StringIO]:
    out = io.StringIO()
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        **extra,
    }
    platform = detect(env, out)
    assert isinstance(platform, GitHubActions)
    platform.clock = Clock()
    return platform, out


# --- detection ---
def test_detect(tmp_path: Path):
    out = io.StringIO()
    assert type(detect({"GITHUB_ACTIONS": "true"}, out)) is GitHubActions
    assert type(detect({"CIRCLECI": "true"}, out)) is CircleCI
    assert type(detect({}, out)) is Local
    assert type(detect({"GITHUB_ACTIONS": "false", "CI": "true"}, out)) is Local


def test_local_colour_only_on_a_tty_without_no_color():
    assert detect({}, TTY()).color
    assert not detect({"NO_COLOR": "1"}, TTY()).color
    assert not detect({}, io.StringIO()).color
    assert not detect({"GITHUB_ACTIONS": "true"}, TTY()).color
    assert detect({"CIRCLECI": "true"}, io.StringIO()).color
    assert not detect({"CIRCLECI": "true", "NO_COLOR": "yes"}, io.StringIO()).color


# --- GitHub ---
def test_escaping():
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_github_group_prints_the_duration_after_the_group(tmp_path: Path):
    platform, out = github(tmp_path)
    with platform.group("create cluster"):
        platform.info("kind create cluster")
    assert out.getvalue().splitlines() == [
        "::group::create cluster",
        "kind create cluster",
        "::endgroup::",
        "✓ create cluster (2.5s)",
    ]


def test_github_group_closes_on_failure_and_does_not_nest(tmp_path: Path):
    platform, out = github(tmp_path)
    with pytest.raises(RuntimeError), platform.group("outer"), platform.group("inner"):
        raise RuntimeError("boom")
    assert out.getvalue().splitlines() == [
        "::group::outer",
        "▶ inner",
        "✗ inner failed after 2.5s",
        "::endgroup::",
        "✗ outer failed after 7.5s",
    ]


def test_github_annotations(tmp_path: Path):
    platform, out = github(tmp_path)
    platform.warning("disk 95% full\nsoon")
    platform.error("web: CrashLoopBackOff, again", "exit 1\nsee logs: pod/web")
    assert out.getvalue().splitlines() == [
        "::warning::disk 95%25 full%0Asoon",
        "::error title=web%3A CrashLoopBackOff%2C again::exit 1%0Asee logs: pod/web",
    ]


def test_github_mask_comes_before_any_use_and_masks_each_line(tmp_path: Path):
    platform, out = github(tmp_path)
    platform.mask("line-one\n\nline-%two\n")
    platform.info("token line-one and line-%two")
    platform.error("line-one", "x")
    assert out.getvalue().splitlines() == [
        "::add-mask::line-one",
        "::add-mask::line-%25two",
        "token *** and ***",
        "::error title=***::x",
    ]


def test_github_untrusted_text_cannot_issue_commands(tmp_path: Path):
    platform, out = github(tmp_path)
    platform.untrusted("::add-mask::x\n::error::fake")
    platform.untrusted("tilt: second line")
    platform.info("pyci's own line")  # read as commands again: the pair closes first
    platform.untrusted("::warning::third")
    platform.resume_commands()
    lines = out.getvalue().splitlines()
    token = lines[0].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert lines[1:5] == ["::add-mask::x", "::error::fake", "tilt: second line", f"::{token}::"]
    assert lines[5] == "pyci's own line"
    second = lines[6].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", second) and second != token  # never reused
    assert lines[7:] == ["::warning::third", f"::{second}::"]
    assert out.getvalue().count("::stop-commands::") == 2  # one pair per stretch, not per line


def test_github_outputs_single_and_multi_line(tmp_path: Path):
    platform, _ = github(tmp_path)
    platform.set_outputs({"result": "success", "log": "a\nb"})
    platform.set_outputs({"duration": "12.0"})
    text = (tmp_path / "output").read_text()
    match = re.fullmatch(
        r"result=success\nlog<<(ghadelimiter_[0-9a-f-]{36})\na\nb\n\1\nduration=12.0\n", text
    )
    assert match, text


def test_github_output_delimiters_are_unique():
    first, second = format_output("k", "a\nb"), format_output("k", "a\nb")
    assert first != second
    assert first.startswith("k<<ghadelimiter_")


def test_github_outputs_without_the_file_are_logged(tmp_path: Path):
    out = io.StringIO()
    GitHubActions(out, {"GITHUB_ACTIONS": "true"}).set_outputs({"result": "success"})
    assert "result  success" in out.getvalue()


def test_github_summary_appends_redacts_and_truncates(tmp_path: Path):
    platform, _ = github(tmp_path)
    platform.mask("pa55word")
    platform.write_summary("## one pa55word")
    platform.write_summary("## two\n")
    assert (tmp_path / "summary.md").read_text() == "## one ***\n## two\n"
    platform.write_summary("x" * (SUMMARY_LIMIT + 10))
    text = (tmp_path / "summary.md").read_text()
    assert len(text.encode()) <= SUMMARY_LIMIT + 100
    assert text.rstrip().endswith("_Summary truncated: see the artifacts for the full report._")


def test_github_without_summary_file_writes_nothing(tmp_path: Path):
    out = io.StringIO()
    GitHubActions(out, {}).write_summary("## hi")
    assert out.getvalue() == ""


def test_github_debug(tmp_path: Path):
    platform, out = github(tmp_path)
    platform.debug("a%b")
    assert out.getvalue() == "::debug::a%25b\n"


def test_github_has_no_collected_folders(tmp_path: Path):
    platform, _ = github(tmp_path)
    assert platform.test_results_dir is None and platform.artifacts_dir is None
    assert platform.input_defaults() == {}
    assert platform.annotates


# --- CircleCI ---
def circleci(tmp_path: Path) -> tuple[CircleCI, io.StringIO]:
    out = io.StringIO()
    env = {
        "CIRCLECI": "true",
        "NO_COLOR": "1",
        "PYCI_STORE_TEST_RESULTS": str(tmp_path / "results"),
        "PYCI_STORE_ARTIFACTS": str(tmp_path / "artifacts"),
        "PYCI_OUTPUTS_ENV": str(tmp_path / "out" / "outputs.env"),
    }
    platform = detect(env, out)
    assert isinstance(platform, CircleCI)
    platform.clock = Clock()
    return platform, out


def test_circleci_folders_default_and_override(tmp_path: Path):
    plain = CircleCI(io.StringIO(), {})
    assert plain.test_results_dir == Path("/tmp/pyci/test-results")
    assert plain.artifacts_dir == Path("/tmp/pyci/artifacts")
    platform, _ = circleci(tmp_path)
    assert platform.input_defaults() == {
        "junit": str(tmp_path / "results" / "pyci-junit.xml"),
        "artifacts-dir": str(tmp_path / "artifacts"),
    }


def test_circleci_group_error_warning(tmp_path: Path):
    platform, out = circleci(tmp_path)
    with platform.group("tilt ci"):
        platform.warning("slow")
    platform.error("web", "BuildFailed")
    assert out.getvalue().splitlines() == [
        "==> tilt ci",
        "warning: slow",
        "✓ tilt ci (2.5s)",
        "error: web: BuildFailed",
    ]


def test_circleci_outputs_are_a_sourceable_env_file(tmp_path: Path):
    platform, _ = circleci(tmp_path)
    value = "it's\nmulti $(line)"
    platform.set_outputs({"result": "failure", "cluster-name": value})
    env_file = tmp_path / "out" / "outputs.env"
    script = f'source {shlex.quote(str(env_file))}; printf %s "$PYCI_OUTPUT_CLUSTER_NAME"'
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert shown == value
    assert "export PYCI_OUTPUT_RESULT=failure" in env_file.read_text()


def test_circleci_summary_goes_to_the_artifacts(tmp_path: Path):
    platform, _ = circleci(tmp_path)
    platform.mask("tok3n")
    platform.write_summary("## done tok3n")
    assert (tmp_path / "artifacts" / "summary.md").read_text() == "## done ***\n"


def test_circleci_uses_colour(tmp_path: Path):
    out = io.StringIO()
    CircleCI(out, {}, color=True).error("a", "b")
    assert out.getvalue() == "\x1b[31merror: a: b\x1b[0m\n"


# --- local ---
def test_local_plain(tmp_path: Path):
    out = io.StringIO()
    platform = Local(out, {}, clock=Clock())
    with platform.group("registry"):
        platform.info("up")
    platform.warning("w")
    platform.error("t", "m")
    platform.set_outputs({"result": "success", "cluster-name": "pyci"})
    platform.write_summary("## summary")
    assert out.getvalue().splitlines() == [
        "▶ registry",
        "up",
        "✓ registry (2.5s)",
        "warning: w",
        "error: t: m",
        "result        success",
        "cluster-name  pyci",
        "## summary",
    ]
    assert platform.test_results_dir is None and not platform.annotates


def test_local_colour_on_a_terminal():
    out = TTY()
    platform = detect({}, out)
    platform.clock = Clock()
    with platform.group("x"):
        pass
    platform.warning("w")
    assert out.getvalue() == "\x1b[1m▶ x\x1b[0m\n\x1b[32m✓ x (2.5s)\x1b[0m\n\x1b[33mwarning: w\x1b[0m\n"


@pytest.mark.parametrize("make", [Local, CircleCI, GitHubActions])
def test_every_platform_redacts_what_it_prints(make: type[Platform]):
    out = io.StringIO()
    platform = make(out, {})
    platform.mask("abc-secret")
    platform.mask("abc")  # a shorter secret inside a longer one must not leave a tail behind
    platform.info("x abc-secret y")
    platform.warning("abc-secret")
    assert "secret" not in out.getvalue().replace("::add-mask::abc-secret", "")


@pytest.mark.parametrize("make", [Local, CircleCI, GitHubActions])
def test_logging_goes_to_the_platform(make: type[Platform]):
    out = io.StringIO()
    platform = make(out, {})
    handler = route_logging(platform, debug=False, logger_name="pyci.test_platforms")
    try:
        log = logging.getLogger("pyci.test_platforms.stage")
        log.debug("hidden")
        log.info("shown %d", 1)
        log.warning("careful")
        log.error("broken")
    finally:
        logging.getLogger("pyci.test_platforms").removeHandler(handler)
    text = out.getvalue()
    assert "hidden" not in text
    assert "shown 1" in text and "careful" in text and "broken" in text


def test_a_secret_a_tool_declares_is_masked_from_then_on(tmp_path: Path):
    # A Tiltfile's print('::add-mask::' + token): inside stop-commands the runner would ignore it.
    platform, out = github(tmp_path)
    platform.untrusted("Tiltfile │ ::add-mask::tok-1234567890")
    platform.untrusted("Tiltfile │ the token is tok-1234567890")
    platform.resume_commands()
    text = out.getvalue()
    assert text.splitlines()[0] == "::add-mask::tok-1234567890"  # a real command, before any stop-commands
    assert text.count("tok-1234567890") == 1
    assert "the token is ***" in text
    assert platform.secrets == ("tok-1234567890",)


def test_a_tool_cannot_mask_short_text(tmp_path: Path):
    platform, out = github(tmp_path)
    platform.untrusted("::add-mask::e")
    platform.untrusted("every line has an e")
    assert platform.secrets == ()
    assert "every line has an e" in out.getvalue()
