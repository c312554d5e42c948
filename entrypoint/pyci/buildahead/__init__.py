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

The package, along its seams: targets (what to build, from the preflight), context (tilt's filter
and the tar), builder, pusher, loader (third-party images into the nodes), profile (what it did), and
background (BuildAhead: the three in threads, the pipeline's one handle on them).
"""

from pyci.buildahead.background import BuildAhead
from pyci.buildahead.builder import (
    AHEAD_REPOSITORY,
    build_args,
    build_params,
    rewrite_deps,
    stream_error,
    throwaway_tag,
)
from pyci.buildahead.context import (
    SIDE_DOCKERFILE,
    ContextFilter,
    DirectoryMatcher,
    PatternMatcher,
    context_entries,
    pattern_regex,
    write_context,
)
from pyci.buildahead.profile import TILT_STEP, Built, CacheHits, Profile, cache_hits
from pyci.buildahead.pusher import PUSH_TAG, registry_repository
from pyci.buildahead.targets import IgnoreDef, Target, plan, targets, waves

__all__ = [
    "AHEAD_REPOSITORY", "PUSH_TAG", "SIDE_DOCKERFILE", "TILT_STEP",
    "BuildAhead", "Built", "CacheHits", "ContextFilter", "DirectoryMatcher", "IgnoreDef", "PatternMatcher",
    "Profile", "Target",
    "build_args", "build_params", "cache_hits", "context_entries", "pattern_regex", "plan",
    "registry_repository", "rewrite_deps", "stream_error", "targets", "throwaway_tag", "waves",
    "write_context",
]
