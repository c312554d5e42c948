"""Reading one tilt UIResource (`tilt get uiresources -o json`, or a snapshot's `view.uiResources`).

Shared by the snapshot parser and the live poller; pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

TILTFILE_RESOURCE = "(Tiltfile)"  # tilt's name for the Tiltfile's own resource
HELD_GRACE = 5.0  # seconds after the Tiltfile loaded: tilt settles enable statuses in milliseconds

WAIT_REASONS = {
    "waiting-for-dep": "waiting for dependencies",
    "waiting-for-pod": "waiting for pod",
    "waiting-for-cluster": "waiting for cluster",
    "disabled": "disabled",
    "unknown": "waiting",
}


def parse_time(value: Any) -> float | None:
    """RFC 3339 (with or without fractions) -> POSIX seconds; None for empty or zero times."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python 3.11 accepts at most 6 fraction digits; Go prints up to 9.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def view(snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
    """A snapshot's `view`, or the object itself (a `tilt get ... -o json` list)."""
    inner = snapshot.get("view", snapshot)
    return inner if isinstance(inner, Mapping) else {}


def uiresources(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = view(snapshot).get("uiResources") or view(snapshot).get("items") or []
    return [r for r in items if isinstance(r, dict)]


def name(resource: Mapping[str, Any]) -> str:
    return str((resource.get("metadata") or {}).get("name", ""))


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def is_disabled(status: Mapping[str, Any]) -> bool:
    return (status.get("disableStatus") or {}).get("state") == "Disabled"


def one_line(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def blocked_on(status: Mapping[str, Any], own_name: str = "") -> list[str]:
    """The resources a pending resource waits on (`resource_deps`, an image another builds).

    tilt's `waiting.on` also names the resource itself when it is held for its own enable status
    (reason `tiltfile-reload`): that is not a dependency, so it is left out.
    """
    waiting = status.get("waiting") or {}
    if waiting.get("reason") == "tiltfile-reload":
        return []
    found: list[str] = []
    for ref in waiting.get("on") or []:
        ref_name = str(ref.get("name") or "")
        if ref_name and ref_name != own_name and ref_name not in found:
            found.append(ref_name)
    return found


def waiting_on(status: Mapping[str, Any], own_name: str = "") -> str:
    """What a pending resource waits on, in words ("waiting on db"). A resource tilt holds for its
    own enable status is named as "its own", not in a list beside the others (read as a dependency)."""
    waiting = status.get("waiting") or {}
    names = [str(ref.get("name")) for ref in waiting.get("on") or [] if ref.get("name")]
    if waiting.get("reason") == "tiltfile-reload" and names:
        others = ", ".join(n for n in names if n != own_name)
        if own_name not in names:
            return f"held for the enable status of {others}"
        return f"held for its own enable status and that of {others}" if others else \
            "held for its own enable status"
    if names:
        return "waiting on " + ", ".join(names)
    reason = str(waiting.get("reason") or "")
    return WAIT_REASONS.get(reason, reason.replace("-", " "))


def held_on_enable(snapshot: Mapping[str, Any], now: float) -> list[str]:
    """UIResources tilt holds for an enable status that is already set, `HELD_GRACE` s after the
    Tiltfile loaded: such a resource never starts, and tilt ci waits out its whole timeout.

    Why (tilt v0.37.6, internal/store/uiresources/reducers.go): the engine copies a UIResource's
    enable state into its manifest only on an update, never on the first upsert it sees. When the
    UIResource's creation and its first status write reach tilt's controller as one event (a race,
    seen once in ~700 real-kind runs), the manifest's state stays pending and its build is held
    with reason `tiltfile-reload`. Any later write to the UIResource lets the engine see it.
    """
    items = {name(r): r for r in uiresources(snapshot)}
    tiltfile = (items.get(TILTFILE_RESOURCE) or {}).get("status") or {}
    history = tiltfile.get("buildHistory") or []
    loaded = parse_time(history[0].get("finishTime")) if history else None
    if tiltfile.get("updateStatus") != "ok" or loaded is None or now - loaded < HELD_GRACE:
        return []  # still loading, reloading or failed: a hold is expected then
    held: list[str] = []
    for resource in items.values():
        status = resource.get("status") or {}
        waiting = status.get("waiting") or {}
        if status.get("updateStatus") != "pending" or waiting.get("reason") != "tiltfile-reload":
            continue
        for ref in waiting.get("on") or []:
            ref_name = str(ref.get("name") or "")
            ref_status = (items.get(ref_name) or {}).get("status") or {}
            state = (ref_status.get("disableStatus") or {}).get("state")
            if ref.get("kind") == "UIResource" and state == "Enabled" and ref_name not in held:
                held.append(ref_name)
    return held
