"""Cleanup that does not depend on pyci surviving: a reaper container beside pyci's own.

GitHub cancels a docker action with `docker stop`/`docker kill` of the action's container: pyci and
its children (kind, tilt) die with it, and no signal handler runs to completion. When pyci runs as a
container on the daemon (SIBLING), it first starts a small reaper from its own image, with its own
mounts (the docker socket) and PATH: `pyci reap` waits for pyci's container to end and then removes
everything labelled with the run's id (`pyci cleanup --run-id`), the ownership marker included, so
even a cluster half made by `kind create` goes. A run that ends normally removes its reaper last.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from pyci import cleanup
from pyci.settings import LABEL_REAPER

log = logging.getLogger(__name__)



def start(client: Any, own_container_id: str, run_id: str, stack: contextlib.ExitStack) -> Any | None:
    """Start the reaper; registered on the stack first, so a normal run removes it last."""
    try:
        own = client.containers.get(own_container_id)
        reaper = client.containers.run(
            own.image.id,
            ["reap", "--container", own_container_id, "--run-id", run_id],
            entrypoint=["pyci"],
            name=f"pyci-reaper-{run_id}",
            labels={LABEL_REAPER: run_id},
            volumes_from=[own_container_id],  # the docker socket, as pyci has it
            environment={"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin")},
            network_mode="none",  # it talks to the daemon through the socket only
            detach=True,
            auto_remove=True,
        )
    except Exception as err:  # noqa: BLE001 - docker.errors.*: the run goes on, cancel-safety degraded
        log.warning("could not start the reaper (a killed run would leave its cluster): %s", err)
        return None
    stack.callback(_remove, reaper)
    log.info("reaper %s watches this container", reaper.name)
    return reaper


def _remove(reaper: Any) -> None:
    with contextlib.suppress(Exception):  # gone already
        reaper.remove(force=True)


def reap(client: Any, container_id: str, run_id: str) -> list[str]:
    """Wait for the container to end, then remove what the run made; returns the problems."""
    with contextlib.suppress(Exception):  # already gone: clean up at once
        client.containers.get(container_id).wait()
    print(f"pyci reaper: container {container_id[:12]} ended; removing what run {run_id} made", flush=True)
    return cleanup.remove_labelled(client, run_id)
