"""What a run owns on the daemon: a labelled marker made before `kind create` starts.

kind labels its node containers with kind's labels only, so after a SIGKILL (or `docker kill` of the
action's container) nothing on the nodes says a pyci run made them. The marker, a docker volume (no
image needed, ~10 ms), names the cluster the run is creating. `pyci cleanup` deletes exactly the
clusters markers name: never a cluster a user made by hand, nor one a run only reused.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from typing import Any

from pyci import daemon
from pyci.results import InfrastructureError
from pyci.settings import LABEL_MANAGED, LABEL_REAPER, LABEL_RUN

log = logging.getLogger(__name__)

LABEL_OWNS = "io.pyci.owns-cluster"
LABEL_OWNS_NETWORK = "io.pyci.owns-network"  # the docker network kind made for this run's cluster
# kind's network, made by a pyci run that ended while another run's nodes were still on it
LABEL_MADE_NETWORK = "io.pyci.made-network"
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"
# A marker this young may be a run's that has not started a container yet (its registry, its reaper
# and kind's nodes come seconds after it): never taken over.
FRESH_SECONDS = 120.0


def marker_name(cluster_name: str) -> str:
    return f"pyci-owner-{cluster_name}"


def claim_cluster(client: Any, cluster_name: str, run_id: str, stack: contextlib.ExitStack,
                  network: str | None = None) -> None:
    """Record that this run creates `cluster_name` (and `network`, when kind will make it for this
    run); the marker goes last, after the cluster.

    Docker returns an existing volume of the same name instead of failing: a marker of another run
    means that run is creating this very cluster, so this one stops before touching it, unless that
    run is gone (killed before it could clean up: nothing of it runs, and its marker is not new).
    """
    labels = {LABEL_MANAGED: "true", LABEL_RUN: run_id, LABEL_OWNS: cluster_name,
              **({LABEL_OWNS_NETWORK: network} if network else {})}
    volume = _create(client, cluster_name, labels)
    other = str((volume.attrs.get("Labels") or {}).get(LABEL_RUN))
    if other != run_id:
        alive = signs_of_life(client, other, cluster_name, volume)
        if alive:
            raise InfrastructureError(
                f"cluster {cluster_name} is being created by another pyci run, {other} ({alive}): leave "
                "cluster-name empty for a name of this run's own, or pick another name; if that run is "
                f"gone, `pyci cleanup --run-id {other}` removes what it left"
            )
        log.warning("cluster %s: run %s left its ownership marker and is gone (nothing of it runs): "
                    "this run takes the name over", cluster_name, other)
        release(volume)
        volume = _create(client, cluster_name, labels)
        if (volume.attrs.get("Labels") or {}).get(LABEL_RUN) != run_id:  # another run was faster
            raise InfrastructureError(f"cluster {cluster_name} was claimed by another pyci run just now: "
                                      "leave cluster-name empty for a name of this run's own")
    stack.callback(release, volume)


def _create(client: Any, cluster_name: str, labels: dict[str, str]) -> Any:
    try:
        return client.volumes.create(name=marker_name(cluster_name), labels=labels)
    except Exception as err:  # noqa: BLE001 - docker.errors.APIError and friends
        raise InfrastructureError(f"could not record ownership of cluster {cluster_name}", str(err)) from err


def signs_of_life(client: Any, run_id: str, cluster_name: str, marker: Any, now: float | None = None) -> str:
    """Why the run that made `marker` may still be creating the cluster; "" when nothing says so."""
    for label, what in ((f"{LABEL_RUN}={run_id}", "its container"),
                        (f"{LABEL_REAPER}={run_id}", "its reaper"),
                        (f"{KIND_CLUSTER_LABEL}={cluster_name}", "the cluster's node")):
        running = client.containers.list(filters={"label": [label]})  # running ones only
        if running:
            return f"{what} {running[0].name} is running"
    created = str(marker.attrs.get("CreatedAt") or "")
    try:
        age = (time.time() if now is None else now) - datetime.fromisoformat(created).timestamp()
    except ValueError:
        return "its marker's age is unknown"
    return f"its marker is {age:.0f}s old" if age < FRESH_SECONDS else ""


def release(volume: Any) -> None:
    with contextlib.suppress(Exception):  # already gone, or the daemon is: `pyci cleanup` finds it
        volume.remove(force=True)


def owned_network(marker: Any) -> str:
    return str((marker.attrs.get("Labels") or {}).get(LABEL_OWNS_NETWORK) or "")


def owned_clusters(client: Any, filters: dict[str, list[str]]) -> list[tuple[Any, str]]:
    """(marker, cluster name) for every marker the filters select."""
    return [(v, str((v.attrs.get("Labels") or {}).get(LABEL_OWNS) or ""))
            for v in client.volumes.list(filters=filters)]


def handed_over(client: Any, network: str | None = None) -> list[Any]:
    """The markers of kind networks a pyci run made and could not remove (all, or `network`'s)."""
    label = f"{LABEL_MADE_NETWORK}={network}" if network else LABEL_MADE_NETWORK
    return list(client.volumes.list(filters={"label": [label]}))


def handed_over_network(marker: Any) -> str:
    return str((marker.attrs.get("Labels") or {}).get(LABEL_MADE_NETWORK) or "")


def leave_network(client: Any, network: str, made: bool) -> None:
    """kind's network at the end of a run (kind never removes it). The run that made it removes it once
    no container is on it; while another run's nodes still are, it hands it over (a marker), and the
    last pyci run on it removes it. Without that marker (a network a user made) a run that did not make
    it never touches it. Seen: two runs side by side on `kind`, the one that made it ended first, the
    other had not made it: the empty network stayed."""
    markers = handed_over(client, network)
    if not made and not markers:
        return
    if daemon.remove_network_if_unused(client, network):
        for marker in markers:
            release(marker)
        return
    if made and not markers:
        with contextlib.suppress(Exception):  # a marker left undone leaves an empty network, no more
            marker = client.volumes.create(name=f"pyci-made-network-{network}",
                                           labels={LABEL_MANAGED: "true", LABEL_MADE_NETWORK: network})
            log.info("docker network %s: another run's nodes are still on it; the last pyci run on it "
                     "removes it", network)
            # That run may have looked for a marker, and left, between our look and the marker.
            if daemon.remove_network_if_unused(client, network):
                release(marker)
