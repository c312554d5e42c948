"""One log per component in the artifacts, `<artifacts-dir>/logs/<component>.log`: its build, deploy and
container output, so a reader of a run with ten chatty services reads one, not the interleaved stream.

Two sources, both already in the artifacts: `tilt ci`'s log (every line tilt prints for a resource,
its pods' output included, carries the resource's name as a prefix) and the diagnostics bundle's
container logs of failed workloads (with the previous container's, after a crash). Everything
written goes through `text.clean` (secrets, terminal colours).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pyci.results import ResourceResult
from pyci.text import clean

TILT_LOG = "tilt.log"  # tilt.run_ci writes it here, in the artifacts dir
BUNDLE = "diagnostics"  # the pipeline's diagnostics bundle, in the artifacts dir
LOGS = "logs"
TILTFILE = "(Tiltfile)"  # tilt prints the main Tiltfile's lines, and its own, without a prefix
PREFIX_WIDTH = 13  # tilt right-aligns names this wide; a longer one is cut to 12 characters and "…"

# `          api │ text`: tilt's prefix (pkg/model/logstore SourcePrefix), name right-aligned.
_MASKED = re.compile(r"^([ -]*(?:[^\s:'\"]+: )?)\*\*\*$", re.M)  # `key: ***`, `- ***`
_PREFIXED = re.compile(r"^ *(?P<name>[^\s│]+) │ ?(?P<text>.*)$")


def split_tilt_log(lines: Iterable[str], names: Iterable[str] = ()) -> dict[str, list[str]]:
    """resource name -> its lines, prefix removed, in order; tilt's own unprefixed lines under
    `(Tiltfile)`. A name tilt cut short (`payments-wor…`) goes to the one known name it starts with."""
    known = list(names)
    out: dict[str, list[str]] = {}
    for line in lines:
        line = clean(line.rstrip("\n"), ())  # a coloured prefix is still a prefix
        match = _PREFIXED.match(line)
        name, text = (match["name"], match["text"]) if match else (TILTFILE, line)
        if name.endswith("…"):
            fits = [n for n in known if n.startswith(name[:-1]) and len(n) > PREFIX_WIDTH]
            name = fits[0] if len(fits) == 1 else name
        out.setdefault(name, []).append(text)
    return out


def filename(name: str) -> str:
    """A file name for a component: `deployment/default/web` -> `deployment_default_web.log`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.")
    return f"{safe or 'component'}.log"


def _workload_of(pod: Mapping[str, Any]) -> str | None:
    """`kind/namespace/name` of the workload that owns a pod (a Deployment through its ReplicaSet)."""
    meta = pod.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if owner is None:
        return f"pod/{namespace}/{name}"
    kind, owner_name = str(owner.get("kind", "")).lower(), str(owner.get("name", ""))
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "replicaset" and template_hash and owner_name.endswith(f"-{template_hash}"):
        return f"deployment/{namespace}/{owner_name[:-len(template_hash) - 1]}"
    return f"{kind}/{namespace}/{owner_name}"


def container_logs(bundle: Path) -> dict[str, list[tuple[str, Path]]]:
    """workload -> [(heading, log file)] from a diagnostics bundle: its pods (objects/pod-*.yaml) and
    their containers' logs (logs/<pod>-<container>.log, .previous.log after a restart)."""
    found: dict[str, list[tuple[str, Path]]] = {}
    for path in sorted((bundle / "objects").glob("pod-*.yaml")):
        pod = _load(path)
        if not isinstance(pod, Mapping) or (pod.get("kind") not in (None, "Pod")):
            continue
        workload = _workload_of(pod)
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            cname = container.get("name", "")
            for suffix, note in ((".previous.log", " (the previous container, before its restart)"),
                                 (".log", "")):
                log = bundle / LOGS / f"{meta.get('name', '')}-{cname}{suffix}"
                if log.is_file() and workload:
                    heading = f"container {cname} of pod {meta.get('namespace', '')}/{meta.get('name', '')}"
                    found.setdefault(workload, []).append((heading + note, log))
    return found


def _load(path: Path) -> Any:
    """A bundle's YAML. The bundle's redactor masks text after it was dumped, and a secret's value
    can be a word YAML has (`true`): then `controller: ***`, an alias to nothing; read as a string."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    for attempt in (text, _MASKED.sub(r"\1'***'", text)):
        try:
            return yaml.safe_load(attempt)
        except yaml.YAMLError:
            continue
    return None


def compose(name: str, tilt_lines: Sequence[str], containers: Sequence[tuple[str, str]]) -> str:
    """One component's log: tilt's lines for it (build, deploy, the pod output tilt streamed), then the
    container logs diagnostics fetched."""
    parts = [f"# {name}: build, deploy and container output of this run"]
    if tilt_lines:
        parts += [f"== tilt ci ({len(tilt_lines)} lines) ==", *tilt_lines]
    for heading, text in containers:
        parts += [f"== {heading} ==", text.rstrip("\n")]
    return "\n".join(parts) + "\n"


def write(artifacts_dir: Path, components: Sequence[ResourceResult],
          secrets: Iterable[str] = ()) -> list[Path]:
    """Write `<artifacts_dir>/logs/<component>.log` for every component and every resource tilt logged
    for; stale ones of an earlier run in the same folder go first. Returns the files written."""
    secrets = tuple(secrets)
    tilt_log = artifacts_dir / TILT_LOG
    try:
        text = tilt_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    by_resource = split_tilt_log(text.splitlines(), [c.name for c in components])
    by_workload = container_logs(artifacts_dir / BUNDLE)
    folder = artifacts_dir / LOGS
    for stale in folder.glob("*.log"):
        stale.unlink(missing_ok=True)
    written: list[Path] = []
    names = [c.name for c in components] + [n for n in by_resource if n not in {c.name for c in components}]
    members = {c.name: [c.name, *c.workloads] for c in components}
    for name in names:
        containers = [(heading, _read(log)) for member in members.get(name, [name])
                      for heading, log in by_workload.get(member, [])]
        lines = by_resource.get(name, [])
        if not lines and not containers:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename(name)
        if path in written:  # two names that make one file name: keep both
            path = path.with_name(f"{path.stem}-{len(written)}.log")
        path.write_text(clean(compose(name, lines, containers), secrets), encoding="utf-8")
        written.append(path)
    return written


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return f"(cannot read {path.name}: {err})"
