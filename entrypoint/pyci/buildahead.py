"""Build ahead: while the registry and kind boot, build the Tiltfile's images so that `tilt ci` finds
every layer in BuildKit's cache, and bring the third-party images the manifests name into the nodes.

Why this gives tilt cache hits: tilt builds through BuildKit, syncing its context in a session after
filtering it client-side (contextIgnores: the Tiltfile, .dockerignore, ignore=, only=; files owned by
0:0). The Docker Engine API's `/build` with `version=2` and the context as a tar body runs the same
BuildKit without a session, so it fills the cache tilt reads (the legacy builder's cache is another).
A COPY's cache key is the content of what it copies (names, modes, owners, bytes; no mtimes), not how
the files reached the daemon, so a tar filtered the same way and owned by 0:0 matches. A mismatch costs
a cache miss, never a wrong image: tilt builds for itself either way.

One shape cannot match: a COPY of the context's root (`COPY . /app`). BuildKit hashes the root
directory of a session's context with a fixed empty header, and of an unpacked tar from its real
stat (cache/contenthash: HandleChange fakes the root, scanPath stats it), so that step and the steps
after it in its stage miss. Everything before it hits: the base image, `COPY requirements.txt .` and
the `RUN pip install` after it, which is where a well-ordered Dockerfile spends its time. Matching it
would take a BuildKit session (filesync over /session), which the Engine API needs a gRPC server for.

Nothing here fails the run: a build that fails is one line, and tilt ci reports the real error.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import re
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyci import images
from pyci.settings import LABEL_MANAGED, LABEL_RUN

log = logging.getLogger(__name__)

Log = Callable[[str], None]
AHEAD_REPOSITORY = "pyci-ahead"  # throwaway tags: pyci-ahead/<run id>:<n>-<name>, removed at cleanup
BUILD_TIMEOUT = 1800.0  # seconds a single build may stream before the read gives up
PULL_TIMEOUT = 300.0
KIND_LOAD_TIMEOUT = 600.0
PUSH_TAG = "pyci-ahead"  # <registry>/<tilt's repository>:pyci-ahead: the layers tilt's push then finds
# The Dockerfile, when the context has no file with its exact contents (tilt sends it on the side).
SIDE_DOCKERFILE = ".pyci-ahead.Dockerfile"
# `api │ [2/2] COPY server.py /app/server.py [cached]`: a Dockerfile step as tilt's log prints it.
_TILT_STEP = re.compile(r"│\s+\[(?:[\w.-]+ )?\d+/\d+\] (?P<op>\S+).*?(?P<cached> \[cached\])?\s*$")


# --- what to build -------------------------------------------------------------------------------
@dataclass(frozen=True)
class IgnoreDef:
    base_path: str
    patterns: tuple[str, ...] = ()  # none: everything under base_path


@dataclass(frozen=True)
class Target:
    """One docker_build as tilt will build it (from the tiltfile-result's DockerImageSpec)."""

    ref: str  # the selector the manifests use (`hello-api`)
    context: str
    dockerfile_contents: str
    build_args: tuple[str, ...] = ()
    target: str | None = None
    ignores: tuple[IgnoreDef, ...] = ()
    deps: tuple[str, ...] = ()  # image maps this build's FROM / COPY --from name
    platform: str | None = None
    network: str | None = None
    extra_hosts: tuple[str, ...] = ()
    pull: bool = False
    needs_session: str | None = None  # ssh agent or secrets: only a BuildKit session can supply them


def targets(raw: Mapping[str, Any]) -> tuple[list[Target], list[str]]:
    """The docker_build targets of a tiltfile-result, each once; and why others are not built ahead."""
    found: dict[str, Target] = {}
    skipped: list[str] = []
    for manifest in raw.get("Manifests") or []:
        for image in manifest.get("ImageTargets") or []:
            ref = str(image.get("selector") or image.get("DockerImageName") or "")
            details = image.get("BuildDetails") or {}
            if ref in found or ref in skipped:
                continue
            if "dockerfileContents" not in details and "context" not in details:
                skipped.append(ref)  # custom_build: only its own command builds it
                continue
            found[ref] = _target(ref, details)
    return list(found.values()), skipped


def _target(ref: str, spec: Mapping[str, Any]) -> Target:
    ignores = tuple(IgnoreDef(str(i.get("basePath") or ""), tuple(i.get("patterns") or ()))
                    for i in spec.get("contextIgnores") or [] if i.get("basePath"))
    session = ("ssh" if spec.get("sshAgentConfigs") else "secrets" if spec.get("secrets") else None)
    return Target(
        ref=ref,
        context=str(spec.get("context") or ""),
        dockerfile_contents=str(spec.get("dockerfileContents") or ""),
        build_args=tuple(str(a) for a in spec.get("args") or ()),
        target=spec.get("target") or None,
        ignores=ignores,
        deps=tuple(str(d) for d in spec.get("imageMaps") or ()),
        platform=spec.get("platform") or None,
        network=spec.get("network") or None,
        extra_hosts=tuple(spec.get("extraHosts") or ()),
        pull=bool(spec.get("pull")),
        needs_session=session,
    )


def waves(found: Sequence[Target]) -> list[list[Target]]:
    """Targets in dependency order: each wave only needs images of earlier waves."""
    known = {t.ref for t in found}
    done: set[str] = set()
    left = list(found)
    order: list[list[Target]] = []
    while left:
        ready = [t for t in left if all(d in done or d not in known for d in t.deps)]
        if not ready:  # a cycle: tilt will say so; build what is left as if independent
            ready = left
        order.append(ready)
        done |= {t.ref for t in ready}
        left = [t for t in left if t.ref not in done]
    return order


# --- tilt's context filter -----------------------------------------------------------------------
def _clean(path: str) -> str:
    """Go's filepath.Clean, near enough: tilt cleans every pattern with it."""
    cleaned = os.path.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """tilt-dev/dockerignore's translation of one cleaned pattern to a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out += ".*" if i >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch in ".+()|{}$":
            out += "\\" + ch
        elif ch == "\\":
            if i < len(pattern):
                out += "\\" + pattern[i]
                i += 1
            else:
                out += "\\\\"
        else:
            out += ch
    return re.compile(out + "(/.*)?")  # a pattern that names a directory names all inside it


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool


class PatternMatcher:
    """One IgnoreDef with patterns (tilt's dockerPathMatcher): the last matching pattern decides."""

    def __init__(self, base: str, patterns: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            exclusion = p.startswith("!")
            p = p[1:] if exclusion else p
            if not p:
                raise ValueError('illegal exclusion pattern: "!"')
            text = _clean(p if os.path.isabs(p) else os.path.join(base, p))
            self.patterns.append(_Pattern(text, pattern_regex(text), exclusion))

    def matches(self, path: str) -> bool:
        matched = False
        for p in self.patterns:
            if p.regex.fullmatch(path):
                matched = not p.exclusion
        return matched

    def matches_entire_dir(self, path: str) -> bool:
        if not self.matches(path):
            return False
        for p in self.patterns:  # an exclusion may bring back something inside: crawl it
            if not p.exclusion:
                continue
            if _is_child(path, p.text):
                return False
            prefix = _definite_prefix(p.text)
            if prefix != p.text and _is_child(prefix, path):
                return False
        return True


class DirectoryMatcher:
    """An IgnoreDef without patterns: the path itself and everything under it."""

    def __init__(self, base: str) -> None:
        self.base = _clean(os.path.abspath(base))

    def matches(self, path: str) -> bool:
        return _is_child(self.base, path)

    def matches_entire_dir(self, path: str) -> bool:
        return self.matches(path)


def _is_child(parent: str, path: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _definite_prefix(pattern: str) -> str:
    if "*" not in pattern:
        return pattern
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if "*" in part:
            return "." if i == 0 else "/".join(parts[:i])
    return pattern


class ContextFilter:
    """tilt's CreateBuildContextFilter: a path is left out when any IgnoreDef matches it."""

    def __init__(self, ignores: Iterable[IgnoreDef]) -> None:
        self.matchers: list[PatternMatcher | DirectoryMatcher] = []
        for ignore in ignores:
            try:
                self.matchers.append(PatternMatcher(ignore.base_path, ignore.patterns) if ignore.patterns
                                     else DirectoryMatcher(ignore.base_path))
            except (ValueError, re.error):
                continue  # tilt skips an ill-formed IgnoreDef too ("best effort")

    def excludes(self, path: str) -> bool:
        return any(m.matches(path) for m in self.matchers)

    def excludes_dir(self, path: str) -> bool:
        return any(m.matches_entire_dir(path) for m in self.matchers)


# --- the tar tilt would have synced ---------------------------------------------------------------
def context_entries(context: Path, keep: ContextFilter) -> list[Path]:
    """Every path tilt puts in the context, parents before children, in a stable order."""
    root = str(context)
    found: list[Path] = []
    for top, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        kept_dirs = []
        for name in dirs:
            path = os.path.join(top, name)
            if os.path.islink(path):  # a symlink to a directory is an entry, not a place to walk
                if not keep.excludes(path):
                    found.append(Path(path))
            elif not keep.excludes_dir(path):
                found.append(Path(path))
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        found += [Path(top, name) for name in sorted(files) if not keep.excludes(os.path.join(top, name))]
    return sorted(found, key=lambda p: p.relative_to(context).parts)


def _dockerfile_in(context: Path, entries: Sequence[Path], contents: bytes) -> str | None:
    """A file of the context with exactly the Dockerfile's contents: naming it adds nothing to the tar
    (tilt's context has no extra file, and a `COPY . .` would copy one)."""
    for path in entries:
        if "ockerfile" in path.name and not path.is_symlink() and path.is_file():
            with contextlib.suppress(OSError):
                if path.stat().st_size == len(contents) and path.read_bytes() == contents:
                    return path.relative_to(context).as_posix()
    return None


def write_context(context: Path, keep: ContextFilter, dockerfile_contents: str,
                  out: IO[bytes]) -> str:
    """Write the filtered context as a tar to `out`; returns the Dockerfile's name inside it.

    GNU format, not PAX (Python's default): the daemon sniffs the first bytes to tell a tar from a
    Dockerfile, and a PAX header made it take the whole tar for a Dockerfile.
    """
    contents = dockerfile_contents.encode()
    entries = context_entries(context, keep)
    name = _dockerfile_in(context, entries, contents)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in entries:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(context).as_posix())
            if info is None:  # a socket or the like: nothing tilt would send either
                continue
            # tilt's session sends every file as 0:0 (fsutil map); the owner is part of a COPY's key.
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = int(info.mtime)
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        if name is None:
            taken = {p.relative_to(context).as_posix() for p in entries}
            name = SIDE_DOCKERFILE
            while name in taken:
                name = "_" + name
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(contents), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(contents))
    return name


def build_args(args: Sequence[str]) -> dict[str, str | None]:
    """tilt's `KEY=value` list as the API's map; a bare KEY is null, as tilt sends it."""
    out: dict[str, str | None] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        out[key] = value if sep else None
    return out


def rewrite_deps(dockerfile: str, tags: Mapping[str, str]) -> str:
    """Point FROM and COPY --from at the images built ahead for this build's dependencies, as tilt
    points them at its own builds (a base image's cache key is its layers, not its name)."""
    for ref, tag in tags.items():
        name = re.escape(ref)
        dockerfile = re.sub(rf"(?im)^(\s*FROM\s+(?:--\S+\s+)*){name}(?=\s|$)", rf"\g<1>{tag}", dockerfile)
        dockerfile = re.sub(rf"(?i)(--from=){name}(?=\s)", rf"\g<1>{tag}", dockerfile)
    return dockerfile


def build_params(target: Target, tag: str, dockerfile: str, run_id: str) -> dict[str, str]:
    """The query of one `POST /build`: BuildKit (version 2), tilt's args, target and options."""
    params = {
        "t": tag,
        "version": "2",
        "dockerfile": dockerfile,
        "buildargs": json.dumps(build_args(target.build_args)),
        # Labels land in the image config only (no layer's key): `pyci cleanup` can find these images.
        "labels": json.dumps({LABEL_MANAGED: "true", LABEL_RUN: run_id}),
        "rm": "1",
    }
    if target.target:
        params["target"] = target.target
    if target.platform:
        params["platform"] = target.platform
    if target.network:
        params["networkmode"] = target.network
    if target.extra_hosts:
        params["extrahosts"] = ",".join(target.extra_hosts)
    if target.pull:
        params["pull"] = "1"
    return params


def registry_repository(host: str, ref: str) -> str:
    """The repository tilt pushes `ref` to in a local registry at `host` (tilt's replaceRegistry:
    the familiar name, with / : @ escaped as _), so that its push finds every layer already there."""
    name, _ = _split_tag(ref.split("@", 1)[0])
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith(host + "/"):
        return name
    return f"{host}/{re.sub(r'[/:@]', '_', name)}"


def throwaway_tag(run_id: str, index: int, ref: str) -> str:
    safe = re.sub(r"[^a-z0-9_.-]+", "-", ref.lower().rsplit("/", 1)[-1].split(":", 1)[0]).strip(".-")
    return f"{AHEAD_REPOSITORY}/{run_id}:{index}-{safe or 'image'}"[:200]


# --- tilt's log ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheHits:
    cached: int = 0
    steps: int = 0
    lines: tuple[str, ...] = ()  # the cached steps as tilt printed them


def cache_hits(tilt_log: str) -> CacheHits:
    """Dockerfile steps (FROM aside: a base image is never "built") tilt's log shows as cached."""
    cached, steps, lines = 0, 0, []
    for line in tilt_log.splitlines():
        m = _TILT_STEP.search(line)
        if not m or m["op"].upper() == "FROM" or "[done: " in line:  # a step's second line: its end
            continue
        steps += 1
        if m["cached"]:
            cached += 1
            lines.append(line.strip())
    return CacheHits(cached, steps, tuple(lines))


# --- running it ----------------------------------------------------------------------------------
@dataclass
class Built:
    ref: str
    tag: str
    seconds: float = 0.0
    error: str | None = None
    started: float = 0.0
    ended: float = 0.0


@dataclass
class Profile:
    """What build-ahead did, for the log, the summary and JUnit."""

    built: list[Built] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    third_party_present: list[str] = field(default_factory=list)
    third_party_missing: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    load_error: str | None = None
    load_early: bool = False  # the load began while kind was still booting
    pushed: list[str] = field(default_factory=list)  # <registry>/<repository>:pyci-ahead
    push_seconds: float = 0.0
    push_errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0  # when the last build finished
    boot_started: float = 0.0
    boot_ended: float = 0.0  # when registry + cluster were up
    waited: float = 0.0  # seconds tilt ci waited for builds still running after the boot
    hits: CacheHits | None = None

    @property
    def ok(self) -> list[Built]:
        return [b for b in self.built if b.error is None]

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started) if self.built else 0.0

    @property
    def overlap(self) -> float:
        """Seconds during which a build ran while the registry and cluster were coming up."""
        spans = sorted((b.started, b.ended) for b in self.built if b.ended > b.started)
        total, reach = 0.0, self.boot_started
        for start, end in spans:
            start, end = max(start, reach, self.boot_started), min(end, self.boot_ended)
            if end > start:
                total += end - start
                reach = end
        return total

    def describe(self) -> str:
        parts = []
        if self.built:
            boot = max(0.0, self.boot_ended - self.boot_started)
            parts.append(f"{len(self.ok)}/{len(self.built)} images built ahead in {self.seconds:.1f}s, "
                         f"{self.overlap:.1f}s of it during the {boot:.1f}s cluster boot; "
                         f"tilt waited {self.waited:.1f}s for them")
        if self.pushed or self.push_errors:
            parts.append(f"{len(self.pushed)} pushed to the registry in {self.push_seconds:.1f}s "
                         "(tilt's pushes find their layers there)"
                         + (f", {len(self.push_errors)} not" if self.push_errors else ""))
        if self.skipped:
            parts.append(f"not built ahead: {', '.join(self.skipped)}")
        if self.loaded:
            when = " during the boot" if self.load_early else ""
            parts.append(f"{len(self.loaded)} third-party images loaded into the nodes{when} in "
                         f"{self.load_seconds:.1f}s")
        if self.third_party_missing:
            parts.append(f"not in the daemon: {', '.join(self.third_party_missing)}")
        if self.hits is not None and self.hits.steps:
            parts.append(f"tilt: {self.hits.cached}/{self.hits.steps} build steps cached")
        return "; ".join(parts) or "nothing to build ahead"


class BuildAhead:
    """Builds in background threads (daemon threads: a cancelled run does not wait for them)."""

    def __init__(self, client: Any, found: Sequence[Target], run_id: str, log: Log,
                 third_party: Sequence[str] = (), skipped: Sequence[str] = (),
                 workers: int | None = None, pull: bool = True) -> None:
        self.client, self.run_id, self.log = client, run_id, log
        self.pull = pull  # False: third-party images the daemon lacks are left to the kubelet
        self.api = client.api
        self.waves = waves(found)
        self.third_party = list(third_party)
        self.profile = Profile(skipped=list(skipped))
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.repository = f"{AHEAD_REPOSITORY}/{run_id}"
        self._closed = threading.Event()
        self._responses: list[Any] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._prefetcher: threading.Thread | None = None
        self._loader: threading.Thread | None = None
        self._pusher: threading.Thread | None = None
        self._tagged: set[str] = set()  # <registry>/<repository>:pyci-ahead tags made for the pushes
        self._built: queue.SimpleQueue[Built | None] = queue.SimpleQueue()  # each build as it ends
        self._booted = threading.Event()

    # The run's side of it: start, note the boot, load, wait, close.
    def start(self) -> None:
        self.profile.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="build-ahead", daemon=True)
        self._thread.start()
        # Pulls apart from the builds: tilt waits for the builds, only the node needs the pulls.
        self._prefetcher = threading.Thread(target=self._prefetch, name="prefetch", daemon=True)
        self._prefetcher.start()

    def booted(self, started: float, ended: float) -> None:
        self.profile.boot_started, self.profile.boot_ended = started, ended
        self._booted.set()

    def wait(self, timeout: float, cancel: threading.Event) -> None:
        """Until every build ended (tilt would only build the same again) or the timeout."""
        t0 = time.monotonic()
        _join(self._thread, timeout, cancel)
        if self._thread is not None and self._thread.is_alive() and not cancel.is_set():
            self.log(f"build ahead: still building after {timeout:.0f}s; tilt ci starts anyway")
        self.profile.waited = time.monotonic() - t0

    def load_into_kind(self, cluster: str, kind_bin: str = "kind") -> None:
        """Start `kind load docker-image` of the third-party images the daemon has (after the
        prefetch, which runs with the builds), as soon as the nodes can take it: while kind boots."""
        self._loader = threading.Thread(target=self._load, args=(cluster, kind_bin), name="kind-load",
                                        daemon=True)
        self._loader.start()

    def wait_loaded(self, timeout: float, cancel: threading.Event) -> None:
        _join(self._loader, timeout, cancel)

    def push_to(self, host: str) -> None:
        """Push each image as its build ends into the run's own registry, once its host port is final
        (kind still booting): tilt then pushes only what it changed, where compressing the base
        layers again for every image cost most of its push time."""
        self._pusher = threading.Thread(target=self._push, args=(host,), name="push-ahead", daemon=True)
        self._pusher.start()

    def wait_pushed(self, timeout: float, cancel: threading.Event) -> None:
        _join(self._pusher, timeout, cancel)

    def close(self) -> None:
        """Stop reading builds still streaming (the daemon cancels them) and remove the tags; once."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._booted.set()  # a loader waiting for the boot (which may never come) stops waiting
        with self._lock:
            for response in self._responses:
                with contextlib.suppress(Exception):
                    response.close()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._pusher is not None:
            self._built.put(None)  # a pusher waiting for the next build stops waiting
            self._pusher.join(5.0)
        tags = {b.tag for b in self.profile.built} | self._tagged
        # Also what the daemon tagged after we stopped reading (a build cancelled late still ends):
        with contextlib.suppress(Exception):
            tags |= {t for t in images.tags(self.client, name=self.repository)
                     if t.startswith(self.repository + ":")}
        for tag in sorted(tags):
            with contextlib.suppress(Exception):
                self.client.images.remove(tag, noprune=False)

    # The work.
    def _run(self) -> None:
        tags: dict[str, str] = {}
        index = 0
        for wave in self.waves:
            slots = threading.Semaphore(self.workers)
            threads = []
            for target in wave:
                if self._closed.is_set():
                    break
                index += 1
                built = Built(target.ref, throwaway_tag(self.run_id, index, target.ref))
                self.profile.built.append(built)
                deps = {d: tags[d] for d in target.deps if d in tags}
                thread = threading.Thread(target=self._bounded, args=(slots, target, built, deps),
                                          name=f"build-{index}", daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join()
            tags |= {b.ref: b.tag for b in self.profile.built if b.error is None}
        self.profile.ended = time.monotonic()
        self._built.put(None)

    def _bounded(self, slots: threading.Semaphore, target: Target, built: Built,
                 deps: Mapping[str, str]) -> None:
        with slots:
            built.started = time.monotonic()
            try:
                self._build(target, built, deps)
            except Exception as e:  # noqa: BLE001 - a build ahead never fails the run
                built.error = _one_line(str(e) or type(e).__name__)
            built.ended = time.monotonic()
            built.seconds = built.ended - built.started
            if built.error:
                self.log(f"build ahead: {target.ref} not built ahead ({built.error}); tilt ci builds it")
            else:
                self.log(f"build ahead: {target.ref} built in {built.seconds:.1f}s")
                self._built.put(built)

    def _build(self, target: Target, built: Built, deps: Mapping[str, str]) -> None:
        if target.needs_session:
            raise RuntimeError(f"it uses {target.needs_session}, which needs a BuildKit session")
        context = Path(target.context)
        if not context.is_dir():
            raise RuntimeError(f"no context directory {context}")
        with tempfile.TemporaryFile(prefix="pyci-ahead-") as tar:
            contents = rewrite_deps(target.dockerfile_contents, deps)
            name = write_context(context, ContextFilter(target.ignores), contents, tar)
            tar.seek(0)
            params = build_params(target, built.tag, name, self.run_id)
            response = self.api._post(self.api._url("/build"), params=params, data=tar,
                                      headers={"Content-Type": "application/x-tar"}, stream=True,
                                      timeout=BUILD_TIMEOUT)
            with self._lock:
                self._responses.append(response)
            try:
                self.api._raise_for_status(response)
                error = stream_error(self.api._stream_helper(response, decode=True))
            finally:
                response.close()
        if error:
            raise RuntimeError(error)

    def _push(self, host: str) -> None:
        """One push at a time: the first compresses the shared base layers, the next ones find them."""
        t0 = time.monotonic()
        while not self._closed.is_set():
            built = self._built.get()
            if built is None or self._closed.is_set():
                break
            repository = registry_repository(host, built.ref)
            try:
                self.api.tag(built.tag, repository, PUSH_TAG)
                with self._lock:
                    self._tagged.add(f"{repository}:{PUSH_TAG}")
                error = None
                for message in self.api.push(repository, tag=PUSH_TAG, stream=True, decode=True):
                    if self._closed.is_set():
                        break
                    error = error or stream_error([message])
            except Exception as e:  # noqa: BLE001 - tilt pushes for itself either way
                error = _one_line(str(e) or type(e).__name__)
            if error:
                self.profile.push_errors.append(built.ref)
                self.log(f"build ahead: push of {built.ref} to {repository} failed ({_one_line(error)}); "
                         "tilt pushes it")
            elif not self._closed.is_set():
                self.profile.pushed.append(f"{repository}:{PUSH_TAG}")
        self.profile.push_seconds = time.monotonic() - t0
        if self.profile.pushed:
            self.log(f"build ahead: pushed {len(self.profile.pushed)} images to {host} "
                     f"in {self.profile.push_seconds:.1f}s")

    def _prefetch(self) -> None:
        """Third-party images: present, or pulled now (a pull that fails is tilt's and the
        kubelet's business later: one line)."""
        import docker.errors

        for ref in self.third_party:
            if self._closed.is_set():
                return
            try:
                self.client.images.get(ref)
                self.profile.third_party_present.append(ref)
                continue
            except docker.errors.ImageNotFound:
                pass
            except Exception as e:  # noqa: BLE001
                self.log(f"build ahead: cannot look up {ref}: {_one_line(str(e))}")
                continue
            if not self.pull:
                self.profile.third_party_missing.append(ref)
                self.log(f"build ahead: {ref} is not in the daemon (build-ahead off: not pulled); "
                         "the nodes pull it themselves")
                continue
            try:
                repository, tag = _split_tag(ref)
                self.client.api.pull(repository, tag=tag)
                self.profile.third_party_present.append(ref)
                self.log(f"build ahead: pulled {ref}")
            except Exception as e:  # noqa: BLE001 - offline, unknown image, no credentials
                self.profile.third_party_missing.append(ref)
                self.log(f"build ahead: {ref} is not in the daemon and could not be pulled "
                         f"({_one_line(str(e))})")

    def _load(self, cluster: str, kind_bin: str) -> None:
        if self._prefetcher is not None:
            self._prefetcher.join()
        images = list(self.profile.third_party_present)
        if not images or self._closed.is_set():
            return
        t0 = time.monotonic()
        early = self.profile.load_early = self._wait_for_nodes(cluster)
        error = self._kind_load(cluster, kind_bin, images)
        if error and early:  # raced kind's own work on the node: once more, now that it is up
            self._booted.wait(KIND_LOAD_TIMEOUT)
            error = self._kind_load(cluster, kind_bin, images) if not self._closed.is_set() else error
        self.profile.load_error = error
        self.profile.loaded = [] if error else images
        self.profile.load_seconds = time.monotonic() - t0
        if error:
            self.log(f"build ahead: kind load of {', '.join(images)} failed: {error}")
        else:
            when = "during the cluster boot" if early else "after the cluster boot"
            self.log(f"build ahead: loaded {', '.join(images)} into the nodes {when} "
                     f"in {self.profile.load_seconds:.1f}s")

    def _wait_for_nodes(self, cluster: str) -> bool:
        """Until every node of the cluster has begun `kubeadm init` or `join` (its certificates exist):
        kind restarts containerd before that (config patches), never after. True when that came
        before the cluster was up, False when the boot ended first."""
        while not self._booted.is_set() and not self._closed.is_set():
            with contextlib.suppress(Exception):  # a node being created or restarted: ask again
                nodes = self.client.containers.list(filters={"label": f"io.x-k8s.kind.cluster={cluster}"})
                if nodes and all(n.status == "running" and n.exec_run(
                        ["test", "-e", "/etc/kubernetes/pki/ca.crt"]).exit_code == 0 for n in nodes):
                    return True
            self._booted.wait(1.0)
        return False

    def _kind_load(self, cluster: str, kind_bin: str, images: Sequence[str]) -> str | None:
        try:
            done = subprocess.run([kind_bin, "load", "docker-image", "--name", cluster, *images],
                                  capture_output=True, text=True, timeout=KIND_LOAD_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return _one_line(str(e))
        return _one_line(done.stderr or done.stdout) if done.returncode != 0 else None


def _join(thread: threading.Thread | None, timeout: float, cancel: threading.Event) -> None:
    t0 = time.monotonic()
    while thread is not None and thread.is_alive() and not cancel.is_set():
        if time.monotonic() - t0 > timeout:
            break
        thread.join(0.1)


def stream_error(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """The build's error, if any, from the JSON stream (moby.buildkit.trace progress is skipped)."""
    for message in messages:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            return str(detail.get("message") or message.get("error"))
    return None


def _split_tag(ref: str) -> tuple[str, str | None]:
    if "@" in ref:
        return ref, None
    slash, colon = ref.rfind("/"), ref.rfind(":")
    return (ref[:colon], ref[colon + 1:]) if colon > slash else (ref, "latest")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plan(evaluation: Any) -> tuple[list[Target], list[str], list[str]] | None:
    """What to build and prefetch from the preflight's Evaluation; None when it cannot be read ahead."""
    if evaluation is None or evaluation.unavailable or evaluation.error is not None:
        return None
    found, skipped = targets(evaluation.raw or {})
    if not found and not evaluation.raw:  # an Evaluation made without tilt's JSON (tests, old callers)
        found = [Target(i.ref, i.context or "", i.dockerfile_contents or "", i.build_args, i.target)
                 for i in evaluation.images if not i.custom and i.context]
        skipped = [i.ref for i in evaluation.images if i.custom]
    return found, skipped, list(evaluation.third_party_images)

