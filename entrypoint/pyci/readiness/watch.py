"""One thread per (kind, namespace): list, then watch from the list's resourceVersion, onto a queue."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from pyci.readiness.objects import Obj

WATCH_SECONDS = 5  # server-side watch timeout: how soon a watch thread notices `stop`
REQUEST_TIMEOUT = 30.0  # client-side timeout of list and log calls


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


