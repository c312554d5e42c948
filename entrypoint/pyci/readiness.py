"""Watch every workload until it is healthy, has failed for good, or ran out of time.

One thread per (kind, namespace) lists, then watches from the list's resourceVersion, and feeds
one queue; the caller's thread applies each event to a local cache and re-evaluates at once, so a
workload is reported healthy within milliseconds of the API server saying so. A run starts these
watches once, before `tilt ci` (Sentinel), and decides readiness on them afterwards. The health
rules and the classification of what is wrong are pure functions over the objects as the API
returns them (camelCase JSON dicts), unit-tested with plain dicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from pyci.results import Cancelled, InfrastructureError, ResourceResult

Log = Callable[[str], None]
Obj = dict[str, Any]

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod")
WATCH_SECONDS = 5  # server-side watch timeout: how soon a watch thread notices `stop`
REQUEST_TIMEOUT = 30.0  # client-side timeout of list and log calls
TICK = 0.25  # how often deadlines and grace periods are checked when no event arrives
UNSCHEDULABLE_GRACE = 10.0
CONFIG_ERROR_GRACE = 10.0
PROGRESS_EVERY = 5.0
# How long every watch may fail to connect before the run stops waiting: the API server is gone (a
# stopped node, a cut network), which is an infrastructure failure, not an app that never got healthy.
API_LOST_AFTER = 20.0
LOG_TAIL = 20
NEVER_READY_SLACK = 3.0  # seconds between a pod's start and the kubelet's first Ready=False write
# A container with no readiness probe is Ready the moment it starts, also one that exits a moment
# later: it counts as up only once it has been running this long (the kubelet notices an exit
# within its 1 s relist, and reports it a moment after).
SETTLE = 3.0
_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # pod annotation of an Indexed Job

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


Key = tuple[str, str, str]  # (Kind, namespace, name)


def result_name(key: Key) -> str:
    kind, namespace, name = key
    return f"{kind.lower()}/{namespace}/{name}"


def allowance(key: Key, timeout: float, per_resource: Mapping[str, float]) -> float:
    """Seconds this workload may take: `kind/namespace/name`, then `kind/name`, else `timeout`."""
    kind, namespace, name = key
    for candidate in (f"{kind.lower()}/{namespace}/{name}", f"{kind.lower()}/{name}"):
        for k, v in per_resource.items():
            if k.lower() == candidate.lower():
                return float(v)
    return timeout


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


# ------------------------------------------------------------------------------------- health rules


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


# ----------------------------------------------------------------------------------- classification


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


def controller_of(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the controlling owner reference, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("name"))
    return None


# ---------------------------------------------------------------------------------------- the cache


@dataclass
class Cache:
    """The objects seen so far, by (Kind, namespace, name)."""

    objects: dict[Key, Obj] = field(default_factory=dict)

    def apply(self, kind: str, event_type: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key = (kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj

    def replace(self, kind: str, namespace: str | None, items: Iterable[Obj]) -> None:
        """A fresh list of `kind` (in `namespace`, or everywhere) replaces what was cached."""
        for key in [k for k in self.objects if k[0] == kind and (namespace is None or k[1] == namespace)]:
            del self.objects[key]
        for obj in items:
            self.apply(kind, "ADDED", obj)

    def owner_workload(self, pod: Obj) -> Key | None:
        """The workload a pod belongs to: Deployment via its ReplicaSet, else its direct controller."""
        ns = str((pod.get("metadata") or {}).get("namespace", ""))
        owner = controller_of(pod)
        if owner is None:
            return None
        kind, name = owner
        if kind == "ReplicaSet":
            rs = self.objects.get(("ReplicaSet", ns, name))
            rs_owner = controller_of(rs) if rs else None
            if rs_owner and rs_owner[0] == "Deployment":
                return ("Deployment", ns, rs_owner[1])
            if rs is None:  # not seen yet: the pod-template-hash names it
                hash_ = str(((pod.get("metadata") or {}).get("labels") or {}).get("pod-template-hash", ""))
                if hash_ and name.endswith("-" + hash_):
                    return ("Deployment", ns, name[: -len(hash_) - 1])
        return (kind, ns, name)

    def workloads(self) -> dict[Key, Obj]:
        """Top-level workloads: no controller we know how to watch (bare Pods and ReplicaSets count)."""
        out = {}
        for key, obj in self.objects.items():
            if (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue  # going away: nothing to wait for
            owner = controller_of(obj)
            if owner and owner[0] in WORKLOAD_KINDS:
                if (owner[0], key[1], owner[1]) in self.objects or key[0] in ("Pod", "ReplicaSet"):
                    continue
            out[key] = obj
        return out

    def pods_by_workload(self) -> dict[Key, list[Obj]]:
        out: dict[Key, list[Obj]] = {}
        for key, obj in self.objects.items():
            if key[0] != "Pod" or (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue
            owner = self.owner_workload(obj)
            if owner:
                out.setdefault(owner, []).append(obj)
        return out


# --------------------------------------------------------------------------------------- watchers


def _list_functions(api_client: client.ApiClient, namespaced: bool) -> dict[str, Callable[..., Any]]:
    apps, batch, core = (
        client.AppsV1Api(api_client),
        client.BatchV1Api(api_client),
        client.CoreV1Api(api_client),
    )
    if namespaced:
        return {
            "Deployment": apps.list_namespaced_deployment,
            "StatefulSet": apps.list_namespaced_stateful_set,
            "DaemonSet": apps.list_namespaced_daemon_set,
            "ReplicaSet": apps.list_namespaced_replica_set,
            "Job": batch.list_namespaced_job,
            "Pod": core.list_namespaced_pod,
        }
    return {
        "Deployment": apps.list_deployment_for_all_namespaces,
        "StatefulSet": apps.list_stateful_set_for_all_namespaces,
        "DaemonSet": apps.list_daemon_set_for_all_namespaces,
        "ReplicaSet": apps.list_replica_set_for_all_namespaces,
        "Job": batch.list_job_for_all_namespaces,
        "Pod": core.list_pod_for_all_namespaces,
    }


@dataclass
class _Msg:
    kind: str
    namespace: str | None
    type: str  # LIST, ADDED, MODIFIED, DELETED, FAILED (an API error), UNREACHABLE (no connection)
    items: list[Obj] = field(default_factory=list)
    error: str = ""


def _watch_loop(
    kind: str,
    list_fn: Callable[..., Any],
    namespace: str | None,
    out: queue.Queue[_Msg],
    stop: threading.Event,
) -> None:
    """List, then watch from the list's resourceVersion; re-list on 410 Gone; until `stop`."""
    ns_args = {"namespace": namespace} if namespace is not None else {}
    failures = 0
    while not stop.is_set():
        try:
            resp = list_fn(**ns_args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            data = json.loads(resp.data)
            version = str((data.get("metadata") or {}).get("resourceVersion", ""))
            out.put(_Msg(kind, namespace, "LIST", list(data.get("items") or [])))
            failures = 0
            while not stop.is_set():
                w = watch.Watch()
                for event in w.stream(
                    list_fn,
                    **ns_args,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=(10, WATCH_SECONDS + 10),
                ):
                    raw = event.get("raw_object") or {}
                    version = str((raw.get("metadata") or {}).get("resourceVersion", version))
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        out.put(_Msg(kind, namespace, str(event["type"]), [raw]))
                    if stop.is_set():
                        w.stop()
                        break
        except ApiException as exc:
            if exc.status == 410:  # resourceVersion too old: list again
                continue
            failures += 1
            out.put(_Msg(kind, namespace, "FAILED", error=f"{exc.status} {exc.reason}"))
        except Exception as exc:  # connection reset, timeouts: retry with a short back-off
            failures += 1
            if failures >= 3:
                out.put(_Msg(kind, namespace, "UNREACHABLE", error=str(exc)))
        stop.wait(min(5.0, 0.5 * failures))


# ----------------------------------------------------------------------------------------- results


def _pod_logs(core: client.CoreV1Api, namespace: str, pod: str, container: str | None, previous: bool) -> str:
    """The last log lines of a container; "" when the API has none (or no kubelet serves them)."""
    kwargs: dict[str, Any] = {"tail_lines": LOG_TAIL, "previous": previous, "_request_timeout": 10}
    if container:
        kwargs["container"] = container
    try:
        return str(core.read_namespaced_pod_log(pod, namespace, **kwargs) or "").rstrip()
    except Exception:  # no kubelet, no previous container, pod gone: logs are a bonus
        return ""


def _event_messages(core: client.CoreV1Api, namespace: str, pod: str) -> list[str]:
    try:
        events = core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={pod}", _request_timeout=10
        )
    except Exception:
        return []
    out = []
    for ev in sorted(events.items or [], key=lambda e: str(e.last_timestamp or e.event_time or "")):
        if ev.type == "Warning" and ev.message and ev.message not in out:
            out.append(str(ev.message))
    return out[-5:]


def _enrich(core: client.CoreV1Api, namespace: str, problem: Problem) -> tuple[str, str]:
    """(message, logs) with the crash's previous log lines and the pod's warning events."""
    message, logs = problem.message, ""
    if problem.pod and problem.previous_logs:
        logs = _pod_logs(core, namespace, problem.pod, problem.container, previous=True)
    elif problem.pod and problem.reason in ("JobFailed", "PodFailed"):
        logs = _pod_logs(core, namespace, problem.pod, problem.container, previous=False)
    if problem.pod and problem.reason in (
        "ImagePullBackOff",
        "ReadinessProbeFailing",
        "InvalidImageName",
        "CreateContainerConfigError",
        "Unschedulable",
    ):
        events = [e for e in _event_messages(core, namespace, problem.pod) if e not in message]
        if events:
            message += " | events: " + "; ".join(events)
    return message, logs


def describe_pending(pending: Mapping[Key, tuple[str, Problem | None]], limit: int = 8) -> str:
    """`deployment/default/web (CrashLoopBackOff: ...), job/default/migrate (0/1 succeeded)`."""
    parts = []
    for key, (detail, problem) in sorted(pending.items()):
        why = f"{problem.reason}: {problem.message}" if problem else detail
        parts.append(f"{result_name(key)} ({why})")
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f", and {more} more" if more > 0 else "")


# ------------------------------------------------------------------------------------------- waiter


_WAKE = _Msg("", None, "WAKE")  # carries nothing: only wakes whoever blocks on the queue


class _Waiter:
    """The watches of one run, the cache they fill, and the decisions over it.

    Ready times count from when watching began, as tilt's own do; allowances count from `wait`, the
    readiness stage's own start.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        namespaces: Sequence[str],
        max_restarts: int,
        log: Log,
        unschedulable_grace: float,
    ) -> None:
        self.api_client = api_client
        self.namespaces = tuple(namespaces)
        self.max_restarts, self.log, self.grace = max_restarts, log, unschedulable_grace
        self.timeout: float = float("inf")
        self.per_resource: Mapping[str, float] = {}
        self.cache = Cache()
        self.queue: queue.Queue[_Msg] = queue.Queue()
        self.stop = threading.Event()
        self.watching_since = self.start = time.monotonic()
        self.listed: set[tuple[str, str | None]] = set()
        self.expected_lists = 0
        self.ready_at: dict[Key, float] = {}
        self.first_seen_problem: dict[tuple[Key, str], float] = {}
        self.fatal: dict[Key, Problem] = {}
        self.unreachable_since: float | None = None  # no watch has reached the API server since
        self.unreachable_error = ""

    def _wanted(self, namespace: str) -> bool:
        if self.namespaces:
            return namespace in self.namespaces
        return namespace not in SYSTEM_NAMESPACES

    def start_watches(self) -> None:
        targets: list[str | None] = list(self.namespaces) if self.namespaces else [None]
        expected = 0
        for namespace in targets:
            for kind, fn in _list_functions(self.api_client, namespace is not None).items():
                threading.Thread(
                    target=_watch_loop,
                    args=(kind, fn, namespace, self.queue, self.stop),
                    name=f"watch-{kind}-{namespace or 'all'}",
                    daemon=True,
                ).start()
                expected += 1
        self.expected_lists = expected

    def close(self) -> None:
        # Not joined: a watch thread is blocked in a read until the server ends its watch (within
        # WATCH_SECONDS), then sees `stop`; it is a daemon, and joining cost 0.1 s a thread for nothing.
        self.stop.set()

    def start_clock(self, timeout: float, per_resource: Mapping[str, float]) -> None:
        """Allowances count from now: the readiness stage may start long after the watches did."""
        self.timeout, self.per_resource, self.start = timeout, per_resource, time.monotonic()

    def pump(self, block: float) -> None:
        """Apply every message that has arrived, waiting up to `block` seconds for the first one."""
        with contextlib.suppress(queue.Empty):
            self._handle(self.queue.get(timeout=block))
            while True:  # drain what arrived together before evaluating
                self._handle(self.queue.get_nowait())

    def listed_all(self) -> bool:
        return len(self.listed) >= self.expected_lists

    def _handle(self, msg: _Msg) -> None:
        if msg.type == "WAKE":
            return
        if msg.type == "FAILED":
            self.log(f"readiness: watching {msg.kind} failed ({msg.error}), retrying")
            return
        if msg.type == "UNREACHABLE":
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
                self.log(f"readiness: the API server does not answer ({_short(msg.error)}), retrying")
            self.unreachable_error = msg.error
            return
        self.unreachable_since = None
        items = [o for o in msg.items if self._wanted(str((o.get("metadata") or {}).get("namespace", "")))]
        if msg.type == "LIST":
            self.listed.add((msg.kind, msg.namespace))
            self.cache.replace(msg.kind, msg.namespace, items)
        else:
            for obj in items:
                self.cache.apply(msg.kind, msg.type, obj)

    def wait(
        self,
        timeout: float,
        per_resource: Mapping[str, float],
        cancel: threading.Event | None,
        progress_every: float,
    ) -> list[ResourceResult]:
        """Until every workload is healthy, one has failed for good, or the allowances ran out."""
        self.start_clock(timeout, per_resource)
        scope = ", ".join(self.namespaces) if self.namespaces else "all namespaces but the system ones"
        self.log(f"readiness: watching workloads in {scope} (timeout {timeout:.0f}s)")
        last_progress, block = self.start, 0.0  # the cache may decide already: look before blocking
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled while waiting for workloads")
            self.pump(block)
            block, now = TICK, time.monotonic()
            self.check_reachable(now)
            if not self.listed_all():
                if now - self.start > timeout:
                    raise_listing_timeout(self.listed, self.expected_lists)
                continue
            pending, finished = self.evaluate(now)
            if finished:
                return self._finish(pending, now)
            if now - last_progress >= progress_every:
                last_progress = now
                self.log(f"readiness: still not healthy: {describe_pending(pending)}")

    def check_reachable(self, now: float) -> None:
        if self.unreachable_since is not None and now - self.unreachable_since >= API_LOST_AFTER:
            host = getattr(self.api_client.configuration, "host", "") or "?"
            raise InfrastructureError(
                f"the Kubernetes API server at {host} stopped answering during the readiness watch "
                f"(for {now - self.unreachable_since:.0f}s: {_short(self.unreachable_error)})",
                self.unreachable_error,
            )

    def evaluate(self, now: float) -> tuple[dict[Key, tuple[str, Problem | None]], bool]:
        """(still pending -> (detail, problem), finished?) after marking the healthy and the fatal."""
        pods = self.cache.pods_by_workload()
        pending: dict[Key, tuple[str, Problem | None]] = {}
        finished = True
        workloads = self.cache.workloads()
        for key in [k for k in self.ready_at if k not in workloads]:
            del self.ready_at[key]
        for key, obj in workloads.items():
            healthy, detail = workload_health(key[0], obj, pods.get(key, []))
            if healthy:
                self.ready_at.setdefault(key, now - self.watching_since)
                self.fatal.pop(key, None)
                continue
            self.ready_at.pop(key, None)
            problem = workload_problem(key[0], obj, pods.get(key, []), self.max_restarts)
            if problem and not problem.fatal:
                problem = self._maybe_fatal(key, problem, now)
            if problem and problem.fatal:
                self.fatal[key] = problem
            else:
                self.fatal.pop(key, None)
            pending[key] = (detail, problem)
            if key not in self.fatal and now - self.start < allowance(key, self.timeout, self.per_resource):
                finished = False
        # fail fast: one workload that failed for good decides the run
        return pending, finished or bool(self.fatal)

    def _maybe_fatal(self, key: Key, problem: Problem, now: float) -> Problem:
        grace = {"Unschedulable": self.grace}.get(problem.reason)
        if problem.reason in _CONFIG_ERRORS:
            grace = CONFIG_ERROR_GRACE
        if grace is None:
            return problem
        first = self.first_seen_problem.setdefault((key, problem.reason), now)
        age = now - first
        if problem.since is not None:  # it may have been stuck before we started watching
            age = max(age, time.time() - problem.since)
        if age >= grace:
            return dataclasses.replace(problem, message=f"{problem.message} (for {age:.0f}s)", fatal=True)
        return problem

    def results(self, pending: Mapping[Key, tuple[str, Problem | None]], now: float) -> list[ResourceResult]:
        core = client.CoreV1Api(self.api_client)
        out = []
        for key in sorted(set(self.ready_at) | set(pending)):
            if key in self.ready_at:
                ready = round(self.ready_at[key], 3)
                out.append(ResourceResult(result_name(key), "kubernetes", True, ready_seconds=ready))
                continue
            detail, problem = pending[key]
            out.append(self._failed_result(core, key, detail, problem, now))
        return out

    def _failed_result(
        self, core: client.CoreV1Api, key: Key, detail: str, problem: Problem | None, now: float
    ) -> ResourceResult:
        limit = allowance(key, self.timeout, self.per_resource)
        message, logs = _enrich(core, key[1], problem) if problem else ("", "")
        why = f"{problem.reason}: {message}" if problem else "no cause found"
        if problem is not None and problem.fatal:
            reason, text = problem.reason, message
        elif now - self.start >= limit:
            # The time really waited (the watch starts before tilt ci), not just the limit it passed.
            waited = now - self.start
            text = (f"not healthy after {waited:.0f}s of watching (limit {limit:.0f}s), "
                    f"waiting on {detail}; {why}")
            # A cause seen at the deadline is the verdict (the kubelet flips a pull error between
            # ErrImagePull and ImagePullBackOff, so the last look may catch the milder one); a pod
            # that is merely slow or not ready yet timed out.
            reason = problem.reason if problem is not None and problem.reason in _CAUSES else "Timeout"
        else:
            reason = problem.reason if problem else "NotReady"
            text = f"not healthy yet when another workload failed ({detail}); {why}"
        return ResourceResult(result_name(key), "kubernetes", False, reason=reason, message=text, logs=logs)

    def _finish(self, pending: Mapping[Key, tuple[str, Problem | None]], now: float) -> list[ResourceResult]:
        results = self.results(pending, now)
        bad = [r for r in results if not r.ok]
        self.log(
            f"readiness: {len(results) - len(bad)}/{len(results)} workloads healthy"
            f" after {now - self.start:.1f}s"
            + (f"; failed: {', '.join(r.name for r in bad)}" if bad else "")
        )
        return results


def _short(error: str, limit: int = 100) -> str:
    """The gist of a urllib3 error: `... Failed to establish a new connection: [Errno 111] ...`."""
    found = re.search(r"\[Errno -?\d+\][^'\")]*", error)
    text = found.group(0) if found else " ".join(error.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wait_healthy(
    api_client: client.ApiClient,
    namespaces: Sequence[str],
    timeout: float,
    per_resource_timeouts: Mapping[str, float],
    max_restarts: int,
    log: Log,
    cancel: threading.Event | None = None,
    unschedulable_grace: float = UNSCHEDULABLE_GRACE,
    progress_every: float = PROGRESS_EVERY,
) -> list[ResourceResult]:
    """Watch Deployments, StatefulSets, DaemonSets, Jobs and Pods until all are healthy.

    Returns one ResourceResult per workload (`deployment/default/web`). Stops early when a workload
    failed for good (crash loop beyond `max_restarts`, image pull back-off, failed Job, unschedulable
    for `unschedulable_grace` seconds, progress deadline exceeded). A workload still unhealthy when
    its allowance (`timeout`, or its entry in `per_resource_timeouts`) runs out fails with its best
    classification, or reason `Timeout`. Starts its own watches; Sentinel.wait_healthy reuses a
    sentinel's.
    """
    waiter = _Waiter(api_client, namespaces, max_restarts, log, unschedulable_grace)
    waiter.start_watches()
    try:
        return waiter.wait(timeout, per_resource_timeouts, cancel, progress_every)
    finally:
        waiter.close()


def raise_listing_timeout(listed: set[tuple[str, str | None]], expected: int) -> None:
    raise InfrastructureError(
        f"readiness: could not list workloads from the API server ({len(listed)}/{expected} lists done)"
    )


class Sentinel:
    """One watch of the workloads, kept from before `tilt ci` starts until readiness is decided.

    While tilt ci runs, a thread sets `failed` the moment a workload has failed for good: tilt ci
    itself waits out its whole timeout on a crash loop or a pull back-off, the pipeline can stop it
    within a second instead. It never decides success: `wait_healthy` does, afterwards, on the same
    watches and cache, so an app that is healthy already is reported at once, without listing again.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        namespaces: Sequence[str],
        max_restarts: int,
        log: Log,
        unschedulable_grace: float = UNSCHEDULABLE_GRACE,
    ) -> None:
        self.failed = threading.Event()
        self.reasons: list[str] = []
        self.lost: InfrastructureError | None = None  # the API server stopped answering during tilt ci
        self._done = threading.Event()
        self._waiter = _Waiter(api_client, namespaces, max_restarts, log, unschedulable_grace)
        self._thread = threading.Thread(target=self._run, name="readiness-sentinel", daemon=True)

    def __enter__(self) -> Sentinel:
        self._waiter.start_watches()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_thread()
        self._waiter.close()

    def wait_healthy(
        self,
        timeout: float,
        per_resource_timeouts: Mapping[str, float],
        cancel: threading.Event | None = None,
        progress_every: float = PROGRESS_EVERY,
    ) -> list[ResourceResult]:
        """The module's wait_healthy, on this sentinel's watches: its thread hands the cache over."""
        self._stop_thread()
        return self._waiter.wait(timeout, per_resource_timeouts, cancel, progress_every)

    def _stop_thread(self) -> None:
        self._done.set()
        self._waiter.queue.put(_WAKE)  # rather than let it sleep out its tick
        if self._thread.is_alive():
            self._thread.join()  # never two threads on one cache

    def _run(self) -> None:
        waiter = self._waiter
        while True:
            waiter.pump(TICK)
            if self._done.is_set():
                return
            try:
                waiter.check_reachable(time.monotonic())
            except InfrastructureError as err:
                waiter.log(f"readiness: {err.message}: stopping tilt ci")
                self.lost = err
                self.failed.set()
                return
            if not waiter.listed_all():
                continue
            waiter.evaluate(time.monotonic())
            if waiter.fatal:
                self.reasons = [f"{result_name(k)} ({p.reason})" for k, p in sorted(waiter.fatal.items())]
                waiter.log(f"readiness: failed for good while tilt ci runs: {', '.join(self.reasons)}")
                self.failed.set()
                return
