"""What is wrong with a pod or a workload, most telling first (pure, over the API's JSON)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyci.readiness.objects import conditions as _conditions
from pyci.readiness.objects import int_ as _int
from pyci.readiness.objects import parse_time

NEVER_READY_SLACK = 3.0  # seconds between a pod's start and the kubelet's first Ready=False write

# waiting reasons a container does not recover from by itself
_CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError", "InvalidImageName"})
_PULL_ERRORS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})


@dataclass(frozen=True)
class Problem:
    """Why a workload is not healthy. `fatal`: it will not get better by waiting."""

    reason: str
    message: str
    fatal: bool = False
    pod: str | None = None  # namespace-local pod name the reason was seen on
    container: str | None = None
    previous_logs: bool = False  # the previous container's log explains it (crash)
    since: float | None = None  # POSIX time the condition started, when the API says


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def _image_of(pod: Mapping[str, Any], container: str) -> str:
    spec = pod.get("spec") or {}
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        if c.get("name") == container:
            return str(c.get("image", ""))
    return ""


def never_ready(pod: Mapping[str, Any], last_run_started: Any = None) -> bool:
    """The pod has not been Ready since it started, or at least not since its last run started.

    The Ready condition's lastTransitionTime only moves when its status changes: still at the pod's
    start (the kubelet's first status write, which can come after an image pull), or before the
    crashed run began, it stayed False through that run: the container crashes before serving.
    """
    ready = _conditions(pod).get("Ready") or {}
    if ready.get("status") == "True":
        return False
    changed = parse_time(ready.get("lastTransitionTime"))
    if changed is None:
        return False
    started = parse_time((pod.get("status") or {}).get("startTime"))
    run = parse_time(last_run_started)
    return ((started is not None and changed - started <= NEVER_READY_SLACK)
            or (run is not None and changed <= run + 1.0))


def pod_problem(pod: Mapping[str, Any], max_restarts: int) -> Problem | None:
    """What is wrong with one pod, most telling first; None if nothing is (yet)."""
    name = str((pod.get("metadata") or {}).get("name", ""))
    status = pod.get("status") or {}
    conditions = _conditions(pod)

    if status.get("phase") == "Failed":
        cs = next((c for c in _container_statuses(pod) if (c.get("state") or {}).get("terminated")), {})
        term = (cs.get("state") or {}).get("terminated") or {}
        reason = "OOMKilled" if term.get("reason") == "OOMKilled" else "PodFailed"
        msg = status.get("message") or term.get("message") or f"exit code {term.get('exitCode')}"
        # not fatal by itself: a Job may retry; a bare Pod's failure is made fatal by workload_problem
        return Problem(reason, f"pod {name} failed: {msg}", False, name, cs.get("name"))

    for cs in _container_statuses(pod):
        container = str(cs.get("name", ""))
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        waiting = state.get("waiting") or {}
        restarts = _int(cs.get("restartCount"))
        last_term = last.get("terminated") or {}
        w_reason = str(waiting.get("reason") or "")
        if w_reason in _PULL_ERRORS:
            image = _image_of(pod, container) or str(cs.get("image", ""))
            msg = f"{w_reason} for image {image}"
            if waiting.get("message"):
                msg += f": {waiting['message']}"
            reason = "ImagePullBackOff" if w_reason != "InvalidImageName" else w_reason
            fatal = w_reason in ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
            return Problem(reason, msg, fatal, name, container)
        if (
            last_term.get("reason") == "OOMKilled"
            or (state.get("terminated") or {}).get("reason") == "OOMKilled"
        ):
            # Killed for memory before it was ever Ready: the next try needs the same memory, so
            # it fails at its first back-off, as a crash at start does.
            at_start = w_reason == "CrashLoopBackOff" and never_ready(pod, last_term.get("startedAt"))
            msg = f"container {container} of pod {name} was OOMKilled"
            msg += f" on start ({restarts} restarts)" if at_start else f" ({restarts} restarts)"
            fatal = at_start or restarts > max_restarts
            return Problem("OOMKilled", msg, fatal, name, container, previous_logs=True)
        if w_reason == "CrashLoopBackOff" or (restarts > 0 and last_term):
            code = last_term.get("exitCode")
            at_start = w_reason == "CrashLoopBackOff" and never_ready(pod, last_term.get("startedAt"))
            msg = f"container {container} of pod {name} "
            msg += "crashes on start" if at_start else "keeps crashing"
            msg += f" ({restarts} restarts" + (f", last exit code {code})" if code is not None else ")")
            # Crashing before it was ever Ready will not heal: fail at the first back-off. A container
            # that once served gets `max-restarts` chances.
            fatal = at_start or restarts > max_restarts
            return Problem("CrashLoopBackOff", msg, fatal, name, container, previous_logs=True)
        if w_reason in _CONFIG_ERRORS:
            msg = f"{w_reason}: {waiting.get('message') or ''}".rstrip(": ")
            return Problem(w_reason, msg, False, name, container)

    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        msg = f"pod {name} cannot be scheduled: {scheduled.get('message') or 'no node fits'}"
        since = parse_time(scheduled.get("lastTransitionTime"))
        return Problem("Unschedulable", msg, False, name, since=since)

    if status.get("phase") == "Running" and conditions.get("Ready", {}).get("status") != "True":
        not_ready = [
            str(cs.get("name"))
            for cs in status.get("containerStatuses") or []
            if (cs.get("state") or {}).get("running") and not cs.get("ready")
        ]
        if not_ready:
            msg = f"container {', '.join(not_ready)} of pod {name} is running but not ready"
            return Problem("ReadinessProbeFailing", msg, False, name, not_ready[0])
    return None


def workload_problem(
    kind: str, obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], max_restarts: int
) -> Problem | None:
    """Why a workload is unhealthy: its own conditions, then the worst of its pods."""
    conditions = _conditions(obj)
    name = str((obj.get("metadata") or {}).get("name", ""))
    if kind == "Job":
        failed = conditions.get("Failed") or {}
        if failed.get("status") == "True":
            msg = f"job {name} failed: {failed.get('message') or failed.get('reason') or 'failed'}"
            worst = _worst(pods, max_restarts)
            pod = worst.pod if worst else _newest_pod_name(pods)
            return Problem(
                "JobFailed", msg, True, pod, worst.container if worst else None, previous_logs=False
            )
    if kind == "Pod":
        problem = pod_problem(obj, max_restarts)
        if problem and problem.reason in ("PodFailed", "OOMKilled") and not problem.fatal:
            phase_failed = (obj.get("status") or {}).get("phase") == "Failed"
            return dataclasses.replace(problem, fatal=phase_failed)
        return problem
    worst = _worst(pods, max_restarts)
    progressing = conditions.get("Progressing") or {}
    if kind == "Deployment" and progressing.get("reason") == "ProgressDeadlineExceeded":
        msg = str(progressing.get("message") or "progress deadline exceeded")
        if worst:
            return dataclasses.replace(worst, message=f"{worst.message}; {msg}", fatal=True)
        return Problem("ProgressDeadlineExceeded", msg, True)
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        for cond in conditions.values():
            if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
                return Problem("ReplicaFailure", str(cond.get("message") or cond.get("reason")), False)
    return worst


_PRIORITY = {
    "ImagePullBackOff": 0,
    "InvalidImageName": 0,
    "OOMKilled": 1,
    "CrashLoopBackOff": 2,
    "PodFailed": 3,
    "CreateContainerConfigError": 4,
    "CreateContainerError": 4,
    "Unschedulable": 5,
    "ReadinessProbeFailing": 6,
}


# Problems that are the cause of a workload still unhealthy at its deadline, not mere slowness.
_CAUSES = frozenset(_PRIORITY) - {"ReadinessProbeFailing"}


def _worst(pods: Iterable[Mapping[str, Any]], max_restarts: int) -> Problem | None:
    problems = [p for p in (pod_problem(pod, max_restarts) for pod in pods) if p is not None]
    if not problems:
        return None
    return min(problems, key=lambda p: (not p.fatal, _PRIORITY.get(p.reason, 9)))


def _newest_pod_name(pods: Sequence[Mapping[str, Any]]) -> str | None:
    if not pods:
        return None
    newest = max(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))
    return str((newest.get("metadata") or {}).get("name"))

