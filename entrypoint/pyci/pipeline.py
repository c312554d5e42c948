"""Order the stages, time them, run registry and cluster concurrently, map outcomes to exit codes.

Every stage that creates something registers its undo on one ExitStack, so cleanup runs in reverse
order on success, failure, exception or signal. SIGTERM/SIGINT set a cancel event and raise
Cancelled in the main thread; child processes (kind, tilt, socat) are stopped, then the stack closes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pyci import ahead as ahead_steps
from pyci import concurrency, daemon, processes, signals, testhook
from pyci.platforms import Platform
from pyci.results import (
    AppFailed,
    Cancelled,
    ExitCode,
    InfrastructureError,
    PyciError,
    ResourceResult,
    RunResult,
    StageResult,
    Status,
)
from pyci.settings import Settings

if TYPE_CHECKING:
    from pyci.buildahead import BuildAhead
    from pyci.readiness import Sentinel

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long the readiness watch may look at workloads to explain a failed `tilt ci`.
EXPLAIN_AFTER_TILT_FAILURE = 15.0


@dataclass
class Run:
    """Mutable state of one run: what the stages found so far."""

    settings: Settings
    platform: Platform
    cancel: threading.Event = field(default_factory=threading.Event)
    stages: list[StageResult] = field(default_factory=list)
    resources: list[ResourceResult] = field(default_factory=list)
    cluster_name: str = ""
    kubeconfig: str = ""
    registry: str = ""
    evaluation: Any = None  # the preflight's tiltfile.Evaluation
    late_signal: str = ""  # a signal that came while cleanup ran: it did not stop it, the run is cancelled

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[StageResult]:
        """Time a stage inside a folded log group and record how it ended. The body may mark the stage
        it is given (stopped, or failed without raising) before the group's closing line is written."""
        t0 = time.monotonic()
        result = StageResult(name, 0.0, started_at=time.time())
        with self.platform.group(name, status=lambda: result.status):
            try:
                yield result
            except BaseException as e:
                result.ok, result.seconds = False, time.monotonic() - t0
                result.error = e.message if isinstance(e, PyciError) else f"{type(e).__name__}: {e}"
                self.stages.append(result)
                raise
            result.seconds = time.monotonic() - t0
        self.stages.append(result)

    def remember_signal(self, name: str) -> None:
        """A signal that came while cleanup ran: the run ends cancelled (unless it was already)."""
        if not self.cancel.is_set() and not self.late_signal:
            self.late_signal = name

    def skip(self, name: str) -> None:
        self.stages.append(StageResult(name, 0.0, skipped=True, started_at=time.time()))


def run(settings: Settings, platform: Platform, cancel: threading.Event | None = None) -> RunResult:
    """Run the whole job; never raises for an expected failure: the exit code says how it ended."""
    state = Run(settings=settings, platform=platform, cancel=cancel or threading.Event())
    t0, started_at = time.monotonic(), time.time()
    for secret in settings.secrets:
        platform.mask(secret)
    # What `pyci cleanup --run-id` takes, should this run be killed before its cleanup.
    platform.info(f"run id {settings.run_id}")
    exit_code, headline = ExitCode.HEALTHY, ""
    with signals.cancel_on_signal(state.cancel):
        stack = contextlib.ExitStack()
        try:
            exit_code, headline = _run_stages(state, stack)
        except Cancelled as e:
            exit_code, headline = ExitCode.CANCELLED, e.message
        except PyciError as e:
            exit_code, headline = e.exit_code, e.message
            if e.detail:
                platform.info(e.detail)
        except Exception as e:  # a bug or an unexpected library failure: still clean up, exit 3
            log.exception("unexpected error")
            exit_code, headline = ExitCode.INFRASTRUCTURE, f"unexpected error: {type(e).__name__}: {e}"
        finally:
            _cleanup(state, stack)
    if state.late_signal and exit_code != ExitCode.CANCELLED:
        exit_code = ExitCode.CANCELLED
        headline = f"cancelled by {state.late_signal} during cleanup (cleanup completed)"
    return RunResult(
        exit_code=exit_code,
        headline=headline or "all workloads are healthy",
        duration=time.monotonic() - t0,
        stages=state.stages,
        resources=state.resources,
        cluster_name=state.cluster_name,
        kubeconfig=state.kubeconfig if settings.keep_cluster else "",
        registry=state.registry,
        junit=str(settings.junit),
        artifacts_dir=str(settings.artifacts_dir),
        started_at=started_at,
    )


def _run_stages(state: Run, stack: contextlib.ExitStack) -> tuple[ExitCode, str]:
    """The run as steps, each creating what the next needs and registering its undo on `stack`."""
    _check_cancel(state)  # a signal that came before the run's own handlers: nothing is made
    # The stages' imports (docker, kubernetes: about half a second) while tilt reads the Tiltfile.
    importing = threading.Thread(target=_import_stages, name="imports", daemon=True)
    importing.start()
    _preflight(state)
    importing.join()
    from pyci import components, timeline

    client, where = _docker(state, stack)
    provider, kind_network = _claim_cluster(state, client, stack)
    testhook.pause("claimed")
    ahead = ahead_steps.build_ahead(state, client, stack)  # runs while the registry and cluster come up
    made = _registry_and_cluster(state, client, where, provider, kind_network, ahead, stack)
    testhook.pause("connect")
    api = _connect(state, client, where, made, stack)
    ahead_steps.await_ahead(state, ahead)
    ahead_steps.wire_mirrors(state, client, ahead, made.cluster)
    testhook.pause("tilt")
    outcome, found = _app(state, client, made, api)
    ahead_steps.note_cache_hits(state, ahead, outcome.log_path)
    ahead_steps.save_cache(state, client, ahead)
    state.resources = components.merge(found, state.evaluation)
    timeline.add_snapshot_spans(state.resources, outcome.snapshot)  # build and deploy, for the timeline
    if outcome.exit_code == 0 and not components.app_failed(state.resources):
        return ExitCode.HEALTHY, f"all {len(state.resources)} components are healthy"
    # A registry or node that died under the run is why it failed (and diagnostics would wait on it).
    daemon.raise_if_infrastructure_lost(client, made.registry, made.kind_nodes)
    _explain_failure(state, api, found, outcome, made)


@dataclass
class _Made:
    """What the registry + cluster step made, for the steps after it."""

    registry: Any  # registry.RegistryInfo
    cluster: Any  # cluster.ClusterInfo
    kind_nodes: tuple[str, ...]
    kubeconfig: Path = Path()


def _docker(state: Run, stack: contextlib.ExitStack) -> tuple[Any, Any]:
    """The daemon's client and where pyci runs beside it; the host's limits (a stop there leaves nothing:
    the reaper starts after it); as a sibling, the reaper for `docker kill`."""
    from pyci import hostlimits, reaper, topology

    s = state.settings
    with state.stage("docker"):
        client = daemon.docker_client()
        stack.callback(client.close)
    with state.stage("topology"):
        where = topology.detect(client, s.topology)
        state.platform.info(f"topology: {where.kind.value} ({where.evidence})")
    if hostlimits.applies(s, client):
        with state.stage("host limits"):
            hostlimits.check(s, client, where.kind.value, stack, state.platform.info, state.platform.warning)
    if where.own_container_id and not s.keep_cluster:
        # `docker kill` of this container (GitHub's cancel) ends pyci before any cleanup runs.
        reaper.start(client, where.own_container_id, s.run_id, stack)
    _check_cancel(state)
    return client, where


def _claim_cluster(state: Run, client: Any, stack: contextlib.ExitStack) -> tuple[Any, str]:
    """The cluster provider, its private folder, and the marks that make a killed run's leftovers
    findable (the kind network this run makes, the cluster it is about to create)."""
    from pyci import cluster as clusters
    from pyci import ownership
    from pyci.cluster.kind import KindProvider

    s = state.settings
    # Kubeconfigs: private, never in artifacts; named for the run so `pyci cleanup --run-id` finds it.
    workdir = Path(tempfile.mkdtemp(prefix=f"pyci-{s.run_id}-"))
    os.chmod(workdir, 0o700)
    if not s.keep_cluster:
        stack.callback(_rmtree, workdir)
    provider = clusters.get_provider(s, workdir)
    # The registry waits to join this network; an existing (non-kind) cluster has none.
    kind_network, reused = provider.run_network() if isinstance(provider, KindProvider) else ("", False)
    made_network = bool(kind_network) and not daemon.network_exists(client, kind_network)
    if kind_network:
        # kind makes its network on first use and never removes it: the run that made it (or, when
        # it ended first, the last pyci run on it) removes it after the cluster and the registry
        # (callbacks run last-in first-out).
        stack.callback(ownership.leave_network, client, kind_network, made_network)
    if isinstance(provider, KindProvider) and not reused:
        # Before `kind create`: a run killed at any moment leaves a marker `pyci cleanup` follows.
        ownership.claim_cluster(client, s.cluster_name, s.run_id, stack,
                                network=kind_network if made_network else None)
    return provider, kind_network


def _registry_and_cluster(state: Run, client: Any, where: Any, provider: Any, kind_network: str,
                          ahead: BuildAhead | None, stack: contextlib.ExitStack) -> _Made:
    """The registry and the cluster, side by side; then the registry on the cluster's network."""
    from pyci import registry

    with state.stage("registry + cluster"):
        reg_stack, cluster_stack = contextlib.ExitStack(), contextlib.ExitStack()
        stack.callback(concurrency.close_together, reg_stack, cluster_stack)  # undone side by side, as made
        if ahead is not None:  # its throwaway tags go beside kind delete, after tilt's builds used them
            reg_stack.callback(ahead.close)
        reg_info, cluster_info = concurrency.concurrently(
            state.cancel,
            lambda: ahead_steps.registry(state, client, where, reg_stack, ahead, kind_network),
            lambda: provider.create(cluster_stack),
        )
    state.cluster_name = cluster_info.name
    if ahead is not None:
        ahead.booted(time.monotonic() - state.stages[-1].seconds, time.monotonic())
    # Before anything reads the registry's port: joining the cluster's network can change it.
    reg_info = registry.join_cluster_network(client, reg_info, cluster_info)
    state.registry = reg_info.prefix or reg_info.host or ""
    if reg_info.mode == "local" and reg_info.host:
        # tilt leaves `<registry>/<image>:tilt-<hash>` tags in the daemon; they die with the registry
        # (beside kind delete, before the registry container goes).
        reg_stack.callback(daemon.remove_tags, client, f"{reg_info.host}/")
    _check_cancel(state)
    nodes = cluster_info.nodes if state.settings.cluster == "kind" else ()
    return _Made(reg_info, cluster_info, tuple(nodes))


def _connect(state: Run, client: Any, where: Any, made: _Made, stack: contextlib.ExitStack) -> Any:
    """Cluster API and registry reachable from where pyci runs; the Kubernetes API client."""
    from pyci import network, registry

    s = state.settings
    with state.stage("connect"):
        reach = network.make_reachable(client, where, made.cluster, made.registry, stack,
                                       socat_image=s.socat_image, labels=registry.labels(s))
        made.kubeconfig = reach.kubeconfig
        state.kubeconfig = str(reach.kubeconfig)
        api = daemon.api_client(reach.kubeconfig)
        stack.callback(api.close)
        registry.connect_to_cluster(client, made.registry, made.cluster, api,
                                    namespaces=s.namespaces or ("default",),
                                    restore_on=stack if s.cluster == "existing" else None)
    _check_cancel(state)
    return api


def _app(state: Run, client: Any, made: _Made, api: Any) -> tuple[Any, list[ResourceResult]]:
    """`tilt ci` under the workload watch, then readiness on the same watch: (tilt's outcome, what
    tilt and the watch found). A lost API server, registry or node is the infrastructure's failure."""
    try:
        with _workload_watch(state, api) as sentinel:
            outcome = _tilt(state, made.kubeconfig, sentinel)
            if sentinel is not None and sentinel.lost is not None:
                raise sentinel.lost
            workloads = _readiness(state, sentinel, tilt_ok=outcome.exit_code == 0)
    except InfrastructureError:
        daemon.raise_if_infrastructure_lost(client, made.registry, made.kind_nodes)  # more concrete
        raise
    return outcome, outcome.resources + workloads


def _explain_failure(state: Run, api: Any, found: list[ResourceResult], outcome: Any,
                     made: _Made) -> NoReturn:
    """The diagnostics bundle, an annotation per cause (never a bystander) at the line that declares
    it, and the headline."""
    from pyci import components, locate

    testhook.pause("diagnostics")
    with state.stage("diagnostics"):
        # The bundle looks objects up by their own names: the members, not the merged components.
        _diagnostics(state, api, [r for r in found if not r.ok], outcome.snapshot,
                     kind_cluster=made.cluster.name if state.settings.cluster == "kind" else None)
    causes = components.root_causes(state.resources)  # the failed: never a bystander
    declared = locate.locate(causes, _workspace(), state.settings.tiltfile_path.resolve(), state.evaluation)
    for r in causes:
        r.location = declared.get(r.name)  # on the pull request's diff, at its manifest or Tiltfile line
        state.platform.error(f"{r.name}: {r.reason or 'failed'}", r.message or "not healthy",
                             declared.get(r.name))
    names = ", ".join(f"{r.name} ({r.reason})" if r.reason else r.name for r in causes[:5])
    if not causes:  # tilt ci failed, and no component says why: tilt's own word
        names = outcome.error or f"tilt ci exited {outcome.exit_code}"
    raise AppFailed(f"the app did not start: {names}")


def _workspace() -> Path:
    """What annotation paths are relative to: the repository on GitHub or GitLab, else where pyci runs."""
    from pyci import tiltfile

    return tiltfile.workspace_roots(os.environ)[0]


def _preflight(state: Run) -> None:
    """Read the Tiltfile before anything exists: its errors end the run in a fraction of a second."""
    from pyci import tiltfile

    s = state.settings
    with state.stage("preflight"):  # an error found here fails this stage: it is raised inside it
        found = tiltfile.evaluate(s.tiltfile_path.resolve(), s.tilt_args)
        state.evaluation = found
        error = found.error
        if found.unavailable:
            state.platform.info(f"preflight: Tiltfile not read ahead ({found.unavailable}); tilt ci decides")
        elif error and error.environmental:
            state.platform.info(f"preflight: {error.message} (may need the cluster; tilt ci decides)")
        elif error is None:
            state.platform.info(f"preflight: {len(found.components)} components, {len(found.images)} images "
                                f"in {found.seconds:.2f}s")
        if error is None or error.environmental:
            return
        roots = tiltfile.workspace_roots(os.environ)
        where = tiltfile.relative_location(error.location, roots) if error.location else None
        state.resources = [ResourceResult(name="Tiltfile", source="tilt", ok=False, reason="TiltfileError",
                                          message=f"{where}: {error.message}" if where else error.message,
                                          location=where)]
        state.platform.error("Tiltfile error", error.message, where)
        raise AppFailed(f"the Tiltfile has an error{f' at {where}' if where else ''}: {error.message}")


def _workload_watch(state: Run, api: Any) -> contextlib.AbstractContextManager[Sentinel | None]:
    """One watch of the workloads across tilt ci and readiness; none when not asked to wait."""
    from pyci import readiness

    s = state.settings
    if not s.wait:
        return contextlib.nullcontext()
    return readiness.Sentinel(api, s.namespaces, s.max_restarts, log=state.platform.untrusted)


def _tilt(state: Run, kubeconfig: Path, sentinel: Sentinel | None) -> Any:
    from pyci import tilt, tiltfile

    s = state.settings
    with state.stage("tilt ci") as stage:  # the sentinel stops tilt as soon as a workload failed for good
        outcome = tilt.run_ci(s, kubeconfig, s.artifacts_dir, log=state.platform.untrusted,
                              cancel=state.cancel, stop=sentinel.failed if sentinel else None,
                              redact=state.platform.redact,
                              resource_deps=tiltfile.resource_deps(state.evaluation))
        if outcome.exit_code != 0 and sentinel is not None and sentinel.failed.is_set() \
                and sentinel.lost is None:
            # pyci ended it on purpose: the cause is a workload's, shown where the watch found it.
            stage.stopped, stage.error = True, f"a workload failed: {', '.join(sentinel.reasons)}"
        elif outcome.exit_code != 0:
            stage.ok, stage.error = False, outcome.error or f"tilt ci exited {outcome.exit_code}"
    if outcome.exit_code == 0:
        # `tilt ci` exits 0 only when every resource is healthy; the snapshot it writes on exit can
        # lag behind (a resource still "pending" in it), so its word wins.
        outcome.resources = [dataclasses.replace(r, ok=True, reason=None, message=None)
                             for r in outcome.resources]
    return outcome


def _readiness(state: Run, sentinel: Sentinel | None, tilt_ok: bool) -> list[ResourceResult]:
    s = state.settings
    if sentinel is None:
        state.skip("readiness")
        return []
    timeout = s.wait_timeout if tilt_ok else min(s.wait_timeout, EXPLAIN_AFTER_TILT_FAILURE)
    testhook.pause("readiness")
    with state.stage("readiness") as stage:  # on the sentinel's watches: a healthy app is reported at once
        found = sentinel.wait_healthy(timeout, s.readiness_timeouts, cancel=state.cancel,
                                      explaining=not tilt_ok)
        failed = [r for r in found if r.status is Status.FAILED]
        if failed:  # the watch found the cause: the stage that found it is where the run failed
            stage.ok = False
            stage.error = ", ".join(f"{r.name} ({r.reason})" for r in failed[:5])
        return found


def _diagnostics(state: Run, api: Any, failing: list[ResourceResult], snapshot: Path | None,
                 kind_cluster: str | None) -> None:
    from pyci import diagnostics

    s = state.settings
    out = diagnostics.collect(api, s.artifacts_dir / "diagnostics", failing, s.namespaces, snapshot,
                              kind_cluster, secrets=(*s.secrets, *state.platform.secrets),
                              log=state.platform.untrusted)
    state.platform.info(f"diagnostics bundle: {out}")


def _cleanup(state: Run, stack: contextlib.ExitStack) -> None:
    """Undo everything, unless the user asked to keep it; a signal now does not interrupt this: it is
    remembered (the run ends cancelled) and cleanup goes on to the end."""
    if state.cancel.is_set():
        processes.terminate_children(grace=5.0)
    if state.settings.keep_cluster:
        kept = stack.pop_all()
        del kept
        state.platform.info("keep-cluster: leaving the cluster, registry and forwarders running")
        return
    t0 = time.monotonic()
    late = threading.Event()
    with signals.deferred(state.remember_signal, late), state.platform.group("cleanup"):
        try:
            testhook.pause("cleanup", late)
            stack.close()
            state.stages.append(StageResult("cleanup", time.monotonic() - t0))
        except Exception as e:  # noqa: BLE001 - report, never mask the run's own result
            state.platform.warning(f"cleanup failed: {e}")
            state.stages.append(StageResult("cleanup", time.monotonic() - t0, ok=False, error=str(e)))


def _import_stages() -> None:
    with contextlib.suppress(Exception):  # a broken import fails where the stage imports it, as before
        import docker  # noqa: F401
        import kubernetes.client  # noqa: F401
        import kubernetes.config  # noqa: F401

        from pyci import components, network, readiness, registry, tilt, topology  # noqa: F401


def _check_cancel(state: Run) -> None:
    if state.cancel.is_set():
        raise Cancelled("cancelled")


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


