"""The objects the watches have seen, and which workload each pod belongs to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyci.readiness.objects import WORKLOAD_KINDS, Key, Obj, controller_of


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


