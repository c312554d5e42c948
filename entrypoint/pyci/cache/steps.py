"""A run's cache steps: open the cache dir, restore the layer cache in the build-ahead thread before the
first build (while kind boots), save it after the app ran, and say what happened in the log and the
step summary (a "cache" stage: hit or miss, bytes restored and saved)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyci.cache import layers, mirror
from pyci.cache.store import Store, Unusable, open_store
from pyci.results import StageResult

if TYPE_CHECKING:
    from pyci.buildahead import BuildAhead
    from pyci.pipeline import Run


# TEST/LAB ONLY: upstream registry hosts reached over plain http (the lab's stand-in for Docker Hub).
PLAIN_HTTP_ENV = "PYCI_MIRROR_PLAIN_HTTP"


@dataclass
class CacheRun:
    store: Store
    restored: layers.Restored | None = None
    saved: layers.Saved | None = None
    mirrors: mirror.Mirrors = field(default_factory=mirror.Mirrors)


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
    hosts = mirror.upstreams(ahead.third_party)
    if s.cache_dir is None or not (ahead.waves or hosts):
        return
    store = open_cache(s.cache_dir, s.cache_size, state.platform.info)
    if store is None:
        return
    run = CacheRun(store)
    ahead.cache = run
    if hosts:
        # Only for upstreams of images the daemon lacks (the prefetch knows which).
        ahead.mirrors = lambda missing: _start_mirrors(state, client, store, mirror.upstreams(missing),
                                                       run.mirrors)
        stack.callback(mirror.remove_all, client, run.mirrors, state.platform.info)
    if not ahead.waves:
        return
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
    details = [describe_restore(run.restored)] if run.restored else []
    if ahead.waves:
        try:
            run.saved = layers.save(run.store, client, built, log=state.platform.info)
        except Exception as e:  # noqa: BLE001 - the cache is a speed-up, never a failure
            run.saved = layers.Saved(note=f"not saved: {' '.join(str(e).split())[:200]}")
        state.platform.info(f"cache: {describe_save(run.saved)}")
        details.append(describe_save(run.saved))
    details += _save_mirrors(state, client, run)
    with contextlib.suppress(Exception):
        run.store.evict((layers.SECTION, mirror.SECTION), keep=())
    detail = "; ".join(d for d in details if d)
    state.stages.append(StageResult("cache", time.monotonic() - t0, detail=detail, started_at=time.time()))


def _start_mirrors(state: Run, client: Any, store: Store, hosts: list[str],
                   mirrors: mirror.Mirrors) -> dict[str, str]:
    """One pull-through mirror per upstream, its storage restored; upstream host -> localhost:<port>."""
    from pyci.registry import labels

    s = state.settings
    plain = [h for h in os.environ.get(PLAIN_HTTP_ENV, "").split(",") if h]
    for n, host in enumerate(hosts):
        name = f"{s.cluster_name}-mirror-{n}"
        try:
            made = mirror.start(client, store, host, mirror.upstream_url(host, plain), name, s.registry_image,
                                labels(s), mirrors)
        except Exception as e:  # noqa: BLE001 - without it, that upstream's images come as before
            state.platform.info(f"cache: no mirror for {host} ({' '.join(str(e).split())[:200]})")
            continue
        state.platform.info(f"cache: mirror of {host} at 127.0.0.1:{made.port}, restored {_mb(made.restored)}"
                            + ("" if made.restored else " (miss)")
                            + (" (upstream did not answer: serving the cache only)" if made.offline else ""))
    return dict(mirrors.via())


def _save_mirrors(state: Run, client: Any, run: CacheRun) -> list[str]:
    lines = []
    for made in list(run.mirrors.made):
        if made.offline:  # it served the cache's copy: nothing new to keep
            lines.append(f"mirror of {made.host}: restored {_mb(made.restored)}, kept as it was (upstream "
                         "did not answer)")
            state.platform.info(f"cache: {lines[-1]}")
            continue
        try:
            mirror.save(client, run.store, made)
            line = f"mirror of {made.host}: restored {_mb(made.restored)}, saved {_mb(made.saved)}"
        except Exception as e:  # noqa: BLE001 - the cache is a speed-up, never a failure
            line = f"mirror of {made.host}: not saved ({' '.join(str(e).split())[:200]})"
        state.platform.info(f"cache: {line}")
        lines.append(line)
    return lines


def wire_nodes(state: Run, client: Any, ahead: BuildAhead | None, cluster: Any) -> None:
    """The nodes' containerd pulls the mirrored upstreams through their mirrors (what was not loaded)."""
    run: CacheRun | None = getattr(ahead, "cache", None)
    if run is None or not run.mirrors.made or not cluster.network or not cluster.nodes:
        return
    try:
        hosts = mirror.wire_nodes(client, run.mirrors, cluster.network, cluster.nodes)
        state.platform.info(f"cache: the nodes pull {', '.join(hosts)} through the mirror")
    except Exception as e:  # noqa: BLE001 - the nodes then pull from upstream, as without a cache
        state.platform.info(f"cache: the nodes do not use the mirror ({' '.join(str(e).split())[:200]})")


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
