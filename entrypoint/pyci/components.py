"""One component, one verdict: a tilt resource together with the Kubernetes workloads it applied.

tilt reports `api`; the readiness watch reports `deployment/default/api`. Reported separately, one
crash is two rows and two annotations. Here they become one component whose verdict is healthy,
failed (with the most concrete cause of its members), or not finished (it was still on its way when
the run stopped on another component's failure). Workloads no tilt resource owns (made by an
operator or a hook) stay components of their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from pyci.results import ResourceResult

# Reasons that only say "not there yet": the consequence of a failure elsewhere, never a cause.
COLLATERAL = frozenset({"NotBuilt", "NotReady", None})


def owners(evaluation: Any) -> dict[str, str]:
    """`kind/name` of every object the Tiltfile deploys -> the tilt resource that deploys it."""
    found: dict[str, str] = {}
    for component in getattr(evaluation, "components", None) or ():
        for obj in component.objects:
            found.setdefault(obj, component.name)
    return found


def merge(resources: Sequence[ResourceResult], evaluation: Any = None) -> list[ResourceResult]:
    """tilt resources with their workloads merged in, then the unowned workloads, each with a verdict."""
    by_owner = owners(evaluation)
    tilt = {r.name: r for r in resources if r.source == "tilt"}
    members: dict[str, list[ResourceResult]] = {name: [] for name in tilt}
    alone: list[ResourceResult] = []
    for r in resources:
        if r.source == "tilt":
            continue
        owner = _owner(r.name, by_owner, tilt)
        if owner is None:
            alone.append(r)
        else:
            members[owner].append(r)
    merged = [_component(tilt[name], members[name]) for name in tilt] + alone
    return _verdicts(merged)


def _owner(workload: str, by_owner: dict[str, str], tilt: dict[str, ResourceResult]) -> str | None:
    parts = workload.split("/")  # kind/namespace/name
    if len(parts) != 3:
        return None
    kind, _, name = parts
    owner = by_owner.get(f"{kind}/{name}")
    if owner in tilt:
        return owner
    return name if name in tilt else None  # tilt names a resource after its workload by default


def _component(resource: ResourceResult, workloads: list[ResourceResult]) -> ResourceResult:
    if not workloads:
        return resource
    failing = [w for w in workloads if not w.ok]
    cause = _cause([resource, *failing] if not resource.ok else failing)
    ready = [w.ready_seconds for w in workloads if w.ready_seconds is not None]
    return dataclasses.replace(
        resource,
        ok=resource.ok and not failing,
        reason=cause.reason if cause else resource.reason,
        message=cause.message if cause else resource.message,
        logs=(cause.logs if cause and cause.logs else resource.logs),
        ready_seconds=resource.ready_seconds if resource.ready_seconds is not None
        else max(ready, default=None),
        workloads=[w.name for w in workloads],
    )


def _cause(candidates: Iterable[ResourceResult]) -> ResourceResult | None:
    """The most telling failure: a concrete reason over "not there yet", a workload's over tilt's."""
    ranked = sorted(
        (c for c in candidates if not c.ok),
        key=lambda c: (c.reason in COLLATERAL, c.source == "tilt"),
    )
    return ranked[0] if ranked else None


def _verdicts(components: list[ResourceResult]) -> list[ResourceResult]:
    concrete = any(not c.ok and c.reason not in COLLATERAL for c in components)
    return [dataclasses.replace(c, finished=False) if concrete and not c.ok and c.reason in COLLATERAL else c
            for c in components]


def root_causes(components: Sequence[ResourceResult]) -> list[ResourceResult]:
    """What to annotate: failed components (not the unfinished); if none is concrete, every failure."""
    failed = [c for c in components if not c.ok and c.finished]
    return failed or [c for c in components if not c.ok]
