"""Read the Tiltfile ahead, with no cluster: `tilt alpha tiltfile-result` (about 0.1 s).

What it gives: the components (tilt resources) with their image targets and the Kubernetes objects
they deploy, or the Tiltfile error with its source location. The preflight stage ends a run with a
Tiltfile error before anything is created; `--dry-run` prints what it found.

Every load error stops the run here unless a cluster might fix it. A Tiltfile's `local()` commands
run during the evaluation: one that needs the cluster (a `kubectl` call, say) fails here although
the Tiltfile is fine, and a Tiltfile that calls `k8s_context()` or `k8s_namespace()` may take
another branch on the cluster; such errors are not held against the run (`tilt ci` decides). A
syntax error, a missing file, an extension that cannot be fetched or a `local()` command that is
not installed (exit 127) fail the same with any cluster: preflight stops on them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EVALUATION_TIMEOUT = 60.0  # seconds: a Tiltfile whose local() calls run longer is simply not read ahead

# `path:line:col: message` (a syntax error) or a traceback frame `  path:line:col: in <func>`.
_CLUSTER_CALLS = re.compile(r"\bk8s_(?:context|namespace)\s*\(")
_NOT_INSTALLED = re.compile(r"exit status 127\b|: (?:command )?not found\b")
_LOCATION = re.compile(r"^\s*(?P<path>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")


@dataclass(frozen=True)
class SourceLocation:
    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class TiltfileError:
    message: str
    location: SourceLocation | None = None
    # May be the cluster's doing (a local() command, a k8s_context() branch): tilt ci decides.
    environmental: bool = False


@dataclass(frozen=True)
class ImageTarget:
    ref: str  # the image name the manifests use
    context: str | None = None
    dockerfile_contents: str | None = None
    target: str | None = None
    build_args: tuple[str, ...] = ()
    custom: bool = False  # custom_build: only its own command can build it


@dataclass(frozen=True)
class Component:
    name: str
    images: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()  # kind/name of what it deploys
    local: bool = False  # a local_resource: runs on the machine, deploys nothing
    deps: tuple[str, ...] = ()  # its resource_deps: the resources it waits on


@dataclass(frozen=True)
class Evaluation:
    seconds: float
    components: tuple[Component, ...] = ()
    images: tuple[ImageTarget, ...] = ()
    third_party_images: tuple[str, ...] = ()  # images the manifests name that no target builds
    error: TiltfileError | None = None
    unavailable: str | None = None  # why the Tiltfile could not be read ahead (not an error of the app)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def evaluate(
    tiltfile: Path,
    tilt_args: Sequence[str] = (),
    tilt_bin: str = "tilt",
    timeout: float = EVALUATION_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> Evaluation:
    """Evaluate the Tiltfile; never raises for the user's Tiltfile or a missing tilt."""
    cmd = [tilt_bin, "alpha", "tiltfile-result", "--file", str(tiltfile)]
    if tilt_args:
        cmd += ["--", *tilt_args]
    env = dict(environ if environ is not None else os.environ)
    env["TILT_DISABLE_ANALYTICS"] = "1"
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(tiltfile.parent), check=False)
    except FileNotFoundError:
        return Evaluation(time.monotonic() - t0, unavailable=f"{tilt_bin} not found")
    except subprocess.TimeoutExpired:
        return Evaluation(time.monotonic() - t0, unavailable=f"evaluation took over {timeout:.0f}s")
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        error = parse_error(done.stderr, reads_cluster=_reads_cluster(tiltfile))
        if error is None:
            return Evaluation(seconds, unavailable=f"tilt exited {done.returncode}: {_tail(done.stderr)}")
        return Evaluation(seconds, error=error)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        return Evaluation(seconds, unavailable=f"unreadable tiltfile-result output: {err}")
    return parse_result(result, seconds)


def _reads_cluster(tiltfile: Path) -> bool:
    """Whether the Tiltfile asks which cluster it runs on (and so may load differently on one)."""
    try:
        return bool(_CLUSTER_CALLS.search(tiltfile.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def parse_error(stderr: str, reads_cluster: bool = False) -> TiltfileError | None:
    """The error tilt printed: the innermost source location and the message.

    A syntax error is one line, `path:line:col: message`. An evaluation error is a traceback: frames
    `  path:line:col: in <func>` (innermost last), then `Error in <builtin>: message` and its detail.
    Anything before the traceback is the output of local() commands. `reads_cluster`: the Tiltfile
    calls k8s_context() or k8s_namespace(), so an evaluation error of it may be the cluster's doing.
    """
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if starts:
        location: SourceLocation | None = None
        message: list[str] = []
        for line in lines[starts[-1] + 1:]:
            m = _LOCATION.match(line)
            if m and m["rest"].startswith("in ") and not message:
                location = SourceLocation(m["path"], int(m["line"]), int(m["col"]))
            else:
                message.append(line.strip())
        if not message:
            return None
        # git's own reason an extension repository could not be fetched comes before the traceback.
        fatal = [line.strip() for line in lines[: starts[-1]] if line.startswith("fatal: ")]
        if fatal and "extension" in message[0]:
            message.append(f"git: {fatal[-1]}")
        text = "; ".join(message)
        # A local() command may need the cluster, unless it is not installed: no cluster brings it.
        failed_local = message[0].startswith("Error in local") and not _NOT_INSTALLED.search(stderr)
        return TiltfileError(message=text, location=location, environmental=failed_local or reads_cluster)
    for line in lines:
        m = _LOCATION.match(line)
        if m and not m["rest"].startswith("in "):
            return TiltfileError(message=m["rest"], location=SourceLocation(m["path"], int(m["line"]),
                                                                             int(m["col"])))
    return None


def parse_result(result: Mapping[str, Any], seconds: float = 0.0) -> Evaluation:
    images: dict[str, ImageTarget] = {}
    components = []
    named: set[str] = set()
    for manifest in result.get("Manifests") or []:
        refs = []
        for target in manifest.get("ImageTargets") or []:
            image = _image_target(target)
            images.setdefault(image.ref, image)
            refs.append(image.ref)
        deploy = manifest.get("DeployTarget") or {}
        objects = tuple(_objects(deploy.get("yaml") or ""))
        named |= set(_container_images(deploy.get("yaml") or ""))
        components.append(Component(
            name=str(manifest.get("Name") or ""),
            images=tuple(refs),
            objects=objects,
            local=bool(deploy) and "yaml" not in deploy and "imageMaps" not in deploy,
            deps=tuple(str(d) for d in manifest.get("ResourceDependencies") or ()),
        ))
    built = {ref for ref in images} | {_repo(ref) for ref in images}
    third_party = tuple(sorted(ref for ref in named if ref not in built and _repo(ref) not in built))
    return Evaluation(seconds, components=tuple(components), images=tuple(images.values()),
                      third_party_images=third_party, raw=result)


def resource_deps(evaluation: Evaluation | None) -> dict[str, tuple[str, ...]]:
    """Each component -> the resources it waits on (`resource_deps`); {} when not read ahead."""
    return {c.name: c.deps for c in (evaluation.components if evaluation else ()) if c.deps}


def _image_target(target: Mapping[str, Any]) -> ImageTarget:
    ref = str(target.get("selector") or target.get("DockerImageName") or "")
    details = target.get("BuildDetails") or {}
    if "dockerfileContents" in details or "context" in details:
        return ImageTarget(
            ref=ref,
            context=details.get("context"),
            dockerfile_contents=details.get("dockerfileContents"),
            target=details.get("target") or None,
            build_args=tuple(details.get("args") or ()),
        )
    return ImageTarget(ref=ref, custom=True)


def _documents(text: str) -> list[Mapping[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, Mapping)]
    except yaml.YAMLError:
        return []


def _objects(text: str) -> list[str]:
    return [f"{str(d.get('kind', '')).lower()}/{(d.get('metadata') or {}).get('name', '')}"
            for d in _documents(text)]


def _container_images(text: str) -> list[str]:
    """Every container image the manifests name (Pods, workload templates, CronJobs)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key in ("containers", "initContainers"):
                for c in node.get(key) or []:
                    if isinstance(c, Mapping) and c.get("image"):
                        found.append(str(c["image"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in _documents(text):
        walk(doc.get("spec"))
    return found


def _repo(ref: str) -> str:
    """The name without tag or digest: what tilt matches image targets by."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _tail(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text[-limit:]


# The repository's checkout on GitHub and on GitLab: where a diff (or a merge request) has its paths.
WORKSPACE_VARIABLES = ("GITHUB_WORKSPACE", "CI_PROJECT_DIR")


def workspace_roots(environ: Mapping[str, str]) -> list[Path]:
    """What source paths are shown relative to: the CI's checkout, else where pyci runs."""
    return [Path(p) for p in (*(environ.get(v) for v in WORKSPACE_VARIABLES), os.getcwd()) if p]


def relative_location(location: SourceLocation, roots: Sequence[Path]) -> SourceLocation:
    """The path as GitHub wants it in an annotation: relative to the workspace (the repository)."""
    path = Path(location.path)
    for root in roots:
        try:
            relative = path.resolve().relative_to(root.resolve())
        except ValueError:
            continue
        return SourceLocation(str(relative), location.line, location.col)
    return location
