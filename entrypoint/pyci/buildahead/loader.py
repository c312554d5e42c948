"""Third-party images into the kind nodes: looked up in the daemon (or pulled) alongside the builds, then
`kind load docker-image` as soon as the nodes can take them, while kind still boots; a pod must not
look for them first. A lookup, pull or load that fails is one line: the kubelet pulls for itself."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyci.buildahead.profile import Profile, one_line
from pyci.buildahead.targets import split_tag

KIND_LOAD_TIMEOUT = 600.0


class NodeLoader:
    def __init__(self, client: Any, log: Callable[[str], None], profile: Profile, closed: threading.Event,
                 booted: threading.Event, pull: bool) -> None:
        self.client, self.log, self.profile = client, log, profile
        self.closed, self.booted = closed, booted  # booted: registry and cluster are up
        self.pull = pull  # False: third-party images the daemon lacks are left to the kubelet

    def prefetch(self, refs: Sequence[str],
                 via: Callable[[Sequence[str]], Mapping[str, str]] | None = None) -> None:
        """Third-party images: present, or pulled now (a pull that fails is tilt's and the
        kubelet's business later: one line). `via`: starts pull-through mirrors (pyci.cache) for the
        images the daemon lacks, here, off the builds' path; upstream host -> mirror."""
        import docker.errors

        missing = []
        for ref in refs:
            try:
                self.client.images.get(ref)
                self.profile.third_party_present.append(ref)
            except docker.errors.ImageNotFound:
                missing.append(ref)
            except Exception as e:  # noqa: BLE001
                self.log(f"build ahead: cannot look up {ref}: {one_line(str(e))}")
        if not self.pull:
            for ref in missing:
                self.profile.third_party_missing.append(ref)
                self.log(f"build ahead: {ref} is not in the daemon (build-ahead off: not pulled); "
                         "the nodes pull it themselves")
            return
        mirrors = self._mirrors(via, missing) if missing and not self.closed.is_set() else {}
        for ref in missing:
            if self.closed.is_set():
                return
            try:
                if self._pull_via(ref, mirrors):
                    continue
                repository, tag = split_tag(ref)
                self.client.api.pull(repository, tag=tag)
                self.profile.third_party_present.append(ref)
                self.log(f"build ahead: pulled {ref}")
            except Exception as e:  # noqa: BLE001 - offline, unknown image, no credentials
                self.profile.third_party_missing.append(ref)
                self.log(f"build ahead: {ref} is not in the daemon and could not be pulled "
                         f"({one_line(str(e))})")

    def _mirrors(self, via: Callable[[Sequence[str]], Mapping[str, str]] | None,
                 missing: Sequence[str]) -> Mapping[str, str]:
        try:
            return via(missing) if via is not None else {}
        except Exception as e:  # noqa: BLE001 - without mirrors, images come from upstream as before
            self.log(f"cache: no pull-through mirror ({one_line(str(e))})")
            return {}

    def _pull_via(self, ref: str, mirrors: Mapping[str, str]) -> bool:
        from pyci.cache import mirror

        try:
            if not mirror.pull_via(self.client.api, ref, mirrors):
                return False
        except Exception as e:  # noqa: BLE001 - the mirror failed: upstream as before
            self.log(f"build ahead: {ref} not pulled through the mirror ({one_line(str(e))}); from upstream")
            return False
        self.profile.third_party_present.append(ref)
        self.log(f"build ahead: pulled {ref} through the mirror")
        return True

    def load(self, cluster: str, kind_bin: str, prefetch: threading.Thread | None) -> None:
        """Load what the prefetch found (once it ended) into the cluster's nodes."""
        if prefetch is not None:
            prefetch.join()
        images = list(self.profile.third_party_present)
        if not images or self.closed.is_set():
            return
        t0 = time.monotonic()
        early = self.profile.load_early = self.wait_for_nodes(cluster)
        error = self._kind_load(cluster, kind_bin, images)
        if error and early:  # raced kind's own work on the node: once more, now that it is up
            self.booted.wait(KIND_LOAD_TIMEOUT)
            error = self._kind_load(cluster, kind_bin, images) if not self.closed.is_set() else error
        self.profile.load_error = error
        self.profile.loaded = [] if error else images
        self.profile.load_seconds = time.monotonic() - t0
        if error:
            self.log(f"build ahead: kind load of {', '.join(images)} failed: {error}")
        else:
            when = "during the cluster boot" if early else "after the cluster boot"
            self.log(f"build ahead: loaded {', '.join(images)} into the nodes {when} "
                     f"in {self.profile.load_seconds:.1f}s")

    def wait_for_nodes(self, cluster: str) -> bool:
        """Until every node of the cluster has begun `kubeadm init` or `join` (its certificates exist):
        kind restarts containerd before that (config patches), never after. True when that came
        before the cluster was up, False when the boot ended first."""
        while not self.booted.is_set() and not self.closed.is_set():
            with contextlib.suppress(Exception):  # a node being created or restarted: ask again
                nodes = self.client.containers.list(filters={"label": f"io.x-k8s.kind.cluster={cluster}"})
                if nodes and all(n.status == "running" and n.exec_run(
                        ["test", "-e", "/etc/kubernetes/pki/ca.crt"]).exit_code == 0 for n in nodes):
                    return True
            self.booted.wait(1.0)
        return False

    def _kind_load(self, cluster: str, kind_bin: str, images: Sequence[str]) -> str | None:
        try:
            done = subprocess.run([kind_bin, "load", "docker-image", "--name", cluster, *images],
                                  capture_output=True, text=True, timeout=KIND_LOAD_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return one_line(str(e))
        return one_line(done.stderr or done.stdout) if done.returncode != 0 else None
