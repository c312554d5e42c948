"""tilt's context filter (contextIgnores: the Tiltfile, .dockerignore, ignore=, only=) and the tar tilt
would have synced: the same files, owned by 0:0, so that BuildKit's COPY cache keys match tilt's."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pyci.buildahead.targets import IgnoreDef

# The Dockerfile, when the context has no file with its exact contents (tilt sends it on the side).
SIDE_DOCKERFILE = ".pyci-ahead.Dockerfile"


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
