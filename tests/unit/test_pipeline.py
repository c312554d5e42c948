"""The pipeline's readiness wiring: one Sentinel watches across tilt ci and readiness, none without `wait`."""

from __future__ import annotations

import io
from typing import Any

import pytest

from pyci import ahead as ahead_steps
from pyci import daemon, pipeline, readiness
from pyci.platforms import Local
from pyci.settings import Settings


class FakeSentinel:
    """Records how the readiness stage hands over to the sentinel's watches."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def wait_healthy(self, timeout, per_resource_timeouts, cancel=None, explaining=False):
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


# --- cancel during cleanup, infrastructure lost (issue 12) -------------------------------------------
def test_a_signal_during_cleanup_does_not_interrupt_it_and_the_run_ends_cancelled():
    import contextlib
    import os
    import signal

    state = run_state()
    stack = contextlib.ExitStack()
    done: list[str] = []
    stack.callback(done.append, "second")  # runs last: the signal came before it, cleanup went on
    stack.callback(lambda: os.kill(os.getpid(), signal.SIGTERM))
    pipeline._cleanup(state, stack)
    assert done == ["second"]
    assert state.late_signal == "SIGTERM"
    assert state.stages[-1].name == "cleanup" and state.stages[-1].ok


class FakeContainer:
    def __init__(self, status: str, code: int = 0) -> None:
        self.status, self.attrs = status, {"State": {"ExitCode": code}}


class FakeContainers:
    def __init__(self, found: dict[str, FakeContainer]) -> None:
        self.found = found

    def get(self, name: str) -> FakeContainer:
        import docker.errors

        if name not in self.found:
            raise docker.errors.NotFound(name)
        return self.found[name]


class FakeClient:
    def __init__(self, **found: FakeContainer) -> None:
        self.containers = FakeContainers({k.replace("_", "-"): v for k, v in found.items()})


def test_a_registry_or_node_that_died_is_named_in_one_line():
    from pyci.registry import RegistryInfo
    from pyci.results import InfrastructureError

    reg = RegistryInfo(mode="local", container_name="r-registry")
    daemon.raise_if_infrastructure_lost(FakeClient(r_registry=FakeContainer("running"),
                                                      n_control_plane=FakeContainer("running")),
                                           reg, ("n-control-plane",))
    with pytest.raises(InfrastructureError, match=r"the local registry r-registry stopped during the run "
                                                  r"\(status exited, exit code 137\)"):
        daemon.raise_if_infrastructure_lost(FakeClient(r_registry=FakeContainer("exited", 137)), reg, ())
    with pytest.raises(InfrastructureError, match="kind node n-control-plane was removed during the run"):
        daemon.raise_if_infrastructure_lost(FakeClient(r_registry=FakeContainer("running")), reg,
                                               ("n-control-plane",))


# --- build-ahead: what `build-ahead: false` still does ---
class FakeAhead:
    """Stands in for buildahead.BuildAhead: records what the pipeline asked of it."""

    made: list[FakeAhead] = []

    def __init__(self, client: Any, found: Any, run_id: str, log: Any, third_party: Any = (),
                 skipped: Any = (), workers: int | None = None, pull: bool = True) -> None:
        self.found, self.third_party, self.pull = list(found), list(third_party), pull
        self.repository, self.workers, self.loaded_into = f"pyci-ahead/{run_id}", 1, ""
        FakeAhead.made.append(self)

    def start(self) -> None: ...

    def close(self) -> None: ...

    def load_into_kind(self, cluster: str) -> None:
        self.loaded_into = cluster


def evaluation_with_db() -> Any:
    from pyci import tiltfile

    image = tiltfile.ImageTarget(ref="shop-api", context="/src", dockerfile_contents="FROM scratch\n")
    return tiltfile.Evaluation(seconds=0.1, images=(image,), third_party_images=("postgres:16",))


@pytest.mark.parametrize("on", [True, False])
def test_build_ahead_off_builds_and_pulls_nothing_but_still_loads_what_the_daemon_has(
        monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    import contextlib

    from pyci import buildahead

    FakeAhead.made = []
    monkeypatch.setattr(buildahead, "BuildAhead", FakeAhead)
    state = run_state(build_ahead=on, cluster_name="pyci-t")
    state.evaluation = evaluation_with_db()
    with contextlib.ExitStack() as stack:
        ahead = ahead_steps.build_ahead(state, object(), stack)
    assert isinstance(ahead, FakeAhead) and ahead is FakeAhead.made[0]
    assert [t.ref for t in ahead.found] == (["shop-api"] if on else [])
    assert ahead.pull is on  # off: an image the daemon lacks is left to the kubelet
    assert ahead.third_party == ["postgres:16"] and ahead.loaded_into == "pyci-t"


def test_build_ahead_off_with_nothing_third_party_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from pyci import buildahead, tiltfile

    FakeAhead.made = []
    monkeypatch.setattr(buildahead, "BuildAhead", FakeAhead)
    state = run_state(build_ahead=False)
    image = tiltfile.ImageTarget(ref="api", context="/src", dockerfile_contents="FROM scratch\n")
    state.evaluation = tiltfile.Evaluation(seconds=0.1, images=(image,))
    with contextlib.ExitStack() as stack:
        assert ahead_steps.build_ahead(state, object(), stack) is None
    assert FakeAhead.made == []
