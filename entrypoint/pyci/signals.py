"""SIGTERM and SIGINT during a run (cancel where the main thread is) and during cleanup (remembered)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from pyci.results import Cancelled


@contextlib.contextmanager
def cancel_on_signal(cancel: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT: remember it and raise Cancelled where the main thread is now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if cancel.is_set():
            return
        cancel.set()
        raise Cancelled(f"cancelled by {signal.Signals(signum).name}")

    with _handled_by(handler):
        yield


@contextlib.contextmanager
def deferred(remember: Callable[[str], None], late: threading.Event) -> Iterator[None]:
    """While cleanup runs: a signal is remembered (`remember(name)`; the run ends cancelled), never
    raised."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        remember(signal.Signals(signum).name)
        late.set()

    with _handled_by(handler):
        yield


@contextlib.contextmanager
def _handled_by(handler: Callable[[int, object], None]) -> Iterator[None]:
    """SIGTERM and SIGINT go to `handler` inside the block; the previous handlers come back after."""
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
