"""What a run found: the values the stages hand to the report. Plain data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


def format_duration(seconds: float | None) -> str:
    """`4.5s`, `1m 23s`, `1h 02m`; `–` when unknown."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


class ExitCode(enum.IntEnum):
    HEALTHY = 0
    APP_FAILED = 1
    BAD_INPUT = 2
    INFRASTRUCTURE = 3
    CANCELLED = 130


class PyciError(Exception):
    """A failure with a one-line message a person can act on, and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.INFRASTRUCTURE

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InputError(PyciError):
    """The user asked for something invalid (exit 2, nothing created)."""

    exit_code = ExitCode.BAD_INPUT


class InfrastructureError(PyciError):
    """Docker, kind or the registry failed (exit 3)."""

    exit_code = ExitCode.INFRASTRUCTURE


class AppFailed(PyciError):
    """tilt or the readiness watch found the app unhealthy (exit 1)."""

    exit_code = ExitCode.APP_FAILED


class Cancelled(PyciError):
    """SIGTERM or SIGINT (exit 130)."""

    exit_code = ExitCode.CANCELLED


class Status(enum.Enum):
    """The one status every renderer maps (summary, JUnit, annotations, log group, outputs, exit code).

    HEALTHY: done and well. FAILED: failed on evidence of its own (the cause). NOT_FINISHED: still on
    its way when the run stopped (slow, or blocked by a failed component): never blamed. STOPPED: a
    stage pyci ended on purpose because a component failed. SKIPPED: not run at all.
    """

    HEALTHY = "healthy"
    FAILED = "failed"
    NOT_FINISHED = "not finished"
    STOPPED = "stopped"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Rendering:
    """How one status reads in each renderer: the single table they all go through."""

    icon: str  # step summary and timeline
    word: str  # summary text, log group's closing line
    junit: str | None  # a component's JUnit child element: None (passed), "failure" or "skipped"
    junit_stage: str | None  # a setup stage's: a stage that failed is an infrastructure "error"
    annotate: bool  # an ::error annotation (a cause)
    log_mark: str  # the terminal's mark on a log group's closing line
    fails_run: bool  # a component in this status means the app did not start (exit 1)
    # A GitLab Code Quality entry on the merge request (its severity), like an annotation: causes only.
    code_quality: str | None


RENDERING: dict[Status, Rendering] = {
    Status.HEALTHY: Rendering("✅", "healthy", None, None, False, "✓", False, None),
    Status.FAILED: Rendering("❌", "failed", "failure", "error", True, "✗", True, "critical"),
    Status.NOT_FINISHED: Rendering("⏸️", "not finished", "skipped", "skipped", False, "…", True, None),
    Status.STOPPED: Rendering("⏹️", "stopped", "skipped", "skipped", False, "⏹", False, None),
    Status.SKIPPED: Rendering("⏭️", "skipped", "skipped", "skipped", False, "-", False, None),
}


def rendering(status: Status) -> Rendering:
    return RENDERING[status]


@dataclass(frozen=True)
class Span:
    """One phase of a component or stage on the run's time axis (POSIX seconds)."""

    phase: str  # "build", "deploy", "ready" (from first pod creation to Ready), or a stage name
    start: float
    end: float | None = None  # None: still going when the run ended


@dataclass
class StageResult:
    """One pipeline stage (settings, registry, cluster, tilt, readiness, ...)."""

    name: str
    seconds: float
    ok: bool = True
    error: str | None = None
    skipped: bool = False
    detail: str | None = None  # what the stage did, for people (build ahead: images, overlap, cache hits)
    # pyci ended it on purpose because a component failed (tilt ci stopped at fail-fast): not a cause.
    stopped: bool = False
    started_at: float | None = None  # POSIX time the stage began, for the timeline

    @property
    def status(self) -> Status:
        if self.skipped:
            return Status.SKIPPED
        if self.stopped:
            return Status.STOPPED
        return Status.HEALTHY if self.ok else Status.FAILED


@dataclass
class ResourceResult:
    """One tilt resource or Kubernetes workload.

    `name` is a tilt resource name (`api`) or `kind/namespace/name` for a workload
    (`deployment/default/web`). `reason` is a short machine-readable cause (`CrashLoopBackOff`,
    `ImagePullBackOff`, `Unschedulable`, `OOMKilled`, `JobFailed`, `ReadinessProbeFailing`,
    `ProgressDeadlineExceeded`, `BuildFailed`, `Timeout`, ...); `message` is the human sentence;
    `logs` the last log lines that explain it.
    """

    name: str
    source: str  # "tilt" or "kubernetes"
    ok: bool
    build_seconds: float | None = None
    ready_seconds: float | None = None
    reason: str | None = None
    message: str | None = None
    logs: str = ""
    # A component (pyci.components): the Kubernetes workloads a tilt resource applied, merged into it.
    workloads: list[str] = field(default_factory=list)
    # False when it failed only because the run stopped on another failure: "not finished".
    finished: bool = True
    # Not finished because it waits on these failed or unfinished components (tilt's "waiting on",
    # resource_deps): "blocked by db".
    blocked_by: list[str] = field(default_factory=list)
    # Where it is declared, for annotations on the diff (a pyci.tiltfile.SourceLocation), if found.
    location: object | None = None
    # Its phases on the run's time axis (build, deploy, ready), for the timeline.
    spans: list[Span] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.ok:
            return Status.HEALTHY
        return Status.FAILED if self.finished else Status.NOT_FINISHED

    @property
    def verdict(self) -> str:
        return self.status.value


@dataclass
class RunResult:
    exit_code: ExitCode
    headline: str
    duration: float = 0.0
    stages: list[StageResult] = field(default_factory=list)
    resources: list[ResourceResult] = field(default_factory=list)
    cluster_name: str = ""
    kubeconfig: str = ""
    registry: str = ""
    junit: str = ""
    artifacts_dir: str = ""
    started_at: float | None = None  # POSIX time the run began: the timeline's origin

    @property
    def result(self) -> str:
        """The `result` output: success, failure, error, invalid or cancelled."""
        return {
            ExitCode.HEALTHY: "success",
            ExitCode.APP_FAILED: "failure",
            ExitCode.BAD_INPUT: "invalid",
            ExitCode.INFRASTRUCTURE: "error",
            ExitCode.CANCELLED: "cancelled",
        }[self.exit_code]
