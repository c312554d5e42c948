"""Run `tilt ci` on the user's Tiltfile: stream its log, say what it waits on, read its snapshot.

`run_ci` is the only function with side effects. The rest are pure and work on the JSON tilt
prints (`tilt get session -o json`, `tilt get uiresources -o json`) and writes
(`--output-snapshot-on-exit`), so they are unit-tested with captured output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from pyci.results import Cancelled, InputError, PyciError, ResourceResult
from pyci.settings import Settings

Log = Callable[[str], None]

TILTFILE_RESOURCE = "(Tiltfile)"
SNAPSHOT_NAME = "tilt-snapshot.json"
LOG_NAME = "tilt.log"
GET_TIMEOUT = 10.0  # seconds for one `tilt get ...` call
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
EXTRA_WALL_TIME = 120.0  # beyond tilt's own --timeout before we kill it ourselves
LOG_TAIL_LINES = 30  # log lines kept per resource for failed results
HELD_GRACE = 5.0  # seconds after the Tiltfile loaded: tilt settles enable statuses in milliseconds
NUDGES = 3  # at most this many nudges per held resource
NUDGE_ANNOTATION = "pyci.io/nudge"

_OK_STATUSES = frozenset({"ok", "not_applicable", "none", ""})
_WAIT_REASONS = {
    "waiting-for-dep": "waiting for dependencies",
    "waiting-for-pod": "waiting for pod",
    "waiting-for-cluster": "waiting for cluster",
    "disabled": "disabled",
    "unknown": "waiting",
}
# `     api │ Building Dockerfile` -> ("api", "Building Dockerfile")
_ERROR_LINE = re.compile(r"^ERROR: (?:Build Failed: )?(.+)$")
_DONE_IN = re.compile(r"DONE IN: ([0-9.]+)s")
_READY_LINE = re.compile(r"┊ Ready\s+- (?!\(…\))")
_PREFIXED_LINE = re.compile(r"^\s*(?P<name>\S+)\s*│ ?(?P<text>.*)$")


@dataclass
class TiltOutcome:
    exit_code: int
    resources: list[ResourceResult]
    snapshot: Path | None
    log_path: Path
    waiting_lines: list[str] = field(default_factory=list)
    error: str | None = None  # the `Error: ...` line tilt printed last

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# --------------------------------------------------------------------------------------------- pure


def tilt_command(
    tilt_bin: str, tiltfile: Path, timeout: float, port: int, snapshot: Path, tilt_args: Sequence[str]
) -> list[str]:
    """The `tilt ci` argument list."""
    cmd = [
        tilt_bin,
        "ci",
        "--file",
        str(tiltfile),
        "--timeout",
        f"{max(1, round(timeout))}s",
        "--port",
        str(port),
        "--output-snapshot-on-exit",
        str(snapshot),
    ]
    if tilt_args:
        cmd += ["--", *tilt_args]
    return cmd


def tilt_env(base: Mapping[str, str], kubeconfig: Path) -> dict[str, str]:
    env = dict(base)
    env["KUBECONFIG"] = str(kubeconfig)
    env["TILT_DISABLE_ANALYTICS"] = "1"  # a CI step should not phone home
    return env


def parse_time(value: Any) -> float | None:
    """RFC 3339 (with or without fractions) -> POSIX seconds; None for empty or zero times."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python 3.11 accepts at most 6 fraction digits; Go prints up to 9.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _uiresources(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    view = snapshot.get("view", snapshot)
    items = view.get("uiResources") or view.get("items") or []
    return [r for r in items if isinstance(r, dict)]


def _name(resource: Mapping[str, Any]) -> str:
    return str((resource.get("metadata") or {}).get("name", ""))


def _session_start(snapshot: Mapping[str, Any]) -> float | None:
    view = snapshot.get("view", snapshot)
    session = view.get("uiSession") or {}
    return parse_time((session.get("status") or {}).get("tiltStartTime"))


def _build_seconds(history: Iterable[Mapping[str, Any]]) -> float | None:
    total = None
    for build in history:
        start, finish = parse_time(build.get("startTime")), parse_time(build.get("finishTime"))
        if start is not None and finish is not None and finish >= start:
            total = (total or 0.0) + (finish - start)
    return None if total is None else round(total, 3)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _is_disabled(status: Mapping[str, Any]) -> bool:
    return (status.get("disableStatus") or {}).get("state") == "Disabled"


def resource_result(resource: Mapping[str, Any], started: float | None) -> ResourceResult:
    """One tilt uiResource -> a ResourceResult (source "tilt")."""
    name = _name(resource)
    status = resource.get("status") or {}
    history = status.get("buildHistory") or []
    last_error = str(history[0].get("error") or "") if history else ""  # newest first
    update = str(status.get("updateStatus") or "")
    runtime = str(status.get("runtimeStatus") or "")
    k8s = status.get("k8sResourceInfo") or {}
    pod_status = str(k8s.get("podStatus") or "")
    ready = _condition(status, "Ready")

    ready_at = parse_time(ready.get("lastTransitionTime")) if ready.get("status") == "True" else None
    ready_seconds = round(ready_at - started, 3) if ready_at is not None and started is not None else None

    reason: str | None = None
    message: str | None = None
    if update == "error" or last_error:
        reason, message = "BuildFailed", last_error or "update failed"
    elif runtime == "error":
        reason = pod_status if pod_status and pod_status not in ("Running", "Error") else "RuntimeError"
        message = str(ready.get("message") or "") or f"runtime error (pod status {pod_status or 'unknown'})"
    elif update in ("pending", "in_progress"):
        reason, message = "NotBuilt", f"update {update.replace('_', ' ')}"
        waiting = _waiting_on(status)
        if waiting:
            message += f": {waiting}"
    elif runtime in ("pending", "unknown"):
        reason = "NotReady"
        message = str(ready.get("message") or "") or f"runtime {runtime}"
        if pod_status:
            message += f" (pod status {pod_status})"
    ok = reason is None and update in _OK_STATUSES and runtime in _OK_STATUSES
    return ResourceResult(
        name=name,
        source="tilt",
        ok=ok,
        build_seconds=_build_seconds(history),
        ready_seconds=ready_seconds if ok else None,
        reason=reason,
        message=message,
    )


@dataclass
class LogFacts:
    """What the snapshot's log says about one resource (the log is current; uiResources may lag)."""

    build_seconds: float | None = None
    ready_at: float | None = None  # POSIX time of the pod tracker's `Ready - <time>` line
    error: str | None = None  # the last `ERROR: Build Failed: ...` line of the resource


def log_error(lines: Iterable[str]) -> str | None:
    """The last `ERROR: ...` line of one resource's log, without `ERROR: ` and `Build Failed: `."""
    found = None
    for line in lines:
        for part in line.splitlines():
            match = _ERROR_LINE.match(part.strip())
            if match:
                found = match.group(1)
    return found


def log_facts(snapshot: Mapping[str, Any]) -> dict[str, LogFacts]:
    """resource name -> LogFacts, from the snapshot's `logList` (spans name the resource)."""
    view = snapshot.get("view", snapshot)
    log_list = view.get("logList") or {}
    spans = {k: str((v or {}).get("manifestName") or "") for k, v in (log_list.get("spans") or {}).items()}
    facts: dict[str, LogFacts] = {}
    for segment in log_list.get("segments") or []:
        name = spans.get(str(segment.get("spanId", "")), "")
        text = str(segment.get("text") or "")
        if not name:
            continue
        done = _DONE_IN.search(text)
        if done:
            fact = facts.setdefault(name, LogFacts())
            fact.build_seconds = round((fact.build_seconds or 0.0) + float(done.group(1)), 3)
        error = log_error([text])
        if error:
            facts.setdefault(name, LogFacts()).error = error
        if _READY_LINE.search(text):
            facts.setdefault(name, LogFacts()).ready_at = parse_time(segment.get("time"))
    return facts


def resources_from_snapshot(
    snapshot: Mapping[str, Any], exit_code: int | None = None
) -> list[ResourceResult]:
    """Every tilt resource in a `--output-snapshot-on-exit` snapshot.

    `(Tiltfile)` is left out unless it failed (then it is the cause worth reporting); disabled
    resources are left out. The snapshot's uiResources can lag the end of the run by a moment
    (seen: a resource still "pending" after `tilt ci` printed SUCCESS), so build and ready times
    missing there come from the snapshot's log, and `exit_code` 0 (tilt ci said every resource
    is healthy) overrules a stale pending status.
    """
    started = _session_start(snapshot) or parse_time(snapshot.get("view", snapshot).get("tiltStartTime"))
    facts = log_facts(snapshot)
    held = set(held_on_enable(snapshot, float("inf")))
    results = []
    for resource in _uiresources(snapshot):
        status = resource.get("status") or {}
        if _is_disabled(status):
            continue
        result = resource_result(resource, started)
        on = {str(ref.get("name")) for ref in (status.get("waiting") or {}).get("on") or []}
        if result.reason == "NotBuilt" and on & held:
            result.message = f"{result.message}, which tilt's engine missed (a tilt race; a re-run passes it)"
        fact = facts.get(result.name, LogFacts())
        if result.build_seconds is None and fact.build_seconds is not None:
            result.build_seconds = fact.build_seconds
        if fact.error and result.reason in ("NotBuilt", "NotReady", None):  # the log is ahead
            result = dataclasses.replace(result, ok=False, reason="BuildFailed", message=fact.error)
        if exit_code == 0 and not result.ok and result.reason in ("NotBuilt", "NotReady"):
            result = dataclasses.replace(result, ok=True, reason=None, message=None)
        if result.ok and result.ready_seconds is None and fact.ready_at is not None and started is not None:
            result.ready_seconds = round(fact.ready_at - started, 3)
        if result.name == TILTFILE_RESOURCE and result.ok:
            continue
        results.append(result)
    return sorted(results, key=lambda r: (r.name != TILTFILE_RESOURCE, r.name))


def _waiting_on(status: Mapping[str, Any]) -> str:
    waiting = status.get("waiting") or {}
    names = [str(ref.get("name")) for ref in waiting.get("on") or [] if ref.get("name")]
    if waiting.get("reason") == "tiltfile-reload" and names:
        return "held for the enable status of " + ", ".join(names)
    if names:
        return "waiting on " + ", ".join(names)
    reason = str(waiting.get("reason") or "")
    return _WAIT_REASONS.get(reason, reason.replace("-", " "))


def held_on_enable(uiresources: Mapping[str, Any], now: float) -> list[str]:
    """UIResources tilt holds for an enable status that is already set, `HELD_GRACE` s after the
    Tiltfile loaded: such a resource never starts, and tilt ci waits out its whole timeout.

    Why (tilt v0.37.6, internal/store/uiresources/reducers.go): the engine copies a UIResource's
    enable state into its manifest only on an update, never on the first upsert it sees. When the
    UIResource's creation and its first status write reach tilt's controller as one event (a race,
    seen once in ~700 real-kind runs), the manifest's state stays pending and its build is held
    with reason `tiltfile-reload`. Any later write to the UIResource lets the engine see it.
    """
    items = {_name(r): r for r in _uiresources(uiresources)}
    tiltfile = (items.get(TILTFILE_RESOURCE) or {}).get("status") or {}
    history = tiltfile.get("buildHistory") or []
    loaded = parse_time(history[0].get("finishTime")) if history else None
    if tiltfile.get("updateStatus") != "ok" or loaded is None or now - loaded < HELD_GRACE:
        return []  # still loading, reloading or failed: a hold is expected then
    held: list[str] = []
    for resource in items.values():
        status = resource.get("status") or {}
        waiting = status.get("waiting") or {}
        if status.get("updateStatus") != "pending" or waiting.get("reason") != "tiltfile-reload":
            continue
        for ref in waiting.get("on") or []:
            name = str(ref.get("name") or "")
            state = (((items.get(name) or {}).get("status") or {}).get("disableStatus") or {}).get("state")
            if ref.get("kind") == "UIResource" and state == "Enabled" and name not in held:
                held.append(name)
    return held


def nudge_command(tilt_bin: str, name: str, port: int, count: int) -> list[str]:
    """`tilt patch` of an annotation on a UIResource: a write the engine sees as an update."""
    patch = json.dumps({"metadata": {"annotations": {NUDGE_ANNOTATION: str(count)}}})
    return [tilt_bin, "patch", "uiresource", name, "--type", "merge", "-p", patch, "--port", str(port)]


def _target_resource(target: Mapping[str, Any]) -> str:
    resources = target.get("resources") or []
    if resources:
        return str(resources[0])
    return str(target.get("name", "")).rsplit(":", 1)[0]


def _why_from_uiresource(resource: Mapping[str, Any]) -> str | None:
    """Why a resource is not done yet, from its uiResource status, or None if it looks done."""
    status = resource.get("status") or {}
    update = status.get("updateStatus")
    runtime = status.get("runtimeStatus")
    history = status.get("buildHistory") or []
    if update == "error":
        error = str(history[0].get("error") or "") if history else ""
        return f"build failed: {_one_line(error)}" if error else "build failed"
    if update == "in_progress":
        return "image build" if (status.get("specs") and _has_image(status)) else "updating"
    if update == "pending":
        waiting = _waiting_on(status)
        return f"update pending: {waiting}" if waiting else "update pending"
    if runtime == "error":
        pod = (status.get("k8sResourceInfo") or {}).get("podStatus")
        return f"runtime error: {pod}" if pod else "runtime error"
    if runtime in ("pending", "unknown"):
        pod_status = str((status.get("k8sResourceInfo") or {}).get("podStatus") or "")
        ready = _condition(status, "Ready")
        detail = _one_line(str(ready.get("message") or "")) or pod_status
        if pod_status in ("Running", ""):
            return f"pod not ready: {detail}" if detail and detail != "Running" else "pod not ready"
        return f"pod not ready: {detail}"
    return None


def _has_image(status: Mapping[str, Any]) -> bool:
    return any((spec.get("type") or "").lower() == "image" for spec in status.get("specs") or [])


def _one_line(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _why_from_target(target: Mapping[str, Any]) -> str | None:
    state = target.get("state") or {}
    kind = target.get("type")
    if "waiting" in state:
        reason = str((state.get("waiting") or {}).get("waitReason") or "")
        return _WAIT_REASONS.get(reason, reason.replace("-", " ") or "waiting")
    if "active" in state:
        active = state.get("active") or {}
        if kind == "server":
            return None if active.get("ready") else "not ready"
        return "updating"
    if "terminated" in state:
        error = (state.get("terminated") or {}).get("error")
        return f"failed: {_one_line(str(error))}" if error else None
    return "pending"


def waiting_line(session: Mapping[str, Any], uiresources: Mapping[str, Any] | None = None) -> str:
    """One progress line from `tilt get session Tiltfile -o json` (+ `tilt get uiresources -o json`).

    `waiting on: api (image build), web (pod not ready: readiness probe failing)`; "" when nothing
    is outstanding (or the session is empty because tilt has exited).
    """
    targets = ((session.get("status") or {}).get("targets")) or []
    by_name = {_name(r): r for r in _uiresources(uiresources or {})}
    reasons: dict[str, str] = {}
    for target in targets:
        why = _why_from_target(target)
        if why is None:
            continue
        resource = _target_resource(target)
        if resource in ("tiltfile", TILTFILE_RESOURCE) and why == "updating":
            resource = TILTFILE_RESOURCE
        better = _why_from_uiresource(by_name[resource]) if resource in by_name else None
        if why.startswith("failed"):
            better = why
        elif better is None and why == "updating":
            better = "updating"
        reasons.setdefault(resource, better or why)
    if not reasons:
        return ""
    return "waiting on: " + ", ".join(f"{name} ({why})" for name, why in reasons.items())


def session_errors(session: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """resource name -> (reason, error) from the Session's terminated targets (fresher than the snapshot).

    reason is BuildFailed for an update target (`api:update`), RuntimeError for a runtime one.
    """
    errors: dict[str, tuple[str, str]] = {}
    for target in ((session.get("status") or {}).get("targets")) or []:
        error = ((target.get("state") or {}).get("terminated") or {}).get("error")
        if error:
            reason = "BuildFailed" if str(target.get("name", "")).endswith(":update") else "RuntimeError"
            errors.setdefault(_target_resource(target), (reason, str(error)))
    return errors


def split_log_line(line: str) -> tuple[str | None, str]:
    """`    api │ text` -> ("api", "text"); an unprefixed line -> (None, line)."""
    match = _PREFIXED_LINE.match(line)
    if not match:
        return None, line
    return match.group("name"), match.group("text")


def error_line(lines: Iterable[str]) -> str | None:
    """The last `Error: ...` line tilt printed (without the prefix)."""
    found = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("Error: "):
            found = stripped[len("Error: ") :]
    return found


def merge_errors(
    resources: list[ResourceResult],
    session_errs: Mapping[str, tuple[str, str]],
    tail_by_resource: Mapping[str, Sequence[str]],
    error: str | None,
) -> list[ResourceResult]:
    """Fill in what the snapshot may lag behind on: Session errors, log tails and tilt's Error line."""
    known = {r.name for r in resources}
    out = []
    for res in resources:
        reason, err = session_errs.get(res.name, ("", ""))
        if not err and not res.ok and res.reason in ("NotBuilt", "NotReady"):
            err = log_error(tail_by_resource.get(res.name, ())) or ""
            reason = "BuildFailed"
        if err and (res.ok or not res.message or res.reason in ("NotBuilt", "NotReady")):
            res = dataclasses.replace(res, ok=False, ready_seconds=None, reason=reason, message=err)
        if not res.ok and error and not res.message:
            res.message = error
        if not res.ok and not res.logs and tail_by_resource.get(res.name):
            res.logs = "\n".join(tail_by_resource[res.name])
        out.append(res)
    for name, (reason, err) in session_errs.items():
        if name not in known:
            out.append(ResourceResult(name=name, source="tilt", ok=False, reason=reason, message=err))
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------ side effects


def _tilt_get_json(tilt_bin: str, args: Sequence[str], port: int, env: Mapping[str, str]) -> dict[str, Any]:
    """`tilt get ARGS -o json --port N`; {} when tilt is gone, slow or prints nothing."""
    try:
        proc = subprocess.run(
            [tilt_bin, "get", *args, "-o", "json", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=GET_TIMEOUT,
            env=dict(env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0 or not proc.stdout.strip():
        return {}
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _redact_file(path: Path, redact: Callable[[str], str]) -> None:
    with contextlib.suppress(OSError):
        text = path.read_text(encoding="utf-8", errors="replace")
        if redact(text) != text:
            path.write_text(redact(text), encoding="utf-8")


def _pump(stream: TextIO, lines: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line.rstrip("\n"))
    finally:
        lines.put(None)


def _terminate(proc: subprocess.Popen[str], grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # children that outlived the leader (same group) go too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class _Poller:
    """Asks a running tilt what it waits on, in its own thread so the log keeps flowing."""

    def __init__(self, tilt_bin: str, port: int, env: Mapping[str, str], interval: float) -> None:
        self.tilt_bin, self.port, self.env, self.interval = tilt_bin, port, env, interval
        self.lines: queue.Queue[str] = queue.Queue()
        self.notes: queue.Queue[str] = queue.Queue()  # what pyci did to tilt, for the log
        self.nudged: dict[str, int] = {}
        self.last_session: dict[str, Any] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tilt-session-poller", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            session = _tilt_get_json(self.tilt_bin, ["session", "Tiltfile"], self.port, self.env)
            if not session or self.stop.is_set():
                continue
            self.last_session = session
            uires = _tilt_get_json(self.tilt_bin, ["uiresources"], self.port, self.env)
            self._unhold(uires)
            line = waiting_line(session, uires or None)
            if line:
                self.lines.put(line)

    def _unhold(self, uires: Mapping[str, Any]) -> None:
        """Nudge the resources tilt holds for an enable status it already has (see held_on_enable)."""
        for name in held_on_enable(uires, time.time()):
            count = self.nudged.get(name, 0) + 1
            if count > NUDGES:
                continue
            self.nudged[name] = count
            try:
                cmd = nudge_command(self.tilt_bin, name, self.port, count)
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=GET_TIMEOUT,
                                      env=dict(self.env), check=False)
                outcome = "nudged it" if done.returncode == 0 else f"nudge failed: {_one_line(done.stderr)}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                outcome = f"nudge failed: {exc}"
            self.notes.put(f"tilt: {name} is held for its enable status though it is enabled "
                           f"(a tilt race: it would wait out the timeout); {outcome}")


def run_ci(
    settings: Settings,
    kubeconfig: Path,
    artifacts_dir: Path,
    log: Log,
    cancel: threading.Event | None = None,
    tilt_bin: str = "tilt",
    stop: threading.Event | None = None,
    redact: Callable[[str], str] = str,
) -> TiltOutcome:
    """Run `tilt ci` to completion; stream its log; report what it waits on every progress_interval.

    `redact` masks secrets in the log file and the snapshot it leaves in `artifacts_dir`; it is
    applied after `log` saw the line, which may have declared a new one (`::add-mask::`).
    """
    tiltfile = settings.tiltfile_path.resolve()
    if not tiltfile.is_file():
        raise InputError(f"Tiltfile not found: {tiltfile}")
    # tilt runs in the Tiltfile's folder: a relative path would put the snapshot there, not here.
    artifacts_dir = artifacts_dir.resolve()
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    snapshot_path = artifacts_dir / SNAPSHOT_NAME
    log_path = artifacts_dir / LOG_NAME
    snapshot_path.unlink(missing_ok=True)
    port = free_port()
    cmd = tilt_command(tilt_bin, tiltfile, settings.timeout, port, snapshot_path, settings.tilt_args)
    env = tilt_env(os.environ, kubeconfig)
    log(f"tilt: {' '.join(cmd)}")
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=tiltfile.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
    except OSError as exc:
        raise PyciError(f"cannot start tilt ({tilt_bin}): {exc}") from exc

    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), name="tilt-log", daemon=True)
    reader.start()
    poller = _Poller(tilt_bin, port, env, max(0.2, settings.progress_interval))
    poller.thread.start()
    deadline = time.monotonic() + settings.timeout + EXTRA_WALL_TIME
    tails: dict[str, list[str]] = {}
    all_error_lines: list[str] = []
    waiting_lines: list[str] = []
    killed_for_time = False
    stopped = False
    try:
        with log_path.open("w", encoding="utf-8") as log_file:
            done = False
            while not done:
                if stop is not None and stop.is_set() and not stopped:
                    # A workload failed for good: waiting out tilt's timeout would tell nothing new.
                    log("tilt: stopping tilt ci early: a workload failed (see readiness)")
                    stopped = True
                    _terminate(proc)
                if cancel is not None and cancel.is_set():
                    log("tilt: cancelled, stopping tilt ci")
                    _terminate(proc)
                    raise Cancelled("cancelled while tilt ci was running")
                if time.monotonic() > deadline and not killed_for_time:
                    log(f"tilt: still running {EXTRA_WALL_TIME:.0f}s after its own timeout, killing it")
                    killed_for_time = True
                    _terminate(proc)
                while not poller.lines.empty():
                    line = poller.lines.get_nowait()
                    waiting_lines.append(line)
                    log(line)
                while not poller.notes.empty():
                    log(poller.notes.get_nowait())
                try:
                    item = lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    done = True
                    continue
                log(item)
                log_file.write(redact(item) + "\n")
                log_file.flush()
                if item.strip().startswith("Error: "):
                    all_error_lines.append(item)
                name, text = split_log_line(item)
                if name:
                    tail = tails.setdefault(name, [])
                    tail.append(text)
                    del tail[:-LOG_TAIL_LINES]
        exit_code = proc.wait(timeout=KILL_GRACE * 3)
    except BaseException:
        _terminate(proc)
        _redact_file(snapshot_path, redact)  # tilt writes its snapshot (its whole log) as it stops
        raise
    finally:
        poller.stop.set()
        poller.thread.join(timeout=GET_TIMEOUT + 1)
        with contextlib.suppress(Exception):
            proc.stdout.close()
    error = error_line(all_error_lines)
    if stopped:
        error = "stopped early: a workload failed for good"  # tilt's own last word is "context canceled"
    snapshot: Path | None = snapshot_path if snapshot_path.is_file() else None
    resources: list[ResourceResult] = []
    if snapshot is not None:
        try:
            _redact_file(snapshot, redact)  # tilt wrote its whole log into it
            data = json.loads(snapshot.read_text(encoding="utf-8"))
            resources = resources_from_snapshot(data, exit_code)
        except (OSError, ValueError) as exc:
            log(f"tilt: cannot read snapshot {snapshot}: {exc}")
    resources = merge_errors(resources, session_errors(poller.last_session), tails, error)
    if exit_code != 0 and resources and all(r.ok for r in resources) and error:
        log(f"tilt: exited {exit_code}: {error}")
    return TiltOutcome(
        exit_code=exit_code,
        resources=resources,
        snapshot=snapshot,
        log_path=log_path,
        waiting_lines=waiting_lines,
        error=error,
    )
