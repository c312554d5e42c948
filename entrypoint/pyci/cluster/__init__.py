"""Cluster providers: kind (created per run) or an existing cluster."""

from __future__ import annotations

from pathlib import Path

from pyci.cluster.base import ClusterInfo, ClusterProvider
from pyci.cluster.existing import ExistingProvider
from pyci.cluster.kind import KindProvider
from pyci.results import InputError
from pyci.settings import Settings

__all__ = ["ClusterInfo", "ClusterProvider", "ExistingProvider", "KindProvider", "get_provider"]


def get_provider(settings: Settings, workdir: Path) -> ClusterProvider:
    if settings.cluster == "kind":
        return KindProvider(
            settings.cluster_name, workdir, kind_config=settings.kind_config, node_image=settings.node_image
        )
    if settings.cluster == "existing":
        return ExistingProvider(settings.kubeconfig)
    raise InputError(f"cluster must be kind or existing, not {settings.cluster!r}")
