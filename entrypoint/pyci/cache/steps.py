"""A run's cache steps: open the cache dir, restore the layer cache in the build-ahead thread before the
first build (while kind boots), save it after the app ran, and say what happened in the log and the
step summary (a "cache" stage: hit or miss, bytes restored and saved)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyci.cache import layers
from pyci.cache.store import Store, Unusable, open_store
from pyci.results import StageResult

if TYPE_CHECKING:
    from pyci.buildahead import BuildAhead
    from pyci.pipeline import Run


@dataclass
class CacheRun:
    store: Store
    restored: layers.Restored | None = None
    saved: layers.Saved | None = None


def open_cache(root: Path, max_bytes: int, log: Callable[[str], None]) -> Store | None:
    """The store, or None with one line saying why the directory is not used."""
    try:
        return open_store(root, max_bytes)
    except (Unusable, OSError) as e:
        log(f"cache: {root} not used: {e}")
        return None


def attach(state: Run, client: Any, ahead: BuildAhead, stack: contextlib.ExitStack) -> None:
    """With a cache dir, the build-ahead thread restores from it before building (BuildAhead.restore)."""
    s = state.settings
    if s.cache_dir is None or not ahead.waves:
        return
    store = open_cache(s.cache_dir, s.cache_size, state.platform.info)
    if store is None:
        return
    run = CacheRun(store)
    ahead.cache = run
    refs = [t.ref for wave in ahead.waves for t in wave]

    def restore() -> tuple[str, ...]:
        run.restored = layers.restore(store, client, refs)
        state.platform.info(f"cache: {describe_restore(run.restored)}")
        return run.restored.cache_from

    ahead.restore = restore
    # The loaded images' names go with the run (the daemon's build cache keeps their layers).
    stack.callback(lambda: _untag(client, run.restored.cache_from if run.restored else ()))


def save(state: Run, client: Any, ahead: BuildAhead | None) -> None:
    """Save the images built ahead (not those whose build arguments look secret) into the cache dir;
    a "cache" stage with what was restored and saved. Never fails the run."""
    run: CacheRun | None = getattr(ahead, "cache", None)
    if ahead is None or run is None or state.cancel.is_set():
        return
    t0 = time.monotonic()
    targets = {t.ref: t for wave in ahead.waves for t in wave}
    built, kept_out = [], []
    for b in ahead.profile.built:
        if b.error is not None or b.ref not in targets:
            continue
        if layers.secret_args(targets[b.ref].build_args):
            kept_out.append(b.ref)
        else:
            built.append((b.ref, b.tag))
    if kept_out:
        state.platform.info(f"cache: not saved (build arguments that look secret): {', '.join(kept_out)}")
    try:
        run.saved = layers.save(run.store, client, built, log=state.platform.info)
    except Exception as e:  # noqa: BLE001 - the cache is a speed-up, never a failure
        run.saved = layers.Saved(note=f"not saved: {' '.join(str(e).split())[:200]}")
    state.platform.info(f"cache: {describe_save(run.saved)}")
    detail = "; ".join(x for x in (describe_restore(run.restored) if run.restored else "",
                                   describe_save(run.saved)) if x)
    state.stages.append(StageResult("cache", time.monotonic() - t0, detail=detail, started_at=time.time()))


def describe_restore(r: layers.Restored) -> str:
    if r.outcome in ("hit", "partial"):
        what = "hit" if r.outcome == "hit" else "partial hit"
        return f"{what}, restored {_mb(r.bytes)} ({len(r.cache_from)} images) in {r.seconds:.1f}s"
    return f"{r.outcome}, restored 0 bytes" + (f" ({r.note})" if r.note else "")


def describe_save(s: layers.Saved) -> str:
    if s.note:
        return f"saved 0 bytes ({s.note})"
    evicted = f", evicted {len(s.evicted)} older entries" if s.evicted else ""
    return f"saved {_mb(s.bytes)} ({s.images} images) in {s.seconds:.1f}s{evicted}"


def _mb(size: int) -> str:
    return f"{size / 1024**2:.1f} MB"


def _untag(client: Any, tags: tuple[str, ...]) -> None:
    for tag in tags:
        with contextlib.suppress(Exception):
            client.api.remove_image(tag, noprune=False)
