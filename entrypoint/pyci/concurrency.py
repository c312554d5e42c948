"""Independent stages side by side, and their undo side by side; cancel-aware, and saying what waits."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyci import processes
from pyci.results import Cancelled

log = logging.getLogger("pyci.pipeline")
T = TypeVar("T")
POLL = 0.2  # seconds: the longest a signal waits for the main thread to notice it


def concurrently(cancel: threading.Event, *calls: Callable[[], Any]) -> list[Any]:
    """Run independent stages side by side; the first failure wins, the others are awaited.

    A cancel can land anywhere in here, also between two submits: then the children (kind) are
    stopped before the pool waits for its threads, and a call that had not started yet never does.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="stage")
    futures: list[concurrent.futures.Future[Any]] = []
    try:
        for call in calls:
            futures.append(pool.submit(_unless_cancelled, cancel, call))
        _wait_first_exception(cancel, futures)
        errors = [f.exception() for f in futures if f.done() and f.exception()]
        if errors:
            cancel.set()
            processes.terminate_children(grace=5.0)
            concurrent.futures.wait(futures, timeout=20)
            raise errors[0]  # type: ignore[misc]
        return [f.result() for f in futures]
    except Cancelled:
        cancel.set()
        t0 = time.monotonic()
        said = False
        # Again and again: a stage thread may start its child (kind) just after a sweep, and a kind
        # that is not stopped runs its create to the end (seen: 49.9 s after a Ctrl-C).
        while time.monotonic() - t0 < 20:
            processes.terminate_children(grace=5.0)
            _, pending = concurrent.futures.wait(futures, timeout=0.5)
            if not pending:
                break
            if not said and time.monotonic() - t0 > 3:  # say what it waits on: a busy daemon, likely
                log.info("cancelled: waiting for %s", "; ".join(where_threads("stage")))
                said = True
        log.info("cancelled: registry and cluster stages stopped in %.1fs", time.monotonic() - t0)
        raise
    finally:
        pool.shutdown(wait=True)


def _wait_first_exception(cancel: threading.Event, futures: list[concurrent.futures.Future[Any]]) -> None:
    """Until all are done or one failed, in short waits: Python runs a signal handler only in the
    main thread, and only when that thread runs; a SIGTERM the kernel hands to a stage thread (busy
    in `kind create`) leaves a main thread blocked in one long wait asleep until kind ends (seen:
    cancelled 31 s late, under load). Each wake runs a pending handler, which raises Cancelled."""
    while True:
        done, pending = concurrent.futures.wait(futures, timeout=POLL,
                                                return_when=concurrent.futures.FIRST_EXCEPTION)
        if cancel.is_set():  # set without a raise (a handler before ours): stop all the same
            raise Cancelled("cancelled")
        if not pending or any(f.exception() for f in done):
            return


def _unless_cancelled(cancel: threading.Event, call: Callable[[], T]) -> T:
    if cancel.is_set():
        raise Cancelled("cancelled")
    return call()


def where_threads(prefix: str) -> list[str]:
    """`thread at file:line (function)`: the innermost pyci frame of each live thread named prefix*."""
    import sys
    import traceback

    frames = sys._current_frames()
    found = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if not thread.name.startswith(prefix) or frame is None:
            continue
        stack = traceback.extract_stack(frame)
        ours = [f for f in stack if "/pyci/" in f.filename] or stack
        found.append(f"{thread.name} at {Path(ours[-1].filename).name}:{ours[-1].lineno} ({ours[-1].name}), "
                     f"in {Path(stack[-1].filename).name}:{stack[-1].lineno}")
    return found


def close_together(*stacks: contextlib.ExitStack) -> None:
    """Close independent stacks at once (kind delete and the registry's removal take a second or two
    each); every one is closed, then the first error is raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(stacks), thread_name_prefix="undo") as pool:
        futures = [pool.submit(st.close) for st in stacks]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]
