"""A running tilt, asked what it waits on: the Session and UIResource poller, and the held-resource nudge.

`waiting_line` and `session_errors` are pure (they read `tilt get session Tiltfile -o json` and
`tilt get uiresources -o json`); `Poller` runs those commands in a thread of its own.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pyci.tilt.uiresource import (
    TILTFILE_RESOURCE,
    WAIT_REASONS,
    condition,
    held_on_enable,
    name,
    one_line,
    uiresources,
    waiting_on,
)

GET_TIMEOUT = 10.0  # seconds for one `tilt get ...` call
NUDGES = 3  # at most this many nudges per held resource
NUDGE_ANNOTATION = "pyci.io/nudge"


def target_resource(target: Mapping[str, Any]) -> str:
    resources = target.get("resources") or []
    if resources:
        return str(resources[0])
    return str(target.get("name", "")).rsplit(":", 1)[0]


def _has_image(status: Mapping[str, Any]) -> bool:
    return any((spec.get("type") or "").lower() == "image" for spec in status.get("specs") or [])


def _why_from_uiresource(resource: Mapping[str, Any]) -> str | None:
    """Why a resource is not done yet, from its uiResource status, or None if it looks done."""
    status = resource.get("status") or {}
    update = status.get("updateStatus")
    runtime = status.get("runtimeStatus")
    history = status.get("buildHistory") or []
    if update == "error":
        error = str(history[0].get("error") or "") if history else ""
        return f"build failed: {one_line(error)}" if error else "build failed"
    if update == "in_progress":
        return "image build" if (status.get("specs") and _has_image(status)) else "updating"
    if update == "pending":
        waiting = waiting_on(status, str((resource.get("metadata") or {}).get("name") or ""))
        return f"update pending: {waiting}" if waiting else "update pending"
    if runtime == "error":
        pod = (status.get("k8sResourceInfo") or {}).get("podStatus")
        return f"runtime error: {pod}" if pod else "runtime error"
    if runtime in ("pending", "unknown"):
        pod_status = str((status.get("k8sResourceInfo") or {}).get("podStatus") or "")
        ready = condition(status, "Ready")
        detail = one_line(str(ready.get("message") or "")) or pod_status
        if pod_status in ("Running", ""):
            return f"pod not ready: {detail}" if detail and detail != "Running" else "pod not ready"
        return f"pod not ready: {detail}"
    return None


def _why_from_target(target: Mapping[str, Any]) -> str | None:
    state = target.get("state") or {}
    kind = target.get("type")
    if "waiting" in state:
        reason = str((state.get("waiting") or {}).get("waitReason") or "")
        return WAIT_REASONS.get(reason, reason.replace("-", " ") or "waiting")
    if "active" in state:
        active = state.get("active") or {}
        if kind == "server":
            return None if active.get("ready") else "not ready"
        return "updating"
    if "terminated" in state:
        error = (state.get("terminated") or {}).get("error")
        return f"failed: {one_line(str(error))}" if error else None
    return "pending"


def waiting_line(session: Mapping[str, Any], uires: Mapping[str, Any] | None = None) -> str:
    """One progress line from `tilt get session Tiltfile -o json` (+ `tilt get uiresources -o json`).

    `waiting on: api (image build), web (pod not ready: readiness probe failing)`; "" when nothing
    is outstanding (or the session is empty because tilt has exited).
    """
    targets = ((session.get("status") or {}).get("targets")) or []
    by_name = {name(r): r for r in uiresources(uires or {})}
    reasons: dict[str, str] = {}
    for target in targets:
        why = _why_from_target(target)
        if why is None:
            continue
        resource = target_resource(target)
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
    return "waiting on: " + ", ".join(f"{res} ({why})" for res, why in reasons.items())


def session_errors(session: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """resource name -> (reason, error) from the Session's terminated targets (fresher than the snapshot).

    reason is BuildFailed for an update target (`api:update`), RuntimeError for a runtime one.
    """
    errors: dict[str, tuple[str, str]] = {}
    for target in ((session.get("status") or {}).get("targets")) or []:
        error = ((target.get("state") or {}).get("terminated") or {}).get("error")
        if error:
            reason = "BuildFailed" if str(target.get("name", "")).endswith(":update") else "RuntimeError"
            errors.setdefault(target_resource(target), (reason, str(error)))
    return errors


def nudge_command(tilt_bin: str, resource: str, port: int, count: int) -> list[str]:
    """`tilt patch` of an annotation on a UIResource: a write the engine sees as an update."""
    patch = json.dumps({"metadata": {"annotations": {NUDGE_ANNOTATION: str(count)}}})
    return [tilt_bin, "patch", "uiresource", resource, "--type", "merge", "-p", patch, "--port", str(port)]


def tilt_get_json(tilt_bin: str, args: Sequence[str], port: int, env: Mapping[str, str]) -> dict[str, Any]:
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


class Poller:
    """Asks a running tilt what it waits on, in its own thread so the log keeps flowing."""

    def __init__(self, tilt_bin: str, port: int, env: Mapping[str, str], interval: float) -> None:
        self.tilt_bin, self.port, self.env, self.interval = tilt_bin, port, env, interval
        self.lines: queue.Queue[str] = queue.Queue()
        self.notes: queue.Queue[str] = queue.Queue()  # what pyci did to tilt, for the log
        self.nudged: dict[str, int] = {}
        self.last_session: dict[str, Any] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tilt-session-poller", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=GET_TIMEOUT + 1)

    def drain(self) -> tuple[list[str], list[str]]:
        """(waiting lines, notes) that came in since the last call."""
        lines = [self.lines.get_nowait() for _ in range(self.lines.qsize())]
        notes = [self.notes.get_nowait() for _ in range(self.notes.qsize())]
        return lines, notes

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            session = tilt_get_json(self.tilt_bin, ["session", "Tiltfile"], self.port, self.env)
            if not session or self.stop.is_set():
                continue
            self.last_session = session
            uires = tilt_get_json(self.tilt_bin, ["uiresources"], self.port, self.env)
            self._unhold(uires)
            line = waiting_line(session, uires or None)
            if line:
                self.lines.put(line)

    def _unhold(self, uires: Mapping[str, Any]) -> None:
        """Nudge the resources tilt holds for an enable status it already has (see held_on_enable)."""
        for resource in held_on_enable(uires, time.time()):
            count = self.nudged.get(resource, 0) + 1
            if count > NUDGES:
                continue
            self.nudged[resource] = count
            try:
                cmd = nudge_command(self.tilt_bin, resource, self.port, count)
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=GET_TIMEOUT,
                                      env=dict(self.env), check=False)
                outcome = "nudged it" if done.returncode == 0 else f"nudge failed: {one_line(done.stderr)}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                outcome = f"nudge failed: {exc}"
            self.notes.put(f"tilt: {resource} is held for its enable status though it is enabled "
                           f"(a tilt race: it would wait out the timeout); {outcome}")
