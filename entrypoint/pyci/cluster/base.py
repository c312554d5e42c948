"""What every cluster provider gives the pipeline."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    kubeconfig: Path  # reachable from the daemon's host (mode 0600)
    internal_kubeconfig: Path | None  # reachable from the cluster's docker network (kind --internal)
    context: str
    nodes: tuple[str, ...] = ()  # node container names on the daemon
    network: str | None = None  # docker network the nodes are on, e.g. "kind"


class ClusterProvider(Protocol):
    name: str

    def create(self, stack: contextlib.ExitStack) -> ClusterInfo:
        """Create (or reuse) the cluster; register its deletion on `stack` unless it was reused."""
        ...

    def delete(self) -> None: ...


def write_private(path: Path, text: str) -> Path:
    """Write a file only its owner can read (kubeconfigs hold credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to an existing file
    return path
