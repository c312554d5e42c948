"""What a run owns on the daemon: a labelled marker made before `kind create` starts.

kind labels its node containers with kind's labels only, so after a SIGKILL (or `docker kill` of the
action's container) nothing on the nodes says a pyci run made them. The marker, a docker volume (no
image needed, ~10 ms), names the cluster the run is creating. `pyci cleanup` deletes exactly the
clusters markers name: never a cluster a user made by hand, nor one a run only reused.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from pyci.results import InfrastructureError
from pyci.settings import LABEL_MANAGED, LABEL_RUN

log = logging.getLogger(__name__)

LABEL_OWNS = "io.pyci.owns-cluster"
LABEL_OWNS_NETWORK = "io.pyci.owns-network"  # the docker network kind made for this run's cluster


def marker_name(cluster_name: str) -> str:
    return f"pyci-owner-{cluster_name}"


def claim_cluster(client: Any, cluster_name: str, run_id: str, stack: contextlib.ExitStack,
                  network: str | None = None) -> None:
    """Record that this run creates `cluster_name` (and `network`, when kind will make it for this
    run); the marker goes last, after the cluster.

    Docker returns an existing volume of the same name instead of failing: a marker of another run
    means that run is creating this very cluster, so this one stops before touching it.
    """
    labels = {LABEL_MANAGED: "true", LABEL_RUN: run_id, LABEL_OWNS: cluster_name,
              **({LABEL_OWNS_NETWORK: network} if network else {})}
    try:
        volume = client.volumes.create(name=marker_name(cluster_name), labels=labels)
    except Exception as err:  # noqa: BLE001 - docker.errors.APIError and friends
        raise InfrastructureError(f"could not record ownership of cluster {cluster_name}", str(err)) from err
    found = volume.attrs.get("Labels") or {}
    if found.get(LABEL_RUN) != run_id:
        raise InfrastructureError(
            f"cluster {cluster_name} is being created by another pyci run ({found.get(LABEL_RUN)}): "
            "leave cluster-name empty for a name of this run's own, or pick another name"
        )
    stack.callback(release, volume)


def release(volume: Any) -> None:
    with contextlib.suppress(Exception):  # already gone, or the daemon is: `pyci cleanup` finds it
        volume.remove(force=True)


def owned_network(marker: Any) -> str:
    return str((marker.attrs.get("Labels") or {}).get(LABEL_OWNS_NETWORK) or "")


def owned_clusters(client: Any, filters: dict[str, list[str]]) -> list[tuple[Any, str]]:
    """(marker, cluster name) for every marker the filters select."""
    return [(v, str((v.attrs.get("Labels") or {}).get(LABEL_OWNS) or ""))
            for v in client.volumes.list(filters=filters)]
