"""The pushes: each image built ahead, as its build ends, into the run's own registry under the repository
tilt will push it to, so that tilt's push finds every layer there and sends only what it changed."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from pyci.buildahead.builder import stream_error
from pyci.buildahead.profile import Built, Profile, one_line
from pyci.buildahead.targets import split_tag

PUSH_TAG = "pyci-ahead"  # <registry>/<tilt's repository>:pyci-ahead: the layers tilt's push then finds


def registry_repository(host: str, ref: str) -> str:
    """The repository tilt pushes `ref` to in a local registry at `host` (tilt's replaceRegistry:
    the familiar name, with / : @ escaped as _), so that its push finds every layer already there."""
    name, _ = split_tag(ref.split("@", 1)[0])
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith(host + "/"):
        return name
    return f"{host}/{re.sub(r'[/:@]', '_', name)}"


class Pusher:
    """Pushes what the builder puts on `built` until it puts None (or stop() does)."""

    def __init__(self, api: Any, log: Callable[[str], None], profile: Profile, closed: threading.Event,
                 built: queue.SimpleQueue[Built | None]) -> None:
        self.api, self.log, self.profile, self.closed, self.built = api, log, profile, closed, built
        self._tagged: set[str] = set()  # <registry>/<repository>:pyci-ahead tags made for the pushes
        self._lock = threading.Lock()

    def tags(self) -> set[str]:
        """The tags made for pushing, to remove with the throwaway ones."""
        with self._lock:
            return set(self._tagged)

    def stop(self) -> None:
        self.built.put(None)  # a pusher waiting for the next build stops waiting

    def run(self, host: str) -> None:
        """One push at a time: the first compresses the shared base layers, the next ones find them."""
        t0 = time.monotonic()
        while not self.closed.is_set():
            built = self.built.get()
            if built is None or self.closed.is_set():
                break
            repository = registry_repository(host, built.ref)
            try:
                self.api.tag(built.tag, repository, PUSH_TAG)
                with self._lock:
                    self._tagged.add(f"{repository}:{PUSH_TAG}")
                error = None
                for message in self.api.push(repository, tag=PUSH_TAG, stream=True, decode=True):
                    if self.closed.is_set():
                        break
                    error = error or stream_error([message])
            except Exception as e:  # noqa: BLE001 - tilt pushes for itself either way
                error = one_line(str(e) or type(e).__name__)
            if error:
                self.profile.push_errors.append(built.ref)
                self.log(f"build ahead: push of {built.ref} to {repository} failed ({one_line(error)}); "
                         "tilt pushes it")
            elif not self.closed.is_set():
                self.profile.pushed.append(f"{repository}:{PUSH_TAG}")
        self.profile.push_seconds = time.monotonic() - t0
        if self.profile.pushed:
            self.log(f"build ahead: pushed {len(self.profile.pushed)} images to {host} "
                     f"in {self.profile.push_seconds:.1f}s")
