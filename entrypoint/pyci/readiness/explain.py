"""The words and log lines that explain a problem, fetched from the API when the verdict is made."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from pyci.readiness.classify import Problem
from pyci.readiness.objects import Key, result_name

LOG_TAIL = 20


# What the kubelet answers (as the log's text) for a container whose log it no longer has.
UNAVAILABLE = "unable to retrieve container logs for"
RETRY_PAUSE = 1.0  # seconds before asking for a crashed container's log once more


def _read_log(core: client.CoreV1Api, namespace: str, pod: str, container: str | None, previous: bool) -> str:
    """The last log lines of a container; "" when the API has none (or no kubelet serves them)."""
    kwargs: dict[str, Any] = {"tail_lines": LOG_TAIL, "previous": previous, "_request_timeout": 10}
    if container:
        kwargs["container"] = container
    try:
        text = str(core.read_namespaced_pod_log(pod, namespace, **kwargs) or "").rstrip()
    except Exception:  # no kubelet, no previous container, pod gone: logs are a bonus
        return ""
    return "" if text.startswith(UNAVAILABLE) else text


def _pod_logs(core: client.CoreV1Api, namespace: str, pod: str, container: str | None, previous: bool) -> str:
    """A crash's last words. In a fast crash loop the kubelet may already have removed the previous
    container ("unable to retrieve container logs"): then the current one, which crashed the same way
    or is about to, and the previous one once more a moment later (the crash's own words were lost
    under load on real kind, the verdict left with none)."""
    text = _read_log(core, namespace, pod, container, previous)
    if text or not previous:
        return text
    text = _read_log(core, namespace, pod, container, previous=False)
    if text:
        return text
    time.sleep(RETRY_PAUSE)
    return _read_log(core, namespace, pod, container, previous=True)


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



def _short(error: str, limit: int = 100) -> str:
    """The gist of a urllib3 error: `... Failed to establish a new connection: [Errno 111] ...`."""
    found = re.search(r"\[Errno -?\d+\][^'\")]*", error)
    text = found.group(0) if found else " ".join(error.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


