"""The layer cache of the images built ahead, through the daemon's own BuildKit (no buildx).

Proven on the lab daemon (Docker 20.10, /build version=2): an image built with the build argument
BUILDKIT_INLINE_CACHE=1 carries its cache keys in its config; `docker save` keeps them; on a daemon
without that build's cache, after `docker load`, a build with `cachefrom=[that image]` ran the unchanged
`RUN` step from the cache (1.1 s against 6.1 s without `cachefrom`), a later build without `cachefrom`
(as tilt's) hit too, and a changed COPY source rebuilt from that step on (the new file in the image).
BuildKit matches cache keys by content, so a restored entry can make a build faster, never different.

One entry holds every image a run built ahead in one `docker save` (layers shared by its images are
stored once), keyed by the set of image names; a run restores the entry of its own set, else the most
recently used entry that shares an image with it (a partial hit).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from pyci.cache.store import Entry, Store

SECTION = "layers"
CACHE_REPOSITORY = "pyci-ahead/cache"  # pyci-ahead/...: `pyci cleanup` removes leftovers of killed runs
# A build argument named like this may carry a secret into the image's history: such images stay out.
SECRET_ARG = re.compile(r"TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|AUTH|API_?KEY|PRIVATE", re.IGNORECASE)


def entry_key(refs: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(refs))).encode()).hexdigest()[:16]


def cache_tag(ref: str) -> str:
    """A stable local name for `ref`'s cached image (the same on every run, so a load only retags)."""
    return f"{CACHE_REPOSITORY}:{hashlib.sha256(ref.encode()).hexdigest()[:16]}"


def secret_args(build_args: Sequence[str]) -> list[str]:
    """Names of build arguments that look like they carry a secret."""
    return [a.partition("=")[0] for a in build_args if SECRET_ARG.search(a.partition("=")[0])]


@dataclass
class Restored:
    outcome: str = "miss"  # hit | partial | miss | ignored
    cache_from: tuple[str, ...] = ()  # the loaded images, for `cachefrom`
    bytes: int = 0
    seconds: float = 0.0
    note: str = ""  # why a corrupt entry was ignored


@dataclass
class Saved:
    bytes: int = 0
    seconds: float = 0.0
    images: int = 0
    evicted: list[str] = field(default_factory=list)
    note: str = ""  # why nothing was saved


def choose(entries: Sequence[Entry], refs: Sequence[str]) -> tuple[Entry | None, str]:
    """The entry to restore for this run's images: its own set (hit), else the most recently used one
    that shares an image (partial), else none (miss). `entries` come most recently used first."""
    key = entry_key(refs)
    exact = next((e for e in entries if e.key == key), None)
    if exact is not None:
        return exact, "hit"
    wanted = set(refs)
    shared = next((e for e in entries if wanted & set((e.meta.get("images") or {}).keys())), None)
    return (shared, "partial") if shared is not None else (None, "miss")


def restore(store: Store, client: Any, refs: Sequence[str]) -> Restored:
    """Load the chosen entry's images into the daemon; their names are the `cachefrom` of the builds."""
    t0 = time.monotonic()
    problems: list[str] = []
    with store.locked(exclusive=False):
        entry, outcome = choose(store.entries(SECTION, problems), refs)
        if entry is None:
            note = f"unreadable entries ignored: {', '.join(problems)}" if problems else ""
            return Restored("miss", note=note, seconds=time.monotonic() - t0)
        try:
            store.check(SECTION, entry)
            with open(store.data_path(SECTION, entry), "rb") as data:
                client.api.load_image(data)
        except Exception as e:  # noqa: BLE001 - a broken entry is a miss, never a failed run
            return Restored("ignored", note=f"entry {entry.key} ignored: {_one_line(e)}",
                            seconds=time.monotonic() - t0)
    store.touch(SECTION, entry)
    loaded = tuple(str(tag) for tag in (entry.meta.get("images") or {}).values())
    return Restored(outcome, loaded, entry.size, time.monotonic() - t0)


def save(store: Store, client: Any, built: Sequence[tuple[str, str]],
         log: Callable[[str], None] = lambda _: None) -> Saved:
    """`docker save` the images built ahead ((ref, local tag) pairs) as this set's entry; then evict."""
    t0 = time.monotonic()
    if not built:
        return Saved(note="nothing built ahead to save")
    images = {ref: cache_tag(ref) for ref, _ in built}
    api = client.api
    if unchanged(api, built):
        # Kept as it is: its cache metadata came from the build that made the layers. (Seen here: an
        # entry re-saved from a build that took its layers from the cache sometimes led the next run
        # to run a step again that it had cached.)
        return Saved(note="the images are those restored: the entry is kept", seconds=time.monotonic() - t0)
    for stale in images.values():  # a restored image keeps no name to dangle by once its tag moves
        with contextlib.suppress(Exception):
            api.remove_image(stale, noprune=False)
    for ref, tag in built:
        repository, _, name = images[ref].partition(":")
        api.tag(tag, repository, name)
    try:
        key = entry_key(list(images))
        entry = store.save(SECTION, key, lambda out: _docker_save(api, list(images.values()), out),
                           {"images": images})
        if entry.size > store.max_bytes:  # alone larger than the bound: not kept
            store.remove(SECTION, entry)
            return Saved(note=f"{_mb(entry.size)} is more than cache-size allows; not kept",
                         seconds=time.monotonic() - t0)
        evicted = store.evict((SECTION,), keep=(key,))
    finally:
        for tag in images.values():
            try:
                api.remove_image(tag, noprune=False)
            except Exception as e:  # noqa: BLE001 - a tag left behind is removed by `pyci cleanup`
                log(f"cache: could not remove tag {tag} ({_one_line(e)})")
    return Saved(entry.size, time.monotonic() - t0, len(images), evicted)


def unchanged(api: Any, built: Sequence[tuple[str, str]]) -> bool:
    """Every image built ahead has the layers of the one restored for it (all came from the cache)."""
    try:
        return all(api.inspect_image(tag)["RootFS"]["Layers"] == api.inspect_image(cache_tag(ref))["RootFS"]
                   ["Layers"] for ref, tag in built)
    except Exception:  # noqa: BLE001 - nothing restored for one of them (or gone): save
        return False


def _docker_save(api: Any, names: list[str], out: IO[bytes]) -> None:
    """One tar of several images (`docker save a b`): shared layers are written once."""
    response = api._get(api._url("/images/get"), params={"names": names}, stream=True)
    api._raise_for_status(response)
    try:
        for chunk in response.iter_content(1024 * 1024):
            out.write(chunk)
    finally:
        response.close()


def _mb(size: int) -> str:
    return f"{size / 1024**2:.1f} MB"


def _one_line(e: BaseException) -> str:
    return " ".join((str(e) or type(e).__name__).split())[:200]
