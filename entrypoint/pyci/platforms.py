"""The CI platform we run on: GitHub Actions, CircleCI, GitLab CI, or a local terminal.

Each platform shows the same things its own way: log groups with the stage duration, warnings and
errors (annotations on GitHub), secret masks, outputs, the step summary, and the folders the CI stores.
Every write goes to the stream and files given at construction, so tests capture them.

CircleCI has no outputs or summary mechanism, so the orb collects files instead:
  PYCI_STORE_TEST_RESULTS  (default /tmp/pyci/test-results)  `store_test_results` path; JUnit goes here
  PYCI_STORE_ARTIFACTS     (default /tmp/pyci/artifacts)     `store_artifacts` path; diagnostics, summary.md
  PYCI_OUTPUTS_ENV         (default /tmp/pyci/outputs.env)   `export PYCI_OUTPUT_<NAME>=...` lines to source
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

from pyci import gitlab
from pyci.results import RunResult, Status, format_duration, rendering
from pyci.tiltfile import SourceLocation

SUMMARY_LIMIT = 1024 * 1024  # GitHub rejects a step summary larger than 1 MiB
REDACTED = "***"


def escape_data(text: str) -> str:
    """GitHub workflow command data: the runner unescapes exactly these."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


TOOL_MASK_MIN = 8  # characters of a secret a tool declares with `::add-mask::`


def unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def escape_property(text: str) -> str:
    """GitHub workflow command property values additionally escape the separators."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Platform:
    """A local terminal; the CI platforms override what they do differently."""

    name = "local"
    annotates = False  # True where error() is shown apart from the log (GitHub annotations)

    def __init__(
        self,
        out: TextIO,
        environ: Mapping[str, str],
        color: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.environ = environ
        self.color = color
        self.clock = clock
        self._secrets: list[str] = []
        self._lock = threading.RLock()  # registry and cluster stages log from two threads

    # Where the CI platform collects files; None: only where the inputs say.
    @property
    def test_results_dir(self) -> Path | None:
        return None

    @property
    def artifacts_dir(self) -> Path | None:
        return None

    def input_defaults(self) -> dict[str, str]:
        """Input defaults this platform prefers (below environment and CLI in precedence)."""
        return {}

    # --- logging ---
    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret masked so far (inputs, and `::add-mask::` lines in tool output)."""
        with self._lock:
            return tuple(self._secrets)

    def masks_from(self, text: str) -> None:
        """A tool (a Tiltfile's print, a local() command) declares a secret the GitHub way,
        `::add-mask::VALUE`: it is masked from then on, everywhere pyci writes, on every platform.
        On GitHub it must be: pyci shows tool output between stop-commands, where the runner
        itself ignores the line. Values shorter than TOOL_MASK_MIN are left alone: masking `a` would
        wreck every line, and a pod log must not be able to do that."""
        for line in text.splitlines():
            _, found, value = line.partition("::add-mask::")
            if found and len(value.strip()) >= TOOL_MASK_MIN:
                self.mask(unescape_data(value.strip()))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def info(self, msg: str) -> None:
        self._write(self.redact(msg))

    def debug(self, msg: str) -> None:
        self.info(msg)

    def untrusted(self, text: str) -> None:
        """Text from a tool (tilt, kubectl, pod logs): never interpreted, only shown."""
        self.masks_from(text)
        self.info(text)

    def resume_commands(self) -> None:
        """After untrusted text, the platform reads workflow commands again (GitHub only)."""

    def warning(self, msg: str) -> None:
        self._write(self._paint(f"warning: {self.redact(msg)}", "33"))

    def error(self, title: str, message: str, location: SourceLocation | None = None) -> None:
        where = f"{location}: " if location else ""
        self._write(self._paint(f"error: {where}{self.redact(title)}: {self.redact(message)}", "31"))

    @contextlib.contextmanager
    def group(self, title: str, status: Callable[[], Status] | None = None) -> Iterator[None]:
        """A stage: a heading, then its duration and status (`status()` when it ended without raising:
        a stage can end stopped or failed without an exception), also when it fails."""
        started = self.clock()
        self._open_group(self.redact(title))
        try:
            yield
        except BaseException:
            self._close_group(self.redact(title), self.clock() - started, Status.FAILED)
            raise
        self._close_group(self.redact(title), self.clock() - started,
                          status() if status is not None else Status.HEALTHY)

    def _open_group(self, title: str) -> None:
        self._write(self._paint(f"▶ {title}", "1"))

    def _close_group(self, title: str, seconds: float, status: Status) -> None:
        shown = rendering(status)
        if status is Status.HEALTHY:
            line = f"{shown.log_mark} {title} ({format_duration(seconds)})"
        else:
            line = f"{shown.log_mark} {title} {shown.word} after {format_duration(seconds)}"
        self._write(self._paint(line, {Status.HEALTHY: "32", Status.FAILED: "31"}.get(status, "33")))

    # --- secrets, outputs, summary ---
    def mask(self, secret: str) -> None:
        """Hide a secret in everything this platform prints from now on (each line of it)."""
        lines = [line for line in secret.splitlines() if line.strip()]
        with self._lock:
            for line in lines:
                if line not in self._secrets:
                    self._announce_mask(line)
                    self._secrets.append(line)
            self._secrets.sort(key=len, reverse=True)  # a longer secret first: no partial leftovers

    def _announce_mask(self, line: str) -> None:
        """Tell the platform about a secret line; only GitHub can mask its own log."""

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        width = max((len(k) for k in outputs), default=0)
        for key, value in outputs.items():
            self.info(f"{key.ljust(width)}  {value}")

    def write_summary(self, markdown: str) -> None:
        self.info(markdown)

    def write_findings(self, result: RunResult, tiltfile: Path, secrets: Iterable[str]) -> None:
        """Causes as the CI's review tool reads them from a file (GitLab's Code Quality), at their
        location (the Tiltfile's first line when a cause has none); the log has them already."""


class Local(Platform):
    name = "local"


class GitHubActions(Platform):
    name = "github"
    annotates = True

    def __init__(
        self,
        out: TextIO,
        environ: Mapping[str, str],
        color: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out, environ, color, clock)
        self._open_groups = 0
        self._stop_token: str | None = None

    def debug(self, msg: str) -> None:
        self._write(f"::debug::{escape_data(self.redact(msg))}")

    def untrusted(self, text: str) -> None:
        # A pod log could contain `::add-mask::` or `::error::`; stop-commands makes the runner ignore
        # it. One pair per stretch of tool output (a tilt log is thousands of lines): opened at its
        # first line, closed before the next line pyci writes itself, which must be a command again.
        with self._lock:
            self.masks_from(text)  # announced as a real command, before the pair opens again
            if self._stop_token is None:
                self._stop_token = uuid.uuid4().hex
                super()._write(f"::stop-commands::{self._stop_token}")
            super()._write(self.redact(text))

    def resume_commands(self) -> None:
        with self._lock:
            if self._stop_token is not None:
                token, self._stop_token = self._stop_token, None
                super()._write(f"::{token}::")

    def _write(self, text: str) -> None:
        with self._lock:
            self.resume_commands()
            super()._write(text)

    def warning(self, msg: str) -> None:
        self._write(f"::warning::{escape_data(self.redact(msg))}")

    def error(self, title: str, message: str, location: SourceLocation | None = None) -> None:
        # file/line/col put the annotation on the pull request's diff, at that line.
        where = (f"file={escape_property(location.path)},line={location.line},col={location.col},"
                 if location else "")
        self._write(
            f"::error {where}title={escape_property(self.redact(title))}::{escape_data(self.redact(message))}"
        )

    def _open_group(self, title: str) -> None:
        with self._lock:
            self._open_groups += 1
            # GitHub cannot nest groups: an inner (or concurrent) stage is a plain heading.
            self._write(f"::group::{escape_data(title)}" if self._open_groups == 1 else f"▶ {title}")

    def _close_group(self, title: str, seconds: float, status: Status) -> None:
        with self._lock:
            self._open_groups -= 1
            if self._open_groups == 0:
                self._write("::endgroup::")
            super()._close_group(title, seconds, status)  # after the group: visible while it is folded

    def _announce_mask(self, line: str) -> None:
        self._write(f"::add-mask::{escape_data(line)}")

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        path = self.environ.get("GITHUB_OUTPUT")
        if not path:
            super().set_outputs(outputs)
            return
        with open(path, "a", encoding="utf-8") as file:
            for key, value in outputs.items():
                file.write(format_output(key, value))

    def write_summary(self, markdown: str) -> None:
        path = self.environ.get("GITHUB_STEP_SUMMARY")
        if not path:
            return
        text = self.redact(markdown)
        if len(text.encode()) > SUMMARY_LIMIT:
            note = "\n\n_Summary truncated: see the artifacts for the full report._\n"
            text = text.encode()[: SUMMARY_LIMIT - len(note.encode())].decode(errors="ignore") + note
        with open(path, "a", encoding="utf-8") as file:
            file.write(text if text.endswith("\n") else text + "\n")


def format_output(key: str, value: str) -> str:
    """One GITHUB_OUTPUT entry; multi-line values in a heredoc with a delimiter that cannot occur."""
    if "\n" not in value and "\r" not in value:
        return f"{key}={value}\n"
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    return f"{key}<<{delimiter}\n{value}\n{delimiter}\n"


class CircleCI(Platform):
    name = "circleci"

    @property
    def test_results_dir(self) -> Path:
        return Path(self.environ.get("PYCI_STORE_TEST_RESULTS") or "/tmp/pyci/test-results")

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.environ.get("PYCI_STORE_ARTIFACTS") or "/tmp/pyci/artifacts")

    @property
    def outputs_file(self) -> Path:
        return Path(self.environ.get("PYCI_OUTPUTS_ENV") or "/tmp/pyci/outputs.env")

    def input_defaults(self) -> dict[str, str]:
        return {
            "junit": str(self.test_results_dir / "pyci-junit.xml"),
            "artifacts-dir": str(self.artifacts_dir),
        }

    def _open_group(self, title: str) -> None:
        self._write(self._paint(f"==> {title}", "1"))

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        super().set_outputs(outputs)
        self.outputs_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.outputs_file, "a", encoding="utf-8") as file:
            for key, value in outputs.items():
                name = "PYCI_OUTPUT_" + key.upper().replace("-", "_")
                file.write(f"export {name}={shlex.quote(value)}\n")

    def write_summary(self, markdown: str) -> None:
        _summary_file(self.artifacts_dir, self.redact(markdown))


def _summary_file(folder: Path, markdown: str) -> None:
    """Where a CI has no step summary: summary.md among the artifacts it keeps."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "summary.md", "a", encoding="utf-8") as file:
        file.write(markdown.rstrip("\n") + "\n")


class GitLab(Platform):
    """GitLab CI (gitlab/pyci.gitlab-ci.yml): collapsible sections, and the report files the template's
    `artifacts:reports` collect (JUnit, dotenv outputs, Code Quality). GitLab masks masked CI/CD
    variables in the job log itself, and has no command to mask a value found at run time: those (a
    registry password given otherwise, `::add-mask::` lines) are redacted by pyci alone."""

    name = "gitlab"

    _open_groups = 0
    _sections = 0  # how many opened: each section's name is unique in the job
    _section = ""
    wall = staticmethod(time.time)  # section timestamps are Unix seconds

    @property
    def test_results_dir(self) -> Path:
        return gitlab.reports_dir(self.environ)

    @property
    def artifacts_dir(self) -> Path:
        return gitlab.project_dir(self.environ) / gitlab.ARTIFACTS

    def input_defaults(self) -> dict[str, str]:
        return {"junit": str(self.test_results_dir / gitlab.JUNIT), "artifacts-dir": str(self.artifacts_dir)}

    def _open_group(self, title: str) -> None:
        with self._lock:
            self._open_groups += 1
            if self._open_groups > 1:  # sections must close in order: a concurrent stage is a heading
                super()._open_group(title)
                return
            self._sections += 1
            self._section = gitlab.section_name(title, self._sections)
            self._write(gitlab.section_start(self._section, self._paint(title, "1"), self.wall()))

    def _close_group(self, title: str, seconds: float, status: Status) -> None:
        with self._lock:
            self._open_groups -= 1
            if self._open_groups == 0 and self._section:
                self._write(gitlab.section_end(self._section, self.wall()))
                self._section = ""
            super()._close_group(title, seconds, status)  # after the section: visible while folded

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        super().set_outputs(outputs)
        self.test_results_dir.mkdir(parents=True, exist_ok=True)
        (self.test_results_dir / gitlab.DOTENV).write_text(gitlab.dotenv(outputs), encoding="utf-8")

    def write_summary(self, markdown: str) -> None:
        _summary_file(self.artifacts_dir, self.redact(markdown))

    def write_findings(self, result: RunResult, tiltfile: Path, secrets: Iterable[str]) -> None:
        project = gitlab.project_dir(self.environ)
        found = gitlab.code_quality(result.resources, project,
                                    gitlab.relative_to_project(str(tiltfile.resolve()), project), secrets)
        self.test_results_dir.mkdir(parents=True, exist_ok=True)
        # Written on success too: an empty report tells the merge request the causes are gone.
        (self.test_results_dir / gitlab.CODE_QUALITY).write_text(json.dumps(found, indent=2) + "\n")


def detect(environ: Mapping[str, str], out: TextIO | None = None) -> Platform:
    """The platform named by the environment the CI sets; a local terminal otherwise."""
    stream = out if out is not None else sys.stdout
    no_color = bool(environ.get("NO_COLOR"))
    if environ.get("GITHUB_ACTIONS") == "true":
        return GitHubActions(stream, environ)
    if environ.get("CIRCLECI") == "true":
        return CircleCI(stream, environ, color=not no_color)  # CircleCI renders ANSI colours
    if gitlab.detected(environ):
        return GitLab(stream, environ, color=not no_color)  # so does GitLab
    return Local(stream, environ, color=_is_tty(stream) and not no_color)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class LogHandler(logging.Handler):
    """Routes the `pyci` loggers of the stage modules to the platform (groups, masks, annotations)."""

    def __init__(self, platform: Platform) -> None:
        super().__init__()
        self.platform = platform

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                self.platform.error("pyci", message)
            elif record.levelno >= logging.WARNING:
                self.platform.warning(message)
            elif record.levelno >= logging.INFO:
                self.platform.info(message)
            else:
                self.platform.debug(message)
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def route_logging(platform: Platform, debug: bool, logger_name: str = "pyci") -> LogHandler:
    """Install (once) a LogHandler on the `pyci` logger; returns it so a caller can remove it."""
    logger = logging.getLogger(logger_name)
    for handler in [h for h in logger.handlers if isinstance(h, LogHandler)]:
        logger.removeHandler(handler)
    handler = LogHandler(platform)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False  # the platform prints it; the root logger must not print it twice
    return handler
