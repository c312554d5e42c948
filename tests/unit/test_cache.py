"""pyci.cache without a daemon: the directory (marker, atomic entries, lock, LRU), the choice of entry,
what stays out (secret-looking build arguments), the /build query with a cache dir, and the log lines."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pyci import buildahead
from pyci.buildahead import Built, Target
from pyci.cache import Entry, Unusable, cache_tag, choose, entry_key, layers, open_store, secret_args, steps
from pyci.cache.store import MARKER


def write(data: bytes):
    return lambda out: out.write(data)


# --- the directory ---
def test_an_empty_or_missing_directory_becomes_a_cache_with_its_marker(tmp_path: Path) -> None:
    store = open_store(tmp_path / "new" / "cache", 1024**3)
    assert json.loads((store.root / MARKER).read_text()) == {"format": "pyci-cache", "version": 1}
    assert open_store(tmp_path / "new" / "cache", 1024**3).entries("layers") == []


def test_a_foreign_directory_is_not_used_and_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(Unusable, match="not a pyci cache"):
        open_store(tmp_path, 1024**3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("marker", ["{not json", '{"format": "pyci-cache", "version": 99}'])
def test_a_corrupt_or_other_version_marker_is_not_used(tmp_path: Path, marker: str) -> None:
    (tmp_path / MARKER).write_text(marker)
    with pytest.raises(Unusable):
        open_store(tmp_path, 1024**3)


def test_open_cache_says_why_in_one_line_and_gives_none(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    lines: list[str] = []
    assert steps.open_cache(tmp_path, 1024**3, lines.append) is None
    assert len(lines) == 1 and lines[0].startswith(f"cache: {tmp_path} not used: ") and "\n" not in lines[0]


def test_a_saved_entry_is_read_back_whole(tmp_path: Path) -> None:
    store = open_store(tmp_path, 1024**3)
    entry = store.save("layers", "k1", write(b"x" * 1000), {"images": {"api": "t"}})
    [found] = store.entries("layers")
    assert found == entry and found.size == 1000 and found.meta == {"images": {"api": "t"}}
    store.check("layers", found)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_save_cut_off_leaves_no_entry_and_the_old_one_stays(tmp_path: Path) -> None:
    store = open_store(tmp_path, 1024**3)
    store.save("layers", "k1", write(b"old"), {})

    def dies(out: Any) -> None:
        out.write(b"half")
        raise KeyboardInterrupt  # the process is stopped in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        store.save("layers", "k1", dies, {})
    [entry] = store.entries("layers")
    assert store.data_path("layers", entry).read_bytes() == b"old"
    assert not any(b"half" in p.read_bytes() for p in (tmp_path / "layers").iterdir())


def test_a_truncated_or_altered_entry_fails_its_check(tmp_path: Path) -> None:
    store = open_store(tmp_path, 1024**3)
    entry = store.save("layers", "k1", write(b"abcdef"), {})
    path = store.data_path("layers", entry)
    path.write_bytes(b"abc")
    with pytest.raises(ValueError, match="bytes, not 6"):
        store.check("layers", entry)
    path.write_bytes(b"abcdeX")
    with pytest.raises(ValueError, match="sha256"):
        store.check("layers", entry)


def test_an_unreadable_entry_is_skipped_and_named(tmp_path: Path) -> None:
    store = open_store(tmp_path, 1024**3)
    store.save("layers", "good", write(b"1"), {})
    (tmp_path / "layers" / "bad.json").write_text("{")
    (tmp_path / "layers" / "escape.json").write_text(json.dumps(
        {"key": "e", "data": "../../etc/passwd", "size": 1, "sha256": "", "used": 0}))
    problems: list[str] = []
    assert [e.key for e in store.entries("layers", problems)] == ["good"]
    assert problems == ["layers/bad.json (JSONDecodeError)", "layers/escape.json (ValueError)"]


def test_least_recently_used_entries_are_evicted_to_fit(tmp_path: Path) -> None:
    store = open_store(tmp_path, 2500)
    for key in ("a", "b", "c"):
        store.save("layers", key, write(b"x" * 1000), {})
        time.sleep(0.01)
    store.touch("layers", store.entries("layers")[-1])  # "a" used last
    assert store.evict(("layers",), keep=("c",)) == ["b"]
    assert sorted(e.key for e in store.entries("layers")) == ["a", "c"]
    assert sorted(p.name for p in (tmp_path / "layers").iterdir() if p.suffix == ".tar") == sorted(
        e.data for e in store.entries("layers"))


def _hold_lock(root: str, held: Any, release: Any) -> None:
    store = open_store(Path(root), 1024**3)
    with store.locked(exclusive=True):
        held.set()
        release.wait(10)


def test_a_run_waits_for_another_runs_lock_and_gives_up_with_a_reason(tmp_path: Path) -> None:
    open_store(tmp_path, 1024**3)
    held, release = multiprocessing.Event(), multiprocessing.Event()
    other = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), held, release))
    other.start()
    try:
        assert held.wait(10)
        store = open_store(tmp_path, 1024**3)
        with pytest.raises(Unusable, match="held its lock"), store.locked(exclusive=False, wait=0.3):
            pass
        threading.Timer(0.3, release.set).start()
        with store.locked(exclusive=False, wait=10):
            pass  # once the other run is done, this one goes on
    finally:
        release.set()
        other.join(10)


# --- which entry, what stays out ---
def entry(key: str, images: dict[str, str], used: float) -> Entry:
    return Entry(key, f"{key}.tar", 1, "", used, {"images": images})


def test_the_own_set_is_a_hit_a_shared_image_a_partial_hit_else_a_miss() -> None:
    own = entry(entry_key(["api", "web"]), {"api": "x", "web": "y"}, 1.0)
    other = entry("o", {"web": "y", "worker": "z"}, 2.0)
    assert choose([other, own], ["web", "api"]) == (own, "hit")
    assert choose([other], ["web", "api"]) == (other, "partial")
    assert choose([other], ["db"]) == (None, "miss")


def test_cache_tags_are_stable_per_image_and_look_like_pyci_ahead_tags() -> None:
    assert cache_tag("api") == cache_tag("api") != cache_tag("web")
    assert cache_tag("api").startswith("pyci-ahead/cache:")  # `pyci cleanup` removes leftovers


def test_build_arguments_that_look_secret_are_found() -> None:
    assert secret_args(["NPM_TOKEN=abc", "VERSION=1", "db_password", "GITHUB_AUTH=x", "MODE=dev"]) == [
        "NPM_TOKEN", "db_password", "GITHUB_AUTH"]


def test_with_a_cache_the_build_starts_from_its_images_and_writes_inline_cache() -> None:
    target = Target("api", "/ctx", "FROM x\n", build_args=("A=1",))
    plain = buildahead.build_params(target, "t", "Dockerfile", "r")
    assert "cachefrom" not in plain and json.loads(plain["buildargs"]) == {"A": "1"}
    cached = buildahead.build_params(target, "t", "Dockerfile", "r", ("pyci-ahead/cache:1",), True)
    assert json.loads(cached["cachefrom"]) == ["pyci-ahead/cache:1"]
    assert json.loads(cached["buildargs"]) == {"A": "1", "BUILDKIT_INLINE_CACHE": "1"}


# --- restore and save through a fake daemon ---
class FakeResponse:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_content(self, size: int):
        yield from (self.data[i:i + size] for i in range(0, len(self.data), size))

    def close(self) -> None:
        pass


class FakeAPI:
    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        self.loaded: list[bytes] = []
        self.removed: list[str] = []
        self.fail_load = False
        self.layers: dict[str, list[str]] = {}

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.tags[f"{repository}:{tag}"] = image

    def _url(self, path: str) -> str:
        return path

    def _get(self, url: str, params: dict[str, Any], stream: bool) -> FakeResponse:
        return FakeResponse(json.dumps({"saved": params["names"]}).encode())

    def _raise_for_status(self, response: Any) -> None:
        pass

    def load_image(self, data: io.BufferedReader) -> None:
        if self.fail_load:
            raise RuntimeError("unexpected EOF\nin tar")
        self.loaded.append(data.read())

    def remove_image(self, tag: str, noprune: bool) -> None:
        self.removed.append(tag)

    def inspect_image(self, tag: str) -> dict[str, Any]:
        if tag not in self.layers:
            raise RuntimeError(f"No such image: {tag}")
        return {"RootFS": {"Layers": self.layers[tag]}}


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeAPI()


def test_a_save_then_a_restore_loads_the_images_and_gives_them_as_cachefrom(tmp_path: Path) -> None:
    client = FakeClient()
    store = open_store(tmp_path, 1024**3)
    saved = layers.save(store, client, [("api", "pyci-ahead/r1:1-api"), ("web", "pyci-ahead/r1:2-web")])
    assert saved.images == 2 and saved.bytes > 0 and saved.note == ""
    assert sorted(set(client.api.removed)) == sorted([cache_tag("api"), cache_tag("web")])  # tags go after
    restored = layers.restore(store, FakeClient(), ["web", "api"])
    assert restored.outcome == "hit" and sorted(restored.cache_from) == sorted(set(client.api.removed))
    assert restored.bytes == saved.bytes
    assert layers.restore(store, FakeClient(), ["db"]).outcome == "miss"


def test_an_entry_the_daemon_cannot_load_is_ignored_with_one_line(tmp_path: Path) -> None:
    store = open_store(tmp_path, 1024**3)
    layers.save(store, FakeClient(), [("api", "t")])
    client = FakeClient()
    client.api.fail_load = True
    restored = layers.restore(store, client, ["api"])
    assert restored.outcome == "ignored" and restored.cache_from == ()
    assert "unexpected EOF in tar" in restored.note and "\n" not in restored.note


def test_an_entry_larger_than_cache_size_is_not_kept(tmp_path: Path) -> None:
    store = open_store(tmp_path, 10)
    saved = layers.save(store, FakeClient(), [("api", "t")])
    assert "more than cache-size" in saved.note and store.entries("layers") == []


class FakePlatform:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.info = self.lines.append


def test_secrets_stay_out_of_the_cache_dir(tmp_path: Path) -> None:
    """Images built with secret-looking build arguments are not saved; a build secret is never built
    ahead (it needs a session); the registry password is nowhere in the directory."""
    from pyci.settings import Settings

    password = "s3cr3t-registry-password"
    settings = Settings(cache_dir=tmp_path / "cache", registry_password=password)
    secret = Target("npm", "/ctx", "FROM x\n", build_args=(f"NPM_TOKEN={password}",))
    plain = Target("api", "/ctx", "FROM x\n")
    ahead = buildahead.BuildAhead(FakeClient(), [secret, plain], "r1", lambda _: None)
    ahead.profile.built += [Built("npm", "pyci-ahead/r1:1-npm"), Built("api", "pyci-ahead/r1:2-api")]
    state = type("State", (), {"settings": settings, "platform": FakePlatform(), "stages": [],
                               "cancel": threading.Event()})()
    client = FakeClient()
    steps.attach(state, client, ahead, __import__("contextlib").ExitStack())
    steps.save(state, client, ahead)
    assert "cache: not saved (build arguments that look secret): npm" in state.platform.lines
    [saved] = [e for e in open_store(tmp_path / "cache", 1024**3).entries("layers")]
    assert list(saved.meta["images"]) == ["api"]
    for path in (tmp_path / "cache").rglob("*"):
        assert not path.is_file() or password.encode() not in path.read_bytes(), path
    [stage] = state.stages
    assert stage.name == "cache" and stage.detail.startswith("saved ") and "(1 images)" in stage.detail
    assert buildahead.targets({"Manifests": [{"ImageTargets": [{"selector": "s", "BuildDetails": {
        "context": "/c", "dockerfileContents": "FROM x", "secrets": ["id=npm"]}}]}]})[0][0].needs_session


def test_the_log_says_hit_or_miss_and_the_bytes() -> None:
    hit = layers.Restored("hit", ("a", "b"), 3 * 1024**2, 1.25)
    assert steps.describe_restore(hit) == "hit, restored 3.0 MB (2 images) in 1.2s"
    assert steps.describe_restore(layers.Restored("miss")) == "miss, restored 0 bytes"
    assert steps.describe_save(layers.Saved(1024**2, 2.0, 1, ["old"])) == (
        "saved 1.0 MB (1 images) in 2.0s, evicted 1 older entries")


def test_no_cache_dir_changes_nothing(tmp_path: Path) -> None:
    from pyci.settings import Settings

    ahead = buildahead.BuildAhead(FakeClient(), [Target("api", "/ctx", "FROM x\n")], "r1", lambda _: None)
    state = type("State", (), {"settings": Settings(), "platform": FakePlatform(), "stages": []})()
    steps.attach(state, FakeClient(), ahead, __import__("contextlib").ExitStack())
    assert ahead.restore is None and ahead.cache is None and os.listdir(tmp_path) == []


# --- the pull-through mirror, without a daemon ---
def test_the_nodes_hosts_toml_puts_the_mirror_first_and_keeps_the_upstream_as_the_server() -> None:
    import tarfile

    from pyci.cache import mirror

    made = mirror.Mirror("docker.io", "https://registry-1.docker.io", "pyci-x-mirror-0", port=32000)
    assert mirror.hosts_toml(made) == ('server = "https://registry-1.docker.io"\n\n'
                                       '[host."http://pyci-x-mirror-0:5000"]\n'
                                       '  capabilities = ["pull", "resolve"]\n')
    with tarfile.open(fileobj=io.BytesIO(mirror.hosts_toml_tar(made))) as tar:
        assert tar.getnames()[-1] == "etc/containerd/certs.d/docker.io/hosts.toml"


def test_third_party_images_get_a_mirror_per_upstream_only_with_a_cache_dir(tmp_path: Path) -> None:
    from pyci.settings import Settings

    for cache_dir, expected in ((None, False), (tmp_path / "cache", True)):
        ahead = buildahead.BuildAhead(FakeClient(), [], "r1", lambda _: None,
                                      third_party=["nginx:1.27", "localhost:5000/own:1"])
        state = type("State", (), {"settings": Settings(cache_dir=cache_dir), "platform": FakePlatform(),
                                   "stages": []})()
        steps.attach(state, FakeClient(), ahead, __import__("contextlib").ExitStack())
        assert (ahead.mirrors is not None) is expected and ahead.restore is None


def test_the_mirror_pull_uses_the_mirror_then_the_images_own_name() -> None:
    from pyci.cache import mirror

    calls: list[tuple[str, ...]] = []
    api = type("API", (), {"pull": lambda self, r, tag: calls.append(("pull", r, tag)),
                           "tag": lambda self, src, r, t: calls.append(("tag", src, r, t)),
                           "remove_image": lambda self, r, noprune: calls.append(("rm", r))})()
    assert not mirror.pull_via(api, "ghcr.io/a/b:1", {"docker.io": "localhost:32000"})
    assert mirror.pull_via(api, "nginx:1.27", {"docker.io": "localhost:32000"})
    assert calls == [("pull", "localhost:32000/library/nginx", "1.27"),
                     ("tag", "localhost:32000/library/nginx:1.27", "nginx", "1.27"),
                     ("rm", "localhost:32000/library/nginx:1.27")]


def test_images_that_are_all_the_restored_ones_keep_the_entry_as_it_is(tmp_path: Path) -> None:
    store = open_store(tmp_path, 1024**3)
    layers.save(store, FakeClient(), [("api", "t1")])
    [before] = store.entries("layers")
    client = FakeClient()
    client.api.layers = {"t2": ["sha256:a", "sha256:b"], cache_tag("api"): ["sha256:a", "sha256:b"]}
    saved = layers.save(store, client, [("api", "t2")])
    assert saved.note == "the images are those restored: the entry is kept" and saved.bytes == 0
    assert store.entries("layers") == [before] and client.api.removed == []
    client.api.layers["t2"] = ["sha256:a", "sha256:c"]  # a step ran again: a new entry
    assert layers.save(store, client, [("api", "t2")]).note == ""
    assert store.entries("layers")[0].data != before.data


def test_mirrors_start_only_for_images_the_daemon_lacks_and_the_pull_goes_through_them() -> None:
    import docker.errors

    from pyci.buildahead.loader import NodeLoader
    from pyci.buildahead.profile import Profile

    pulled: list[str] = []

    class Images:
        def get(self, ref: str) -> None:
            if ref != "have:1":
                raise docker.errors.ImageNotFound(ref)

    api = type("API", (), {"pull": lambda self, r, tag: pulled.append(f"{r}:{tag}"),
                           "tag": lambda self, *a: None, "remove_image": lambda self, *a, **k: None})()
    client = type("Client", (), {"images": Images(), "api": api})()
    asked: list[list[str]] = []

    def via(missing: Sequence[str]) -> Mapping[str, str]:
        asked.append(list(missing))
        return {"docker.io": "localhost:32000"}

    profile = Profile()
    loader = NodeLoader(client, lambda _: None, profile, threading.Event(), threading.Event(), pull=True)
    loader.prefetch(["have:1", "nginx:1.27", "ghcr.io/a/b:2"], via)
    assert asked == [["nginx:1.27", "ghcr.io/a/b:2"]]
    assert pulled == ["localhost:32000/library/nginx:1.27", "ghcr.io/a/b:2"]  # no mirror for ghcr.io here
    assert profile.third_party_present == ["have:1", "nginx:1.27", "ghcr.io/a/b:2"]
    asked.clear()
    loader.prefetch(["have:1"], via)
    assert asked == []  # nothing missing: no mirror started
