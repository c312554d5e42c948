"""Order the stages, time them, run registry and cluster concurrently, map outcomes to exit codes.

Every stage that creates something registers its undo on one ExitStack, so cleanup runs in reverse
order on success, failure, exception or signal. SIGTERM/SIGINT set a cancel event and raise
Cancelled in the main thread; child processes (kind, tilt, socat) are stopped, then the stack closes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pyci import processes, testhook
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
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage inside a folded log group and record how it ended."""
        t0, started_at = time.monotonic(), time.time()
        with self.platform.group(name):
            try:
                yield
            except BaseException as e:
                message = e.message if isinstance(e, PyciError) else f"{type(e).__name__}: {e}"
                self.stages.append(StageResult(name, time.monotonic() - t0, ok=False, error=message,
                                               started_at=started_at))
                raise
        self.stages.append(StageResult(name, time.monotonic() - t0, started_at=started_at))

    def skip(self, name: str) -> None:
        self.stages.append(StageResult(name, 0.0, skipped=True))


def run(settings: Settings, platform: Platform, cancel: threading.Event | None = None) -> RunResult:
    """Run the whole job; never raises for an expected failure: the exit code says how it ended."""
    state = Run(settings=settings, platform=platform, cancel=cancel or threading.Event())
    t0, started_at = time.monotonic(), time.time()
    for secret in settings.secrets:
        platform.mask(secret)
    # What `pyci cleanup --run-id` takes, should this run be killed before its cleanup.
    platform.info(f"run id {settings.run_id}")
    exit_code, headline = ExitCode.HEALTHY, ""
    with _signals_cancel(state.cancel):
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
    _check_cancel(state)  # a signal that came before the run's own handlers: nothing is made
    # The stages' imports (docker, kubernetes: about half a second) while tilt reads the Tiltfile.
    importing = threading.Thread(target=_import_stages, name="imports", daemon=True)
    importing.start()
    _preflight(state)
    importing.join()
    from pyci import cluster as clusters
    from pyci import components, locate, network, ownership, reaper, registry, timeline, topology
    from pyci.cluster.kind import KindProvider

    s = state.settings
    with state.stage("docker"):
        client = _docker_client()
        stack.callback(client.close)
    with state.stage("topology"):
        where = topology.detect(client, s.topology)
        state.platform.info(f"topology: {where.kind.value} ({where.evidence})")
        if where.own_container_id and not s.keep_cluster:
            # `docker kill` of this container (GitHub's cancel) ends pyci before any cleanup runs.
            reaper.start(client, where.own_container_id, s.run_id, stack)
    _check_cancel(state)

    # Kubeconfigs: private, never in artifacts; named for the run so `pyci cleanup --run-id` finds it.
    workdir = Path(tempfile.mkdtemp(prefix=f"pyci-{s.run_id}-"))
    os.chmod(workdir, 0o700)
    if not s.keep_cluster:
        stack.callback(_rmtree, workdir)
    provider = clusters.get_provider(s, workdir)
    kind_network: str = (getattr(provider, "network", None) or "") if s.cluster == "kind" else ""
    made_network = bool(kind_network) and not _network_exists(client, kind_network)
    if made_network:
        # kind makes its network on first use and never removes it: this run made it, so it goes,
        # after the cluster and the registry (callbacks run last-in first-out).
        stack.callback(_remove_network_if_unused, client, kind_network)
    if isinstance(provider, KindProvider) and not provider.exists():
        # Before `kind create`: a run killed at any moment leaves a marker `pyci cleanup` follows.
        ownership.claim_cluster(client, s.cluster_name, s.run_id, stack,
                                network=kind_network if made_network else None)
    testhook.pause("claimed")
    ahead = _build_ahead(state, client, stack)  # runs while the registry and cluster come up
    with state.stage("registry + cluster"):
        reg_stack, cluster_stack = contextlib.ExitStack(), contextlib.ExitStack()
        stack.callback(_close_together, reg_stack, cluster_stack)  # undone side by side, as made
        if ahead is not None:  # its throwaway tags go beside kind delete, after tilt's builds used them
            reg_stack.callback(ahead.close)
        reg_info, cluster_info = _concurrently(
            state,
            lambda: _registry(state, client, where, reg_stack, ahead, kind_network),
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
        reg_stack.callback(_remove_tags, client, f"{reg_info.host}/")
    _check_cancel(state)

    testhook.pause("connect")
    with state.stage("connect"):
        reach = network.make_reachable(client, where, cluster_info, reg_info, stack,
                                       socat_image=s.socat_image, labels=registry.labels(s))
        state.kubeconfig = str(reach.kubeconfig)
        api = _api_client(reach.kubeconfig)
        stack.callback(api.close)
        registry.connect_to_cluster(client, reg_info, cluster_info, api,
                                    namespaces=s.namespaces or ("default",),
                                    restore_on=stack if s.cluster == "existing" else None)
    _check_cancel(state)

    _await_ahead(state, ahead)
    testhook.pause("tilt")
    kind_nodes = cluster_info.nodes if s.cluster == "kind" else ()
    try:
        with _workload_watch(state, api) as sentinel:
            outcome = _tilt(state, reach.kubeconfig, sentinel)
            if sentinel is not None and sentinel.lost is not None:
                raise sentinel.lost
            workloads = _readiness(state, sentinel, tilt_ok=outcome.exit_code == 0)
    except InfrastructureError:
        _raise_if_infrastructure_lost(client, reg_info, kind_nodes)  # the more concrete reason
        raise
    _note_cache_hits(state, ahead, outcome.log_path)
    found = outcome.resources + workloads
    state.resources = components.merge(found, state.evaluation)
    timeline.add_snapshot_spans(state.resources, outcome.snapshot)  # build and deploy, for the timeline
    failing = [r for r in state.resources if not r.ok]
    if outcome.exit_code == 0 and not failing:
        return ExitCode.HEALTHY, f"all {len(state.resources)} components are healthy"
    # A registry or node that died under the run is why it failed (and diagnostics would wait on it).
    _raise_if_infrastructure_lost(client, reg_info, kind_nodes)

    testhook.pause("diagnostics")
    with state.stage("diagnostics"):
        # The bundle looks objects up by their own names: the members, not the merged components.
        _diagnostics(state, api, [r for r in found if not r.ok], outcome.snapshot,
                     kind_cluster=cluster_info.name if s.cluster == "kind" else None)
    causes = components.root_causes(state.resources)
    declared = locate.locate(causes, _workspace(), s.tiltfile_path.resolve(), state.evaluation)
    for r in causes:
        r.location = declared.get(r.name)  # on the pull request's diff, at its manifest or Tiltfile line
        state.platform.error(f"{r.name}: {r.reason or 'failed'}", r.message or "not healthy",
                             declared.get(r.name))
    names = ", ".join(f"{r.name} ({r.reason})" if r.reason else r.name for r in causes[:5])
    if not failing:
        names = outcome.error or f"tilt ci exited {outcome.exit_code}"
    raise AppFailed(f"the app did not start: {names}")


def _preflight(state: Run) -> None:
    """Read the Tiltfile before anything exists: its errors end the run in a fraction of a second."""
    from pyci import tiltfile

    s = state.settings
    with state.stage("preflight"):
        found = tiltfile.evaluate(s.tiltfile_path.resolve(), s.tilt_args)
        if found.unavailable:
            state.platform.info(f"preflight: Tiltfile not read ahead ({found.unavailable}); tilt ci decides")
        elif found.error and found.error.environmental:
            state.platform.info(f"preflight: {found.error.message} (may need the cluster; tilt ci decides)")
        elif found.error is None:
            state.platform.info(f"preflight: {len(found.components)} components, {len(found.images)} images "
                                f"in {found.seconds:.2f}s")
    state.evaluation = found
    error = found.error
    if error is None or error.environmental:
        return
    roots = [Path(p) for p in (os.environ.get("GITHUB_WORKSPACE"), os.getcwd()) if p]
    where = tiltfile.relative_location(error.location, roots) if error.location else None
    state.resources = [ResourceResult(name="(Tiltfile)", source="tilt", ok=False, reason="TiltfileError",
                                      message=f"{where}: {error.message}" if where else error.message)]
    state.platform.error("Tiltfile error", error.message, where)
    raise AppFailed(f"the Tiltfile has an error{f' at {where}' if where else ''}: {error.message}")


def _workspace() -> Path:
    """What annotation paths are relative to: the repository on GitHub, else where pyci runs."""
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())


def _registry(state: Run, client: Any, where: Any, stack: contextlib.ExitStack, ahead: BuildAhead | None,
              kind_network: str) -> Any:
    """The registry; with images to build ahead, also on kind's network as soon as kind makes it (its
    port is final then), and the builds pushed into it while kind boots."""
    from pyci import registry

    info = registry.provision(state.settings, client, where, stack, cancel=state.cancel)
    if ahead is not None and ahead.waves and info.mode == "local" and kind_network:
        info = registry.join_network_when_made(client, info, kind_network, state.cancel)
        if info.host:
            ahead.push_to(info.host)
    return info


def _build_ahead(state: Run, client: Any, stack: contextlib.ExitStack) -> BuildAhead | None:
    """Start building the preflight's image targets (and prefetching third-party images) while kind
    boots; None when there is no boot to overlap or nothing was read ahead (tilt ci builds as today).

    `build-ahead: false` stops the builds and the pulls, not the loading of third-party images the
    daemon already has: a node that cannot pull them (offline, private) needs them loaded either way."""
    from pyci import buildahead

    s = state.settings
    if s.cluster != "kind":
        return None
    planned = buildahead.plan(state.evaluation)
    if planned is None:
        if s.build_ahead:
            state.platform.info("build ahead: the Tiltfile was not read ahead; tilt ci builds as usual")
        return None
    found, skipped, third_party = planned
    if not s.build_ahead:
        found, skipped = [], []
    if not found and not third_party:
        return None
    ahead = buildahead.BuildAhead(client, found, s.run_id, state.platform.info, third_party, skipped,
                                  pull=s.build_ahead)
    stack.callback(ahead.close)  # should the next stage not start; closing twice is harmless
    ahead.start()
    if third_party:  # into the nodes as soon as they can take them, while kind still boots
        ahead.load_into_kind(s.cluster_name)
    if s.build_ahead:
        state.platform.info(f"build ahead: {len(found)} images (tags {ahead.repository}:*), "
                            f"{len(third_party)} third-party images, while the cluster boots "
                            f"(up to {ahead.workers} builds at once)")
    else:
        state.platform.info(f"build ahead: off; {len(third_party)} third-party images loaded into the "
                            "nodes if the daemon has them (no pulls)")
    return ahead


def _await_ahead(state: Run, ahead: BuildAhead | None) -> None:
    """tilt ci starts when the builds ahead ended (it would only run the same builds again) and the
    third-party images are in the nodes (a pod must not look for them first)."""
    if ahead is None:
        return
    t0 = time.monotonic()
    ahead.wait(state.settings.timeout, state.cancel)
    ahead.wait_pushed(state.settings.timeout, state.cancel)
    ahead.wait_loaded(state.settings.timeout, state.cancel)
    ahead.profile.waited = time.monotonic() - t0
    _check_cancel(state)
    state.stages.append(StageResult("build ahead", ahead.profile.waited, detail=ahead.profile.describe()))
    state.platform.info(f"build ahead: {ahead.profile.describe()}")


def _note_cache_hits(state: Run, ahead: BuildAhead | None, tilt_log: Path) -> None:
    """What tilt's own builds found cached: the proof build-ahead paid, in the profile."""
    from pyci import buildahead

    stage = next((st for st in state.stages if st.name == "build ahead"), None)
    if ahead is None or stage is None:
        return
    with contextlib.suppress(OSError):
        ahead.profile.hits = buildahead.cache_hits(tilt_log.read_text(encoding="utf-8", errors="replace"))
    stage.detail = ahead.profile.describe()
    if ahead.profile.hits is not None:
        state.platform.info(f"build ahead: tilt found {ahead.profile.hits.cached} of "
                            f"{ahead.profile.hits.steps} build steps cached")


def _workload_watch(state: Run, api: Any) -> contextlib.AbstractContextManager[Sentinel | None]:
    """One watch of the workloads across tilt ci and readiness; none when not asked to wait."""
    from pyci import readiness

    s = state.settings
    if not s.wait:
        return contextlib.nullcontext()
    return readiness.Sentinel(api, s.namespaces, s.max_restarts, log=state.platform.untrusted)


def _tilt(state: Run, kubeconfig: Path, sentinel: Sentinel | None) -> Any:
    from pyci import tilt

    s = state.settings
    with state.stage("tilt ci"):  # the sentinel stops tilt as soon as a workload failed for good
        outcome = tilt.run_ci(s, kubeconfig, s.artifacts_dir, log=state.platform.untrusted,
                              cancel=state.cancel, stop=sentinel.failed if sentinel else None,
                              redact=state.platform.redact)
    if outcome.exit_code == 0:
        # `tilt ci` exits 0 only when every resource is healthy; the snapshot it writes on exit can
        # lag behind (a resource still "pending" in it), so its word wins.
        outcome.resources = [dataclasses.replace(r, ok=True, reason=None, message=None)
                             for r in outcome.resources]
    else:
        stage = state.stages[-1]
        stage.ok, stage.error = False, outcome.error or f"tilt ci exited {outcome.exit_code}"
    return outcome


def _readiness(state: Run, sentinel: Sentinel | None, tilt_ok: bool) -> list[ResourceResult]:
    s = state.settings
    if sentinel is None:
        state.skip("readiness")
        return []
    timeout = s.wait_timeout if tilt_ok else min(s.wait_timeout, EXPLAIN_AFTER_TILT_FAILURE)
    testhook.pause("readiness")
    with state.stage("readiness"):  # on the sentinel's watches: a healthy app is reported at once
        return sentinel.wait_healthy(timeout, s.readiness_timeouts, cancel=state.cancel)


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
    with _signals_deferred(state, late), state.platform.group("cleanup"):
        try:
            testhook.pause("cleanup", late)
            stack.close()
            state.stages.append(StageResult("cleanup", time.monotonic() - t0))
        except Exception as e:  # noqa: BLE001 - report, never mask the run's own result
            state.platform.warning(f"cleanup failed: {e}")
            state.stages.append(StageResult("cleanup", time.monotonic() - t0, ok=False, error=str(e)))


def _concurrently(state: Run, *calls: Callable[[], Any]) -> list[Any]:
    """Run independent stages side by side; the first failure wins, the others are awaited.

    A cancel can land anywhere in here, also between two submits: then the children (kind) are
    stopped before the pool waits for its threads, and a call that had not started yet never does.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="stage")
    futures: list[concurrent.futures.Future[Any]] = []
    try:
        for call in calls:
            futures.append(pool.submit(_unless_cancelled, state, call))
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        errors = [f.exception() for f in futures if f.done() and f.exception()]
        if errors:
            state.cancel.set()
            processes.terminate_children(grace=5.0)
            concurrent.futures.wait(futures, timeout=20)
            raise errors[0]  # type: ignore[misc]
        return [f.result() for f in futures]
    except Cancelled:
        state.cancel.set()
        t0 = time.monotonic()
        said = False
        # Again and again: a stage thread may start its child (kind) just after a sweep, and a kind
        # that is not stopped runs its create to the end (seen: 49.9 s after a Ctrl-C).
        while time.monotonic() - t0 < 20:
            processes.terminate_children(grace=5.0)
            _, pending = concurrent.futures.wait(futures, timeout=0.5)
            if not pending:
                break
            if not said and time.monotonic() - t0 > 3:  # say what it waits on: a busy daemon, likely
                log.info("cancelled: waiting for %s", "; ".join(_where_threads("stage")))
                said = True
        log.info("cancelled: registry and cluster stages stopped in %.1fs", time.monotonic() - t0)
        raise
    finally:
        pool.shutdown(wait=True)


def _unless_cancelled(state: Run, call: Callable[[], T]) -> T:
    if state.cancel.is_set():
        raise Cancelled("cancelled")
    return call()


def _where_threads(prefix: str) -> list[str]:
    """`thread at file:line (function)`: the innermost pyci frame of each live thread named prefix*."""
    import sys
    import traceback

    frames = sys._current_frames()
    found = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if not thread.name.startswith(prefix) or frame is None:
            continue
        stack = traceback.extract_stack(frame)
        ours = [f for f in stack if "/pyci/" in f.filename] or stack
        found.append(f"{thread.name} at {Path(ours[-1].filename).name}:{ours[-1].lineno} ({ours[-1].name}), "
                     f"in {Path(stack[-1].filename).name}:{stack[-1].lineno}")
    return found


def _raise_if_infrastructure_lost(client: Any, reg_info: Any, kind_nodes: tuple[str, ...]) -> None:
    """InfrastructureError naming the registry container or kind node that is no longer running."""
    import docker.errors

    watched = [("kind node", name) for name in kind_nodes]
    if reg_info.mode == "local" and reg_info.container_name:
        watched.append(("the local registry", reg_info.container_name))
    for what, name in watched:
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            raise InfrastructureError(f"{what} {name} was removed during the run") from None
        except Exception as err:  # noqa: BLE001 - the daemon itself is gone
            raise InfrastructureError(f"the Docker daemon stopped answering during the run: {err}") from err
        if container.status != "running":
            code = (container.attrs.get("State") or {}).get("ExitCode")
            raise InfrastructureError(f"{what} {name} stopped during the run "
                                      f"(status {container.status}, exit code {code})")


def _import_stages() -> None:
    with contextlib.suppress(Exception):  # a broken import fails where the stage imports it, as before
        import docker  # noqa: F401
        import kubernetes.client  # noqa: F401
        import kubernetes.config  # noqa: F401

        from pyci import components, network, readiness, registry, tilt, topology  # noqa: F401


def _close_together(*stacks: contextlib.ExitStack) -> None:
    """Close independent stacks at once (kind delete and the registry's removal take a second or two
    each); every one is closed, then the first error is raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(stacks), thread_name_prefix="undo") as pool:
        futures = [pool.submit(st.close) for st in stacks]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]


def _check_cancel(state: Run) -> None:
    if state.cancel.is_set():
        raise Cancelled("cancelled")


def _docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:  # noqa: BLE001 - docker raises many kinds for "no daemon"
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise InfrastructureError(f"cannot reach the Docker daemon at {where}: {e}") from e
    return client


def _api_client(kubeconfig: Path) -> Any:
    from kubernetes import config

    try:
        return config.new_client_from_config(config_file=str(kubeconfig))
    except Exception as e:  # noqa: BLE001
        raise InfrastructureError(f"cannot load kubeconfig {kubeconfig}: {e}") from e


def _remove_tags(client: Any, prefix: str) -> None:
    from pyci import images

    for tag in images.tags(client):
        if tag.startswith(prefix):
            with contextlib.suppress(Exception):
                client.images.remove(tag)


def _network_exists(client: Any, name: str) -> bool:
    return any(n.name == name for n in client.networks.list(names=[name]))  # the filter is a substring


def _remove_network_if_unused(client: Any, name: str) -> None:
    for network in client.networks.list(names=[name]):
        network.reload()
        if network.name == name and not network.attrs.get("Containers"):
            with contextlib.suppress(Exception):
                network.remove()
                log.info("removed docker network %s", name)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _signals_cancel(cancel: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT: remember it and raise Cancelled where the main thread is now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if cancel.is_set():
            return
        cancel.set()
        raise Cancelled(f"cancelled by {signal.Signals(signum).name}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _signals_deferred(state: Run, late: threading.Event) -> Iterator[None]:
    """While cleanup runs: a signal is remembered (the run ends cancelled), never raised."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if not state.cancel.is_set() and not state.late_signal:
            state.late_signal = signal.Signals(signum).name
        late.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
