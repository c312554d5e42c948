"""The cache directory on disk: entries written under a temporary name and renamed into place (a save
cut off leaves a temporary file, never an entry), a lock file so runs sharing it take turns, a size
bound kept by evicting the least recently used entries, and a marker so a foreign or corrupt directory
is left alone.

Layout:  pyci-cache.json   the marker {"format": "pyci-cache", "version": 1}
         .lock             flock: shared to read an entry, exclusive to commit or evict
         layers/<key>.json an entry: what it holds, its data file's name, size and sha256, when used
         layers/<key>-<id>.tar   the entry's data (a new save gets a new id: a reader of the old one
                           keeps reading it while the .json switches to the new one)
         tmp/              saves in progress; what a killed save left there is removed by the next
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

MARKER = "pyci-cache.json"
FORMAT = {"format": "pyci-cache", "version": 1}
LOCK_WAIT = 60.0  # seconds to wait for another run's save before going on without the cache
STALE_TMP = 3600.0  # a temporary file this old is a killed save's, not a running one's
CHUNK = 1024 * 1024


class Unusable(Exception):
    """The directory cannot be used as a cache (foreign, corrupt, locked too long): one line says why."""


@dataclass(frozen=True)
class Entry:
    key: str
    data: str  # file name of the entry's data under its section
    size: int
    sha256: str
    used: float
    meta: dict[str, Any] = field(default_factory=dict)  # what the section stores about it


class Store:
    """One cache directory, checked when opened (`open_store`)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes

    @contextlib.contextmanager
    def locked(self, exclusive: bool, wait: float = LOCK_WAIT) -> Iterator[None]:
        with open(self.root / ".lock", "a+b") as lock:
            deadline = time.monotonic() + wait
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            while True:
                try:
                    fcntl.flock(lock, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise Unusable(f"another run held its lock for over {wait:.0f}s") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self, section: str, problems: list[str] | None = None) -> list[Entry]:
        """The complete entries of a section, most recently used first; an unreadable one is skipped
        (and named in `problems`)."""
        found = []
        for meta_path in sorted((self.root / section).glob("*.json")):
            try:
                found.append(_entry(meta_path))
            except (OSError, ValueError, KeyError, TypeError) as e:
                if problems is not None:
                    problems.append(f"{section}/{meta_path.name} ({type(e).__name__})")
        return sorted(found, key=lambda e: e.used, reverse=True)

    def data_path(self, section: str, entry: Entry) -> Path:
        return self.root / section / entry.data

    def check(self, section: str, entry: Entry, hash_it: bool = True) -> None:
        """The entry's data is whole: its size (and sha256) as written; else ValueError."""
        path = self.data_path(section, entry)
        if path.stat().st_size != entry.size:
            raise ValueError(f"{section}/{entry.data} is {path.stat().st_size} bytes, not {entry.size}")
        if hash_it and _sha256(path) != entry.sha256:
            raise ValueError(f"{section}/{entry.data} does not match its sha256")

    def touch(self, section: str, entry: Entry) -> None:
        """Mark as used now (least recently used goes first)."""
        with self.locked(exclusive=True):
            meta_path = self.root / section / f"{entry.key}.json"
            if meta_path.exists():
                document = json.loads(meta_path.read_text(encoding="utf-8"))
                document["used"] = time.time()
                _write_atomic(self.root, meta_path, json.dumps(document).encode())

    def save(self, section: str, key: str, write: Callable[[IO[bytes]], None], meta: dict[str, Any]) -> Entry:
        """Write an entry's data with `write` into a temporary file, then commit it under the lock."""
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        _remove_stale(tmp)
        data_name = f"{key}-{secrets.token_hex(4)}.tar"
        partial = tmp / f"{data_name}.partial"
        try:
            with open(partial, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            size, digest = partial.stat().st_size, _sha256(partial)
            document = {"key": key, "data": data_name, "size": size, "sha256": digest, "used": time.time(),
                        "meta": meta}
            with self.locked(exclusive=True):
                (self.root / section).mkdir(exist_ok=True)
                meta_path = self.root / section / f"{key}.json"
                old = _entry(meta_path).data if meta_path.exists() else None
                os.replace(partial, self.root / section / data_name)
                _write_atomic(self.root, meta_path, json.dumps(document).encode())  # the entry exists now
                if old and old != data_name:
                    with contextlib.suppress(OSError):
                        (self.root / section / old).unlink()
            return _entry(meta_path)
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()

    def remove(self, section: str, entry: Entry) -> None:
        with self.locked(exclusive=True):
            for name in (f"{entry.key}.json", entry.data):
                with contextlib.suppress(OSError):
                    (self.root / section / name).unlink()

    def evict(self, sections: tuple[str, ...], keep: tuple[str, ...] = (), extra_bytes: int = 0) -> list[str]:
        """Remove least recently used entries until the cache (plus `extra_bytes` held elsewhere in it)
        fits; `keep` (keys) stays. Returns the removed keys."""
        removed: list[str] = []
        with self.locked(exclusive=True):
            everything = [(s, e) for s in sections for e in self.entries(s)]
            total = extra_bytes + sum(e.size for _, e in everything)
            for section, entry in sorted(everything, key=lambda pair: pair[1].used):
                if total <= self.max_bytes:
                    break
                if entry.key in keep:
                    continue
                with contextlib.suppress(OSError):
                    (self.root / section / f"{entry.key}.json").unlink()
                    (self.root / section / entry.data).unlink()
                total -= entry.size
                removed.append(entry.key)
        return removed


def open_store(root: Path, max_bytes: int) -> Store:
    """The cache at `root`: created (with its marker) when missing or empty; Unusable when it holds
    something else or its marker is not pyci's format."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if not marker.exists():
        if any(p.name != ".lock" for p in root.iterdir()):
            raise Unusable(f"it holds other files and no {MARKER}: not a pyci cache")
        _write_atomic(root, marker, json.dumps(FORMAT).encode())
    else:
        try:
            found = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise Unusable(f"its {MARKER} is unreadable ({type(e).__name__})") from None
        if found != FORMAT:
            raise Unusable(f"its {MARKER} is another format ({json.dumps(found)[:80]})")
    return Store(root, max_bytes)


def _entry(meta_path: Path) -> Entry:
    document = json.loads(meta_path.read_text(encoding="utf-8"))
    data = str(document["data"])
    if "/" in data or data.startswith("."):
        raise ValueError("data names a file outside its section")
    return Entry(str(document["key"]), data, int(document["size"]), str(document["sha256"]),
                 float(document["used"]), dict(document.get("meta") or {}))


def _write_atomic(root: Path, path: Path, data: bytes) -> None:
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    partial = tmp / f"{path.name}.{secrets.token_hex(4)}.partial"
    partial.write_bytes(data)
    os.replace(partial, path)


def _remove_stale(tmp: Path) -> None:
    now = time.time()
    for path in tmp.glob("*.partial"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_TMP:
                path.unlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
