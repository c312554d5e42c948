"""GitLab CI, the GitLab way of showing what a run found (gitlab/pyci.gitlab-ci.yml is the template).

Plain functions of their inputs; the GitLab platform (pyci.platforms) writes what they return:
- log sections: `\\e[0Ksection_start:<unix ts>:<name>[collapsed=true]\\r\\e[0K<header>` ... `section_end`;
- outputs as an `artifacts:reports:dotenv` file (later jobs get PYCI_OUTPUT_* variables);
- failed components as an `artifacts:reports:codequality` file (Code Climate JSON subset), so the
  merge request shows each cause at the line that declares it;
- the JUnit report is pyci's own, copied into the reports folder for `artifacts:reports:junit`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from pyci.results import ResourceResult, rendering
from pyci.text import clean

REPORTS = "pyci-reports"  # under CI_PROJECT_DIR: artifacts must be inside the project directory
JUNIT = "pyci-junit.xml"
DOTENV = "pyci.env"
CODE_QUALITY = "gl-code-quality-report.json"
ARTIFACTS = "pyci-artifacts"

_SECTION_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
_DOTENV_KEY_UNSAFE = re.compile(r"[^A-Z0-9_]+")
DOTENV_MAX_BYTES = 5 * 1024  # GitLab rejects a larger dotenv report (400 Bad Request)


def detected(environ: Mapping[str, str]) -> bool:
    """A GitLab job: the runner sets GITLAB_CI=true. gitlab-ci-local sets GITLAB_CI=false but is a
    runner all the same (CI_PROJECT_DIR, CI_JOB_NAME): its jobs get GitLab's reports too."""
    if environ.get("GITLAB_CI") == "true":
        return True
    return "GITLAB_CI" in environ and bool(environ.get("CI_PROJECT_DIR")) and bool(environ.get("CI_JOB_NAME"))


def project_dir(environ: Mapping[str, str]) -> Path:
    """The checkout; where the job starts and what report paths are relative to."""
    return Path(environ.get("CI_PROJECT_DIR") or ".")


def reports_dir(environ: Mapping[str, str]) -> Path:
    return project_dir(environ) / REPORTS


# --- log sections ---
def section_name(title: str, index: int) -> str:
    """Unique per job (GitLab pairs start and end by name), of the characters GitLab allows."""
    slug = _SECTION_UNSAFE.sub("-", title.lower()).strip("-")[:40] or "stage"
    return f"pyci-{index}-{slug}"


def section_start(name: str, header: str, now: float, collapsed: bool = True) -> str:
    options = "[collapsed=true]" if collapsed else ""
    # A header is one line: a newline would end the section's header early.
    return f"\x1b[0Ksection_start:{int(now)}:{name}{options}\r\x1b[0K{' '.join(header.splitlines())}"


def section_end(name: str, now: float) -> str:
    return f"\x1b[0Ksection_end:{int(now)}:{name}\r\x1b[0K"


# --- outputs ---
def dotenv_key(output: str) -> str:
    """`cluster-name` -> PYCI_OUTPUT_CLUSTER_NAME, the names CircleCI's outputs.env uses too."""
    return "PYCI_OUTPUT_" + _DOTENV_KEY_UNSAFE.sub("_", output.upper())


def dotenv(outputs: Mapping[str, str]) -> str:
    """KEY=value lines as GitLab parses them: no quotes (kept verbatim), no comments, no blank or
    multi-line values (a line break becomes a space)."""
    lines = [f"{dotenv_key(k)}={' '.join(v.splitlines())}" for k, v in outputs.items()]
    text = "".join(line + "\n" for line in lines)
    if len(text.encode()) > DOTENV_MAX_BYTES:  # the whole report rejected is worse than a value cut
        raise ValueError(f"the dotenv report is {len(text.encode())} bytes; GitLab takes {DOTENV_MAX_BYTES}")
    return text


# --- Code Quality ---
def code_quality(resources: Iterable[ResourceResult], project: Path, fallback: str,
                 secrets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One entry per component whose status the table marks for Code Quality (the causes, never a
    bystander), at its location relative to the project; `fallback` (the Tiltfile) when it has none."""
    secrets = tuple(secrets)
    found = []
    for r in resources:
        severity = rendering(r.status).code_quality
        if severity is None:
            continue
        path, line = _where(r.location, project, fallback)
        reason = clean(r.reason, secrets) or "Unhealthy"
        message = " ".join(clean(r.message, secrets).split())
        name = clean(r.name, secrets)
        found.append({
            "description": f"{name}: {reason}" + (f" — {message}" if message else ""),
            "check_name": f"pyci/{reason}",
            # Stable across pushes (no line number): GitLab compares the merge request with its base.
            "fingerprint": hashlib.sha256(f"pyci\0{name}\0{reason}\0{path}".encode()).hexdigest(),
            "severity": severity,
            "location": {"path": path, "lines": {"begin": line}},
        })
    return found


def _where(location: object, project: Path, fallback: str) -> tuple[str, int]:
    path, line = getattr(location, "path", None), getattr(location, "line", None)
    if not path or not isinstance(line, int):
        return fallback, 1
    return relative_to_project(path, project), max(line, 1)


def relative_to_project(path: str, project: Path) -> str:
    """A path as the merge request names it: relative to CI_PROJECT_DIR, with `/`."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = candidate.resolve().relative_to(project.resolve())
        except ValueError:
            return path  # outside the checkout: shown as it is, GitLab cannot place it anyway
    return str(PurePosixPath(*candidate.parts)) if candidate.parts else "."
