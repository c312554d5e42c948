"""Third-party images through a pull-through mirror whose blobs live in the cache dir.

One registry container per upstream registry the manifests pull from, in proxy mode
(`REGISTRY_PROXY_REMOTEURL`), published on the daemon host's 127.0.0.1 like the local registry. Its
storage is restored from the cache dir into the container before it starts (`put_archive`: the cache
dir is where pyci runs, which may not be the daemon's host, so no bind mount) and saved back after the
run (`get_archive` of the stopped container). The daemon's prefetch pulls `localhost:<port>/<path>`
and tags it with the name the manifests use, then kind loads it into the nodes as before: on a warm
run nothing comes from upstream. The distribution registry answers a tag from its storage when the
upstream does not answer, so a rate-limited or unreachable upstream does not fail a warm run.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from pyci.cache.store import Entry, Store
from pyci.registry.wiring import certs_d_tar

SECTION = "mirror"
PORT = 5000
STORAGE = "/var/lib/registry"
DOCKER_HUB = "docker.io"
# Where a registry host's API is; anything else is https://<host>.
KNOWN = {DOCKER_HUB: "https://registry-1.docker.io"}


def split_ref(ref: str) -> tuple[str, str]:
    """(registry host, repository path with tag) as docker resolves a reference: `nginx:1` is
    (docker.io, library/nginx:1); the first part is a host when it has a dot, a port or is localhost."""
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, ref
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return host, path


def upstream_url(host: str, plain_http: Sequence[str] = ()) -> str:
    return KNOWN.get(host) or f"{'http' if host in plain_http else 'https'}://{host}"


def mirror_key(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:16]


def upstreams(refs: Sequence[str], skip: Sequence[str] = ()) -> list[str]:
    """The registry hosts of third-party images worth a mirror (not localhost: that is ours)."""
    hosts = [split_ref(r)[0] for r in refs if "@" not in r]  # a digest pull is one exact manifest anyway
    return list(dict.fromkeys(h for h in hosts if not h.startswith(("localhost", "127.")) and h not in skip))


@dataclass
class Mirror:
    host: str  # the upstream, as image names spell it
    url: str
    name: str  # the container
    port: int = 0  # published on the daemon host's 127.0.0.1
    restored: int = 0  # bytes of storage restored from the cache dir
    saved: int = 0
    offline: bool = False  # the upstream did not answer: serving the cache dir's copy only


@dataclass
class Mirrors:
    """The run's mirrors; the prefetch thread adds them, cleanup removes them."""

    made: list[Mirror] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def via(self) -> Mapping[str, str]:
        """Upstream host -> `localhost:<port>`, where the daemon pulls its images from."""
        with self.lock:
            return {m.host: f"localhost:{m.port}" for m in self.made if m.port}


def start(client: Any, store: Store, host: str, url: str, name: str, image: str, labels: Mapping[str, str],
          mirrors: Mirrors) -> Mirror:
    """Create the mirror, restore its storage from the cache dir, start it. The registry's proxy mode
    will not start when the upstream does not answer (it asks it at startup and panics): then it serves
    what the cache dir holds, without the proxy (`Mirror.offline`)."""
    mirror = Mirror(host, url, name)
    with mirrors.lock:
        mirrors.made.append(mirror)  # from here on, cleanup removes it
    entry = next((e for e in store.entries(SECTION) if e.key == mirror_key(host)), None)
    try:
        container = _create_started(client, store, entry, mirror, image, labels, proxy=True)
    except _Stopped:
        if entry is None:
            raise RuntimeError(f"the upstream {url} did not answer and the cache has nothing of it") from None
        mirror.offline = True
        container = _create_started(client, store, entry, mirror, image, labels, proxy=False)
    if entry is not None and mirror.restored:
        store.touch(SECTION, entry)
    container.reload()
    bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{PORT}/tcp") or []
    with mirrors.lock:
        mirror.port = int(bound[0]["HostPort"]) if bound else 0
    return mirror


class _Stopped(Exception):
    pass


def _create_started(client: Any, store: Store, entry: Entry | None, mirror: Mirror, image: str,
                    labels: Mapping[str, str], proxy: bool) -> Any:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(mirror.name).remove(force=True, v=True)  # a killed run's, or the proxy's
    environment = {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}
    if proxy:
        environment["REGISTRY_PROXY_REMOTEURL"] = mirror.url
    container = client.containers.create(image, name=mirror.name, labels=dict(labels), detach=True,
                                         ports={f"{PORT}/tcp": ("127.0.0.1", None)}, environment=environment)
    mirror.restored = 0
    if entry is not None:
        try:
            with store.locked(exclusive=False):
                store.check(SECTION, entry, hash_it=False)  # the registry checks each blob's digest
                with open(store.data_path(SECTION, entry), "rb") as data:
                    if container.put_archive("/var/lib", data):
                        mirror.restored = entry.size
        except Exception:  # noqa: BLE001 - a broken entry: the mirror starts empty
            mirror.restored = 0
    container.start()
    _wait_listening(container)
    return container


def _wait_listening(container: Any, timeout: float = 15.0) -> None:
    """Until the registry says it listens (its log: the same wherever pyci runs, unlike its port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"listening on" in container.logs():
            return
        container.reload()
        if container.status not in ("created", "running"):
            raise _Stopped(container.name)
        time.sleep(0.1)
    raise RuntimeError(f"the mirror {container.name} did not listen within {timeout:.0f}s")


def pull_via(api: Any, ref: str, via: Mapping[str, str]) -> bool:
    """Pull `ref` through its mirror and tag it with its own name; False when it has none."""
    host, path = split_ref(ref)
    if host not in via:
        return False
    repository, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
    mirrored = f"{via[host]}/{repository}"
    api.pull(mirrored, tag=tag)
    name, _, own_tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    api.tag(f"{mirrored}:{tag}", name, own_tag)
    with contextlib.suppress(Exception):  # the mirror's name goes; the image stays under its own
        api.remove_image(f"{mirrored}:{tag}", noprune=True)
    return True


def hosts_toml(mirror: Mirror) -> str:
    """containerd's hosts.toml for the upstream: the mirror first (on the cluster's network), the
    upstream itself should the mirror fail."""
    return (f'server = "{mirror.url}"\n\n[host."http://{mirror.name}:{PORT}"]\n'
            '  capabilities = ["pull", "resolve"]\n')


def hosts_toml_tar(mirror: Mirror) -> bytes:
    """A tar that, unpacked at /, holds /etc/containerd/certs.d/<upstream host>/hosts.toml."""
    return certs_d_tar(mirror.host, hosts_toml(mirror))


def wire_nodes(client: Any, mirrors: Mirrors, network: str, nodes: Sequence[str]) -> list[str]:
    """Each mirror on the cluster's network and in every node's containerd; the upstreams wired."""
    from pyci.registry import connect_network

    with mirrors.lock:
        made = [m for m in mirrors.made if m.port]
    for m in made:
        connect_network(client, m.name, network)
        for node in nodes:
            if not client.containers.get(node).put_archive("/", hosts_toml_tar(m)):
                raise RuntimeError(f"could not write the mirror's hosts.toml on node {node}")
    return [m.host for m in made]


def save(client: Any, store: Store, mirror: Mirror) -> int:
    """Stop the mirror and save its storage as its upstream's entry; the bytes saved."""
    container = client.containers.get(mirror.name)
    container.stop(timeout=5)
    stream, _ = container.get_archive(STORAGE)

    def write(out: IO[bytes]) -> None:
        for chunk in stream:
            out.write(chunk)

    entry = store.save(SECTION, mirror_key(mirror.host), write, {"host": mirror.host, "url": mirror.url})
    mirror.saved = entry.size
    return entry.size


def remove_all(client: Any, mirrors: Mirrors, log: Callable[[str], None]) -> None:
    with mirrors.lock:
        made = list(mirrors.made)
    for mirror in made:
        try:
            client.containers.get(mirror.name).remove(force=True, v=True)
        except Exception as e:  # noqa: BLE001 - `pyci cleanup` finds it by its labels
            if "No such container" not in str(e):
                log(f"cache: could not remove mirror {mirror.name} ({' '.join(str(e).split())[:200]})")
