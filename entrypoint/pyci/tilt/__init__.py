"""Run `tilt ci` on the user's Tiltfile: stream its log, say what it waits on, read its snapshot.

- `ci`: the `tilt ci` process (`run_ci`, the only entry point with side effects);
- `session`: the Session/UIResource poller (progress lines) and the held-resource nudge;
- `snapshot`, `uiresource`, `logs`: tilt's snapshot and log -> one ResourceResult per resource;
- `failures`: failed commands, builds and Tiltfile loads, named with their evidence.

Everything but `run_ci` and the poller is pure and unit-tested on captured tilt output.
"""

from pyci.tilt.ci import (
    EXTRA_WALL_TIME,
    KILL_GRACE,
    LOG_NAME,
    SNAPSHOT_NAME,
    TiltOutcome,
    _terminate,
    free_port,
    run_ci,
    tilt_command,
    tilt_env,
)
from pyci.tilt.failures import merge_errors
from pyci.tilt.logs import LOG_TAIL_LINES, LogFacts, error_line, log_error, log_facts, split_log_line
from pyci.tilt.session import (
    GET_TIMEOUT,
    NUDGE_ANNOTATION,
    NUDGES,
    Poller,
    nudge_command,
    session_errors,
    waiting_line,
)
from pyci.tilt.snapshot import TILTFILE_RESULT, resource_result, resources_from_snapshot
from pyci.tilt.uiresource import HELD_GRACE, TILTFILE_RESOURCE, held_on_enable, parse_time

_Poller = Poller  # the name tests used before the split

__all__ = [
    "EXTRA_WALL_TIME", "GET_TIMEOUT", "HELD_GRACE", "KILL_GRACE", "LOG_NAME", "LOG_TAIL_LINES", "NUDGES",
    "NUDGE_ANNOTATION", "SNAPSHOT_NAME", "TILTFILE_RESOURCE", "TILTFILE_RESULT", "LogFacts", "Poller",
    "TiltOutcome", "_Poller", "_terminate", "error_line", "free_port", "held_on_enable", "log_error",
    "log_facts", "merge_errors", "nudge_command", "parse_time", "resource_result", "resources_from_snapshot",
    "run_ci", "session_errors", "split_log_line", "tilt_command", "tilt_env", "waiting_line",
]
