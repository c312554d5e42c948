"""What a run found: the values the stages hand to the report. Plain data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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


@dataclass
class StageResult:
    """One pipeline stage (settings, registry, cluster, tilt, readiness, ...)."""

    name: str
    seconds: float
    ok: bool = True
    error: str | None = None
    skipped: bool = False
    detail: str | None = None  # what the stage did, for people (build ahead: images, overlap, cache hits)


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

    @property
    def verdict(self) -> str:
        return "healthy" if self.ok else "failed" if self.finished else "not finished"


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
