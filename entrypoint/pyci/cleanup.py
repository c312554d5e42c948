"""`pyci cleanup`: remove what runs left behind, found by their labels (all runs, or one run id).

The CLI parses, the pipeline runs (undoing its own work on its ExitStack), and this module undoes what
a run could not: a run killed with SIGKILL, or cancelled by `docker kill` (the reaper calls it then).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyci import images, ownership
from pyci.settings import LABEL_MANAGED, LABEL_RUN

KIND_DELETE_TIMEOUT = 300.0
KIND_GET_TIMEOUT = 20.0  # seconds for `kind get nodes`
KIND_SETTLE = 1.0  # seconds for a node a killed `kind create` was still making to show up
_CLUSTER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


def remove_labelled(
    client: Any,
    run_id: str | None,
    dry_run: bool = False,
    delete_cluster: Callable[[str], str | None] | None = None,
) -> list[str]:
    """Remove labelled containers, the kind clusters runs created (their ownership markers name them),
    then labelled networks and the markers. Clusters a run only reused, or a user made, are not named
    by any marker and stay.

    Returns the problems (one line each); an empty list means everything is gone.
    """
    delete_cluster = delete_cluster or kind_delete_cluster
    filters = {"label": [f"{LABEL_MANAGED}=true", *([f"{LABEL_RUN}={run_id}"] if run_id else [])]}
    verb = "would remove" if dry_run else "removed"
    problems: list[str] = []
    containers = client.containers.list(all=True, filters=filters)
    markers = ownership.owned_clusters(client, filters)
    clusters = sorted({name for _, name in markers} - {""})
    deleted: set[str] = set()
    registry_ports = {port for container in containers for port in _registry_ports(container)}
    for container in containers:
        problems += _stop_forwarders(container.name, dry_run)
        problems += _attempt(
            functools.partial(container.remove, force=True, v=True),
            dry_run,
            f"{verb} container {container.name}",
            f"container {container.name}",
        )
    # tilt's pushes leave <registry>/<image>:tilt-<hash> tags in the daemon: they go with the registry.
    doomed = {t for t in (images.tags(client) if registry_ports else set())
              if any(t.startswith(f"localhost:{port}/") for port in registry_ports)}
    # build-ahead's throwaway tags (pyci-ahead/<run id>:...), on images labelled with the run.
    doomed |= {t for t in images.tags(client, filters=filters) if t.startswith("pyci-ahead/")}
    for tag in sorted(doomed):
        problems += _attempt(functools.partial(client.images.remove, tag), dry_run,
                             f"{verb} image tag {tag}", f"image tag {tag}")
    for name in clusters:
        if not _CLUSTER_NAME.fullmatch(name):
            problems.append(f"label {ownership.LABEL_OWNS}={name!r} is not a kind cluster name: skipped")
            continue
        print(f"{'would delete' if dry_run else 'deleting'} kind cluster {name}")
        failure = None if dry_run else delete_cluster(name)
        if failure:
            problems.append(failure)
        else:
            deleted.add(name)
    for network in client.networks.list(filters=filters):
        problems += _attempt(
            network.remove, dry_run, f"{verb} network {network.name}", f"network {network.name}"
        )
    for marker, name in markers:  # kind's network, when the run's kind create made it and none uses it
        made = ownership.owned_network(marker)
        if made and (name in deleted or dry_run):
            problems += _leave_network(client, made, dry_run, verb)
    # kind networks pyci runs made and handed over (another run's nodes were on them): once unused
    for handed in sorted({ownership.handed_over_network(m) for m in ownership.handed_over(client)} - {""}):
        problems += _leave_network(client, handed, dry_run, verb)
    for marker, name in markers:
        if name in deleted:  # a marker stays as long as its cluster does
            problems += _attempt(functools.partial(marker.remove, force=True), dry_run,
                                 f"{verb} ownership marker {marker.name}", f"volume {marker.name}")
    labelled = [*containers, *(marker for marker, _ in markers)]
    runs = {run_id} if run_id else {str((t.attrs.get("Config", {}).get("Labels") or t.attrs.get("Labels")
                                         or {}).get(LABEL_RUN) or "") for t in labelled}
    for workdir in _workdirs(runs - {""}):  # the run's kubeconfigs, when it ran on this machine
        problems += _attempt(functools.partial(shutil.rmtree, workdir), dry_run,
                             f"{verb} temporary folder {workdir}", f"folder {workdir}")
    return problems


def _leave_network(client: Any, name: str, dry_run: bool, verb: str) -> list[str]:
    """kind's network `name`, made by a pyci run: removed when no container is on it (else handed over)."""
    for network in client.networks.list(names=[name]):
        network.reload()
        if network.name == name and not network.attrs.get("Containers"):
            return _attempt(functools.partial(ownership.leave_network, client, name, True), dry_run,
                            f"{verb} network {name}", f"network {name}")
    return []


def _stop_forwarders(container: str, dry_run: bool) -> list[str]:
    """A REMOTE run's local socat forwarders into its socat container: a run killed with SIGKILL
    leaves them listening on this machine (where `pyci cleanup` runs, as the run did)."""
    from pyci import network

    if not container.endswith(network.SOCAT_SUFFIX):
        return []
    problems: list[str] = []
    for pid in network.orphan_forwarders(container):
        what = f"socat forwarder {pid} (into {container})"
        problems += _attempt(functools.partial(network.stop_orphan_forwarder, pid), dry_run,
                             f"{'would stop' if dry_run else 'stopped'} {what}", what)
    return problems


def _registry_ports(container: Any) -> list[int]:
    """The host ports a (running) local registry container of a run publishes its port 5000 on."""
    ports = ((getattr(container, "attrs", None) or {}).get("NetworkSettings") or {}).get("Ports") or {}
    return [int(b["HostPort"]) for b in ports.get("5000/tcp") or [] if str(b.get("HostPort", "")).isdigit()]


def _workdirs(run_ids: set[str]) -> list[Path]:
    """The `pyci-<run id>-*` folders runs made under the temporary directory (pipeline's workdir)."""
    found = []
    for run in sorted(run_ids):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", run):
            continue
        for path in Path(tempfile.gettempdir()).glob(f"pyci-{run}-*"):
            if path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid():
                found.append(path)
    return found


def _attempt(action: Callable[[], object], dry_run: bool, done: str, what: str) -> list[str]:
    if not dry_run:
        try:
            action()
        except Exception as err:  # noqa: BLE001 - docker.errors.APIError and friends: report and go on
            return [f"could not remove {what}: {_one_line(err)}"]
    print(done)
    return []


def kind_delete_cluster(name: str) -> str | None:
    """`kind delete cluster --name NAME`, and again when a node appears after it (a run killed
    during `kind create` may have left a `docker run` of a node in flight); the problem, or None."""
    for _ in range(3):
        failure = _kind_delete_once(name)
        if failure:
            return failure
        time.sleep(KIND_SETTLE)
        found = subprocess.run(["kind", "get", "nodes", "--name", name], capture_output=True, text=True,
                               timeout=KIND_GET_TIMEOUT, check=False)
        nodes = [n for n in found.stdout.split() if n.startswith(f"{name}-")]
        if not nodes:
            return None
        print(f"kind cluster {name}: {', '.join(nodes)} appeared after the delete; deleting again")
    return None


def _kind_delete_once(name: str) -> str | None:
    try:
        done = subprocess.run(
            ["kind", "delete", "cluster", "--name", name],
            capture_output=True,
            text=True,
            timeout=KIND_DELETE_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return f"kind not found on PATH: cannot delete kind cluster {name}"
    except subprocess.TimeoutExpired:
        return f"`kind delete cluster --name {name}` timed out after {KIND_DELETE_TIMEOUT:.0f}s"
    if done.returncode != 0:
        return (
            f"`kind delete cluster --name {name}` failed (exit {done.returncode}): {_one_line(done.stderr)}"
        )
    return None


def _one_line(err: BaseException | str) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
