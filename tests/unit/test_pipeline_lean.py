"""Where pyci saves its own seconds: registry and cluster are undone side by side, and the stages'
imports run while tilt reads the Tiltfile."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from pyci import concurrency, pipeline


def test_independent_stacks_close_at_once_and_all_close_when_one_fails() -> None:
    started: list[float] = []
    closed: list[str] = []

    def slow(name: str) -> None:
        started.append(time.monotonic())
        time.sleep(0.3)
        closed.append(name)

    def boom() -> None:
        raise RuntimeError("kind delete failed")

    registry, cluster = contextlib.ExitStack(), contextlib.ExitStack()
    registry.callback(slow, "registry")
    cluster.callback(slow, "cluster")
    cluster.callback(boom)  # runs first (last in, first out), the cluster's own undo still runs
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="kind delete failed"):
        concurrency.close_together(registry, cluster)
    assert sorted(closed) == ["cluster", "registry"]
    assert time.monotonic() - t0 < 0.55  # side by side: not 0.6 s one after the other
    assert abs(started[0] - started[1]) < 0.2


def test_stage_imports_can_run_beside_the_main_thread() -> None:
    thread = threading.Thread(target=pipeline._import_stages)
    thread.start()
    thread.join(30)
    import sys

    assert not thread.is_alive() and "kubernetes.client" in sys.modules and "pyci.readiness" in sys.modules
