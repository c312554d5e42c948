"""The shapes the readiness watch works on: keys, names, times, conditions, owners, allowances."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

Obj = dict[str, Any]
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod")

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


def int_(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}



def controller_of(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the controlling owner reference, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("name"))
    return None

