"""What failed under `tilt ci`, and why, in words a reader acts on. Pure.

A failed `local_resource` or `custom_build` is `CommandFailed`, an image build `BuildFailed`; the
message names the command and its exit code, the result's logs hold the command's last output lines.
A command the image lacks (exit 127, `sh: go: not found`) names the missing tool and, when pyci runs
inside its image, points to the host action. The Tiltfile's own resource is one `Tiltfile` result
with the file:line:col tilt's traceback names.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyci import tiltfile
from pyci.results import ResourceResult
from pyci.tilt.logs import LOG_TAIL_LINES, by_resource, log_error, resource_logs
from pyci.tilt.session import session_errors
from pyci.tilt.snapshot import PENDING, TILTFILE_RESULT, resources_from_snapshot, tiltfile_result
from pyci.tilt.uiresource import TILTFILE_RESOURCE

IN_IMAGE_ENV = "PYCI_IN_IMAGE"  # set by the Dockerfile: pyci runs inside its own image
HOST_ACTION = "pyci-action/pyci-action/host@v1"
NOT_FOUND_EXIT = 127  # what a shell exits with when it cannot find the command

# local_resource (tilt's `Command "go build" failed: exit status 127`) and custom_build.
_COMMAND = re.compile(r'(?:Command|Custom build(?: command)?) (?P<cmd>"(?:[^"\\]|\\.)*") failed: '
                      r"(?:exit status (?P<code>\d+)|(?P<other>.+))")
# An image build: BuildKit's `process "/bin/sh -c make" did not complete successfully: exit code: 2`,
# older BuildKit's `executor failed running [/bin/sh -c make]: exit code: 2` (tilt 0.37 on Docker 20.10),
# the legacy builder's `The command '/bin/sh -c make' returned a non-zero code: 2`.
_IMAGE_STEP = re.compile(r"""(?:process (?P<q>"(?:[^"\\]|\\.)*") did not complete successfully: exit code: """
                         r"""|executor failed running \[(?P<run>.*)\]: exit code: """
                         r"""|The command '(?P<cmd>[^']*)' returned a non-zero code: )(?P<code>\d+)""")
# `sh: go: not found` (busybox), `/bin/sh: 1: go: not found` (dash), `bash: go: command not found`,
# `bash: line 1: go: command not found`; Go's own `exec: "go": executable file not found in $PATH`.
_NOT_FOUND = (
    re.compile(r"^(?:\S+: )?(?:line )?(?:\d+: )?(?P<tool>[^\s:]+): (?:command )?not found\s*$"),
    re.compile(r'exec: "(?P<tool>[^"]+)": executable file not found'),
)


@dataclass(frozen=True)
class CommandFailure:
    """A command tilt ran that failed: its text and exit code (None when it did not exit: a signal)."""

    command: str
    exit_code: int | None
    image: bool  # an image build's step, not a local_resource or custom_build command
    detail: str = ""  # how it ended when that was not an exit status (`signal: killed`)


def in_image(environ: Mapping[str, str]) -> bool:
    return environ.get(IN_IMAGE_ENV) == "1"


def _unquote(quoted: str) -> str:
    """A Go %q string -> its text (Go's escapes are JSON's for what a command line holds)."""
    try:
        text = json.loads(quoted)
    except ValueError:
        return quoted.strip('"')
    return text if isinstance(text, str) else quoted


def parse_failure(error: str) -> CommandFailure | None:
    """The failed command an error of tilt's names, or None when it names none."""
    match = _COMMAND.search(error)
    if match:
        code = match["code"]
        return CommandFailure(_unquote(match["cmd"]), int(code) if code else None, image=False,
                              detail=(match["other"] or "").strip())
    match = _IMAGE_STEP.search(error)
    if match:
        command = _unquote(match["q"]) if match["q"] else (match["run"] or match["cmd"])
        return CommandFailure(command, int(match["code"]), image=True)
    return None


def missing_tool(lines: Iterable[str], failure: CommandFailure) -> str | None:
    """The program a failed command could not find: from the shell's `not found`, or, on exit 127
    with no such line, the command's first word."""
    found = None
    for line in [*lines, failure.detail]:  # tilt's own `failed to start: exec: "x": ... not found`
        for pattern in _NOT_FOUND:
            match = pattern.search(line.split("→ ", 1)[-1].strip())  # an image step's output: `→ ...`
            if match:
                found = match["tool"]
    if found or failure.exit_code != NOT_FOUND_EXIT:
        return found
    words = failure.command.split()
    if len(words) >= 3 and words[0].rsplit("/", 1)[-1] in ("sh", "bash") and words[1] == "-c":
        words = words[2:]
    return words[0] if words else None


def describe(failure: CommandFailure, lines: Sequence[str], inside_image: bool) -> str:
    """`go build ./` exited 127: go: not found (…host action…)."""
    what = "image build step" if failure.image else "command"
    tool = missing_tool(lines, failure)
    if failure.exit_code is not None:
        ended = f"exited {failure.exit_code}"
    elif tool and failure.detail.startswith("failed to start"):
        ended = "could not start"  # the detail only says what the tool's name says
    else:
        ended = failure.detail or "failed"
    message = f"{what} `{failure.command}` {ended}"
    if tool is None:
        last = _last_words(lines, failure.image)
        return f"{message}: {last}" if last else message
    if failure.image:  # a step of the image being built: its base image lacks the tool, not pyci's
        return f"{message}: `{tool}` not found in the image being built"
    if not inside_image:
        return f"{message}: `{tool}` not found on this machine"
    return (f"{message}: `{tool}` is not in pyci's image. A Tiltfile that runs the runner's own toolchains "
            f"needs the host action (`uses: {HOST_ACTION}`, README \"host mode\"), or an image built FROM "
            f"pyci's with `{tool}` added")


def _last_words(lines: Sequence[str], image: bool) -> str:
    """The failed command's own last line: for an image build, its step's output (`→ compiling...`)."""
    if image:
        output = [line.split("→ ", 1)[1].strip() for line in lines if "→ " in line]
        return next((line for line in reversed(output) if line), "")
    own = [line.strip() for line in lines if line.strip() and not _is_tilt_chrome(line)]
    return own[-1] if own else ""


def _is_tilt_chrome(line: str) -> bool:
    """tilt's own lines in a resource's log (`ERROR: ...`, `Running cmd: ...`), not the command's."""
    text = line.strip()
    return text.startswith(("ERROR: ", "ERROR IN: ", "Running cmd: ", "STEP ", "Build Failed:", "Error: "))


def _command_output(lines: Sequence[str]) -> list[str]:
    """A resource's log from its last `Running cmd:` on (the output of the command that failed),
    without tilt's closing `Build Failed: ...` (the message says it)."""
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("Running cmd: ")]
    output = list(lines[starts[-1]:]) if starts else list(lines)
    return [line for line in output if not line.strip().startswith(("ERROR: Build Failed:", "Build Failed:"))]


def resource_tails(live: Mapping[str, Sequence[str]], from_snapshot: Mapping[str, Sequence[str]],
                   names: Iterable[str]) -> dict[str, list[str]]:
    """Each resource's last log lines: the snapshot's (full names) or else the live log's (cut names)."""
    out = by_resource(live, names)
    for resource, lines in from_snapshot.items():
        if lines:
            out[resource] = list(lines)[-LOG_TAIL_LINES:]
    return out


def merge_errors(
    resources: list[ResourceResult],
    session_errs: Mapping[str, tuple[str, str]],
    tail_by_resource: Mapping[str, Sequence[str]],
    error: str | None,
) -> list[ResourceResult]:
    """Fill in what the snapshot may lag behind on: Session errors, log tails and tilt's Error line."""
    # The Session names the Tiltfile's target by tilt's resource name; the results by ours.
    session_errs = {TILTFILE_RESULT if k == TILTFILE_RESOURCE else k: v for k, v in session_errs.items()}
    known = {r.name for r in resources}
    out = []
    for res in resources:
        reason, err = session_errs.get(res.name, ("", ""))
        if not err and not res.ok and res.reason in PENDING:
            err = log_error(tail_by_resource.get(res.name, ())) or ""
            reason = "BuildFailed"
        if err and (res.ok or not res.message or res.reason in PENDING):
            res = dataclasses.replace(res, ok=False, ready_seconds=None, reason=reason, message=err,
                                      blocked_by=[])
        if not res.ok and error and not res.message:
            res.message = error
        if not res.ok and not res.logs and tail_by_resource.get(res.name):
            res.logs = "\n".join(tail_by_resource[res.name])
        out.append(res)
    for res_name, (reason, err) in session_errs.items():
        if res_name not in known:
            out.append(ResourceResult(name=res_name, source="tilt", ok=False, reason=reason, message=err))
    return out


def results(snapshot: Mapping[str, Any] | None, exit_code: int, live_tails: Mapping[str, Sequence[str]],
            session: Mapping[str, Any], error: str | None, in_image: bool, roots: Sequence[Path] = (),
            deps: Mapping[str, Sequence[str]] | None = None) -> list[ResourceResult]:
    """Every tilt resource's result: the snapshot's, with what the Session and the live log knew
    later (the snapshot can lag the end of the run), each failure named with its evidence, and
    what each unbuilt one waits on (tilt's `waiting.on`, else its `resource_deps` in `deps`)."""
    resources = resources_from_snapshot(snapshot, exit_code) if snapshot is not None else []
    errors = session_errors(session)
    names = [r.name for r in resources] + list(errors)
    logs = resource_tails(live_tails, resource_logs(snapshot or {}), names)
    return blocked(explain(merge_errors(resources, errors, logs, error), logs, in_image, roots), deps or {})


def blocked(resources: Sequence[ResourceResult], deps: Mapping[str, Sequence[str]]) -> list[ResourceResult]:
    """An unbuilt resource is blocked by what it waits on that is not healthy.

    tilt's snapshot can lag: seen, a deployment still "held for the enable status of" the compile
    it depends on after that compile had failed. Its `resource_deps` say what it waits on then.
    """
    unhealthy = {r.name for r in resources if not r.ok}
    known = {r.name for r in resources}
    out = []
    for r in resources:
        if r.ok or r.reason != "NotBuilt":
            out.append(r)
            continue
        waits = [*r.blocked_by, *(d for d in deps.get(r.name, ()) if d not in r.blocked_by)]
        on = [d for d in waits if d in unhealthy or d not in known]
        message = r.message
        stale = "enable status" in (message or "") and "tilt race" not in (message or "")
        if on and (stale or "waiting on" not in (message or "")):
            message = f"update pending: waiting on {', '.join(on)}"
        out.append(dataclasses.replace(r, blocked_by=on, message=message))
    return out


def explain(resources: Sequence[ResourceResult], logs: Mapping[str, Sequence[str]], in_image: bool,
            roots: Sequence[Path] = ()) -> list[ResourceResult]:
    """Failed commands and builds named with their command, exit code and output; the Tiltfile's own
    failure as one `Tiltfile` result at the line tilt names, relative to the first of `roots` (the
    workspace) that holds it, as an annotation on the diff wants it."""
    out = []
    for r in resources:
        if r.name in (TILTFILE_RESOURCE, TILTFILE_RESULT) and not r.ok:
            result = r if r.reason == "TiltfileError" else tiltfile_result(r)
            out.append(_located(_from_live_log(result, logs.get(TILTFILE_RESOURCE, ())), roots))
        else:
            out.append(_command(r, logs.get(r.name, ()), in_image))
    return out


def _from_live_log(result: ResourceResult, lines: Sequence[str]) -> ResourceResult:
    """`tilt ci` can stop on a Tiltfile that fails to load before its snapshot says so (seen in CI:
    `(Tiltfile)` still "update in progress", no log): the live log printed the traceback."""
    if result.location is not None or not lines:
        return result
    parsed = tiltfile.parse_error("\n".join(lines))
    if parsed is None or parsed.location is None:
        return result
    return dataclasses.replace(result, message=parsed.message, location=parsed.location,
                               logs=result.logs or "\n".join(lines))


def _located(result: ResourceResult, roots: Sequence[Path]) -> ResourceResult:
    if not isinstance(result.location, tiltfile.SourceLocation):
        return result
    where = tiltfile.relative_location(result.location, roots)
    return dataclasses.replace(result, location=where, message=f"{where}: {result.message}")


def _command(result: ResourceResult, lines: Sequence[str], inside_image: bool) -> ResourceResult:
    failed = not result.ok and result.reason == "BuildFailed"
    failure = parse_failure(result.message or "") if failed else None
    if failure is None:
        return result
    output = _command_output(lines)
    return dataclasses.replace(
        result,
        reason="BuildFailed" if failure.image else "CommandFailed",
        message=describe(failure, output, inside_image),
        logs="\n".join(output) or result.logs,
    )


