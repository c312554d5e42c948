"""Pure parts of pyci.readiness: health rules, classification, owner mapping, allowances."""

from __future__ import annotations

import threading
import time

import pytest

from pyci import readiness as r
from pyci.readiness import waiter as rw
from pyci.results import Cancelled


def meta(name, ns="default", gen=1, owner=None, labels=None, created="2026-11-22T10:00:00Z"):
    m = {"name": name, "namespace": ns, "generation": gen, "creationTimestamp": created}
    if owner:
        m["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    if labels:
        m["labels"] = labels
    return m


def deployment(name="web", replicas=2, updated=2, available=2, total=None, observed=1, conditions=()):
    return {
        "metadata": meta(name),
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas if total is None else total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


def pod(name="web-1", owner=("ReplicaSet", "web-5d4"), phase="Running", ready=True, statuses=(), conds=()):
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}, *conds]
    return {
        "metadata": meta(name, owner=owner, labels={"pod-template-hash": "5d4"}),
        "spec": {"containers": [{"name": "app", "image": "localhost:5001/web:tilt-1"}]},
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": list(statuses)},
    }


def cstatus(name="app", waiting=None, running=False, last=None, restarts=0, ready=False, terminated=None):
    state = {}
    if waiting:
        state["waiting"] = waiting
    if running:
        state["running"] = {"startedAt": "x"}
    if terminated:
        state["terminated"] = terminated
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": last} if last else {},
        "image": "img",
    }


# --- health --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "healthy"),
    [
        (deployment(), True),
        (deployment(available=1), False),
        (deployment(updated=1), False),
        (deployment(total=3), False),  # an old replica still around
        (deployment(observed=0), False),
        (deployment(replicas=0, updated=0, available=0), True),
    ],
)
def test_deployment_health(obj, healthy):
    assert r.workload_health("Deployment", obj)[0] is healthy


def test_deployment_default_replicas_is_one():
    obj = deployment(updated=1, available=1, total=1)
    del obj["spec"]["replicas"]
    assert r.workload_health("Deployment", obj) == (True, "1/1 available, 1/1 updated")


def sts(ready=3, current="a", update="a", strategy=None):
    spec: dict[str, object] = {"replicas": 3}
    if strategy:
        spec["updateStrategy"] = {"type": strategy}
    return {
        "metadata": meta("db"),
        "spec": spec,
        "status": {"observedGeneration": 1, "readyReplicas": ready, "currentRevision": current,
                   "updateRevision": update},
    }  # fmt: skip


def test_statefulset_health():
    assert r.workload_health("StatefulSet", sts())[0]
    assert not r.workload_health("StatefulSet", sts(ready=2))[0]
    assert r.workload_health("StatefulSet", sts(update="b")) == (False, "3/3 ready, rollout in progress")
    assert r.workload_health("StatefulSet", sts(update="b", strategy="OnDelete"))[0]


def test_daemonset_health():
    ds = {"metadata": meta("agent"), "status": {"observedGeneration": 1, "desiredNumberScheduled": 2,
                                               "numberReady": 1}}  # fmt: skip
    assert r.workload_health("DaemonSet", ds) == (False, "1/2 ready")
    ds["status"]["numberReady"] = 2
    assert r.workload_health("DaemonSet", ds)[0]


def job(succeeded=0, completions=None, conditions=()):
    spec = {} if completions is None else {"completions": completions}
    return {"metadata": meta("migrate"), "spec": spec,
            "status": {"succeeded": succeeded, "conditions": list(conditions)}}  # fmt: skip


def test_job_health():
    assert not r.workload_health("Job", job())[0]
    assert r.workload_health("Job", job(succeeded=1))[0]
    assert not r.workload_health("Job", job(succeeded=1, completions=3))[0]
    assert r.workload_health("Job", job(conditions=[{"type": "Complete", "status": "True"}]))[0]


def job_pod(name, phase="Succeeded", index=None):
    p = {"metadata": meta(name, owner=("Job", "migrate")), "status": {"phase": phase}}
    if index is not None:
        p["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": index}
    return p


def test_job_is_healthy_once_its_pods_succeeded_before_the_job_controller_counts_them():
    assert r.workload_health("Job", job(), [job_pod("m-1")]) == (True, "1/1 pods succeeded")
    assert not r.workload_health("Job", job(), [job_pod("m-1", phase="Running")])[0]
    assert not r.workload_health("Job", job(completions=2), [job_pod("m-1")])[0]
    assert r.workload_health("Job", job(completions=2), [job_pod("m-1"), job_pod("m-2")])[0]
    # an Indexed Job's retried index counts once
    twice = [job_pod("m-0-a", index="0"), job_pod("m-0-b", index="0")]
    assert not r.workload_health("Job", job(completions=2), twice)[0]
    failed = job(conditions=[{"type": "Failed", "status": "True"}])
    assert not r.workload_health("Job", failed, [job_pod("m-1")])[0]


def test_pod_health():
    assert r.workload_health("Pod", pod(owner=None))[0]
    assert not r.workload_health("Pod", pod(owner=None, ready=False))[0]
    assert r.workload_health("Pod", pod(owner=None, phase="Succeeded", ready=False))[0]


# --- classification --------------------------------------------------------------------------------


def test_crashloop_beyond_max_restarts_is_fatal_with_previous_logs():
    cs = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=5, last={"exitCode": 1, "reason": "Error"})
    p = r.pod_problem(pod(ready=False, statuses=[cs]), max_restarts=3)
    assert p is not None
    assert (p.reason, p.fatal, p.pod, p.container, p.previous_logs) == (
        "CrashLoopBackOff", True, "web-1", "app", True)  # fmt: skip
    assert "5 restarts, last exit code 1" in p.message


def test_crashloop_within_max_restarts_is_not_fatal():
    cs = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=2, last={"exitCode": 1})
    p = r.pod_problem(pod(ready=False, statuses=[cs]), max_restarts=3)
    assert p is not None and p.reason == "CrashLoopBackOff" and not p.fatal


def started_pod(ready_changed: str, ready: bool = False, **kw):
    """A pod started at 12:00:00 whose Ready condition last changed at `ready_changed`."""
    p = pod(ready=ready, **kw)
    p["status"]["startTime"] = "2026-11-23T12:00:00Z"
    p["status"]["conditions"][0]["lastTransitionTime"] = ready_changed
    return p


def test_a_crash_at_start_fails_at_the_first_back_off():
    cs = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=1, last={"exitCode": 3})
    never = started_pod("2026-11-23T12:00:01Z", statuses=[cs])  # Ready=False since the start
    p = r.pod_problem(never, max_restarts=3)
    assert p is not None and (p.reason, p.fatal) == ("CrashLoopBackOff", True)
    assert "crashes on start (1 restarts, last exit code 3)" in p.message


def test_a_container_that_once_was_ready_gets_max_restarts():
    cs = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=1, last={"exitCode": 3})
    once = started_pod("2026-11-23T12:05:00Z", statuses=[cs])  # went NotReady minutes after starting
    p = r.pod_problem(once, max_restarts=3)
    assert p is not None and (p.reason, p.fatal) == ("CrashLoopBackOff", False)
    assert "keeps crashing" in p.message
    assert not r.never_ready(started_pod("2026-11-23T12:00:01Z", ready=True))
    assert not r.never_ready(pod(ready=False))  # no times: no claim


def test_oomkilled():
    cs = cstatus(
        waiting={"reason": "CrashLoopBackOff"}, restarts=4, last={"reason": "OOMKilled", "exitCode": 137}
    )
    p = r.pod_problem(pod(ready=False, statuses=[cs]), max_restarts=3)
    assert p is not None and (p.reason, p.fatal) == ("OOMKilled", True)


def test_an_oom_kill_at_start_fails_at_the_first_back_off():
    oom = {"reason": "OOMKilled", "exitCode": 137}
    cs = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=1, last=oom)
    p = r.pod_problem(started_pod("2026-11-23T12:00:01Z", statuses=[cs]), max_restarts=3)
    assert p is not None and (p.reason, p.fatal) == ("OOMKilled", True)
    assert "was OOMKilled on start (1 restarts)" in p.message
    once = r.pod_problem(started_pod("2026-11-23T12:05:00Z", statuses=[cs]), max_restarts=3)
    assert once is not None and (once.reason, once.fatal) == ("OOMKilled", False)  # it once served


def test_image_pull_backoff_is_fatal_err_image_pull_not_yet():
    msg = 'Back-off pulling image "nope:1"'
    p = r.pod_problem(
        pod(ready=False, statuses=[cstatus(waiting={"reason": "ImagePullBackOff", "message": msg})]), 3
    )
    assert p is not None and (p.reason, p.fatal) == ("ImagePullBackOff", True)
    assert "localhost:5001/web:tilt-1" in p.message and msg in p.message
    p = r.pod_problem(pod(ready=False, statuses=[cstatus(waiting={"reason": "ErrImagePull"})]), 3)
    assert p is not None and (p.reason, p.fatal) == ("ImagePullBackOff", False)


def test_unschedulable_carries_scheduler_message_and_since():
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            "lastTransitionTime": "2026-11-22T10:00:00Z"}  # fmt: skip
    p = r.pod_problem(pod(phase="Pending", ready=False, conds=[cond]), 3)
    assert p is not None and (p.reason, p.fatal) == ("Unschedulable", False)
    assert "didn't match Pod's node affinity/selector" in p.message
    assert p.since == pytest.approx(1795341600.0)


def test_readiness_probe_failing():
    p = r.pod_problem(pod(ready=False, statuses=[cstatus(running=True)]), 3)
    assert p is not None and (p.reason, p.fatal, p.container) == ("ReadinessProbeFailing", False, "app")


def test_config_error():
    cs = cstatus(waiting={"reason": "CreateContainerConfigError", "message": 'secret "x" not found'})
    p = r.pod_problem(pod(ready=False, statuses=[cs]), 3)
    assert p is not None and p.reason == "CreateContainerConfigError" and 'secret "x"' in p.message


def test_healthy_pod_has_no_problem():
    assert r.pod_problem(pod(statuses=[cstatus(running=True, ready=True)]), 3) is None


def test_failed_pod_fatal_only_as_bare_pod():
    failed = pod(owner=None, phase="Failed", ready=False,
                 statuses=[cstatus(terminated={"exitCode": 2, "reason": "Error"})])  # fmt: skip
    p = r.pod_problem(failed, 3)
    assert p is not None and (p.reason, p.fatal) == ("PodFailed", False)
    bare = r.workload_problem("Pod", failed, [], 3)
    assert bare is not None and bare.fatal


def test_job_failed_condition_is_fatal_and_names_a_pod():
    j = job(conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}])  # fmt: skip
    jp = pod("migrate-x", owner=("Job", "migrate"), phase="Failed", ready=False,
             statuses=[cstatus(terminated={"exitCode": 1})])  # fmt: skip
    p = r.workload_problem("Job", j, [jp], 3)
    assert p is not None and (p.reason, p.fatal, p.pod) == ("JobFailed", True, "migrate-x")
    assert "backoff limit" in p.message


def test_job_with_a_failed_pod_still_retrying_is_not_fatal():
    jp = pod("migrate-x", owner=("Job", "migrate"), phase="Failed", ready=False)
    p = r.workload_problem("Job", job(), [jp], 3)
    assert p is not None and not p.fatal


def test_progress_deadline_exceeded_is_fatal_and_keeps_pod_cause():
    cond = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "web-5d4" has timed out progressing.'}  # fmt: skip
    d = deployment(available=0, conditions=[cond])
    p = r.workload_problem("Deployment", d, [], 3)
    assert p is not None and (p.reason, p.fatal) == ("ProgressDeadlineExceeded", True)
    notready = pod(ready=False, statuses=[cstatus(running=True)])
    p = r.workload_problem("Deployment", d, [notready], 3)
    assert p is not None and (p.reason, p.fatal) == ("ReadinessProbeFailing", True)
    assert "timed out progressing" in p.message


def test_worst_pod_wins():
    crash = pod("a", ready=False, statuses=[cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=9,
                                                   last={"exitCode": 1})])  # fmt: skip
    notready = pod("b", ready=False, statuses=[cstatus(running=True)])
    p = r.workload_problem("Deployment", deployment(available=0), [notready, crash], 3)
    assert p is not None and (p.reason, p.pod) == ("CrashLoopBackOff", "a")


# --- cache: owners and top-level workloads ---------------------------------------------------------


def test_cache_maps_pods_to_deployment_via_replicaset():
    c = r.Cache()
    c.apply("Deployment", "ADDED", deployment())
    c.apply("ReplicaSet", "ADDED", {"metadata": meta("web-5d4", owner=("Deployment", "web"))})
    c.apply("Pod", "ADDED", pod())
    c.apply("Pod", "ADDED", pod("lonely", owner=None))
    c.apply("Job", "ADDED", job())
    c.apply("Pod", "ADDED", pod("migrate-1", owner=("Job", "migrate")))
    assert set(c.workloads()) == {
        ("Deployment", "default", "web"), ("Pod", "default", "lonely"), ("Job", "default", "migrate")
    }  # fmt: skip
    pods = c.pods_by_workload()
    assert [p["metadata"]["name"] for p in pods[("Deployment", "default", "web")]] == ["web-1"]
    assert [p["metadata"]["name"] for p in pods[("Job", "default", "migrate")]] == ["migrate-1"]


def test_cache_uses_pod_template_hash_before_the_replicaset_is_seen():
    c = r.Cache()
    assert c.owner_workload(pod()) == ("Deployment", "default", "web")


def test_cache_delete_and_replace():
    c = r.Cache()
    c.apply("Deployment", "ADDED", deployment("a"))
    c.apply("Deployment", "ADDED", deployment("b"))
    c.apply("Deployment", "DELETED", deployment("a"))
    assert list(c.objects) == [("Deployment", "default", "b")]
    c.replace("Deployment", None, [deployment("c")])
    assert list(c.objects) == [("Deployment", "default", "c")]
    other = deployment("d")
    other["metadata"]["namespace"] = "other"
    c.apply("Deployment", "ADDED", other)
    c.replace("Deployment", "default", [])
    assert list(c.objects) == [("Deployment", "other", "d")]


def test_standalone_replicaset_is_a_workload():
    c = r.Cache()
    c.apply("ReplicaSet", "ADDED", {"metadata": meta("rs")})
    assert set(c.workloads()) == {("ReplicaSet", "default", "rs")}


# --- allowance and names -----------------------------------------------------------------------------


def test_allowance_prefers_namespaced_key_then_kind_name_then_default():
    per = {"job/migrate": 600, "job/other/migrate": 900, "Deployment/web": 120}
    assert r.allowance(("Job", "default", "migrate"), 300, per) == 600
    assert r.allowance(("Job", "other", "migrate"), 300, per) == 900
    assert r.allowance(("Deployment", "x", "web"), 300, per) == 120
    assert r.allowance(("Deployment", "x", "api"), 300, per) == 300


def test_result_name_and_describe_pending():
    assert r.result_name(("Deployment", "default", "web")) == "deployment/default/web"
    pending = {
        ("Job", "ns", "j"): ("0/1 succeeded", None),
        ("Deployment", "ns", "d"): ("0/1 available", r.Problem("CrashLoopBackOff", "keeps crashing")),
    }
    assert r.describe_pending(pending) == (
        "deployment/ns/d (CrashLoopBackOff: keeps crashing), job/ns/j (0/1 succeeded)"
    )
    many = {("Pod", "ns", f"p{i}"): ("x", None) for i in range(10)}
    assert r.describe_pending(many, limit=2).endswith(", and 8 more")


# --- the waiter's decisions, without an API server -------------------------------------------------


def waiter(timeout=60.0, per=None, grace=10.0, log=lambda _: None):
    w = rw._Waiter(None, (), 3, log, grace)
    w.start_clock(timeout, per or {})
    return w


def test_waiter_finishes_when_all_healthy_and_records_ready_time():
    w = waiter()
    w.cache.apply("Deployment", "ADDED", deployment())
    pending, finished = w.evaluate(w.watching_since + 2.5)
    assert finished and not pending
    assert w.ready_at == {("Deployment", "default", "web"): 2.5}


def test_waiter_keeps_waiting_for_a_slow_workload():
    w = waiter()
    w.cache.apply("Deployment", "ADDED", deployment(available=1))
    pending, finished = w.evaluate(w.start + 1)
    assert not finished and list(pending) == [("Deployment", "default", "web")]


def test_waiter_stops_at_the_timeout_and_per_resource_allowance_extends_it():
    w = waiter(timeout=10, per={"deployment/slow": 30})
    w.cache.apply("Deployment", "ADDED", deployment("web", available=1))
    w.cache.apply("Deployment", "ADDED", deployment("slow", available=1))
    assert not w.evaluate(w.start + 11)[1]  # slow may take 30 s
    assert w.evaluate(w.start + 31)[1]


def test_waiter_unschedulable_becomes_fatal_after_grace():
    w = waiter(grace=5)
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no"}
    w.cache.apply("Deployment", "ADDED", deployment(available=0))
    w.cache.apply("Pod", "ADDED", pod(phase="Pending", ready=False, conds=[cond]))
    now = time.monotonic()
    assert not w.evaluate(now)[1]
    assert not w.evaluate(now + 4)[1]
    pending, finished = w.evaluate(now + 5.1)
    assert finished
    assert w.fatal[("Deployment", "default", "web")].reason == "Unschedulable"


def test_waiter_fails_fast_on_a_fatal_problem_while_others_still_progress():
    w = waiter()
    crash = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=5, last={"exitCode": 1})
    w.cache.apply("Deployment", "ADDED", deployment("web", available=0))
    w.cache.apply("Pod", "ADDED", pod(ready=False, statuses=[crash]))
    w.cache.apply("Deployment", "ADDED", deployment("slow", available=1))
    _, finished = w.evaluate(w.start + 1)
    assert finished


def test_waiter_with_nothing_to_watch_finishes_at_once():
    assert waiter().evaluate(time.monotonic()) == ({}, True)


def test_system_namespaces_are_skipped_unless_asked_for():
    assert not waiter()._wanted("kube-system")
    assert waiter()._wanted("default")
    w = rw._Waiter(None, ("a",), 3, lambda _: None, 1)
    assert w._wanted("a") and not w._wanted("default")


def test_objects_being_deleted_are_not_waited_for():
    c = r.Cache()
    d = deployment()
    d["metadata"]["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    c.apply("Deployment", "ADDED", d)
    p = pod("bare", owner=None)
    p["metadata"]["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    c.apply("Pod", "ADDED", p)
    assert c.workloads() == {}
    assert c.pods_by_workload() == {}


# --- waiting on a cache that is already filled: the sentinel's hand-over ---------------------------


def listed(w, *kinds):
    """As if the watches of `kinds` had listed (all namespaces) and delivered nothing since."""
    w.listed.update((kind, None) for kind in kinds)
    w.expected_lists = len(kinds)
    return w


def test_wait_decides_on_a_filled_cache_without_blocking(monkeypatch):
    monkeypatch.setattr(rw, "TICK", 30.0)  # blocking on the (empty) queue even once would show
    w = listed(waiter(), "Deployment")
    w.cache.apply("Deployment", "ADDED", deployment())
    t0 = time.monotonic()
    [res] = w.wait(60, {}, None, 5.0)
    assert time.monotonic() - t0 < 5
    assert (res.name, res.ok) == ("deployment/default/web", True)


def test_wait_counts_allowances_from_its_own_start_and_ready_times_from_the_watch():
    lines: list[str] = []
    w = listed(waiter(log=lines.append), "Deployment")
    w.watching_since -= 100  # tilt ci ran for 100 s while the watches filled the cache
    w.cache.apply("Deployment", "ADDED", deployment("web"))
    w.cache.apply("Deployment", "ADDED", deployment("slow", available=1))
    t0 = time.monotonic()
    slow, web = w.wait(1.0, {}, None, 0.0)
    assert 1.0 <= time.monotonic() - t0 < 5  # not timed out at once for the 100 s already gone
    assert web.ok and web.ready_seconds is not None and web.ready_seconds >= 100
    assert (slow.ok, slow.reason) == (False, "Timeout")
    assert "after its first pod was created (pyci's readiness limit 1.0s), waiting on 1/2 available" in (
        slow.message or "")
    assert any(line.startswith("readiness: still not healthy: deployment/default/slow") for line in lines)


def test_a_pull_error_at_the_deadline_is_the_verdict_not_a_timeout(monkeypatch):
    """Seen on real kind: the last look before the deadline caught ErrImagePull (not yet fatal) between
    two ImagePullBackOffs; the verdict must still name the pull error."""
    monkeypatch.setattr(rw, "_enrich", lambda core, namespace, problem: (problem.message, ""))  # no API
    w = waiter(timeout=15.0)  # the window pyci gives the watch to explain a failed tilt ci
    problem = r.Problem("ImagePullBackOff", "ErrImagePull for image registry.invalid/x:1", False, "web-1")
    res = w._failed_result(None, ("Deployment", "default", "web"), "0/1 available", problem,
                           w.start + 20)
    assert (res.ok, res.reason) == (False, "ImagePullBackOff")
    # no pod or creation time known: told from when the watch began
    assert "not healthy 20.0s after its first pod was created" in (res.message or "")
    probe = r.Problem("ReadinessProbeFailing", "readiness probe failing", False, "web-1")
    res = w._failed_result(None, ("Deployment", "default", "web"), "0/1 available", probe,
                           w.start + 20)
    assert res.reason == "Timeout"  # not ready in time: a timeout, with the probe in its message


def test_wait_raises_cancelled():
    cancel = threading.Event()
    cancel.set()
    w = listed(waiter(), "Deployment")
    w.cache.apply("Deployment", "ADDED", deployment(available=1))
    with pytest.raises(Cancelled):
        w.wait(60, {}, cancel, 5.0)


@pytest.fixture
def fed_sentinel(monkeypatch):
    """A Sentinel whose only watch is the test: it puts the API's messages on the queue itself."""
    monkeypatch.setattr(rw._Waiter, "start_watches", lambda self: setattr(self, "expected_lists", 1))
    monkeypatch.setattr(rw, "_enrich", lambda core, ns, problem: (problem.message, ""))  # no API for logs
    with r.Sentinel(None, (), 3, lambda _: None) as sentinel:
        yield sentinel, sentinel._waiter.queue


def test_sentinel_hands_its_cache_over_to_wait_healthy(fed_sentinel, monkeypatch):
    sentinel, feed = fed_sentinel
    feed.put(rw._Msg("Deployment", None, "LIST", [deployment()]))
    deadline = time.monotonic() + 5
    while feed.qsize() and time.monotonic() < deadline:  # the sentinel thread takes it in
        time.sleep(0.01)
    assert not feed.qsize() and not sentinel.failed.is_set()
    monkeypatch.setattr(rw, "TICK", 30.0)
    t0 = time.monotonic()
    [res] = sentinel.wait_healthy(60, {})
    assert time.monotonic() - t0 < 5  # no new list, no wait for one: the cache decided
    assert res.ok and not sentinel._thread.is_alive()  # one thread on the cache at a time


def test_sentinel_fails_fast_and_wait_healthy_then_explains_at_once(fed_sentinel):
    sentinel, feed = fed_sentinel
    crash = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=5, last={"exitCode": 1})
    feed.put(rw._Msg("Deployment", None, "LIST", [deployment("web", available=0), deployment("ok")]))
    feed.put(rw._Msg("Pod", None, "ADDED", [pod(ready=False, statuses=[crash])]))
    assert sentinel.failed.wait(5)
    assert sentinel.reasons == ["deployment/default/web (CrashLoopBackOff)"]
    t0 = time.monotonic()
    results = sentinel.wait_healthy(15, {})
    assert time.monotonic() - t0 < 5
    assert [(x.name, x.ok, x.reason) for x in results] == [
        ("deployment/default/ok", True, None),
        ("deployment/default/web", False, "CrashLoopBackOff"),
    ]


def test_a_crash_at_start_is_seen_even_when_the_first_status_came_late():
    # The kubelet wrote Ready=False 8 s after the pod started (an image pull), never changed since; the
    # last run began after that and crashed: it never served.
    last = {"exitCode": 1, "startedAt": "2026-11-23T12:00:20Z", "finishedAt": "2026-11-23T12:00:21Z"}
    cs = cstatus(waiting={"reason": "CrashLoopBackOff"}, restarts=1, last=last)
    p = r.pod_problem(started_pod("2026-11-23T12:00:08Z", statuses=[cs]), max_restarts=3)
    assert p is not None and (p.reason, p.fatal) == ("CrashLoopBackOff", True)
    # Ready changed during the last run (it served, then failed): max-restarts decides.
    p = r.pod_problem(started_pod("2026-11-23T12:00:40Z", statuses=[cs]), max_restarts=3)
    assert p is not None and not p.fatal


# --- a probe-less container counts once it stays up ------------------------------------------------
def _serving_pod(started: str, probe: bool = False) -> dict:
    container: dict = {"name": "api", "image": "img"}
    if probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 80}}
    return {"metadata": {"name": "api-1", "namespace": "default"}, "spec": {"containers": [container]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "api", "ready": True,
                                              "state": {"running": {"startedAt": started}}}]}}


def test_a_probe_less_container_just_started_is_not_healthy_yet():
    now = r.parse_time("2026-12-01T08:00:10Z")
    young, old = _serving_pod("2026-12-01T08:00:09Z"), _serving_pod("2026-12-01T08:00:05Z")
    healthy, detail = r.workload_health("Deployment", deployment(), [young], now=now)
    assert not healthy and "up for 1.0s" in detail and "no readiness probe" in detail
    assert r.workload_health("Deployment", deployment(), [old], now=now)[0]
    # a probe that passed has shown it serves; a bare Pod is held to the same rule as its controllers
    assert r.workload_health("Deployment", deployment(), [_serving_pod("2026-12-01T08:00:09Z", probe=True)],
                             now=now)[0]
    assert not r.workload_health("Pod", young, now=now)[0]
    assert r.workload_health("Pod", old, now=now)[0]


def test_a_container_that_is_no_longer_running_is_not_healthy_though_the_controller_still_counts_it():
    pod = _serving_pod("2026-12-01T08:00:00Z")
    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 3}}
    now = r.parse_time("2026-12-01T08:01:00Z")
    healthy, detail = r.workload_health("StatefulSet", sts(ready=3), [pod], now=now)
    assert not healthy and "is terminated, not running" in detail
