"""Where a component is declared, so its `::error` annotation lands on the pull request's diff.

In order: (a) the manifest document in the workspace's YAML that declares one of its workloads
(kind and metadata.name; the namespace too when the document names one), at that document's
`kind:` line; (b) the line of its call in the Tiltfile (`k8s_resource('name')`, `local_resource`,
`helm_resource`, a `k8s_yaml(...)` naming it, or for a failed build its `docker_build`/`custom_build`);
(c) the Tiltfile itself, line 1. A template (a file with `{{`) is never matched: what it renders
depends on values, so a helm chart's components point at their `helm()`/`k8s_yaml` call instead.

Everything here reads files and returns values; the scan is bounded (files, bytes) so a large
repository costs milliseconds, not seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pyci.results import ResourceResult
from pyci.tiltfile import SourceLocation

MAX_FILES = 2000  # YAML files looked at in the scan
MAX_FILE_BYTES = 512 * 1024  # a bigger YAML file is generated output or data, not a manifest
MAX_TOTAL_BYTES = 16 * 1024 * 1024
POD_KINDS = frozenset({"deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob", "pod"})
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", "vendor"})
YAML_SUFFIXES = (".yaml", ".yml")

_DOC_START = re.compile(r"^---(?:\s|$)", re.M)
_KIND_LINE = re.compile(r"^kind\s*:", re.M)
_STRING = re.compile(r"""(?P<q>['"])(?P<s>(?:(?!(?P=q)).)*)(?P=q)""")
_INCLUDE = re.compile(r"""\b(?:include|load)\(\s*['"](?P<path>[^'"]+)['"]""")


@dataclass(frozen=True)
class Workload:
    kind: str  # lower case: deployment, statefulset, ...
    name: str
    namespace: str | None = None  # None: any (a manifest without one is applied to the default)


@dataclass(frozen=True)
class Declared:
    """One manifest document: where it is and what it declares."""

    path: Path
    line: int
    kind: str
    name: str
    namespace: str | None


def workloads_of(component: ResourceResult, evaluation: Any = None) -> list[Workload]:
    """The workloads a component stands for: its merged members, its own name when it is one, and what
    the preflight found its tilt resource deploys (a resource that failed before deploying has no
    members yet)."""
    found: list[Workload] = []
    for name in [*component.workloads, component.name]:
        parts = name.split("/")
        if len(parts) == 3:
            found.append(Workload(parts[0].lower(), parts[2], parts[1] or None))
    for tilt_component in getattr(evaluation, "components", None) or ():
        if tilt_component.name != component.name:
            continue
        # What runs pods first: `api` deploys a Service api too, and that is not where it crashed.
        objects = sorted(tilt_component.objects, key=lambda o: o.partition("/")[0] not in POD_KINDS)
        for obj in objects:
            kind, _, name = obj.partition("/")
            if name and all((w.kind, w.name) != (kind, name) for w in found):
                found.append(Workload(kind, name))
    return found


def images_of(component: ResourceResult, evaluation: Any = None) -> list[str]:
    for tilt_component in getattr(evaluation, "components", None) or ():
        if tilt_component.name == component.name:
            return list(tilt_component.images)
    return []


# --- (a) manifest documents ---
def documents(path: Path, text: str) -> Iterator[Declared]:
    """Every document in a (multi-document) YAML file that has a kind and a metadata.name; a file with
    `{{` (a template) yields nothing."""
    return (declared for declared, _ in _documents(path, text))


def _documents(path: Path, text: str) -> Iterator[tuple[Declared, Mapping[str, Any]]]:
    if "{{" in text:
        return
    starts = [0] + [m.end() for m in _DOC_START.finditer(text)]
    ends = [m.start() for m in _DOC_START.finditer(text)] + [len(text)]
    for start, end in zip(starts, ends, strict=True):
        chunk = text[start:end]
        try:
            doc = yaml.safe_load(chunk)
        except (yaml.YAMLError, RecursionError):  # not YAML, or nested past Python's stack
            continue
        if not isinstance(doc, Mapping) or not isinstance(doc.get("metadata"), Mapping):
            continue
        name, kind = doc["metadata"].get("name"), doc.get("kind")
        if not isinstance(name, str) or not isinstance(kind, str):
            continue
        namespace = doc["metadata"].get("namespace")
        kind_at = _KIND_LINE.search(chunk)
        offset = start + (kind_at.start() if kind_at else _first_content(chunk))
        yield Declared(path, text.count("\n", 0, offset) + 1, kind.lower(), name,
                       namespace if isinstance(namespace, str) else None), doc


def _first_content(chunk: str) -> int:
    """Offset of the first line that is neither blank nor a comment."""
    offset = 0
    for line in chunk.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            return offset
        offset += len(line)
    return 0


def yaml_files(root: Path, first: Sequence[Path] = (), max_files: int = MAX_FILES,
               max_total_bytes: int = MAX_TOTAL_BYTES) -> Iterator[tuple[Path, str]]:
    """(path, text) of the YAML files to search: `first` (the ones the Tiltfile names), then the tree
    under root in a stable order, skipping SKIP_DIRS and files over MAX_FILE_BYTES, until the bounds."""
    seen: set[Path] = set()
    files = 0
    total = 0
    for path in [*first, *_walk(root)]:
        resolved = path.resolve()
        if resolved in seen or files >= max_files:
            continue
        seen.add(resolved)
        try:
            size = resolved.stat().st_size
            if size > MAX_FILE_BYTES or total + size > max_total_bytes:
                continue
            text = resolved.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        files += 1
        total += size
        yield resolved, text


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            if name.endswith(YAML_SUFFIXES):
                yield Path(folder) / name


def find_document(workloads: Sequence[Workload], files: Iterable[tuple[Path, str]],
                  applied: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> Declared | None:
    """The document declaring the first of the workloads that has one. Among several (`api.yaml` and
    `api-lab.yaml`, both Deployment api): one naming the workload's namespace, then the one most like
    what the Tiltfile applies (`applied`, from the preflight), then the first (the Tiltfile's own files
    come first)."""
    ranked: list[tuple[tuple[int, bool, int, int], Declared]] = []
    for path, text in files:
        if not any(w.name in text for w in workloads):  # most files name none: no YAML parsing
            continue
        for doc, content in _documents(path, text):
            for index, w in enumerate(workloads):
                if (doc.kind, doc.name) != (w.kind, w.name):
                    continue
                if doc.namespace is not None and w.namespace is not None and doc.namespace != w.namespace:
                    continue
                exact = doc.namespace is not None and doc.namespace == w.namespace
                alike = _alike(content, (applied or {}).get((w.kind, w.name)))
                ranked.append(((-index, exact, alike, -len(ranked)), doc))
    return max(ranked, key=lambda r: r[0])[1] if ranked else None


def _leaves(node: Any, path: str = "") -> set[tuple[str, str]]:
    if isinstance(node, Mapping):
        return {leaf for k, v in node.items() for leaf in _leaves(v, f"{path}/{k}")}
    if isinstance(node, list):
        return {leaf for i, v in enumerate(node) for leaf in _leaves(v, f"{path}/{i}")}
    return {(path, str(node))}


def _alike(document: Mapping[str, Any], applied: Mapping[str, Any] | None) -> int:
    """Minus the number of fields (path and value) in one but not the other: 0 is the same object."""
    return -len(_leaves(document) ^ _leaves(applied)) if applied else 0


def applied_objects(evaluation: Any) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(kind, name) -> the object the Tiltfile applies, from the preflight's `tilt alpha tiltfile-result`."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    raw = getattr(evaluation, "raw", None) or {}
    for manifest in raw.get("Manifests") or []:
        text = (manifest.get("DeployTarget") or {}).get("yaml") or ""
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if isinstance(doc, Mapping) and isinstance(doc.get("metadata"), Mapping):
                key = (str(doc.get("kind", "")).lower(), str(doc["metadata"].get("name", "")))
                found.setdefault(key, doc)
    return found


# --- (b) the Tiltfile's calls ---
def calls(text: str, function: str) -> Iterator[tuple[int, str]]:
    """(offset, argument text) of every `function(...)` call (parentheses balanced, strings skipped)."""
    for match in re.finditer(rf"(?<![\w.]){re.escape(function)}\s*\(", text):
        if "#" in text[text.rfind("\n", 0, match.start()) + 1:match.start()]:
            continue  # in a comment (or after a `#` in a string: rare, and then only missed)
        depth, i, quote = 1, match.end(), ""
        while i < len(text) and depth:
            c = text[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "#":
                newline = text.find("\n", i)
                i = len(text) if newline < 0 else newline
                continue
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            i += 1
        yield match.start(), text[match.end():i - 1]


def _keyword(arguments: str, keyword: str) -> str | None:
    named = re.search(rf"\b{keyword}\s*=\s*(['\"])(.*?)\1", arguments)
    return named.group(2) if named else None


def _first_argument(arguments: str, keyword: str) -> str | None:
    """The call's first positional string argument, or the string given as `keyword=`."""
    positional = re.match(r"\s*(['\"])(.*?)\1", arguments)
    return positional.group(2) if positional else _keyword(arguments, keyword)


def _names(arguments: str, component: str) -> bool:
    """A k8s_yaml/helm/kustomize call names the component: a string that is its name, a path whose file
    is named after it, or a helm release name its name starts with (`cfg` -> `cfg-web`)."""
    for m in _STRING.finditer(arguments):
        value = m.group("s")
        stem = Path(value).name.rsplit(".", 1)[0] if value.endswith(YAML_SUFFIXES) else None
        if value == component or stem == component or (value and component.startswith(value + "-")):
            return True
    return False


# The calls that declare a resource by name: (function, the keyword its name may be given as).
_DECLARING = (("k8s_resource", "workload"), ("k8s_resource", "new_name"), ("local_resource", "name"),
              ("helm_resource", "name"), ("k8s_custom_deploy", "name"), ("dc_resource", "name"))
_BUILDING = (("docker_build", "ref"), ("custom_build", "ref"))


def find_call(name: str, images: Sequence[str], text: str, build_first: bool = False) -> int | None:
    """Offset of the call in a Tiltfile's text that declares the component, or None: its own call
    (k8s_resource, local_resource, ...), its images' docker_build/custom_build (first when its build
    failed), then a k8s_yaml/helm/kustomize call that names it."""
    declaring = [(f, k, (name,)) for f, k in _DECLARING]
    building = [(f, k, tuple(images)) for f, k in _BUILDING]
    for function, keyword, wanted in [*building, *declaring] if build_first else [*declaring, *building]:
        for offset, arguments in calls(text, function):
            given = (_keyword(arguments, keyword) if keyword == "new_name"
                     else _first_argument(arguments, keyword))
            if given is not None and given in wanted:
                return offset
    for function in ("k8s_yaml", "helm", "kustomize"):
        for offset, arguments in calls(text, function):
            if _names(arguments, name):
                return offset
    return None


def tiltfiles(tiltfile: Path, limit: int = 20) -> list[tuple[Path, str]]:
    """The Tiltfile and the local Tiltfiles it includes or loads (not ext://), each once."""
    found: list[tuple[Path, str]] = []
    queue = [tiltfile]
    while queue and len(found) < limit:
        path = queue.pop(0).resolve()
        if any(path == p for p, _ in found):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found.append((path, text))
        for m in _INCLUDE.finditer(text):
            ref = m.group("path")
            if "://" not in ref:
                target = path.parent / ref
                queue.append(target / "Tiltfile" if target.is_dir() else target)
    return found


def referenced_yaml(texts: Iterable[tuple[Path, str]]) -> list[Path]:
    """YAML files the Tiltfiles name in a string (`k8s_yaml('k8s/api.yaml')`), in order: searched first."""
    found: list[Path] = []
    for path, text in texts:
        for m in _STRING.finditer(text):
            value = m.group("s")
            if value.endswith(YAML_SUFFIXES) and "\n" not in value:
                candidate = (path.parent / value).resolve()
                if candidate.is_file() and candidate not in found:
                    found.append(candidate)
    return found


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _relative(path: Path, workspace: Path) -> str:
    """The path as GitHub wants it: relative to the workspace (the repository), else as it is."""
    try:
        return str(path.resolve().relative_to(workspace.resolve()))
    except ValueError:
        return str(path)


def locate(components: Sequence[ResourceResult], workspace: Path, tiltfile: Path,
           evaluation: Any = None) -> dict[str, SourceLocation]:
    """component name -> where it is declared (workspace-relative); every component gets a location,
    the Tiltfile's first line at worst, and one that has a location already (a Tiltfile error's
    line) keeps it. The manifest scan covers the Tiltfile's folder and the YAML files it names."""
    fallback = SourceLocation(_relative(tiltfile, workspace), 1, 1)
    try:
        return _locate(components, workspace, tiltfile, evaluation, fallback)
    except Exception:  # noqa: BLE001 - a location is a nicety: never the reason a run's verdict is lost
        return {c.name: c.location if isinstance(c.location, SourceLocation) else fallback
                for c in components}


def _locate(components: Sequence[ResourceResult], workspace: Path, tiltfile: Path, evaluation: Any,
            fallback: SourceLocation) -> dict[str, SourceLocation]:
    sources = tiltfiles(tiltfile)
    first = referenced_yaml(sources)
    # Read once, searched for every component (a run's failures are a handful).
    files = list(yaml_files(tiltfile.parent, first)) if components else []
    applied = applied_objects(evaluation)
    found: dict[str, SourceLocation] = {}
    for component in components:
        if isinstance(component.location, SourceLocation):
            found[component.name] = component.location
            continue
        # A failed build is its docker_build's (or local_resource's) doing, not its manifest's.
        build_failed = component.reason == "BuildFailed"
        call = _in_tiltfiles(component, sources, evaluation, workspace, build_failed)
        doc = find_document(workloads_of(component, evaluation), files, applied)
        manifest = SourceLocation(_relative(doc.path, workspace), doc.line, 1) if doc else None
        found[component.name] = ((call or manifest) if build_failed else (manifest or call)) or fallback
    return found


def _in_tiltfiles(component: ResourceResult, sources: Sequence[tuple[Path, str]], evaluation: Any,
                  workspace: Path, build_failed: bool) -> SourceLocation | None:
    images = images_of(component, evaluation)
    for path, text in sources:
        offset = find_call(component.name, images, text, build_first=build_failed)
        if offset is not None:
            line, col = _line_col(text, offset)
            return SourceLocation(_relative(path, workspace), line, col)
    return None
