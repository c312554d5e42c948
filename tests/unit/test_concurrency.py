"""concurrently(): a signal the kernel hands to a stage thread still cancels at once (CI: 31 s late)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from pyci import concurrency, signals
from pyci.results import Cancelled


def _stopping(monkeypatch, release: threading.Event) -> list[float]:
    """terminate_children as a kill of the stage's child: it ends the stage; returns when it was called."""
    called: list[float] = []

    def terminate(grace: float = 5.0) -> list[int]:
        called.append(time.monotonic())
        release.set()
        return []

    monkeypatch.setattr(concurrency.processes, "terminate_children", terminate)
    return called


def test_a_sigterm_delivered_to_a_stage_thread_cancels_within_a_poll(monkeypatch) -> None:
    cancel, release, stage = threading.Event(), threading.Event(), []
    stopped = _stopping(monkeypatch, release)

    def busy() -> str:  # stands for `kind create`: a stage thread blocked for a long time
        stage.append(threading.get_ident())
        release.wait(10)
        return "made"

    # What the kernel may do with a process-wide SIGTERM: hand it to a thread other than main.
    def deliver() -> None:
        while not stage:
            time.sleep(0.01)
        signal.pthread_kill(stage[0], signal.SIGTERM)
        threading.Timer(5.0, release.set).start()  # the stage's own end, long after

    threading.Thread(target=deliver, daemon=True).start()
    t0 = time.monotonic()
    with signals.cancel_on_signal(cancel), pytest.raises(Cancelled, match="SIGTERM"):
        concurrency.concurrently(cancel, busy, lambda: "other")
    assert stopped, "the stage's children were never stopped"
    assert stopped[0] - t0 < 1.5, f"children stopped only after {stopped[0] - t0:.1f}s (stage ends at 5 s)"
    assert cancel.is_set()


def test_results_come_back_in_call_order() -> None:
    cancel = threading.Event()

    def slow() -> str:
        time.sleep(0.3)
        return "slow"

    assert concurrency.concurrently(cancel, slow, lambda: "fast") == ["slow", "fast"]


def test_a_cancel_set_without_a_raise_stops_the_wait(monkeypatch) -> None:
    cancel, release = threading.Event(), threading.Event()
    stopped = _stopping(monkeypatch, release)
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        concurrency.concurrently(cancel, lambda: release.wait(10))
    assert stopped and stopped[0] - t0 < 1.5
