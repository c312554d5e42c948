"""A run's build-ahead steps: start the builds and pulls while kind boots, push them into the
registry as soon as it is on kind's network, wait for them before tilt ci, and read tilt's cache hits."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyci.results import Cancelled, StageResult

if TYPE_CHECKING:
    from pyci.buildahead import BuildAhead
    from pyci.pipeline import Run


def registry(state: Run, client: Any, where: Any, stack: contextlib.ExitStack, ahead: BuildAhead | None,
              kind_network: str) -> Any:
    """The registry; with images to build ahead, also on kind's network as soon as kind makes it (its
    port is final then), and the builds pushed into it while kind boots."""
    from pyci import registry

    info = registry.provision(state.settings, client, where, stack, cancel=state.cancel)
    if ahead is not None and ahead.waves and info.mode == "local" and kind_network:
        info = registry.join_network_when_made(client, info, kind_network, state.cancel)
        if info.host:
            ahead.push_to(info.host)
    return info


def build_ahead(state: Run, client: Any, stack: contextlib.ExitStack) -> BuildAhead | None:
    """Start building the preflight's image targets (and prefetching third-party images) while kind
    boots; None when there is no boot to overlap or nothing was read ahead (tilt ci builds as today).

    `build-ahead: false` stops the builds and the pulls, not the loading of third-party images the
    daemon already has: a node that cannot pull them (offline, private) needs them loaded either way."""
    from pyci import buildahead

    s = state.settings
    if s.cluster != "kind":
        return None
    planned = buildahead.plan(state.evaluation)
    if planned is None:
        if s.build_ahead:
            state.platform.info("build ahead: the Tiltfile was not read ahead; tilt ci builds as usual")
        return None
    found, skipped, third_party = planned
    if not s.build_ahead:
        found, skipped = [], []
    if not found and not third_party:
        return None
    ahead = buildahead.BuildAhead(client, found, s.run_id, state.platform.info, third_party, skipped,
                                  pull=s.build_ahead)
    stack.callback(ahead.close)  # should the next stage not start; closing twice is harmless
    if s.build_ahead:
        from pyci.cache import steps as cache_steps

        cache_steps.attach(state, client, ahead, stack)  # restores in the build thread, before building
    ahead.start()
    if third_party:  # into the nodes as soon as they can take them, while kind still boots
        ahead.load_into_kind(s.cluster_name)
    if s.build_ahead:
        state.platform.info(f"build ahead: {len(found)} images (tags {ahead.repository}:*), "
                            f"{len(third_party)} third-party images, while the cluster boots "
                            f"(up to {ahead.workers} builds at once)")
    else:
        state.platform.info(f"build ahead: off; {len(third_party)} third-party images loaded into the "
                            "nodes if the daemon has them (no pulls)")
    return ahead


def await_ahead(state: Run, ahead: BuildAhead | None) -> None:
    """tilt ci starts when the builds ahead ended (it would only run the same builds again) and the
    third-party images are in the nodes (a pod must not look for them first)."""
    if ahead is None:
        return
    t0 = time.monotonic()
    ahead.wait(state.settings.timeout, state.cancel)
    ahead.wait_pushed(state.settings.timeout, state.cancel)
    ahead.wait_loaded(state.settings.timeout, state.cancel)
    ahead.profile.waited = time.monotonic() - t0
    if state.cancel.is_set():
        raise Cancelled("cancelled")
    state.stages.append(StageResult("build ahead", ahead.profile.waited, detail=ahead.profile.describe(),
                                    started_at=time.time() - ahead.profile.waited))
    state.platform.info(f"build ahead: {ahead.profile.describe()}")


def note_cache_hits(state: Run, ahead: BuildAhead | None, tilt_log: Path) -> None:
    """What tilt's own builds found cached: the proof build-ahead paid, in the profile."""
    from pyci import buildahead

    stage = next((st for st in state.stages if st.name == "build ahead"), None)
    if ahead is None or stage is None:
        return
    with contextlib.suppress(OSError):
        ahead.profile.hits = buildahead.cache_hits(tilt_log.read_text(encoding="utf-8", errors="replace"))
    stage.detail = ahead.profile.describe()
    if ahead.profile.hits is not None:
        state.platform.info(f"build ahead: tilt found {ahead.profile.hits.cached} of "
                            f"{ahead.profile.hits.steps} build steps cached")


def save_cache(state: Run, client: Any, ahead: BuildAhead | None) -> None:
    """With a cache dir: what was built ahead, saved for the next run's builds (pyci.cache)."""
    if ahead is not None and ahead.cache is not None:
        from pyci.cache import steps as cache_steps

        cache_steps.save(state, client, ahead)


def wire_mirrors(state: Run, client: Any, ahead: BuildAhead | None, cluster: Any) -> None:
    """With a cache dir and third-party images: the nodes' containerd uses the pull-through mirrors."""
    if ahead is not None and ahead.cache is not None and state.settings.cluster == "kind":
        from pyci.cache import steps as cache_steps

        cache_steps.wire_nodes(state, client, ahead, cluster)
