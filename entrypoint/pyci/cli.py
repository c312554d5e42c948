"""`pyci run | doctor | cleanup | version`; `pyci` alone is `pyci run` (GitHub passes no arguments).

The stage modules are imported lazily: `pyci version` and `pyci run --dry-run` must work where
docker or kubernetes is missing or broken, and a bad input must fail before anything is touched.
This module parses and reports; pyci.pipeline runs, pyci.cleanup undoes what runs left behind.
"""

from __future__ import annotations

import argparse
import os
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
    Settings,
    load_settings,
    raw_secrets,
    schema,
)

if TYPE_CHECKING:
    import docker

SUBCOMMANDS = ("run", "doctor", "cleanup", "version", "install-tools", "reap")
TOOL_TIMEOUT = 20.0  # seconds for a `<tool> version`
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
        from pyci import plan

        print("\n".join(plan.plan(settings, platform) + plan.tiltfile_plan(settings)))
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
    except (OSError, ValueError) as err:  # ValueError: more than the CI takes (GitLab's dotenv limit)
        platform.warning(f"could not write the outputs: {err}")
    try:
        platform.write_findings(result, settings.tiltfile_path, secrets)
    except OSError as err:
        platform.warning(f"could not write the Code Quality report: {err}")
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
    from pyci import cleanup

    problems = cleanup.remove_labelled(client, namespace.run_id, dry_run=namespace.dry_run)
    for problem in problems:
        _error(problem)
    return ExitCode.INFRASTRUCTURE if problems else ExitCode.HEALTHY
