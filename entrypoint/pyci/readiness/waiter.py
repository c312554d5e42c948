"""The watches of one run, the cache they fill, and the decisions over it; the sentinel during tilt ci."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client

from pyci.readiness import verdict
from pyci.readiness.cache import Cache
from pyci.readiness.classify import _CAUSES, _CONFIG_ERRORS, Problem, workload_problem
from pyci.readiness.explain import _enrich, _short, describe_pending
from pyci.readiness.health import workload_health
from pyci.readiness.objects import SYSTEM_NAMESPACES, Key, allowance, result_name
from pyci.readiness.watch import _list_functions, _Msg, _watch_loop
from pyci.results import Cancelled, InfrastructureError, ResourceResult, Span, format_duration

Log = Callable[[str], None]
TICK = 0.25  # how often deadlines and grace periods are checked when no event arrives
UNSCHEDULABLE_GRACE = 10.0
CONFIG_ERROR_GRACE = 10.0
PROGRESS_EVERY = 5.0
# How long every watch may fail to connect before the run stops waiting: the API server is gone (a
# stopped node, a cut network), which is an infrastructure failure, not an app that never got healthy.
API_LOST_AFTER = 20.0


# ------------------------------------------------------------------------------------------- waiter


_WAKE = _Msg("", None, "WAKE")  # carries nothing: only wakes whoever blocks on the queue


class _Waiter:
    """The watches of one run, the cache they fill, and the decisions over it.

    Ready times count from when watching began, as tilt's own do; allowances count from `wait`, the
    readiness stage's own start.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        namespaces: Sequence[str],
        max_restarts: int,
        log: Log,
        unschedulable_grace: float,
    ) -> None:
        self.api_client = api_client
        self.namespaces = tuple(namespaces)
        self.max_restarts, self.log, self.grace = max_restarts, log, unschedulable_grace
        self.timeout: float = float("inf")
        self.per_resource: Mapping[str, float] = {}
        self.cache = Cache()
        self.queue: queue.Queue[_Msg] = queue.Queue()
        self.stop = threading.Event()
        self.watching_since = self.start = time.monotonic()
        self.listed: set[tuple[str, str | None]] = set()
        self.expected_lists = 0
        self.ready_at: dict[Key, float] = {}
        self.ready_wall: dict[Key, float] = {}  # POSIX time each turned healthy, for the timeline
        self.explaining = False  # tilt ci failed: the watch only explains why (see Sentinel.wait_healthy)
        self.first_seen_problem: dict[tuple[Key, str], float] = {}
        self.fatal: dict[Key, Problem] = {}
        self.unreachable_since: float | None = None  # no watch has reached the API server since
        self.unreachable_error = ""

    def _wanted(self, namespace: str) -> bool:
        if self.namespaces:
            return namespace in self.namespaces
        return namespace not in SYSTEM_NAMESPACES

    def start_watches(self) -> None:
        targets: list[str | None] = list(self.namespaces) if self.namespaces else [None]
        expected = 0
        for namespace in targets:
            for kind, fn in _list_functions(self.api_client, namespace is not None).items():
                threading.Thread(
                    target=_watch_loop,
                    args=(kind, fn, namespace, self.queue, self.stop),
                    name=f"watch-{kind}-{namespace or 'all'}",
                    daemon=True,
                ).start()
                expected += 1
        self.expected_lists = expected

    def close(self) -> None:
        # Not joined: a watch thread is blocked in a read until the server ends its watch (within
        # WATCH_SECONDS), then sees `stop`; it is a daemon, and joining cost 0.1 s a thread for nothing.
        self.stop.set()

    def start_clock(self, timeout: float, per_resource: Mapping[str, float]) -> None:
        """Allowances count from now: the readiness stage may start long after the watches did."""
        self.timeout, self.per_resource, self.start = timeout, per_resource, time.monotonic()

    def pump(self, block: float) -> None:
        """Apply every message that has arrived, waiting up to `block` seconds for the first one."""
        with contextlib.suppress(queue.Empty):
            self._handle(self.queue.get(timeout=block))
            while True:  # drain what arrived together before evaluating
                self._handle(self.queue.get_nowait())

    def listed_all(self) -> bool:
        return len(self.listed) >= self.expected_lists

    def _handle(self, msg: _Msg) -> None:
        if msg.type == "WAKE":
            return
        if msg.type == "FAILED":
            self.log(f"readiness: watching {msg.kind} failed ({msg.error}), retrying")
            return
        if msg.type == "UNREACHABLE":
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
                self.log(f"readiness: the API server does not answer ({_short(msg.error)}), retrying")
            self.unreachable_error = msg.error
            return
        self.unreachable_since = None
        items = [o for o in msg.items if self._wanted(str((o.get("metadata") or {}).get("namespace", "")))]
        if msg.type == "LIST":
            self.listed.add((msg.kind, msg.namespace))
            self.cache.replace(msg.kind, msg.namespace, items)
        else:
            for obj in items:
                self.cache.apply(msg.kind, msg.type, obj)

    def wait(
        self,
        timeout: float,
        per_resource: Mapping[str, float],
        cancel: threading.Event | None,
        progress_every: float,
    ) -> list[ResourceResult]:
        """Until every workload is healthy, one has failed for good, or the allowances ran out."""
        self.start_clock(timeout, per_resource)
        scope = ", ".join(self.namespaces) if self.namespaces else "all namespaces but the system ones"
        self.log(f"readiness: watching workloads in {scope} (timeout {timeout:.0f}s)")
        last_progress, block = self.start, 0.0  # the cache may decide already: look before blocking
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled while waiting for workloads")
            self.pump(block)
            block, now = TICK, time.monotonic()
            self.check_reachable(now)
            if not self.listed_all():
                if now - self.start > timeout:
                    raise_listing_timeout(self.listed, self.expected_lists)
                continue
            pending, finished = self.evaluate(now)
            if finished:
                return self._finish(pending, now)
            if now - last_progress >= progress_every:
                last_progress = now
                self.log(f"readiness: still not healthy: {describe_pending(pending)}")

    def check_reachable(self, now: float) -> None:
        if self.unreachable_since is not None and now - self.unreachable_since >= API_LOST_AFTER:
            host = getattr(self.api_client.configuration, "host", "") or "?"
            raise InfrastructureError(
                f"the Kubernetes API server at {host} stopped answering during the readiness watch "
                f"(for {now - self.unreachable_since:.0f}s: {_short(self.unreachable_error)})",
                self.unreachable_error,
            )

    def evaluate(self, now: float) -> tuple[dict[Key, tuple[str, Problem | None]], bool]:
        """(still pending -> (detail, problem), finished?) after marking the healthy and the fatal."""
        pods = self.cache.pods_by_workload()
        pending: dict[Key, tuple[str, Problem | None]] = {}
        finished = True
        workloads = self.cache.workloads()
        for key in [k for k in self.ready_at if k not in workloads]:
            del self.ready_at[key]
        for key, obj in workloads.items():
            healthy, detail = workload_health(key[0], obj, pods.get(key, []))
            if healthy:
                self.ready_at.setdefault(key, now - self.watching_since)
                self.ready_wall.setdefault(key, time.time())
                self.fatal.pop(key, None)
                continue
            self.ready_at.pop(key, None)
            problem = workload_problem(key[0], obj, pods.get(key, []), self.max_restarts)
            if problem and not problem.fatal:
                problem = self._maybe_fatal(key, problem, now)
            if problem and problem.fatal:
                self.fatal[key] = problem
            else:
                self.fatal.pop(key, None)
            pending[key] = (detail, problem)
            if key not in self.fatal and now - self.start < allowance(key, self.timeout, self.per_resource):
                finished = False
        # fail fast: one workload that failed for good decides the run
        return pending, finished or bool(self.fatal)

    def _maybe_fatal(self, key: Key, problem: Problem, now: float) -> Problem:
        grace = {"Unschedulable": self.grace}.get(problem.reason)
        if problem.reason in _CONFIG_ERRORS:
            grace = CONFIG_ERROR_GRACE
        if grace is None:
            return problem
        first = self.first_seen_problem.setdefault((key, problem.reason), now)
        age = now - first
        if problem.since is not None:  # it may have been stuck before we started watching
            age = max(age, time.time() - problem.since)
        if age >= grace:
            return dataclasses.replace(problem, message=f"{problem.message} (for {age:.0f}s)", fatal=True)
        return problem

    def results(self, pending: Mapping[Key, tuple[str, Problem | None]], now: float) -> list[ResourceResult]:
        core = _LazyCore(self.api_client)
        pods = self.cache.pods_by_workload()
        wall = time.time()
        out = []
        for key in sorted(set(self.ready_at) | set(pending)):
            obj = self.cache.objects.get(key) or {}
            since = verdict.waiting_since(obj, pods.get(key, []))
            if key in self.ready_at:
                ready = round(self.ready_at[key], 3)
                spans = [Span("ready", since, self.ready_wall.get(key, wall))] if since is not None else []
                out.append(ResourceResult(result_name(key), "kubernetes", True, ready_seconds=ready,
                                          spans=spans))
                continue
            detail, problem = pending[key]
            result = self._failed_result(core, key, detail, problem, now, obj, pods.get(key, []), wall)
            result.spans = [Span("ready", since, None)] if since is not None else []
            out.append(result)
        return out

    def _failed_result(
        self, core: Any, key: Key, detail: str, problem: Problem | None, now: float,
        obj: Mapping[str, Any] | None = None, pods: Sequence[Mapping[str, Any]] = (),
        wall: float | None = None,
    ) -> ResourceResult:
        """Failed with its cause, timed out, or (the run stopped on another's failure) decided by evidence."""
        wall = time.time() if wall is None else wall
        limit = allowance(key, self.timeout, self.per_resource)
        name = result_name(key)
        if problem is not None and problem.fatal:
            message, logs = _enrich(core, key[1], problem)
            return ResourceResult(name, "kubernetes", False, reason=problem.reason, message=message,
                                  logs=logs)
        if now - self.start >= limit:
            message, logs = _enrich(core, key[1], problem) if problem else ("", "")
            why = f"; {problem.reason}: {message}" if problem else ""
            # Told from when it began to wait (its first pod's creation, under tilt ci), not from when
            # this watch's last stage began.
            since = verdict.waiting_since(obj or {}, pods)
            waited = wall - since if since is not None else now - self.watching_since
            limit_words = ("when tilt ci had ended" if self.explaining
                           else f"(pyci's readiness limit {format_duration(limit)})")
            text = (f"not healthy {format_duration(waited)} after its first pod was created {limit_words}, "
                    f"waiting on {detail}{why}")
            # A cause seen at the deadline is the verdict (the kubelet flips a pull error between
            # ErrImagePull and ImagePullBackOff, so the last look may catch the milder one); a pod
            # that is merely slow or not ready yet timed out.
            reason = problem.reason if problem is not None and problem.reason in _CAUSES else "Timeout"
            return ResourceResult(name, "kubernetes", False, reason=reason, message=text, logs=logs)
        found = verdict.decide(key[0], obj or {}, pods, problem, detail, wall)
        if not found.failed:
            return ResourceResult(name, "kubernetes", False, reason=found.reason, message=found.message,
                                  finished=False)
        message, logs = _enrich(core, key[1], problem) if problem else (found.message, "")
        if problem is None or found.reason != problem.reason:
            message = found.message + (f" | {message}" if problem and message else "")
        return ResourceResult(name, "kubernetes", False, reason=found.reason, message=message, logs=logs)

    def _finish(self, pending: Mapping[Key, tuple[str, Problem | None]], now: float) -> list[ResourceResult]:
        results = self.results(pending, now)
        bad = [r for r in results if not r.ok]
        self.log(
            f"readiness: {len(results) - len(bad)}/{len(results)} workloads healthy"
            f" after {now - self.start:.1f}s"
            + (f"; failed: {', '.join(r.name for r in bad)}" if bad else "")
        )
        return results



class _LazyCore:
    """CoreV1Api made on first use: an all-healthy result needs no logs, and importing the client's
    API module costs seconds on a busy machine."""

    def __init__(self, api_client: Any) -> None:
        self._api_client = api_client
        self._core: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._core is None:
            self._core = client.CoreV1Api(self._api_client)
        return getattr(self._core, name)


def wait_healthy(
    api_client: client.ApiClient,
    namespaces: Sequence[str],
    timeout: float,
    per_resource_timeouts: Mapping[str, float],
    max_restarts: int,
    log: Log,
    cancel: threading.Event | None = None,
    unschedulable_grace: float = UNSCHEDULABLE_GRACE,
    progress_every: float = PROGRESS_EVERY,
) -> list[ResourceResult]:
    """Watch Deployments, StatefulSets, DaemonSets, Jobs and Pods until all are healthy.

    Returns one ResourceResult per workload (`deployment/default/web`). Stops early when a workload
    failed for good (crash loop beyond `max_restarts`, image pull back-off, failed Job, unschedulable
    for `unschedulable_grace` seconds, progress deadline exceeded). A workload still unhealthy when
    its allowance (`timeout`, or its entry in `per_resource_timeouts`) runs out fails with its best
    classification, or reason `Timeout`. Starts its own watches; Sentinel.wait_healthy reuses a
    sentinel's.
    """
    waiter = _Waiter(api_client, namespaces, max_restarts, log, unschedulable_grace)
    waiter.start_watches()
    try:
        return waiter.wait(timeout, per_resource_timeouts, cancel, progress_every)
    finally:
        waiter.close()


def raise_listing_timeout(listed: set[tuple[str, str | None]], expected: int) -> None:
    raise InfrastructureError(
        f"readiness: could not list workloads from the API server ({len(listed)}/{expected} lists done)"
    )


class Sentinel:
    """One watch of the workloads, kept from before `tilt ci` starts until readiness is decided.

    While tilt ci runs, a thread sets `failed` the moment a workload has failed for good: tilt ci
    itself waits out its whole timeout on a crash loop or a pull back-off, the pipeline can stop it
    within a second instead. It never decides success: `wait_healthy` does, afterwards, on the same
    watches and cache, so an app that is healthy already is reported at once, without listing again.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        namespaces: Sequence[str],
        max_restarts: int,
        log: Log,
        unschedulable_grace: float = UNSCHEDULABLE_GRACE,
    ) -> None:
        self.failed = threading.Event()
        self.reasons: list[str] = []
        self.lost: InfrastructureError | None = None  # the API server stopped answering during tilt ci
        self._done = threading.Event()
        self._waiter = _Waiter(api_client, namespaces, max_restarts, log, unschedulable_grace)
        self._thread = threading.Thread(target=self._run, name="readiness-sentinel", daemon=True)

    def __enter__(self) -> Sentinel:
        self._waiter.start_watches()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_thread()
        self._waiter.close()

    def wait_healthy(
        self,
        timeout: float,
        per_resource_timeouts: Mapping[str, float],
        cancel: threading.Event | None = None,
        progress_every: float = PROGRESS_EVERY,
        explaining: bool = False,
    ) -> list[ResourceResult]:
        """The module's wait_healthy, on this sentinel's watches: its thread hands the cache over.
        `explaining`: tilt ci has failed already; the short watch only says why (its limit is no
        workload's own, so its messages do not name it)."""
        self._stop_thread()
        self._waiter.explaining = explaining
        return self._waiter.wait(timeout, per_resource_timeouts, cancel, progress_every)

    def _stop_thread(self) -> None:
        self._done.set()
        self._waiter.queue.put(_WAKE)  # rather than let it sleep out its tick
        if self._thread.is_alive():
            self._thread.join()  # never two threads on one cache

    def _run(self) -> None:
        waiter = self._waiter
        while True:
            waiter.pump(TICK)
            if self._done.is_set():
                return
            try:
                waiter.check_reachable(time.monotonic())
            except InfrastructureError as err:
                waiter.log(f"readiness: {err.message}: stopping tilt ci")
                self.lost = err
                self.failed.set()
                return
            if not waiter.listed_all():
                continue
            waiter.evaluate(time.monotonic())
            if waiter.fatal:
                self.reasons = [f"{result_name(k)} ({p.reason})" for k, p in sorted(waiter.fatal.items())]
                waiter.log(f"readiness: failed for good while tilt ci runs: {', '.join(self.reasons)}")
                self.failed.set()
                return
