"""TEST-ONLY: hold a run at a named point, so the cancel matrix (tools/cancel-matrix) can hit it.

`PYCI_TEST_PAUSE_AT=<point>` makes the run print `pyci-test-hook: paused at <point>` on stderr when it
gets there and wait: until the run is cancelled, or `PYCI_TEST_PAUSE_SECONDS` (default 120) pass,
then it goes on as if nothing happened. Without the variable (every real run) `pause` returns at once.
Points: claimed (ownership marker made, nothing else yet), registry (registry container started, not
yet checked), connect, tilt (before `tilt ci` starts), readiness, diagnostics, cleanup.
"""

from __future__ import annotations

import os
import sys
import threading

ENV = "PYCI_TEST_PAUSE_AT"
POINTS = ("claimed", "registry", "connect", "tilt", "readiness", "diagnostics", "cleanup")


def pause(point: str, cancel: threading.Event | None = None) -> None:
    if os.environ.get(ENV) != point:
        return
    sys.stderr.write(f"pyci-test-hook: paused at {point}\n")
    sys.stderr.flush()
    # In the main thread a signal handler raising Cancelled interrupts the wait; other threads wake on
    # the run's cancel event.
    (cancel or threading.Event()).wait(float(os.environ.get("PYCI_TEST_PAUSE_SECONDS") or 120))
