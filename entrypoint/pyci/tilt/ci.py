"""The `tilt ci` process: start it, stream its log, stop it when asked, read what it left behind."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pyci.results import Cancelled, InputError, PyciError, ResourceResult
from pyci.settings import Settings
from pyci.tilt import failures
from pyci.tilt.logs import LOG_TAIL_LINES, error_line, split_log_line
from pyci.tilt.session import Poller
from pyci.tilt.uiresource import TILTFILE_RESOURCE

Log = Callable[[str], None]

SNAPSHOT_NAME = "tilt-snapshot.json"
LOG_NAME = "tilt.log"
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
EXTRA_WALL_TIME = 120.0  # beyond tilt's own --timeout before we kill it ourselves
STOPPED_ERROR = "stopped early: a workload failed for good"  # tilt's own last word is "context canceled"


@dataclass
class TiltOutcome:
    exit_code: int
    resources: list[ResourceResult]
    snapshot: Path | None
    log_path: Path
    waiting_lines: list[str] = field(default_factory=list)
    error: str | None = None  # the `Error: ...` line tilt printed last

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def tilt_command(
    tilt_bin: str, tiltfile: Path, timeout: float, port: int, snapshot: Path, tilt_args: Sequence[str]
) -> list[str]:
    """The `tilt ci` argument list."""
    cmd = [
        tilt_bin,
        "ci",
        "--file",
        str(tiltfile),
        "--timeout",
        f"{max(1, round(timeout))}s",
        "--port",
        str(port),
        "--output-snapshot-on-exit",
        str(snapshot),
    ]
    if tilt_args:
        cmd += ["--", *tilt_args]
    return cmd


def tilt_env(base: Mapping[str, str], kubeconfig: Path) -> dict[str, str]:
    env = dict(base)
    env["KUBECONFIG"] = str(kubeconfig)
    env["TILT_DISABLE_ANALYTICS"] = "1"  # a CI step should not phone home
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redact_file(path: Path, redact: Callable[[str], str]) -> None:
    with contextlib.suppress(OSError):
        text = path.read_text(encoding="utf-8", errors="replace")
        if redact(text) != text:
            path.write_text(redact(text), encoding="utf-8")


def _pump(stream: TextIO, lines: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line.rstrip("\n"))
    finally:
        lines.put(None)


def _terminate(proc: subprocess.Popen[str], grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # children that outlived the leader (same group) go too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _start(cmd: list[str], cwd: Path, env: Mapping[str, str], tilt_bin: str) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
    except OSError as exc:
        raise PyciError(f"cannot start tilt ({tilt_bin}): {exc}") from exc


@dataclass
class _Followed:
    """What the log said while tilt ran."""

    tails: dict[str, list[str]] = field(default_factory=dict)  # log prefix -> its last lines
    error_lines: list[str] = field(default_factory=list)
    waiting_lines: list[str] = field(default_factory=list)
    stopped: bool = False  # pyci stopped tilt because a workload failed for good


@dataclass
class _Watch:
    """The events that end or interrupt `tilt ci`, and the wall-clock limit on it."""

    deadline: float
    cancel: threading.Event | None
    stop: threading.Event | None
    killed_for_time: bool = False


def _check(proc: subprocess.Popen[str], watch: _Watch, followed: _Followed, log: Log) -> None:
    if watch.stop is not None and watch.stop.is_set() and not followed.stopped:
        # A workload failed for good: waiting out tilt's timeout would tell nothing new.
        log("tilt: stopping tilt ci early: a workload failed (see readiness)")
        followed.stopped = True
        _terminate(proc)
    if watch.cancel is not None and watch.cancel.is_set():
        log("tilt: cancelled, stopping tilt ci")
        _terminate(proc)
        raise Cancelled("cancelled while tilt ci was running")
    if time.monotonic() > watch.deadline and not watch.killed_for_time:
        log(f"tilt: still running {EXTRA_WALL_TIME:.0f}s after its own timeout, killing it")
        watch.killed_for_time = True
        _terminate(proc)


def _follow(proc: subprocess.Popen[str], poller: Poller, watch: _Watch, log_path: Path, log: Log,
            redact: Callable[[str], str]) -> _Followed:
    """Stream tilt's log (to `log` and, redacted, to `log_path`) until tilt closes it."""
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), name="tilt-log", daemon=True).start()
    followed = _Followed()
    with log_path.open("w", encoding="utf-8") as log_file:
        while True:
            _check(proc, watch, followed, log)
            waiting, notes = poller.drain()
            followed.waiting_lines += waiting
            for line in waiting + notes:
                log(line)
            try:
                item = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                return followed
            log(item)
            log_file.write(redact(item) + "\n")
            log_file.flush()
            if item.strip().startswith("Error: "):
                followed.error_lines.append(item)
            prefix, text = split_log_line(item)
            # Unprefixed lines are tilt's own and the Tiltfile's (its traceback, when it fails to load).
            tail = followed.tails.setdefault(prefix or TILTFILE_RESOURCE, [])
            tail.append(text)
            del tail[:-LOG_TAIL_LINES]


def _read_snapshot(path: Path, redact: Callable[[str], str], log: Log) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    _redact_file(path, redact)  # tilt wrote its whole log into it
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log(f"tilt: cannot read snapshot {path}: {exc}")
        return None
    return data if isinstance(data, dict) else None


def run_ci(
    settings: Settings,
    kubeconfig: Path,
    artifacts_dir: Path,
    log: Log,
    cancel: threading.Event | None = None,
    tilt_bin: str = "tilt",
    stop: threading.Event | None = None,
    redact: Callable[[str], str] = str,
    resource_deps: Mapping[str, Sequence[str]] | None = None,
) -> TiltOutcome:
    """Run `tilt ci` to completion; stream its log; report what it waits on every progress_interval.

    `redact` masks secrets in the log file and the snapshot it leaves in `artifacts_dir`; it is
    applied after `log` saw the line, which may have declared a new one (`::add-mask::`).
    `resource_deps` (the preflight's, `tiltfile.resource_deps`) name what an unbuilt resource waits
    on when tilt's snapshot lags.
    """
    tiltfile = settings.tiltfile_path.resolve()
    if not tiltfile.is_file():
        raise InputError(f"Tiltfile not found: {tiltfile}")
    # tilt runs in the Tiltfile's folder: a relative path would put the snapshot there, not here.
    artifacts_dir = artifacts_dir.resolve()
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    snapshot_path, log_path = artifacts_dir / SNAPSHOT_NAME, artifacts_dir / LOG_NAME
    snapshot_path.unlink(missing_ok=True)
    port = free_port()
    cmd = tilt_command(tilt_bin, tiltfile, settings.timeout, port, snapshot_path, settings.tilt_args)
    env = tilt_env(os.environ, kubeconfig)
    log(f"tilt: {' '.join(cmd)}")
    proc = _start(cmd, tiltfile.parent, env, tilt_bin)
    poller = Poller(tilt_bin, port, env, max(0.2, settings.progress_interval))
    poller.start()
    watch = _Watch(time.monotonic() + settings.timeout + EXTRA_WALL_TIME, cancel, stop)
    try:
        followed = _follow(proc, poller, watch, log_path, log, redact)
        exit_code = proc.wait(timeout=KILL_GRACE * 3)
    except BaseException:
        _terminate(proc)
        _redact_file(snapshot_path, redact)  # tilt writes its snapshot (its whole log) as it stops
        raise
    finally:
        poller.close()
        if proc.stdout is not None:
            with contextlib.suppress(Exception):
                proc.stdout.close()
    error = STOPPED_ERROR if followed.stopped else error_line(followed.error_lines)
    data = _read_snapshot(snapshot_path, redact, log)
    roots = [Path(p) for p in (os.environ.get("GITHUB_WORKSPACE"), os.getcwd()) if p]
    resources = failures.results(data, exit_code, followed.tails, poller.last_session, error,
                                 failures.in_image(os.environ), roots, resource_deps)
    if exit_code != 0 and resources and all(r.ok for r in resources) and error:
        log(f"tilt: exited {exit_code}: {error}")
    snapshot = snapshot_path if snapshot_path.is_file() else None
    return TiltOutcome(exit_code=exit_code, resources=resources, snapshot=snapshot, log_path=log_path,
                       waiting_lines=followed.waiting_lines, error=error)
