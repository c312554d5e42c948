"""A workload's verdict when the run stops: failed on evidence of its own, or not finished, in words.

Pure: objects as the API returns them, the problem `classify` found, and the wall clock in; a Verdict
out. The rule is the reader's: a workload is blamed only for something it did itself (a terminal
reason, a crash, a pull error, a Ready it lost, its own readiness window used up); a workload that was
merely still starting when another one failed is "not finished", with what it was doing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyci.readiness.classify import NEVER_READY_SLACK, Problem
from pyci.readiness.objects import conditions, int_, parse_time

# Reasons that are a workload's own doing whenever they are seen: a crash, a kill, an image that
# cannot be pulled, a pod or Job that failed, a rollout past its deadline.
EVIDENCE = frozenset({
    "CrashLoopBackOff", "OOMKilled", "ImagePullBackOff", "InvalidImageName", "PodFailed", "JobFailed",
    "ProgressDeadlineExceeded", "ReplicaFailure",
})
# Kubernetes' probe defaults (core/v1 Probe).
_PERIOD, _THRESHOLD = 10, 3


@dataclass(frozen=True)
class Verdict:
    failed: bool
    reason: str
    message: str


def waiting_since(obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> float | None:
    """When the workload began to wait: its first pod's creation (else its own), POSIX time."""
    created = [parse_time((p.get("metadata") or {}).get("creationTimestamp")) for p in pods]
    found = [t for t in created if t is not None]
    if found:
        return min(found)
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def probe_window(container: Mapping[str, Any]) -> tuple[float, str] | None:
    """(seconds, how) a container's probes allow before it must be Ready; None with no readiness probe.

    initialDelaySeconds + failureThreshold x periodSeconds of its readiness probe, plus the same budget
    of its startup probe (readiness is not probed before the startup probe passed)."""
    readiness = container.get("readinessProbe")
    if not isinstance(readiness, Mapping):
        return None
    seconds, parts = 0.0, []
    for label, probe in (("startup", container.get("startupProbe")), ("readiness", readiness)):
        if not isinstance(probe, Mapping):
            continue
        delay = int_(probe.get("initialDelaySeconds"))
        period = int_(probe.get("periodSeconds")) or _PERIOD
        threshold = int_(probe.get("failureThreshold")) or _THRESHOLD
        seconds += delay + threshold * period
        parts.append(f"{label}: {delay}s delay + {threshold} x {period}s")
    return seconds, "; ".join(parts)


def _spec_containers(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("name")): c for c in (pod.get("spec") or {}).get("containers") or []}


def _running_since(status: Mapping[str, Any]) -> float | None:
    return parse_time(((status.get("state") or {}).get("running") or {}).get("startedAt"))


def lost_ready(pod: Mapping[str, Any]) -> bool:
    """Ready went False after its containers started: it served, then stopped serving."""
    ready = conditions(pod).get("Ready") or {}
    if ready.get("status") != "False":
        return False
    changed = parse_time(ready.get("lastTransitionTime"))
    starts = [_running_since(cs) for cs in (pod.get("status") or {}).get("containerStatuses") or []]
    started = [t for t in starts if t is not None]
    return changed is not None and bool(started) and changed > max(started) + NEVER_READY_SLACK


def _probe_state(pod: Mapping[str, Any], now: float) -> tuple[str, float, float, str] | None:
    """(container, seconds since it started, its window, how) of a running, not-ready probed container."""
    specs = _spec_containers(pod)
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("ready"):
            continue
        since = _running_since(cs)
        window = probe_window(specs.get(str(cs.get("name")), {}))
        if since is None or window is None:
            continue
        return str(cs.get("name")), max(now - since, 0.0), window[0], window[1]
    return None


def doing(kind: str, pods: Sequence[Mapping[str, Any]], detail: str, now: float) -> str:
    """What a workload that is not healthy yet is doing, in words."""
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    if not pods and kind != "Pod":
        return f"waiting for its first pod ({detail})" if detail else "waiting for its first pod"
    for pod in live or pods:
        status = pod.get("status") or {}
        for cs in status.get("initContainerStatuses") or []:
            if (cs.get("state") or {}).get("running"):
                return f"running init container {cs.get('name')}"
        probe = _probe_state(pod, now)
        if probe is not None:
            container, elapsed, window, _ = probe
            return (f"starting: readiness not yet passed, {elapsed:.0f}s into its {window:.0f}s window "
                    f"(container {container})")
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "ContainerCreating":
                return f"creating container {cs.get('name')} (pulling its image, or mounting volumes)"
            if waiting.get("reason") == "PodInitializing":
                return "initializing"
        if status.get("phase") == "Pending" and not status.get("containerStatuses"):
            return "pending: not started on a node yet"
    if kind == "Job":
        return f"running ({detail})"
    return f"starting ({detail})" if detail else "starting"


def decide(
    kind: str,
    obj: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    problem: Problem | None,
    detail: str,
    now: float,
) -> Verdict:
    """The verdict of a workload that is not healthy when the run stops on another's failure."""
    if problem is not None and (problem.fatal or problem.reason in EVIDENCE):
        return Verdict(True, problem.reason, problem.message)
    watched = [obj] if kind == "Pod" else list(pods)
    for pod in watched:
        if lost_ready(pod):
            name = (pod.get("metadata") or {}).get("name")
            return Verdict(True, "ReadinessLost", f"pod {name} was Ready, then its readiness probe failed")
        probe = _probe_state(pod, now)
        if probe is not None and probe[1] > probe[2]:
            container, elapsed, window, how = probe
            name = (pod.get("metadata") or {}).get("name")
            return Verdict(True, "ReadinessProbeFailing",
                           f"container {container} of pod {name} not ready {elapsed:.0f}s after it started, "
                           f"past its probe's {window:.0f}s window ({how})")
    if problem is not None and problem.reason == "Unschedulable":
        return Verdict(False, "NotReady", f"not scheduled yet: {problem.message}")
    if problem is not None and problem.reason != "ReadinessProbeFailing":
        return Verdict(False, "NotReady", f"not ready yet: {problem.message}")
    return Verdict(False, "NotReady", doing(kind, watched, detail, now))
