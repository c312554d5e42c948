"""Cluster providers: kind (created per run) or an existing cluster."""

from __future__ import annotations

import logging
from pathlib import Path

from pyci.cluster.base import ClusterInfo, ClusterProvider
from pyci.cluster.existing import ExistingProvider
from pyci.cluster.kind import KindProvider
from pyci.results import InputError
from pyci.settings import Settings

__all__ = ["ClusterInfo", "ClusterProvider", "ExistingProvider", "KindProvider", "get_provider"]

log = logging.getLogger("pyci.pipeline")


def get_provider(settings: Settings, workdir: Path) -> ClusterProvider:
    if settings.cluster == "kind":
        if settings.node_image and settings.kubernetes_version:
            log.info("node-image %s wins over kubernetes-version %s", settings.node_image,
                     settings.kubernetes_version)
        return KindProvider(
            settings.cluster_name, workdir, kind_config=settings.kind_config,
            node_image=settings.kind_node_image,
        )
    if settings.cluster == "existing":
        return ExistingProvider(settings.kubeconfig)
    raise InputError(f"cluster must be kind or existing, not {settings.cluster!r}")
