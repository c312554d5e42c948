"""What to build ahead: the docker_build targets of tilt's tiltfile-result, in dependency waves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IgnoreDef:
    base_path: str
    patterns: tuple[str, ...] = ()  # none: everything under base_path


@dataclass(frozen=True)
class Target:
    """One docker_build as tilt will build it (from the tiltfile-result's DockerImageSpec)."""

    ref: str  # the selector the manifests use (`hello-api`)
    context: str
    dockerfile_contents: str
    build_args: tuple[str, ...] = ()
    target: str | None = None
    ignores: tuple[IgnoreDef, ...] = ()
    deps: tuple[str, ...] = ()  # image maps this build's FROM / COPY --from name
    platform: str | None = None
    network: str | None = None
    extra_hosts: tuple[str, ...] = ()
    pull: bool = False
    needs_session: str | None = None  # ssh agent or secrets: only a BuildKit session can supply them


def targets(raw: Mapping[str, Any]) -> tuple[list[Target], list[str]]:
    """The docker_build targets of a tiltfile-result, each once; and why others are not built ahead."""
    found: dict[str, Target] = {}
    skipped: list[str] = []
    for manifest in raw.get("Manifests") or []:
        for image in manifest.get("ImageTargets") or []:
            ref = str(image.get("selector") or image.get("DockerImageName") or "")
            details = image.get("BuildDetails") or {}
            if ref in found or ref in skipped:
                continue
            if "dockerfileContents" not in details and "context" not in details:
                skipped.append(ref)  # custom_build: only its own command builds it
                continue
            found[ref] = _target(ref, details)
    return list(found.values()), skipped


def _target(ref: str, spec: Mapping[str, Any]) -> Target:
    ignores = tuple(IgnoreDef(str(i.get("basePath") or ""), tuple(i.get("patterns") or ()))
                    for i in spec.get("contextIgnores") or [] if i.get("basePath"))
    session = ("ssh" if spec.get("sshAgentConfigs") else "secrets" if spec.get("secrets") else None)
    return Target(
        ref=ref,
        context=str(spec.get("context") or ""),
        dockerfile_contents=str(spec.get("dockerfileContents") or ""),
        build_args=tuple(str(a) for a in spec.get("args") or ()),
        target=spec.get("target") or None,
        ignores=ignores,
        deps=tuple(str(d) for d in spec.get("imageMaps") or ()),
        platform=spec.get("platform") or None,
        network=spec.get("network") or None,
        extra_hosts=tuple(spec.get("extraHosts") or ()),
        pull=bool(spec.get("pull")),
        needs_session=session,
    )


def waves(found: Sequence[Target]) -> list[list[Target]]:
    """Targets in dependency order: each wave only needs images of earlier waves."""
    known = {t.ref for t in found}
    done: set[str] = set()
    left = list(found)
    order: list[list[Target]] = []
    while left:
        ready = [t for t in left if all(d in done or d not in known for d in t.deps)]
        if not ready:  # a cycle: tilt will say so; build what is left as if independent
            ready = left
        order.append(ready)
        done |= {t.ref for t in ready}
        left = [t for t in left if t.ref not in done]
    return order


def plan(evaluation: Any) -> tuple[list[Target], list[str], list[str]] | None:
    """What to build and prefetch from the preflight's Evaluation; None when it cannot be read ahead."""
    if evaluation is None or evaluation.unavailable or evaluation.error is not None:
        return None
    found, skipped = targets(evaluation.raw or {})
    if not found and not evaluation.raw:  # an Evaluation made without tilt's JSON (tests, old callers)
        found = [Target(i.ref, i.context or "", i.dockerfile_contents or "", i.build_args, i.target)
                 for i in evaluation.images if not i.custom and i.context]
        skipped = [i.ref for i in evaluation.images if i.custom]
    return found, skipped, list(evaluation.third_party_images)


def split_tag(ref: str) -> tuple[str, str | None]:
    """`repo:tag` as (repo, tag), `latest` when untagged; a digest reference stays whole."""
    if "@" in ref:
        return ref, None
    slash, colon = ref.rfind("/"), ref.rfind(":")
    return (ref[:colon], ref[colon + 1:]) if colon > slash else (ref, "latest")
