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

from pyci.results import ResourceResult, Status, rendering


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
    merged = [_component(tilt[name], members[name]) for name in tilt] + [_component(w, []) for w in alone]
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


# tilt's words for "not there yet": pending, not ready, waiting on another resource. Never a cause.
PENDING = frozenset({"NotBuilt", "NotReady", "Blocked", None})


def failed_on_evidence(member: ResourceResult) -> bool:
    """A member failed by its own doing: a workload the readiness watch blamed, or a tilt resource that
    failed with a reason of its own (a build, a command, the Tiltfile, a runtime error)."""
    if member.ok or not member.finished:
        return False
    return not (member.source == "tilt" and member.reason in PENDING)


def _component(resource: ResourceResult, workloads: list[ResourceResult]) -> ResourceResult:
    """One verdict for a tilt resource (or an unowned workload) and its members."""
    members = [resource, *workloads]
    failed = [m for m in members if failed_on_evidence(m)]
    ready = [w.ready_seconds for w in workloads if w.ready_seconds is not None]
    ok = all(m.ok for m in members)
    if failed:
        cause = _cause(failed)
    elif ok:
        cause = None
    else:  # not finished: say what it was doing, a workload's words before tilt's
        cause = next((w for w in workloads if not w.ok), resource if not resource.ok else None)
    return dataclasses.replace(
        resource,
        ok=ok,
        finished=bool(failed) or ok,
        reason=cause.reason if cause else resource.reason,
        message=cause.message if cause else resource.message,
        logs=(cause.logs if cause and cause.logs else resource.logs),
        ready_seconds=resource.ready_seconds if resource.ready_seconds is not None
        else max(ready, default=None),
        workloads=[w.name for w in workloads] or resource.workloads,
        spans=[*resource.spans, *(s for w in workloads for s in w.spans)],
    )


def _cause(candidates: Iterable[ResourceResult]) -> ResourceResult | None:
    """The most telling failure: a workload's over tilt's (its reason is more concrete)."""
    ranked = sorted((c for c in candidates if not c.ok), key=lambda c: c.source == "tilt")
    return ranked[0] if ranked else None


def _verdicts(components: list[ResourceResult]) -> list[ResourceResult]:
    """Failed only on evidence of its own; the rest not finished, blocked by whom it waits on.

    With no failure anywhere (tilt ci timed out, or pyci's readiness limit ran out on everything still
    starting) the run ended on the unfinished ones that wait on nobody: their own time ran out."""
    out = list(components)
    if not any(c.status is Status.FAILED for c in out):
        out = [_ran_out(c) if not c.ok and not c.blocked_by else c for c in out]
    status = {c.name: c for c in out}
    return [_blocked(c, status) if not c.ok and not c.finished and c.blocked_by else c for c in out]


def _ran_out(component: ResourceResult) -> ResourceResult:
    """Failed because the run's time ran out on it: a Timeout, saying what it was still doing."""
    doing = component.message or component.reason or "not ready"
    return dataclasses.replace(component, finished=True, reason="Timeout",
                               message=f"its time ran out while it was: {doing}")


def _blocked(component: ResourceResult, by_name: dict[str, ResourceResult]) -> ResourceResult:
    """`blocked by db (failed)`: what it waits on and how that ended, the failed first.

    A dependency that is itself only waiting on one of those failures is left out (seen: "blocked by
    uncategorized (not finished), compile (failed)" where uncategorized waited on compile too); one
    waiting on another failure names it: `api (not finished, waiting on db)`."""
    direct = [n for n in component.blocked_by if n != component.name]
    failed = [n for n in direct if n in by_name and by_name[n].status is Status.FAILED]
    words = [f"{n} (failed)" for n in failed]
    for name in direct:
        other = by_name.get(name)
        if name in failed:
            continue
        if other is None:
            words.append(name)
            continue
        behind = [f for f in _failed_behind(name, by_name) if f not in failed]
        if behind:
            words.append(f"{name} ({other.status.value}, waiting on {', '.join(behind)})")
        elif not failed or not _failed_behind(name, by_name):
            words.append(f"{name} ({other.status.value})")
    return dataclasses.replace(component, reason="Blocked", message=f"blocked by {', '.join(words)}")


def _failed_behind(name: str, by_name: dict[str, ResourceResult]) -> list[str]:
    """The failed components `name` waits on, through any chain of waits (in the order first met)."""
    found: list[str] = []
    seen = {name}
    queue = list(by_name[name].blocked_by) if name in by_name else []
    while queue:
        dep = queue.pop(0)
        if dep in seen or dep not in by_name:
            continue
        seen.add(dep)
        if by_name[dep].status is Status.FAILED:
            found.append(dep)
        else:
            queue.extend(by_name[dep].blocked_by)
    return found


def root_causes(components: Sequence[ResourceResult]) -> list[ResourceResult]:
    """What the headline names and annotations mark: the failed components, never the unfinished."""
    return [c for c in components if rendering(c.status).annotate]


def app_failed(components: Sequence[ResourceResult]) -> bool:
    """Whether these components say the app did not start (exit 1), by the one status table."""
    return any(rendering(c.status).fails_run for c in components)
