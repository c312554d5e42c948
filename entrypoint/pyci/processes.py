"""Stop our own child processes (kind, tilt, socat, kubectl) when a run is cancelled.

Threads blocked in `subprocess.run` cannot be interrupted from Python; ending their child process
is what unblocks them. Children that lead their own process group (tilt) are stopped as a group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time


def children(pid: int | None = None) -> list[int]:
    """Direct children of `pid` (default: this process), read from /proc."""
    parent = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/stat") as f:
                # The command name may contain spaces and parentheses: split after the last ')'.
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def terminate_children(grace: float = 5.0) -> list[int]:
    """SIGTERM every child (its group if it leads one), SIGKILL what is left after `grace`."""
    pids = children()
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return pids
