"""pyci.readiness against the lab control plane (real kube-apiserver, controllers, scheduler; kwok
plays the kubelet and gives pods labelled `pyci-lab/behavior=<x>` a chosen failure).

kwok runs no containers, so pod logs cannot be read here: these tests check that a missing log is
tolerated (empty `logs`), never the content of real log lines.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from pyci import readiness
from pyci.results import Cancelled

pytestmark = pytest.mark.integration

FAIL_FAST_LIMIT = 30.0  # seconds: a fast failure must come well before the 120 s timeout used below
LATENCY_LIMIT = 1.0 + 0.5  # the ≤ 1 s requirement plus slack for the deployment controller's status write


# --- helpers shared with test_diagnostics / test_tilt ----------------------------------------------


def new_namespace(api: client.ApiClient, prefix: str = "pyci-t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)),
                                           _request_timeout=30)
    return name


def delete_namespace(api: client.ApiClient, name: str, wait: float = 120.0) -> None:
    core = client.CoreV1Api(api)
    try:
        core.delete_namespace(name, _request_timeout=30)
    except ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:  # a test's leftovers must not leak into the next test
        try:
            core.read_namespace(name, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        # kwok (the lab's kubelet) is slow to confirm pod deletions; no container runs: force them
        for pod in core.list_namespaced_pod(name, _request_timeout=10).items:
            assert pod.metadata and pod.metadata.name  # a listed pod always has its name
            with contextlib.suppress(ApiException):
                core.delete_namespaced_pod(
                    pod.metadata.name, name, grace_period_seconds=0, _request_timeout=10
                )
        time.sleep(0.5)
    raise AssertionError(f"namespace {name} still there {wait}s after deleting it")


@pytest.fixture
def namespace(api) -> Iterator[str]:
    name = new_namespace(api)
    yield name
    delete_namespace(api, name)


def pod_template(app: str, behavior: str | None = None, node_selector: dict | None = None,
                 restart: str = "Always", probe: bool = False) -> dict[str, Any]:  # fmt: skip
    labels = {"app": app}
    if behavior:
        labels["pyci-lab/behavior"] = behavior
    container: dict[str, Any] = {"name": "app", "image": f"localhost:5000/{app}:lab"}
    if probe:  # kwok runs no probe; it only changes how long readiness waits for a fresh container
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"metadata": {"labels": labels}, "spec": spec}


def deployment(name: str, replicas: int = 1, **template: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, **template),
        },
    }


def job(name: str, behavior: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": pod_template(name, behavior, restart="Never")},
    }


def create(api: client.ApiClient, namespace: str, *objects: dict[str, Any]) -> None:
    apps, batch, core = client.AppsV1Api(api), client.BatchV1Api(api), client.CoreV1Api(api)
    creators: dict[str, Callable[..., object]] = {
        "Deployment": apps.create_namespaced_deployment,
        "StatefulSet": apps.create_namespaced_stateful_set,
        "DaemonSet": apps.create_namespaced_daemon_set,
        "Job": batch.create_namespaced_job,
        "Pod": core.create_namespaced_pod,
        "Service": core.create_namespaced_service,
        "Secret": core.create_namespaced_secret,
    }
    for obj in objects:
        creators[obj["kind"]](namespace, obj, _request_timeout=30)


WATCHES = ("own", "sentinel")  # wait_healthy's own watches, or those a Sentinel kept while tilt ci ran
TILT_SECONDS = 1.0  # how long the sentinel watches before readiness takes over, in these tests


def wait(api, namespace, timeout=120.0, per=None, max_restarts=3, grace=2.0, cancel=None, lines=None,
         watches="own"):  # fmt: skip
    log = lines.append if lines is not None else (lambda _: None)
    if watches == "own":
        return readiness.wait_healthy(api, [namespace], timeout, per or {}, max_restarts, log, cancel,
                                      unschedulable_grace=grace, progress_every=1.0)  # fmt: skip
    with readiness.Sentinel(api, [namespace], max_restarts, log, unschedulable_grace=grace) as sentinel:
        time.sleep(TILT_SECONDS)  # as a run does: the sentinel watches while tilt ci runs
        return sentinel.wait_healthy(timeout, per or {}, cancel, progress_every=1.0)


# --- healthy -------------------------------------------------------------------------------------


@pytest.mark.parametrize("watches", WATCHES)
def test_all_kinds_healthy(api, namespace, watches):
    sts = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": pod_template("db")},
    }  # fmt: skip
    ds = {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": pod_template("agent")},
    }  # fmt: skip
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "labels": {"app": "bare"}},
            "spec": pod_template("bare")["spec"]}  # fmt: skip
    create(api, namespace, deployment("web", replicas=2), sts, ds, job("migrate"), bare)
    lines: list[str] = []
    t0 = time.monotonic()
    results = wait(api, namespace, lines=lines, watches=watches)
    assert time.monotonic() - t0 < 60
    by = {r.name: r for r in results}
    assert set(by) == {f"{k}/{namespace}/{n}" for k, n in
                       [("deployment", "web"), ("statefulset", "db"), ("daemonset", "agent"),
                        ("job", "migrate"), ("pod", "bare")]}, results  # fmt: skip
    assert all(r.ok and r.source == "kubernetes" and r.ready_seconds is not None for r in results), results
    assert any("workloads healthy" in line for line in lines)


def test_empty_namespace_returns_at_once(api, namespace):
    t0 = time.monotonic()
    assert wait(api, namespace) == []
    assert time.monotonic() - t0 < 5


def test_all_namespaces_but_system(api, namespace):
    create(api, namespace, deployment("web"))
    results = readiness.wait_healthy(api, [], 60, {}, 3, lambda _: None)
    names = {r.name for r in results}
    assert f"deployment/{namespace}/web" in names
    assert not [n for n in names if "/kube-system/" in n]
    assert all(r.ok for r in results), results


def test_after_the_sentinel_an_already_healthy_app_is_reported_at_once(api, namespace):
    """A run's readiness stage after tilt ci exited 0: the sentinel's cache decides, nothing is listed
    again. The sentinel watches from before the app exists, as it does from before tilt ci starts."""
    with readiness.Sentinel(api, [namespace], 3, lambda _: None) as sentinel:
        create(api, namespace, deployment("web", replicas=2), job("migrate"))
        t0 = time.monotonic()
        assert [r.ok for r in wait(api, namespace)] == [True, True]  # on its own watches: healthy now
        fresh = time.monotonic() - t0
        t0 = time.monotonic()
        results = sentinel.wait_healthy(60, {})
        took = time.monotonic() - t0
    print(f"readiness on the sentinel's watches: {took * 1000:.0f} ms (own watches: {fresh * 1000:.0f} ms)")
    assert [(r.name, r.ok) for r in results] == [
        (f"deployment/{namespace}/web", True), (f"job/{namespace}/migrate", True)]
    assert all(r.ready_seconds and 0 < r.ready_seconds < 60 for r in results), results  # since watching began
    assert took < 0.5, took
    assert not sentinel.failed.is_set()


# --- failing fast, with the right reason ------------------------------------------------------------


@pytest.mark.parametrize(
    ("objects", "name", "reason", "words"),
    [
        ([deployment("web", behavior="crashloop")], "deployment/{ns}/web", "CrashLoopBackOff",
         ["crashes on start", "5 restarts", "exit code 1"]),  # never Ready: fatal at the first back-off
        ([deployment("web", behavior="imagepull")], "deployment/{ns}/web", "ImagePullBackOff",
         ["localhost:5000/web:lab", "Back-off pulling image"]),
        ([deployment("web", behavior="oomkilled")], "deployment/{ns}/web", "OOMKilled", ["OOMKilled"]),
        ([deployment("web", node_selector={"pyci-lab/no-such-node": "x"})], "deployment/{ns}/web",
         "Unschedulable", ["cannot be scheduled", "node"]),
        ([job("migrate", behavior="failed")], "job/{ns}/migrate", "JobFailed", ["failed"]),
    ],
    ids=["crashloop", "imagepull", "oomkilled", "unschedulable", "failed-job"],
)  # fmt: skip
@pytest.mark.parametrize("watches", WATCHES)
def test_fails_fast_with_reason(api, namespace, objects, name, reason, words, watches):
    create(api, namespace, *objects, deployment("fine"))
    lines: list[str] = []
    t0 = time.monotonic()
    results = wait(api, namespace, timeout=120, lines=lines, watches=watches)
    took = time.monotonic() - t0
    assert took < FAIL_FAST_LIMIT, (took, results)
    by = {r.name: r for r in results}
    bad = by[name.format(ns=namespace)]
    assert (bad.ok, bad.reason) == (False, reason), bad
    for word in words:
        assert word in (bad.message or ""), bad
    assert bad.logs == ""  # kwok runs no containers: no log lines to read, and that is tolerated
    print(f"{reason}: reported after {took:.1f}s")


@pytest.mark.parametrize("watches", WATCHES)
def test_readiness_probe_failing_times_out_with_classification(api, namespace, watches):
    create(api, namespace, deployment("web", behavior="notready"), deployment("fine"))
    lines: list[str] = []
    t0 = time.monotonic()
    results = wait(api, namespace, timeout=4, lines=lines, watches=watches)
    assert 4 <= time.monotonic() - t0 < 15
    by = {r.name: r for r in results}
    bad = by[f"deployment/{namespace}/web"]
    assert (bad.ok, bad.reason) == (False, "Timeout")
    assert "ReadinessProbeFailing" in (bad.message or "") and "0/1 available" in (bad.message or "")
    assert by[f"deployment/{namespace}/fine"].ok
    assert any(line.startswith("readiness: still not healthy: ") and "ReadinessProbeFailing" in line
               for line in lines), lines  # fmt: skip


@pytest.mark.parametrize("watches", WATCHES)
def test_per_resource_timeout_extends_only_that_workload(api, namespace, watches):
    create(api, namespace, deployment("web", behavior="notready"), deployment("slow", behavior="notready"))
    t0 = time.monotonic()
    results = wait(api, namespace, timeout=2, per={"deployment/slow": 6}, watches=watches)
    took = time.monotonic() - t0
    assert 6 <= took < 15, took
    assert [(r.name.split("/")[-1], r.reason) for r in results] == [("slow", "Timeout"), ("web", "Timeout")]
    # Each says the limit it passed and how long it really waited, from its first pod's creation.
    assert "(pyci's readiness limit 6.0s)" in (results[0].message or "")
    assert "(pyci's readiness limit 2.0s)" in (results[1].message or "")
    assert all(re.search(r"not healthy [\d.]+s after its first pod was created", r.message or "")
               for r in results)


@pytest.mark.parametrize("watches", WATCHES)
def test_a_crash_loop_that_never_was_ready_is_fatal_whatever_max_restarts(api, namespace, watches):
    # kwok reports restartCount 5 and a Ready condition False since the start: a crash at start.
    # (max-restarts bounds containers that once were Ready: tests/unit/test_readiness.py.)
    create(api, namespace, deployment("web", behavior="crashloop"))
    t0 = time.monotonic()
    [res] = wait(api, namespace, timeout=30, max_restarts=10, watches=watches)
    assert time.monotonic() - t0 < 15  # fatal at once, not the 30 s timeout
    assert res.reason == "CrashLoopBackOff" and "crashes on start" in (res.message or "")


@pytest.mark.parametrize("watches", WATCHES)
def test_cancel_raises_cancelled(api, namespace, watches):
    create(api, namespace, deployment("web", behavior="notready"))
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        wait(api, namespace, timeout=60, cancel=cancel, watches=watches)
    assert time.monotonic() - t0 < 3


# --- latency: last pod Ready -> healthy reported -------------------------------------------------------


@pytest.mark.parametrize(("watches", "probe"), [("own", True), ("sentinel", True), ("own", False)])
def test_latency_from_last_pod_ready_to_healthy_is_under_a_second(api, namespace, watches, probe):
    """The deployment starts unschedulable; once the test lifts the nodeSelector, a new pod turns Ready.
    The test's own watch notes when it sees that pod Ready; wait_healthy must return within 1 s of it,
    or, for a container with no readiness probe, once it has stayed up readiness.SETTLE seconds."""
    create(api, namespace, deployment("web", node_selector={"pyci-lab/wait": "x"}, probe=probe))
    ready_seen: list[float] = []
    stop = threading.Event()

    def watch_pods() -> None:
        w = watch.Watch()
        core = client.CoreV1Api(api)
        for ev in w.stream(core.list_namespaced_pod, namespace, timeout_seconds=60):
            conds = ev["object"].status.conditions or []
            if any(c.type == "Ready" and c.status == "True" for c in conds):
                ready_seen.append(time.monotonic())
                break
            if stop.is_set():
                break
        w.stop()

    watcher = threading.Thread(target=watch_pods, daemon=True)
    watcher.start()
    out: list[Any] = []
    waiter = threading.Thread(
        target=lambda: out.append(
            (wait(api, namespace, timeout=60, grace=120, watches=watches), time.monotonic())),
        daemon=True,
    )
    waiter.start()
    time.sleep(2.0)  # the waiter is watching, the pod is pending
    assert not out
    client.AppsV1Api(api).patch_namespaced_deployment(
        "web", namespace, [{"op": "remove", "path": "/spec/template/spec/nodeSelector"}], _request_timeout=30
    )
    waiter.join(timeout=60)
    stop.set()
    watcher.join(timeout=65)
    assert out and ready_seen
    results, reported = out[0]
    assert [r.ok for r in results] == [True]
    latency = reported - ready_seen[0]
    print(f"readiness latency: {latency * 1000:.0f} ms")
    if probe:
        assert latency <= LATENCY_LIMIT, latency
    else:  # the API's startedAt has whole seconds: up to one second either way
        assert readiness.SETTLE - 1.0 <= latency <= readiness.SETTLE + LATENCY_LIMIT, latency
