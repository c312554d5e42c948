"""`kubernetes-version` → the kind node image built for the bundled kind release, pinned by digest.

kind supports a node image only with the kind release it was built for (and warns that a tag alone
may name an image built for another release), so the table is per kind release and the digests are
the release notes' own. A test fails when versions.env moves kind and this table stays behind.

Source: the "Images pre-built for this release" list of kind v0.30.0's release notes
(https://github.com/kubernetes-sigs/kind/releases/tag/v0.30.0), checked against the notes as quoted
by Renovate's kind v0.29.0 → v0.30.0 pull requests (cloudnative-pg/postgres-trunk-containers#97) and
mongodb/mongodb-kubernetes#496 (v1.34.0); not pulled here (the lab has no Docker Hub).
"""

from __future__ import annotations

import re

KIND_VERSION = "v0.30.0"
# Newest first: a minor resolves to the first patch listed for it.
IMAGES: dict[str, str] = {
    "1.34.0": "kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a",
    "1.33.4": "kindest/node:v1.33.4@sha256:25a6018e48dfcaee478f4a59af81157a437f15e6e140bf103f85a2e7cd0cbbf2",
    "1.32.8": "kindest/node:v1.32.8@sha256:abd489f042d2b644e2d033f5c2d900bc707798d075e8186cb65e3f1367a9d5a1",
    "1.31.12": "kindest/node:v1.31.12@sha256:0f5cc49c5e73c0c2bb6e2df56e7df189240d83cf94edfa30946482eb08ec57d2",  # noqa: E501
}
DEFAULT = "1.34.0"  # what kind v0.30.0 creates when given no image

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
_TAG = re.compile(r":v(\d+)\.(\d+)(?:\.\d+)?(?:@|$)")


def supported() -> str:
    """The versions a user may ask for, as an error message lists them."""
    minors = ", ".join(dict.fromkeys(v.rsplit(".", 1)[0] for v in IMAGES))
    return f"{minors} or one of {', '.join(IMAGES)} (a leading v is accepted)"


def resolve(version: str) -> str:
    """The full version in the table for `1.33`, `v1.33.4`, …; ValueError saying what is supported."""
    match = _VERSION.fullmatch(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a Kubernetes version")
    major, minor, patch = match.groups()
    wanted = f"{int(major)}.{int(minor)}" + (f".{int(patch)}" if patch is not None else "")
    for full in IMAGES:  # newest patch first
        if full == wanted or (patch is None and full.rsplit(".", 1)[0] == wanted):
            return full
    raise ValueError(f"{version!r} has no node image for kind {KIND_VERSION}")


def image(version: str) -> str:
    return IMAGES[resolve(version)]


def minor_of(node_image: str | None, version: str | None) -> tuple[int, int] | None:
    """The Kubernetes minor a cluster will run: the node image's tag when it says (`…:v1.35.0…`),
    else the kubernetes-version, else kind's default; None for an image whose tag does not say."""
    if node_image:
        found = _TAG.search(node_image)
        return (int(found.group(1)), int(found.group(2))) if found else None
    major, minor = resolve(version or DEFAULT).split(".")[:2]
    return int(major), int(minor)
