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


def test_a_reused_cluster_is_joined_on_its_nodes_network_not_where_kind_would_make_one(monkeypatch) -> None:
    """KIND_EXPERIMENTAL_DOCKER_NETWORK names where kind puts a new cluster; a reused one's nodes may be
    elsewhere. The registry waits to join the network this returns (up to 60 s for one never made)."""
    from types import SimpleNamespace

    from pyci import cluster as clusters
    from pyci import ownership
    from pyci.cluster.kind import KindProvider

    monkeypatch.setenv("KIND_EXPERIMENTAL_DOCKER_NETWORK", "pyci-elsewhere")
    provider = KindProvider.__new__(KindProvider)
    monkeypatch.setattr(KindProvider, "exists", lambda self: True)
    monkeypatch.setattr(KindProvider, "nodes_network", lambda self: "kind")
    monkeypatch.setattr(clusters, "get_provider", lambda settings, workdir: provider)
    monkeypatch.setattr(pipeline.daemon, "network_exists", lambda client, name: name == "kind")
    claimed: list[str] = []
    monkeypatch.setattr(ownership, "claim_cluster", lambda *a, **k: claimed.append("claimed"))
    left: list[tuple[str, bool]] = []
    monkeypatch.setattr(ownership, "leave_network", lambda client, name, made: left.append((name, made)))
    settings = SimpleNamespace(run_id="r1", keep_cluster=False, cluster="kind", cluster_name="theirs")
    with contextlib.ExitStack() as stack:
        state = SimpleNamespace(settings=settings)
        got, network = pipeline._claim_cluster(state, object(), stack)  # type: ignore[arg-type]
        assert (got, network) == (provider, "kind")
    assert claimed == []  # a reused cluster is not claimed (it will not be deleted)
    assert left == [("kind", False)]  # nor its network, which this run did not make
