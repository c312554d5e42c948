"""The builds: each target's filtered context as a tar, through the Engine API's BuildKit (`POST /build`
with version=2), wave after wave, the targets of a wave side by side (at most `workers` at once).

A build that fails is one line and an error in the profile: tilt ci builds it again and reports it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyci.buildahead.context import ContextFilter, write_context
from pyci.buildahead.profile import Built, Profile, one_line
from pyci.buildahead.targets import Target
from pyci.settings import LABEL_MANAGED, LABEL_RUN

AHEAD_REPOSITORY = "pyci-ahead"  # throwaway tags: pyci-ahead/<run id>:<n>-<name>, removed at cleanup
BUILD_TIMEOUT = 1800.0  # seconds a single build may stream before the read gives up


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


def build_params(target: Target, tag: str, dockerfile: str, run_id: str,
                 cache_from: Sequence[str] = (), inline_cache: bool = False) -> dict[str, str]:
    """The query of one `POST /build`: BuildKit (version 2), tilt's args, target and options; with a
    cache dir, the cache's images to start from and the inline cache metadata the next run starts from
    (a build argument no Dockerfile declares is in no step's cache key: tilt's builds still hit)."""
    args = build_args(target.build_args)
    if inline_cache:
        args["BUILDKIT_INLINE_CACHE"] = "1"
    params = {
        "t": tag,
        "version": "2",
        "dockerfile": dockerfile,
        "buildargs": json.dumps(args),
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
    if cache_from:
        params["cachefrom"] = json.dumps(list(cache_from))
    return params


def throwaway_tag(run_id: str, index: int, ref: str) -> str:
    safe = re.sub(r"[^a-z0-9_.-]+", "-", ref.lower().rsplit("/", 1)[-1].split(":", 1)[0]).strip(".-")
    return f"{AHEAD_REPOSITORY}/{run_id}:{index}-{safe or 'image'}"[:200]


def stream_error(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """The build's error, if any, from the JSON stream (moby.buildkit.trace progress is skipped)."""
    for message in messages:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            return str(detail.get("message") or message.get("error"))
    return None


class Builder:
    """Runs the waves; each build that ends well goes on `done` (for the pusher), then None at the end."""

    def __init__(self, api: Any, run_id: str, log: Callable[[str], None], profile: Profile,
                 closed: threading.Event, workers: int, done: queue.SimpleQueue[Built | None]) -> None:
        self.api, self.run_id, self.log, self.profile = api, run_id, log, profile
        self.closed, self.workers, self.done = closed, workers, done
        self._responses: list[Any] = []  # the builds' streams, for cancel()
        self.cache_from: tuple[str, ...] = ()  # images restored from the cache dir (pyci.cache)
        self.inline_cache = False  # a cache dir is set: the images carry their cache keys for the next run
        self._lock = threading.Lock()

    def run(self, waves: Sequence[Sequence[Target]]) -> None:
        tags: dict[str, str] = {}
        index = 0
        for wave in waves:
            slots = threading.Semaphore(self.workers)
            threads = []
            for target in wave:
                if self.closed.is_set():
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
        self.done.put(None)

    def cancel(self) -> None:
        """Stop reading the builds still streaming: the daemon cancels them."""
        with self._lock:
            for response in self._responses:
                with contextlib.suppress(Exception):  # closed already, or the daemon went away
                    response.close()

    def _bounded(self, slots: threading.Semaphore, target: Target, built: Built,
                 deps: Mapping[str, str]) -> None:
        with slots:
            built.started = time.monotonic()
            try:
                self._build(target, built, deps)
            except Exception as e:  # noqa: BLE001 - a build ahead never fails the run
                built.error = one_line(str(e) or type(e).__name__)
            built.ended = time.monotonic()
            built.seconds = built.ended - built.started
            if built.error:
                self.log(f"build ahead: {target.ref} not built ahead ({built.error}); tilt ci builds it")
            else:
                self.log(f"build ahead: {target.ref} built in {built.seconds:.1f}s")
                self.done.put(built)

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
            params = build_params(target, built.tag, name, self.run_id, self.cache_from, self.inline_cache)
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
