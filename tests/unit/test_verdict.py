"""A workload's verdict when the run stops beside another's failure: evidence of its own, or not finished."""

from __future__ import annotations

from pyci import components
from pyci.readiness import classify, verdict
from pyci.readiness.objects import parse_time
from pyci.results import ResourceResult, Status

T0 = "2026-12-04T10:00:00Z"


def at(seconds: float) -> float:
    t = parse_time(T0)
    assert t is not None
    return t + seconds


def iso(seconds: float) -> str:
    return f"2026-12-04T10:{int(seconds) // 60:02d}:{int(seconds) % 60:02d}Z"


def probed_pod(started: float, probe: dict | None = None, ready_changed: float | None = None,
               restarts: int = 0, startup: dict | None = None) -> dict:
    container: dict = {"name": "app", "image": "img"}
    if probe is not None:
        container["readinessProbe"] = probe
    if startup is not None:
        container["startupProbe"] = startup
    return {
        "metadata": {"name": "cart-1", "namespace": "shop", "creationTimestamp": T0},
        "spec": {"containers": [container]},
        "status": {
            "phase": "Running",
            "startTime": T0,
            "conditions": [{"type": "Ready", "status": "False",
                            "lastTransitionTime": iso(started if ready_changed is None else ready_changed)}],
            "containerStatuses": [{"name": "app", "ready": False, "restartCount": restarts,
                                   "state": {"running": {"startedAt": iso(started)}}}],
        },
    }


DEPLOY = {"metadata": {"name": "cart", "namespace": "shop", "creationTimestamp": T0}}


def decide(pod: dict, now: float, problem=None) -> verdict.Verdict:
    found = problem if problem is not None else classify.pod_problem(pod, max_restarts=3)
    return verdict.decide("Deployment", DEPLOY, [pod], found, "0/1 available", at(now))


def test_the_probe_window_is_delay_plus_threshold_times_period_plus_the_startup_budget():
    assert verdict.probe_window({"name": "x"}) is None
    assert verdict.probe_window({"readinessProbe": {}}) == (30, "readiness: 0s delay + 3 x 10s")  # defaults
    found = verdict.probe_window({
        "readinessProbe": {"initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 4},
        "startupProbe": {"periodSeconds": 1, "failureThreshold": 20}})
    assert found is not None
    seconds, how = found
    assert seconds == 5 + 4 * 2 + 20 * 1
    assert "readiness: 5s delay + 4 x 2s" in how and "startup: 0s delay + 20 x 1s" in how


def test_a_service_still_inside_its_readiness_window_is_not_finished_and_says_where_it_is():
    pod = probed_pod(started=4, probe={"periodSeconds": 10})  # 30 s window
    found = decide(pod, now=10)
    assert not found.failed
    assert found.message == "starting: readiness not yet passed, 6s into its 30s window (container app)"


def test_a_service_past_its_readiness_window_failed_on_its_own():
    pod = probed_pod(started=0, probe={"periodSeconds": 2, "failureThreshold": 3})  # 6 s window
    found = decide(pod, now=9)
    assert found.failed and found.reason == "ReadinessProbeFailing"
    assert "not ready 9s after it started, past its probe's 6s window" in found.message


def test_the_startup_probe_budget_extends_the_window():
    pod = probed_pod(started=0, probe={"periodSeconds": 2},
                     startup={"periodSeconds": 1, "failureThreshold": 30})
    assert not decide(pod, now=20).failed  # 6 + 30 s


def test_a_ready_that_was_lost_is_evidence():
    pod = probed_pod(started=0, probe={"periodSeconds": 10}, ready_changed=12)
    found = decide(pod, now=14)
    assert found.failed and found.reason == "ReadinessLost"


def test_a_crash_a_pull_error_or_a_fatal_problem_is_evidence():
    crash = classify.Problem("CrashLoopBackOff", "container app keeps crashing (1 restarts)", False, "cart-1")
    assert decide(probed_pod(0), now=5, problem=crash).failed
    pull = classify.Problem("ImagePullBackOff", "ErrImagePull for image x", False, "cart-1")
    assert decide(probed_pod(0), now=5, problem=pull).failed
    fatal = classify.Problem("Unschedulable", "no node fits (for 10s)", True, "cart-1")
    assert decide(probed_pod(0), now=5, problem=fatal).failed


def test_unschedulable_within_its_grace_and_a_pod_being_created_are_not_finished():
    unschedulable = classify.Problem("Unschedulable", "pod cart-1 cannot be scheduled: 0/1 nodes", False)
    found = decide(probed_pod(0), now=3, problem=unschedulable)
    assert not found.failed and found.message.startswith("not scheduled yet: pod cart-1 cannot be scheduled")
    creating = probed_pod(0)
    creating["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    found = decide(creating, now=3)
    assert not found.failed and found.message.startswith("creating container app")
    assert verdict.decide("Deployment", DEPLOY, [], None, "0/1 available", at(3)).message == (
        "waiting for its first pod (0/1 available)")


def test_waiting_since_is_the_first_pods_creation():
    later = probed_pod(0)
    later["metadata"]["creationTimestamp"] = iso(30)
    assert verdict.waiting_since(DEPLOY, [later, probed_pod(0)]) == at(0)
    assert verdict.waiting_since(DEPLOY, []) == at(0)  # no pod yet: the workload's own creation


# --- components: a cause, its bystanders and what waits on it -------------------------------------


def k8s(name: str, ok: bool, reason: str | None = None, finished: bool = True, **kw) -> ResourceResult:
    return ResourceResult(name, "kubernetes", ok, reason=reason, finished=finished, **kw)


def tilt(name: str, ok: bool, reason: str | None = None, **kw) -> ResourceResult:
    return ResourceResult(name, "tilt", ok, reason=reason, **kw)


def test_only_the_crasher_is_failed_beside_two_slow_starters():
    found = [tilt("payments", False, "RuntimeError"), tilt("cart", False, "NotReady"),
             tilt("web", False, "NotReady"),
             k8s("deployment/shop/payments", False, "CrashLoopBackOff", message="crashes on start"),
             k8s("deployment/shop/cart", False, "NotReady", finished=False,
                 message="starting: readiness not yet passed, 6s into its 30s window (container app)"),
             k8s("deployment/shop/web", False, "NotReady", finished=False, message="starting")]
    merged = {c.name: c for c in components.merge(found)}
    assert merged["payments"].status is Status.FAILED
    assert merged["cart"].status is merged["web"].status is Status.NOT_FINISHED
    assert merged["cart"].message == (
        "starting: readiness not yet passed, 6s into its 30s window (container app)")
    assert [c.name for c in components.root_causes(list(merged.values()))] == ["payments"]


def test_a_chain_blocked_by_its_failed_end_is_not_finished_and_names_it():
    found = [tilt("db", False, "BuildFailed", message="exit status 3"),
             tilt("api", False, "NotBuilt", blocked_by=["db"]),
             tilt("web", False, "NotBuilt", blocked_by=["api"])]
    merged = {c.name: c for c in components.merge(found)}
    assert merged["db"].status is Status.FAILED
    assert merged["api"].status is Status.NOT_FINISHED and merged["api"].message == "blocked by db (failed)"
    assert merged["web"].status is Status.NOT_FINISHED
    assert merged["web"].message == "blocked by api (not finished, waiting on db)"


def test_a_dependency_only_waiting_on_the_same_failure_is_not_named_beside_it():
    """Seen in the verdict matrix: "blocked by uncategorized (not finished), compile (failed)"."""
    found = [tilt("compile", False, "BuildFailed", message="exit status 127"),
             tilt("uncategorized", False, "NotBuilt", blocked_by=["compile"]),
             tilt("server", False, "NotBuilt", blocked_by=["uncategorized", "compile"]),
             tilt("slow", False, "NotReady"),
             tilt("front", False, "NotBuilt", blocked_by=["slow", "server", "compile"])]
    merged = {c.name: c for c in components.merge(found)}
    assert merged["server"].message == "blocked by compile (failed)"
    assert merged["front"].message == "blocked by compile (failed), slow (not finished)"
    assert [c.name for c in components.root_causes(list(merged.values()))] == ["compile"]


def test_with_no_evidence_anywhere_the_unfinished_that_wait_on_nobody_ran_out_of_time():
    found = [tilt("slow", False, "NotReady"), tilt("after", False, "NotBuilt", blocked_by=["slow"])]
    merged = {c.name: c for c in components.merge(found)}
    assert merged["slow"].status is Status.FAILED
    assert merged["slow"].reason == "Timeout"
    assert merged["slow"].message == "its time ran out while it was: NotReady"
    assert merged["after"].status is Status.NOT_FINISHED
