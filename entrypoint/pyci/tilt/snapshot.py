"""tilt's `--output-snapshot-on-exit` snapshot -> one ResourceResult per tilt resource. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from pyci import tiltfile
from pyci.results import ResourceResult
from pyci.tilt.logs import LogFacts, log_facts, resource_logs
from pyci.tilt.uiresource import (
    TILTFILE_RESOURCE,
    blocked_on,
    condition,
    held_on_enable,
    is_disabled,
    name,
    parse_time,
    uiresources,
    view,
    waiting_on,
)

_OK_STATUSES = frozenset({"ok", "not_applicable", "none", ""})
PENDING = ("NotBuilt", "NotReady")  # reasons that only say "not there yet"
TILTFILE_RESULT = "Tiltfile"  # the name the Tiltfile's own result goes by in every report


def _session_start(snapshot: Mapping[str, Any]) -> float | None:
    session = view(snapshot).get("uiSession") or {}
    return parse_time((session.get("status") or {}).get("tiltStartTime"))


def _build_seconds(history: Iterable[Mapping[str, Any]]) -> float | None:
    total = None
    for build in history:
        start, finish = parse_time(build.get("startTime")), parse_time(build.get("finishTime"))
        if start is not None and finish is not None and finish >= start:
            total = (total or 0.0) + (finish - start)
    return None if total is None else round(total, 3)


def resource_result(resource: Mapping[str, Any], started: float | None) -> ResourceResult:
    """One tilt uiResource -> a ResourceResult (source "tilt")."""
    res_name = name(resource)
    status = resource.get("status") or {}
    history = status.get("buildHistory") or []
    last_error = str(history[0].get("error") or "") if history else ""  # newest first
    update = str(status.get("updateStatus") or "")
    runtime = str(status.get("runtimeStatus") or "")
    k8s = status.get("k8sResourceInfo") or {}
    pod_status = str(k8s.get("podStatus") or "")
    ready = condition(status, "Ready")

    ready_at = parse_time(ready.get("lastTransitionTime")) if ready.get("status") == "True" else None
    ready_seconds = round(ready_at - started, 3) if ready_at is not None and started is not None else None

    reason: str | None = None
    message: str | None = None
    blocked_by: list[str] = []
    if update == "error" or last_error:
        reason, message = "BuildFailed", last_error or "update failed"
    elif runtime == "error":
        reason = pod_status if pod_status and pod_status not in ("Running", "Error") else "RuntimeError"
        message = str(ready.get("message") or "") or f"runtime error (pod status {pod_status or 'unknown'})"
    elif update in ("pending", "in_progress"):
        reason, message = "NotBuilt", f"update {update.replace('_', ' ')}"
        waiting = waiting_on(status, res_name)
        if waiting:
            message += f": {waiting}"
        blocked_by = blocked_on(status, res_name)
    elif runtime in ("pending", "unknown"):
        reason = "NotReady"
        message = str(ready.get("message") or "") or f"runtime {runtime}"
        if pod_status:
            message += f" (pod status {pod_status})"
    ok = reason is None and update in _OK_STATUSES and runtime in _OK_STATUSES
    return ResourceResult(
        name=res_name,
        source="tilt",
        ok=ok,
        build_seconds=_build_seconds(history),
        ready_seconds=ready_seconds if ok else None,
        reason=reason,
        message=message,
        blocked_by=blocked_by,
    )


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
    started = _session_start(snapshot) or parse_time(view(snapshot).get("tiltStartTime"))
    facts = log_facts(snapshot)
    # A resource with a log of its own has run: its uiResource only lags (seen: a failed compile
    # still "held for its enable status" in the snapshot), tilt's race did not hold it.
    held = set(held_on_enable(snapshot, float("inf"))) - set(resource_logs(snapshot))
    results = []
    for resource in uiresources(snapshot):
        status = resource.get("status") or {}
        if is_disabled(status):
            continue
        result = resource_result(resource, started)
        on = {str(ref.get("name")) for ref in (status.get("waiting") or {}).get("on") or []}
        if result.reason == "NotBuilt" and on & held:
            result.message = f"{result.message}, which tilt's engine missed (a tilt race; a re-run passes it)"
        result = _with_log_facts(result, facts.get(result.name, LogFacts()), started)
        if exit_code == 0 and not result.ok and result.reason in PENDING:
            result = dataclasses.replace(result, ok=True, reason=None, message=None, blocked_by=[])
        if result.name == TILTFILE_RESOURCE:
            if result.ok:
                continue
            result = tiltfile_result(result)
        results.append(result)
    return sorted(results, key=lambda r: (r.name != TILTFILE_RESULT, r.name))


def tiltfile_result(result: ResourceResult) -> ResourceResult:
    """tilt's failed `(Tiltfile)` resource -> one `Tiltfile` result at the line its traceback names."""
    parsed = tiltfile.parse_error(result.message or "")
    return dataclasses.replace(
        result,
        name=TILTFILE_RESULT,
        reason="TiltfileError",
        message=parsed.message if parsed else result.message,
        location=parsed.location if parsed else None,
        blocked_by=[],
    )


def _with_log_facts(result: ResourceResult, fact: LogFacts, started: float | None) -> ResourceResult:
    """What the snapshot's log knows that its uiResource does not yet (the log is ahead)."""
    if result.build_seconds is None and fact.build_seconds is not None:
        result.build_seconds = fact.build_seconds
    if fact.error and result.reason in (*PENDING, None):
        result = dataclasses.replace(result, ok=False, reason="BuildFailed", message=fact.error,
                                     blocked_by=[])
    if result.ok and result.ready_seconds is None and fact.ready_at is not None and started is not None:
        result.ready_seconds = round(fact.ready_at - started, 3)
    return result
