"""Host limits, checked before anything is created, and only when this run will create a kind cluster.

A kind cluster on a host that cannot carry it fails minutes later with a message about something else
(kubelet's "too many open files", an image pull out of space, a node that never becomes Ready). These
checks turn that into one line and exit 2 at the start, with nothing made:
- inotify (fs.inotify.max_user_instances / max_user_watches): kind's known issues ask for 512 / 524288.
  Below that pyci raises them when it may (root, /proc/sys writable: a host, not a container) and puts
  the old values back at cleanup, like anything else it changed; it cannot raise them, it stops below
  the hard minimums (128 / 8192) and warns in between;
- free disk in the daemon's data root (a node image and the app's images need about 3 GB), where pyci
  sees the daemon's file system (topology host);
- Docker 20.10 or newer (kind's minimum);
- cgroup v1 with Kubernetes 1.35 or newer (kind's node images from 1.35 on need cgroup v2).
The judges are pure functions of the values; `check` reads the values and acts on the verdicts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyci import node_images
from pyci.ownership import KIND_CLUSTER_LABEL
from pyci.results import ExitCode, PyciError

log = logging.getLogger("pyci.pipeline")

INOTIFY = Path("/proc/sys/fs/inotify")
# name: (what kind asks for, below this a cluster does not come up)
INOTIFY_LIMITS = {"max_user_instances": (512, 128), "max_user_watches": (524288, 8192)}
MIN_FREE_BYTES = 3 * 1024**3
MIN_DOCKER = (20, 10)
LAST_MINOR_ON_CGROUP_V1 = (1, 34)

OK, RAISE, WARN, STOP = "ok", "raise", "warn", "stop"


class HostLimitError(PyciError):
    """The host cannot carry a kind cluster (exit 2: the user fixes the host; nothing was created)."""

    exit_code = ExitCode.BAD_INPUT


# --- the judges: values in, a verdict out ---
def judge_inotify(name: str, value: int, can_raise: bool) -> tuple[str, str]:
    """(OK | RAISE | WARN | STOP, the line to print) for one fs.inotify limit."""
    want, floor = INOTIFY_LIMITS[name]
    if value >= want:
        return OK, ""
    if can_raise:
        return RAISE, f"fs.inotify.{name}: raised from {value} to {want} for this run"
    fix = f"`sysctl -w fs.inotify.{name}={want}` on the Docker host"
    if value < floor:
        return STOP, f"fs.inotify.{name} is {value}, below the {floor} a kind cluster needs: run {fix}"
    return WARN, (f"fs.inotify.{name} is {value}, less than the {want} kind asks for: pods that watch "
                  f"files may fail with 'too many open files'; {fix} raises it")


def disk_problem(free_bytes: int, root: str) -> str | None:
    if free_bytes >= MIN_FREE_BYTES:
        return None
    return (f"only {free_bytes / 1024**3:.1f} GB free in the Docker data root {root}: a kind node image "
            f"and the app's images need {MIN_FREE_BYTES // 1024**3} GB; free some (`docker system prune`)")


def docker_problem(server_version: str) -> str | None:
    found = re.match(r"(\d+)\.(\d+)", server_version or "")
    if found is None:
        return None  # a version pyci cannot read is not a reason to stop
    if (int(found.group(1)), int(found.group(2))) >= MIN_DOCKER:
        return None
    return (f"Docker {server_version} is older than {'.'.join(map(str, MIN_DOCKER))}, the oldest kind "
            f"supports: upgrade the Docker daemon")


def cgroup_problem(cgroup_version: str, minor: tuple[int, int] | None) -> str | None:
    if str(cgroup_version) != "1" or minor is None or minor <= LAST_MINOR_ON_CGROUP_V1:
        return None
    wanted = ".".join(map(str, minor))
    return (f"Kubernetes {wanted} does not run on cgroup v1, which this Docker host uses: pick "
            f"kubernetes-version {'.'.join(map(str, LAST_MINOR_ON_CGROUP_V1))} or older, or a host with "
            f"cgroup v2")


# --- the thin reader and writer ---
def read_limit(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None  # not Linux, or /proc hidden: nothing to judge


def writable(path: Path) -> bool:
    """Root with write access: on a host, not in a container (its /proc/sys is read-only)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and os.access(path, os.W_OK)


def write_limit(path: Path, value: int) -> bool:
    try:
        path.write_text(f"{value}\n", encoding="ascii")
    except OSError:
        return False
    return read_limit(path) == value


def restore_limit(path: Path, raised_to: int, original: int, say: Callable[[str], None]) -> None:
    """Put the old value back, unless someone changed it since (then theirs stands)."""
    if read_limit(path) == raised_to and write_limit(path, original):
        say(f"fs.inotify.{path.name}: restored to {original}")


# --- the stage ---
def applies(settings: Any, client: Any) -> bool:
    """Only a run that creates a kind cluster: not `cluster: existing`, not a kind cluster it reuses."""
    if settings.cluster != "kind":
        return False
    label = f"{KIND_CLUSTER_LABEL}={settings.cluster_name}"
    return not client.containers.list(all=True, filters={"label": [label]})


def check(settings: Any, client: Any, topology: str, stack: contextlib.ExitStack,
          say: Callable[[str], None], warn: Callable[[str], None], folder: Path | None = None) -> None:
    """Stop (HostLimitError, one line) before changing anything, else raise what may be raised (its undo
    on `stack`) and warn about the rest. `topology` is host, sibling or remote."""
    info = client.info()
    minor = node_images.minor_of(settings.node_image, settings.kubernetes_version)
    stops = [p for p in (docker_problem(str(info.get("ServerVersion") or "")),
                         cgroup_problem(str(info.get("CgroupVersion") or ""), minor)) if p]
    root = str(info.get("DockerRootDir") or "")
    if topology == "host" and root:  # only then is the daemon's data root this file system's
        with contextlib.suppress(OSError):
            stops += [p for p in (disk_problem(shutil.disk_usage(root).free, root),) if p]
    # inotify is the kernel's: the same for a sibling container, another machine's for a remote daemon.
    verdicts = _inotify_verdicts(folder or INOTIFY) if topology in ("host", "sibling") else []
    stops += [line for _, _, (action, line) in verdicts if action == STOP]
    if stops:
        raise HostLimitError("; ".join(stops))
    for path, value, (action, line) in verdicts:
        if action == RAISE:
            want = INOTIFY_LIMITS[path.name][0]
            if not write_limit(path, want):
                action, line = judge_inotify(path.name, value, can_raise=False)
                if action == STOP:  # what was raised already is put back by the stack
                    raise HostLimitError(line)
            else:
                stack.callback(restore_limit, path, want, value, say)
        if action in (RAISE, WARN):
            (say if action == RAISE else warn)(line)


def _inotify_verdicts(folder: Path) -> list[tuple[Path, int, tuple[str, str]]]:
    found = []
    for name in INOTIFY_LIMITS:
        path = folder / name
        value = read_limit(path)
        if value is not None:
            found.append((path, value, judge_inotify(name, value, writable(path))))
    return found
