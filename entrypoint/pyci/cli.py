"""`pyci run | doctor | cleanup | version`; `pyci` alone is `pyci run` (GitHub passes no arguments).

The stage modules are imported lazily: `pyci version` and `pyci run --dry-run` must work where
docker or kubernetes is missing or broken, and a bad input must fail before anything is touched.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyci import __version__, install, platforms, report
from pyci.results import ExitCode, InputError, PyciError, RunResult
from pyci.settings import (
    INPUTS,
    LABEL_MANAGED,
    LABEL_RUN,
    Settings,
    load_settings,
    raw_secrets,
    schema,
)

if TYPE_CHECKING:
    import docker

SUBCOMMANDS = ("run", "doctor", "cleanup", "version", "install-tools", "reap")
TOOL_TIMEOUT = 20.0  # seconds for a `<tool> version`
KIND_DELETE_TIMEOUT = 300.0
# (tool, version command) for doctor and version; docker prints the client even without a daemon.
TOOLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kind", ("kind", "version")),
    ("tilt", ("tilt", "version")),
    ("kubectl", ("kubectl", "version", "--client")),
    ("docker", ("docker", "version", "--format", "{{.Client.Version}}")),
    # The toolbox real Tiltfiles call (ext:// extensions, helm(), local() commands).
    ("helm", ("helm", "version", "--short")),
    ("git", ("git", "--version")),
    ("bash", ("bash", "--version")),
    ("curl", ("curl", "--version")),
    ("jq", ("jq", "--version")),
)
_CLUSTER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


# --- parser ---
def _is_boolean(name: str) -> bool:
    return schema()["properties"][name].get("$ref") == "#/$defs/boolean"


def _add_input_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs (also INPUT_<NAME> or PYCI_<NAME> in the environment)")
    for spec in INPUTS:
        default = f" (default: {spec.default})" if spec.default else ""
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if _is_boolean(spec.name) else {}
        group.add_argument(
            f"--{spec.name}",
            dest=spec.field,
            metavar=spec.name.upper().replace("-", "_"),
            help=spec.description.replace("%", "%%") + default,
            **extra,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyci", description="Prove that a Tilt app starts on a fresh cluster."
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,doctor,cleanup,version,install-tools}")
    run = commands.add_parser("run", help="provision, tilt ci, wait until healthy, report (the default)")
    run.add_argument("--dry-run", action="store_true", help="print what would be created and exit")
    _add_input_flags(run)
    run.set_defaults(handler=cmd_run)
    doctor = commands.add_parser("doctor", help="check docker, kind, tilt, kubectl and the topology")
    doctor.set_defaults(handler=cmd_doctor)
    cleanup = commands.add_parser(
        "cleanup", help=f"remove what runs left behind (label {LABEL_MANAGED}=true)"
    )
    cleanup.add_argument("--run-id", help="only what this run created")
    cleanup.add_argument("--dry-run", action="store_true", help="list what would be removed")
    cleanup.set_defaults(handler=cmd_cleanup)
    version = commands.add_parser("version", help="pyci and tool versions")
    version.set_defaults(handler=cmd_version)
    install.add_parser(commands)  # install-tools: the host-mode action's downloader
    reap = commands.add_parser("reap", help=argparse.SUPPRESS)  # run by pyci itself, in its reaper
    reap.add_argument("--container", required=True)
    reap.add_argument("--run-id", required=True)
    reap.set_defaults(handler=cmd_reap)
    return parser


# True when pyci runs as the program (not called by a test): then the handlers that keep a late
# signal from killing it are left in place until the process ends (interpreter shutdown included).
_AS_PROGRAM = False


def main(argv: Sequence[str] | None = None) -> int:
    global _AS_PROGRAM
    _AS_PROGRAM = argv is None
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*SUBCOMMANDS, "-h", "--help"):
        args.insert(0, "run")
    # tilt's own convention: `pyci run [flags] -- <Tiltfile args>` is the same as --tilt-args.
    trailing: list[str] | None = None
    if args[0] == "run" and "--" in args:
        cut = args.index("--")
        args, trailing = args[:cut], args[cut + 1:]
    try:
        namespace = build_parser().parse_args(args)
    except SystemExit as exit_:  # argparse already printed usage and the problem
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        return ExitCode.BAD_INPUT
    if trailing is not None:
        if namespace.tilt_args is not None:
            _error("tilt-args: give the Tiltfile's arguments either after `--` or with --tilt-args, not both")
            return ExitCode.BAD_INPUT
        namespace.tilt_args = shlex.join(trailing)
    handler: Callable[[argparse.Namespace], int] = namespace.handler
    return handler(namespace)


def _error(line: str) -> None:
    print(f"pyci: error: {line}", file=sys.stderr)


# --- run ---
def cmd_run(namespace: argparse.Namespace) -> int:
    environ = os.environ
    platform = platforms.detect(environ)
    overrides = {spec.name: getattr(namespace, spec.field) for spec in INPUTS}
    for secret in raw_secrets(overrides, environ):  # before anything could print one
        platform.mask(secret)
    try:
        settings = load_settings(overrides, environ, platform.input_defaults())
    except InputError as err:
        return input_error(err, platform)
    if namespace.dry_run:
        print("\n".join(plan(settings, platform) + tiltfile_plan(settings)))
        return ExitCode.HEALTHY
    platforms.route_logging(platform, settings.debug)
    return execute(settings, platform)


def input_error(err: InputError, platform: platforms.Platform) -> int:
    lines = err.message.splitlines()
    for line in lines:
        _error(line)
    if platform.annotates:
        platform.error(f"pyci: {len(lines)} invalid input{'s' if len(lines) > 1 else ''}", err.message)
    return ExitCode.BAD_INPUT


def execute(settings: Settings, platform: platforms.Platform) -> int:
    import signal
    import threading

    # Outside the pipeline's own handlers (while it is imported, and after its cleanup, while the
    # report is written) a SIGTERM/SIGINT must not kill pyci half way: it is remembered, the
    # pipeline starts cancelled (nothing is made) or the finished run's report is written whole.
    cancel = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, lambda *_: cancel.set()) for sig in (signal.SIGTERM, signal.SIGINT)
           if main}
    try:
        from pyci import pipeline  # the stages import docker and kubernetes: only when really running

        try:
            result = pipeline.run(settings, platform, cancel=cancel)
        except PyciError as err:  # pipeline.run should return a RunResult; this is the safety net
            _error(err.message)
            if err.detail:
                print(err.detail, file=sys.stderr)
            result = RunResult(exit_code=err.exit_code, headline=err.message)
        except KeyboardInterrupt:
            result = RunResult(exit_code=ExitCode.CANCELLED, headline="cancelled")
        publish(result, settings, platform)
        platform.resume_commands()
    finally:
        if not _AS_PROGRAM:  # a test called it: give its process its own handlers back
            for sig, handler in old.items():
                signal.signal(sig, handler)
    return int(result.exit_code)  # a signal after cleanup changes nothing: the run and its report stand


def publish(result: RunResult, settings: Settings, platform: platforms.Platform) -> None:
    """JUnit, step summary and outputs; a report that cannot be written is a warning, not a new failure."""
    result.junit = str(settings.junit)  # pyci writes it here, whatever a stage put in the result
    result.artifacts_dir = result.artifacts_dir or str(settings.artifacts_dir)
    result.cluster_name = result.cluster_name or settings.cluster_name
    secrets = (*settings.secrets, *platform.secrets)  # the inputs', and those tools declared
    for path in _junit_paths(settings, platform):
        try:
            report.write_junit(result, path, secrets)
        except OSError as err:
            platform.warning(f"could not write the JUnit report {path}: {err}")
    if settings.summary:
        try:
            platform.write_summary(report.summary_markdown(result, secrets))
        except OSError as err:
            platform.warning(f"could not write the step summary: {err}")
    try:
        platform.set_outputs(report.outputs(result, secrets))
    except OSError as err:
        platform.warning(f"could not write the outputs: {err}")
    _component_logs_and_timeline(result, settings, platform, secrets)
    if result.exit_code == ExitCode.HEALTHY:
        platform.info(f"✅ {result.headline}")
    else:
        platform.error(f"pyci: {result.result}", result.headline)


def _component_logs_and_timeline(result: RunResult, settings: Settings, platform: platforms.Platform,
                                 secrets: Sequence[str]) -> None:
    """One log per component in the artifacts (when tilt ran: a tilt.log there is this run's), and the
    timeline in the log (a local terminal has it already, in the summary printed there)."""
    from pyci import component_logs, timeline

    if any(stage.name == "tilt ci" for stage in result.stages):
        try:
            written = component_logs.write(Path(result.artifacts_dir), result.resources, secrets)
            if written:
                platform.info(f"component logs: {written[0].parent} ({len(written)} files)")
        except OSError as err:
            platform.warning(f"could not write the component logs: {err}")
    drawn = timeline.text(result, secrets)
    if drawn and not (settings.summary and platform.name == "local"):
        platform.info(drawn.rstrip("\n"))


def _junit_paths(settings: Settings, platform: platforms.Platform) -> list[Path]:
    """The `junit` input, plus a copy where the CI collects test results if that is elsewhere."""
    paths = [settings.junit]
    folder = platform.test_results_dir
    if folder is not None and settings.junit.resolve().parent != folder.resolve():
        paths.append(folder / "pyci-junit.xml")
    return paths


def plan(settings: Settings, platform: platforms.Platform) -> list[str]:
    """What `run` would do, with names and ports; reads nothing but the settings."""
    lines = [
        "pyci run --dry-run: nothing is created",
        f"  platform      {platform.name} (run id {settings.run_id}, topology {settings.topology})",
        f"  tiltfile      {settings.tiltfile_path}",
        *_plan_cluster(settings),
        *_plan_registry(settings),
        "  build ahead   " + _plan_build_ahead(settings),
        f"  tilt          tilt ci --timeout {max(1, round(settings.timeout))}s"
        + (f" -- {' '.join(settings.tilt_args)}" if settings.tilt_args else ""),
        *_plan_readiness(settings),
        f"  reports       junit {settings.junit}, artifacts {settings.artifacts_dir}"
        + (", step summary" if settings.summary else ""),
        "  cleanup       "
        + ("keep everything (keep-cluster)" if settings.keep_cluster else "remove what this run created"),
    ]
    return lines


def tiltfile_plan(settings: Settings) -> list[str]:
    """What the preflight reads in the Tiltfile (`tilt alpha tiltfile-result`: its local() calls run)."""
    from pyci import tiltfile

    found = tiltfile.evaluate(settings.tiltfile_path.resolve(), settings.tilt_args)
    if found.unavailable:
        return [f"  preflight     Tiltfile not read ahead: {found.unavailable}"]
    if found.error:
        where = f"{found.error.location}: " if found.error.location else ""
        return [f"  preflight     Tiltfile error: {where}{found.error.message}"]
    lines = [f"  preflight     {len(found.components)} components, {len(found.images)} images "
             f"(read in {found.seconds:.2f}s)"]
    for c in found.components:
        what = ", ".join(c.objects) or ("local resource" if c.local else "nothing deployed")
        built = f"; builds {', '.join(c.images)}" if c.images else ""
        lines.append(f"    component   {c.name}: {what}{built}")
    for image in found.images:
        how = "custom_build" if image.custom else f"docker_build {image.context}"
        target = f", target {image.target}" if image.target else ""
        lines.append(f"    image       {image.ref} ({how}{target})")
    lines += [f"    pulls       {ref}" for ref in found.third_party_images]
    return lines


def _plan_cluster(settings: Settings) -> list[str]:
    if settings.cluster == "existing":
        kubeconfig = settings.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return [f"  cluster       existing cluster from kubeconfig {kubeconfig}"]
    name = settings.cluster_name
    image = settings.node_image or "kind's default node image"
    merged = f", merged with {settings.kind_config}" if settings.kind_config else ""
    return [
        f"  cluster       kind cluster {settings.cluster_name} ({image}{merged})",
        f"                node container {name}-control-plane, kube context kind-{name}",
    ]


def _plan_registry(settings: Settings) -> list[str]:
    if settings.registry == "none":
        return ["  registry      none"]
    if settings.remote_registry:
        login = f" as {settings.registry_username}" if settings.registry_username else " without login"
        return [f"  registry      remote {settings.registry}/{settings.run_id}{login}"]
    port = "a free port" if settings.registry_port == 0 else str(settings.registry_port)
    return [
        f"  registry      container {_registry_name(settings.cluster_name)} ({settings.registry_image}) "
        f"on 127.0.0.1:{port}, pushes to localhost:{port}"
    ]


def _registry_name(cluster_name: str) -> str:
    try:
        from pyci.registry import registry_name
    except Exception:  # noqa: BLE001 - the plan must print even when a stage module cannot import
        return f"{cluster_name}-registry"
    return registry_name(cluster_name)


def _plan_build_ahead(settings: Settings) -> str:
    if not settings.build_ahead:
        return ("off (build-ahead: false); third-party images the daemon has are still loaded into "
                "the nodes")
    if settings.cluster != "kind":
        return "not used: no cluster boot to overlap (cluster: existing)"
    return ("the Tiltfile's images while the cluster boots; third-party images loaded into the nodes "
            "(throwaway tags pyci-ahead/<run id>, removed)")


def _plan_readiness(settings: Settings) -> list[str]:
    if not settings.wait:
        return ["  readiness     skipped (wait: false)"]
    where = ", ".join(settings.namespaces) if settings.namespaces else "every namespace but the system ones"
    lines = [
        f"  readiness     wait up to {report.format_duration(settings.wait_timeout)} in {where}, "
        f"fail after {settings.max_restarts} restarts"
    ]
    lines += [
        f"                {k} up to {report.format_duration(v)}"
        for k, v in settings.readiness_timeouts.items()
    ]
    return lines


# --- doctor and version ---
def tool_version(command: Sequence[str]) -> str | None:
    """First line a tool prints about its version; None when it is not on PATH or does not answer."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in (done.stdout or done.stderr).splitlines() if line.strip()]
    return lines[0] if lines else None


def docker_client() -> docker.DockerClient:
    import docker

    return docker.from_env(timeout=30)


def cmd_doctor(namespace: argparse.Namespace) -> int:
    ok = True
    client = None
    try:
        client = docker_client()
        info = client.version()
        version, api = info.get("Version", "?"), info.get("ApiVersion", "?")
        print(f"✓ docker daemon: reachable, Docker {version} (API {api})")
    except Exception as err:  # noqa: BLE001 - any failure means "not reachable"; say why
        ok = False
        print(f"✗ docker daemon: not reachable ({_one_line(err)})")
    for name, command in TOOLS[:3]:
        found = tool_version(command)
        ok = ok and found is not None
        print(f"✓ {name}: {found}" if found else f"✗ {name}: not found on PATH (or it did not answer)")
    print(_topology_line(client))
    return ExitCode.HEALTHY if ok else ExitCode.APP_FAILED


def _topology_line(client: Any) -> str:
    if client is None:
        return "topology: unavailable (no docker daemon)"
    try:
        from pyci.topology import detect
    except Exception:  # noqa: BLE001 - topology.py may be absent or broken in a partial install
        return "topology: unavailable"
    try:
        found = detect(client, "auto")
    except Exception as err:  # noqa: BLE001
        return f"topology: unavailable ({_one_line(err)})"
    kind = getattr(found.kind, "value", found.kind)
    return f"topology: {kind} ({found.evidence})"


def _one_line(err: BaseException | str) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def pinned_versions() -> dict[str, str]:
    """The tool versions the image pins (pyci/versions.env, KEY=value lines), when bundled."""
    try:
        text = resources.files("pyci").joinpath("versions.env").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip().strip("\"'") for key, value in pairs}


def cmd_version(namespace: argparse.Namespace) -> int:
    print(f"pyci {__version__}")
    for name, command in TOOLS:
        print(f"{name}: {tool_version(command) or 'not found'}")
    for key, value in pinned_versions().items():
        if key.endswith("_VERSION"):  # the digests are for the Dockerfile, not for people
            print(f"pinned {key.removesuffix('_VERSION').lower().replace('_', '-')}: {value}")
    return ExitCode.HEALTHY


def cmd_reap(namespace: argparse.Namespace) -> int:
    from pyci import reaper

    try:
        client = docker_client()
    except Exception as err:  # noqa: BLE001
        _error(f"docker daemon not reachable: {_one_line(err)}")
        return ExitCode.INFRASTRUCTURE
    problems = reaper.reap(client, namespace.container, namespace.run_id)
    for problem in problems:
        _error(problem)
    return ExitCode.INFRASTRUCTURE if problems else ExitCode.HEALTHY


# --- cleanup ---
def cmd_cleanup(namespace: argparse.Namespace) -> int:
    try:
        client = docker_client()
    except Exception as err:  # noqa: BLE001
        _error(f"docker daemon not reachable: {_one_line(err)}")
        return ExitCode.INFRASTRUCTURE
    problems = cleanup(client, namespace.run_id, dry_run=namespace.dry_run)
    for problem in problems:
        _error(problem)
    return ExitCode.INFRASTRUCTURE if problems else ExitCode.HEALTHY


def cleanup(
    client: Any,
    run_id: str | None,
    dry_run: bool = False,
    delete_cluster: Callable[[str], str | None] | None = None,
) -> list[str]:
    """Remove labelled containers, the kind clusters runs created (their ownership markers name them),
    then labelled networks and the markers. Clusters a run only reused, or a user made, are not named
    by any marker and stay.

    Returns the problems (one line each); an empty list means everything is gone.
    """
    from pyci import images, ownership

    delete_cluster = delete_cluster or kind_delete_cluster
    filters = {"label": [f"{LABEL_MANAGED}=true", *([f"{LABEL_RUN}={run_id}"] if run_id else [])]}
    verb = "would remove" if dry_run else "removed"
    problems: list[str] = []
    containers = client.containers.list(all=True, filters=filters)
    markers = ownership.owned_clusters(client, filters)
    clusters = sorted({name for _, name in markers} - {""})
    deleted: set[str] = set()
    registry_ports = {port for container in containers for port in _registry_ports(container)}
    for container in containers:
        problems += _stop_forwarders(container.name, dry_run)
        problems += _attempt(
            functools.partial(container.remove, force=True, v=True),
            dry_run,
            f"{verb} container {container.name}",
            f"container {container.name}",
        )
    # tilt's pushes leave <registry>/<image>:tilt-<hash> tags in the daemon: they go with the registry.
    doomed = {t for t in (images.tags(client) if registry_ports else set())
              if any(t.startswith(f"localhost:{port}/") for port in registry_ports)}
    # build-ahead's throwaway tags (pyci-ahead/<run id>:...), on images labelled with the run.
    doomed |= {t for t in images.tags(client, filters=filters) if t.startswith("pyci-ahead/")}
    for tag in sorted(doomed):
        problems += _attempt(functools.partial(client.images.remove, tag), dry_run,
                             f"{verb} image tag {tag}", f"image tag {tag}")
    for name in clusters:
        if not _CLUSTER_NAME.fullmatch(name):
            problems.append(f"label {ownership.LABEL_OWNS}={name!r} is not a kind cluster name: skipped")
            continue
        print(f"{'would delete' if dry_run else 'deleting'} kind cluster {name}")
        failure = None if dry_run else delete_cluster(name)
        if failure:
            problems.append(failure)
        else:
            deleted.add(name)
    for network in client.networks.list(filters=filters):
        problems += _attempt(
            network.remove, dry_run, f"{verb} network {network.name}", f"network {network.name}"
        )
    for marker, name in markers:  # kind's network, when the run's kind create made it and none uses it
        made = ownership.owned_network(marker)
        if made and (name in deleted or dry_run):
            for network in client.networks.list(names=[made]):
                network.reload()
                if network.name == made and not network.attrs.get("Containers"):
                    problems += _attempt(network.remove, dry_run, f"{verb} network {made}", f"network {made}")
    for marker, name in markers:
        if name in deleted:  # a marker stays as long as its cluster does
            problems += _attempt(functools.partial(marker.remove, force=True), dry_run,
                                 f"{verb} ownership marker {marker.name}", f"volume {marker.name}")
    labelled = [*containers, *(marker for marker, _ in markers)]
    runs = {run_id} if run_id else {str((t.attrs.get("Config", {}).get("Labels") or t.attrs.get("Labels")
                                         or {}).get(LABEL_RUN) or "") for t in labelled}
    for workdir in _workdirs(runs - {""}):  # the run's kubeconfigs, when it ran on this machine
        problems += _attempt(functools.partial(shutil.rmtree, workdir), dry_run,
                             f"{verb} temporary folder {workdir}", f"folder {workdir}")
    return problems


def _stop_forwarders(container: str, dry_run: bool) -> list[str]:
    """A REMOTE run's local socat forwarders into its socat container: a run killed with SIGKILL
    leaves them listening on this machine (where `pyci cleanup` runs, as the run did)."""
    from pyci import network

    if not container.endswith(network.SOCAT_SUFFIX):
        return []
    problems: list[str] = []
    for pid in network.orphan_forwarders(container):
        what = f"socat forwarder {pid} (into {container})"
        problems += _attempt(functools.partial(network.stop_orphan_forwarder, pid), dry_run,
                             f"{'would stop' if dry_run else 'stopped'} {what}", what)
    return problems


def _registry_ports(container: Any) -> list[int]:
    """The host ports a (running) local registry container of a run publishes its port 5000 on."""
    ports = ((getattr(container, "attrs", None) or {}).get("NetworkSettings") or {}).get("Ports") or {}
    return [int(b["HostPort"]) for b in ports.get("5000/tcp") or [] if str(b.get("HostPort", "")).isdigit()]


def _workdirs(run_ids: set[str]) -> list[Path]:
    """The `pyci-<run id>-*` folders runs made under the temporary directory (pipeline's workdir)."""
    import tempfile

    found = []
    for run in sorted(run_ids):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", run):
            continue
        for path in Path(tempfile.gettempdir()).glob(f"pyci-{run}-*"):
            if path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid():
                found.append(path)
    return found


def _attempt(action: Callable[[], object], dry_run: bool, done: str, what: str) -> list[str]:
    if not dry_run:
        try:
            action()
        except Exception as err:  # noqa: BLE001 - docker.errors.APIError and friends: report and go on
            return [f"could not remove {what}: {_one_line(err)}"]
    print(done)
    return []


KIND_SETTLE = 1.0  # seconds for a node a killed `kind create` was still making to show up


def kind_delete_cluster(name: str) -> str | None:
    """`kind delete cluster --name NAME`, and again when a node appears after it (a run killed
    during `kind create` may have left a `docker run` of a node in flight); the problem, or None."""
    import time

    for _ in range(3):
        failure = _kind_delete_once(name)
        if failure:
            return failure
        time.sleep(KIND_SETTLE)
        found = subprocess.run(["kind", "get", "nodes", "--name", name], capture_output=True, text=True,
                               timeout=TOOL_TIMEOUT, check=False)
        nodes = [n for n in found.stdout.split() if n.startswith(f"{name}-")]
        if not nodes:
            return None
        print(f"kind cluster {name}: {', '.join(nodes)} appeared after the delete; deleting again")
    return None


def _kind_delete_once(name: str) -> str | None:
    try:
        done = subprocess.run(
            ["kind", "delete", "cluster", "--name", name],
            capture_output=True,
            text=True,
            timeout=KIND_DELETE_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        return f"kind not found on PATH: cannot delete kind cluster {name}"
    except subprocess.TimeoutExpired:
        return f"`kind delete cluster --name {name}` timed out after {KIND_DELETE_TIMEOUT:.0f}s"
    if done.returncode != 0:
        return (
            f"`kind delete cluster --name {name}` failed (exit {done.returncode}): {_one_line(done.stderr)}"
        )
    return None
