"""The pipeline's readiness wiring: one Sentinel watches across tilt ci and readiness, none without `wait`."""

from __future__ import annotations

import io
from typing import Any

import pytest

from pyci import pipeline, readiness
from pyci.platforms import Local
from pyci.settings import Settings


class FakeSentinel:
    """Records how the readiness stage hands over to the sentinel's watches."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def wait_healthy(self, timeout, per_resource_timeouts, cancel=None):
        self.calls.append((timeout, per_resource_timeouts, cancel))
        return []


def run_state(**settings: Any) -> pipeline.Run:
    return pipeline.Run(settings=Settings(**settings), platform=Local(io.StringIO(), {}))


def test_no_wait_no_sentinel_and_readiness_skipped():
    state = run_state(wait=False)
    with pipeline._workload_watch(state, api=None) as sentinel:
        assert sentinel is None
    assert pipeline._readiness(state, None, tilt_ok=True) == []
    assert [(s.name, s.skipped) for s in state.stages] == [("readiness", True)]


def test_wait_watches_with_a_sentinel_on_the_run_namespaces():
    state = run_state(namespaces=("app",), max_restarts=7)
    watch = pipeline._workload_watch(state, api=None)  # not entered: no watch starts
    assert isinstance(watch, readiness.Sentinel)
    assert (watch._waiter.namespaces, watch._waiter.max_restarts) == (("app",), 7)


@pytest.mark.parametrize(
    ("tilt_ok", "wait_timeout", "expected"),
    [(True, 300.0, 300.0), (False, 300.0, pipeline.EXPLAIN_AFTER_TILT_FAILURE), (False, 5.0, 5.0)],
)
def test_readiness_waits_on_the_sentinel_for_the_wait_timeout_or_to_explain_a_tilt_failure(
    tilt_ok, wait_timeout, expected
):
    state = run_state(wait_timeout=wait_timeout, readiness_timeouts={"job/migrate": 600.0})
    sentinel = FakeSentinel()
    pipeline._readiness(state, sentinel, tilt_ok=tilt_ok)  # type: ignore[arg-type]
    assert sentinel.calls == [(expected, {"job/migrate": 600.0}, state.cancel)]
    assert [(s.name, s.ok) for s in state.stages] == [("readiness", True)]
