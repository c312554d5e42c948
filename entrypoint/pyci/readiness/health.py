"""When a workload is healthy: the controllers' own status, and containers that stay up."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyci.readiness.objects import conditions as _conditions
from pyci.readiness.objects import int_ as _int
from pyci.readiness.objects import parse_time

# A container with no readiness probe is Ready the moment it starts, also one that exits a moment
# later: it counts as up only once it has been running this long (the kubelet notices an exit
# within its 1 s relist, and reports it a moment after).
SETTLE = 3.0
_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # pod annotation of an Indexed Job


def workload_health(
    kind: str, obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]] = (), now: float | None = None
) -> tuple[bool, str]:
    """(healthy, what is missing) for one workload object and its pods; `now` is POSIX time."""
    healthy, detail = _controller_health(kind, obj, pods)
    if healthy and kind in _SERVING_KINDS:
        young = unsettled(pods if kind != "Pod" else [obj], time.time() if now is None else now)
        if young:
            return False, young
    return healthy, detail


_SERVING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"})


def unsettled(pods: Iterable[Mapping[str, Any]], now: float) -> str | None:
    """A container that is not running, or runs with no probe for less than SETTLE seconds, if any.

    Ready without a probe only says the process started: a crash at start can be caught Ready for an
    instant, and `tilt ci` then reports success; the controller's ready count lags behind the pod's
    own container state, which is read here. A container with a probe has shown it serves.
    """
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        probed = {c.get("name") for c in (pod.get("spec") or {}).get("containers") or []
                  if c.get("readinessProbe")}
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            state = cs.get("state") or {}
            if not state.get("running"):
                what = next(iter(state), "no state")
                return f"container {cs.get('name')} of pod {meta.get('name')} is {what}, not running"
            if cs.get("name") in probed:
                continue
            started = parse_time((state.get("running") or {}).get("startedAt"))
            if started is not None and now - started < SETTLE:
                up = max(now - started, 0.0)
                return (f"container {cs.get('name')} of pod {meta.get('name')} up for {up:.1f}s "
                        f"(no readiness probe: counted once it stays up {SETTLE:.0f}s)")
    return None


def _controller_health(
    kind: str, obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]] = ()
) -> tuple[bool, str]:
    """(healthy, what is missing) by the controller's own status."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj.get("metadata") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        if _int(status.get("observedGeneration")) < _int(meta.get("generation")):
            return False, "status not observed yet"
    if kind == "Deployment":
        desired = _int(spec.get("replicas", 1))
        updated, available = _int(status.get("updatedReplicas")), _int(status.get("availableReplicas"))
        total = _int(status.get("replicas"))
        ok = updated == desired and available == desired and total == desired
        return ok, f"{available}/{desired} available, {updated}/{desired} updated"
    if kind == "StatefulSet":
        desired = _int(spec.get("replicas", 1))
        ready = _int(status.get("readyReplicas"))
        rev_ok = status.get("currentRevision") == status.get("updateRevision") or (
            # an OnDelete StatefulSet never moves currentRevision by itself
            (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
        )
        ok = ready == desired and rev_ok
        return ok, f"{ready}/{desired} ready" + ("" if rev_ok else ", rollout in progress")
    if kind == "DaemonSet":
        desired = _int(status.get("desiredNumberScheduled"))
        ready = _int(status.get("numberReady"))
        return ready == desired, f"{ready}/{desired} ready"
    if kind == "ReplicaSet":
        desired = _int(spec.get("replicas", 1))
        ready = _int(status.get("readyReplicas"))
        return ready == desired, f"{ready}/{desired} ready"
    if kind == "Job":
        completions = spec.get("completions")
        wanted = _int(completions) if completions is not None else 1
        succeeded = _int(status.get("succeeded"))
        conditions = _conditions(obj)
        if conditions.get("Complete", {}).get("status") == "True":
            return True, "complete"
        if conditions.get("Failed", {}).get("status") != "True" and _succeeded_pods(pods) >= wanted:
            # the Job controller counts finished pods in batches, up to a second late: they decide
            return True, f"{wanted}/{wanted} pods succeeded"
        return succeeded >= wanted, f"{succeeded}/{wanted} succeeded"
    if kind == "Pod":
        phase = status.get("phase")
        if phase == "Succeeded":
            return True, "succeeded"
        ready = _conditions(obj).get("Ready", {}).get("status") == "True"
        return ready and phase == "Running", "ready" if ready else f"{phase or 'Pending'}, not ready"
    return True, ""


def _succeeded_pods(pods: Iterable[Mapping[str, Any]]) -> int:
    """Succeeded pods of a Job; an Indexed Job's counted once per completion index."""
    done = set()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") == "Succeeded":
            meta = pod.get("metadata") or {}
            done.add((meta.get("annotations") or {}).get(_COMPLETION_INDEX) or meta.get("name"))
    return len(done)


