"""BuildAhead: one run's builder, pusher and node loader in background threads (daemon threads: a
cancelled run does not wait for them), with the calls the pipeline makes: start, note the boot, push,
load, wait for each, close."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyci import images
from pyci.buildahead.builder import AHEAD_REPOSITORY, Builder
from pyci.buildahead.loader import NodeLoader
from pyci.buildahead.profile import Built, Profile
from pyci.buildahead.pusher import Pusher
from pyci.buildahead.targets import Target, waves

Log = Callable[[str], None]


class BuildAhead:
    def __init__(self, client: Any, found: Sequence[Target], run_id: str, log: Log,
                 third_party: Sequence[str] = (), skipped: Sequence[str] = (),
                 workers: int | None = None, pull: bool = True) -> None:
        self.client, self.run_id, self.log = client, run_id, log
        self.pull = pull  # False: third-party images the daemon lacks are left to the kubelet
        self.waves = waves(found)
        self.third_party = list(third_party)
        self.profile = Profile(skipped=list(skipped))
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.repository = f"{AHEAD_REPOSITORY}/{run_id}"
        self._closed = threading.Event()
        self._booted = threading.Event()
        built: queue.SimpleQueue[Built | None] = queue.SimpleQueue()  # each build as it ends, to push
        self.builder = Builder(client.api, run_id, log, self.profile, self._closed, self.workers, built)
        self.pusher = Pusher(client.api, log, self.profile, self._closed, built)
        self.loader = NodeLoader(client, log, self.profile, self._closed, self._booted, pull)
        self._thread: threading.Thread | None = None
        self._prefetcher: threading.Thread | None = None
        self._loader: threading.Thread | None = None
        self._pusher: threading.Thread | None = None
        # Set by the pipeline with a cache dir: run in the build thread before the first build (the
        # cache's images load while kind boots), returns the images to build from.
        self.restore: Callable[[], Sequence[str]] | None = None
        self.cache: Any = None  # pyci.cache.steps.CacheRun: what was restored, for the save
        # With a cache dir: starts the pull-through mirrors in the prefetch thread; upstream -> mirror.
        self.mirrors: Callable[[Sequence[str]], Mapping[str, str]] | None = None

    def start(self) -> None:
        self.profile.started = time.monotonic()
        self._thread = _start(self._build, name="build-ahead")
        # Pulls apart from the builds: tilt waits for the builds, only the node needs the pulls.
        self._prefetcher = _start(self.loader.prefetch, self.third_party, self.mirrors, name="prefetch")

    def _build(self) -> None:
        if self.restore is not None:
            self.builder.inline_cache = True
            try:
                self.builder.cache_from = tuple(self.restore())
            except Exception as e:  # noqa: BLE001 - the cache is a speed-up, never a failure
                self.log(f"cache: not restored ({' '.join(str(e).split())[:200]})")
        self.builder.run(self.waves)

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
        self._loader = _start(self.loader.load, cluster, kind_bin, self._prefetcher, name="kind-load")

    def wait_loaded(self, timeout: float, cancel: threading.Event) -> None:
        _join(self._loader, timeout, cancel)

    def push_to(self, host: str) -> None:
        """Push each image as its build ends into the run's own registry, once its host port is final
        (kind still booting): tilt then pushes only what it changed, where compressing the base
        layers again for every image cost most of its push time."""
        self._pusher = _start(self.pusher.run, host, name="push-ahead")

    def wait_pushed(self, timeout: float, cancel: threading.Event) -> None:
        _join(self._pusher, timeout, cancel)

    def close(self) -> None:
        """Stop reading builds still streaming (the daemon cancels them) and remove the tags; once."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._booted.set()  # a loader waiting for the boot (which may never come) stops waiting
        self.builder.cancel()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._pusher is not None:
            self.pusher.stop()
            self._pusher.join(5.0)
        tags = {b.tag for b in self.profile.built} | self.pusher.tags()
        # Also what the daemon tagged after we stopped reading (a build cancelled late still ends):
        with contextlib.suppress(Exception):
            tags |= {t for t in images.tags(self.client, name=self.repository)
                     if t.startswith(self.repository + ":")}
        for tag in sorted(tags):
            with contextlib.suppress(Exception):
                self.client.images.remove(tag, noprune=False)


def _start(target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def _join(thread: threading.Thread | None, timeout: float, cancel: threading.Event) -> None:
    t0 = time.monotonic()
    while thread is not None and thread.is_alive() and not cancel.is_set():
        if time.monotonic() - t0 > timeout:
            break
        thread.join(0.1)
