"""What a test run leaves behind on this machine: a snapshot before, a snapshot after, the difference.

Counted: containers, networks, volumes, the image tags tests make (`localhost:<port>/…` pushed by tilt,
`pyci-ahead/…` by build-ahead, `pyci-lab/…` by the lab), untagged (dangling) images (a rebuilt lab
image leaves one: ~90 of them filled 36 GB once), kind clusters, and the lab's processes (tilt, kind,
etcd, …) that carry this run's mark.

Scoped to this run: docker objects by ID (present after, absent before), processes by the mark
`PYCI_TEST_RUN=<token>` in their environment (every process the run starts inherits it), so another
session's control plane or tilt on this machine is never counted. Docker objects carry no such mark:
another session making objects on the same daemon at the same time can still show up; the report then
names the other test sessions seen on this machine, so a reader can tell.

Used by tests/conftest.py (one pytest session) and by tools/test (once, after all tiers ran side by
side: `python3 -m tests.lab.leftovers snapshot FILE`, then `check FILE`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

LAB_BIN = Path(os.environ.get("PYCI_LAB_CACHE")
               or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyci-lab") / "bin"
LAB_PROCESS_NAMES = {"tilt", "socat", "kwok", "kube-apiserver", "kube-controller-manager",
                     "kube-scheduler", "etcd", "kind", "kubectl"}
TAG_PREFIXES = ("localhost:", "pyci-ahead/", "pyci-lab/")
MARK = "PYCI_TEST_RUN"
# The e2e tests' product image: kept between runs on purpose (tools/build-image --reuse rebuilds it only
# when its inputs change, and removes the image it replaces), so its one tag is never a leftover.
E2E_IMAGE = os.environ.get("PYCI_E2E_IMAGE", "pyci-lab/pyci:e2e")
# Its linux/arm64 build for the nightly arm64 cases (tests/e2e/test_arm64.py), kept the same way.
E2E_ARM64_IMAGE = os.environ.get("PYCI_E2E_ARM64_IMAGE", "pyci-lab/pyci:e2e-arm64")


class Blind(Exception):
    """The check could not look: that fails the run, it never passes it."""


def mark_this_run() -> str:
    """This run's token, set once in the environment every process of the run inherits."""
    return os.environ.setdefault(MARK, secrets.token_hex(6))


def docker_objects() -> dict[str, str]:
    """Every container, network, volume, test-made tag and dangling image: ID-like key -> description."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        try:
            api = client.api
            found = {f"container {c['Id']}": f"container {c['Names'][0].lstrip('/')} ({c['Image']})"
                     for c in api.containers(all=True)}
            found |= {f"network {n['Id']}": f"network {n['Name']}" for n in api.networks()}
            found |= {f"volume {v['Name']}": f"volume {v['Name']}"
                      for v in api.volumes().get("Volumes") or ()}
            # One /images/json call: images.list() inspects each image after listing, and an image
            # removed in between (a run's cleanup finishing) made the check blind for no reason.
            for image in api.images():
                tags = [t for t in image.get("RepoTags") or () if t != "<none>:<none>"]
                found |= {f"tag {t}": f"image tag {t}" for t in tags
                          if t.startswith(TAG_PREFIXES) and t not in (E2E_IMAGE, E2E_ARM64_IMAGE)}
                if not tags:
                    size = image.get("Size", 0) / 1e6
                    labels = ",".join(sorted(image.get("Labels") or {}))
                    found[f"dangling {image['Id']}"] = (f"untagged image {image['Id'][7:19]} ({size:.0f} MB"
                                                        f"{', labels ' + labels if labels else ''})")
        finally:
            client.close()
        return found
    except Exception as e:  # noqa: BLE001 - whatever the cause, the check is blind
        raise Blind(f"the Docker daemon did not answer the leftover check: {e}") from e


def _environ(pid: str) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/environ").read_bytes()
    return b""


def lab_processes(token: str) -> dict[str, str]:
    """The lab's processes that carry this run's mark."""
    mark = f"{MARK}={token}".encode()
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if (argv and os.path.basename(argv[0].decode(errors="replace")) in LAB_PROCESS_NAMES
                    and mark in _environ(pid).split(b"\0")):
                found[f"process {pid}"] = f"process {pid} {b' '.join(argv).decode(errors='replace')[:120]}"
    return found


def kind_clusters() -> dict[str, str]:
    kind = LAB_BIN / "kind"
    if not kind.exists():
        return {}
    out = subprocess.run([str(kind), "get", "clusters"], capture_output=True, text=True, timeout=60)
    return {f"kind cluster {c}": f"kind cluster {c}" for c in out.stdout.split()}


def snapshot(token: str) -> dict[str, str]:
    return docker_objects() | lab_processes(token) | kind_clusters()


def left_behind(before: dict[str, str], token: str, settle: float = 5.0) -> list[str]:
    """What is here now and was not before; just-stopped processes and containers get `settle` s to go."""
    deadline = time.monotonic() + settle
    while True:
        left = {k: v for k, v in snapshot(token).items() if k not in before}
        if not left or time.monotonic() > deadline:
            return sorted(left.values())
        time.sleep(0.5)


def other_sessions(repo: Path) -> list[str]:
    """Test sessions on this machine that are not this run's (another checkout's pytest or pyci)."""
    mark = f"{MARK}={os.environ.get(MARK, '')}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            text = b" ".join(argv).decode(errors="replace")
            if ("pytest" in text or "-m pyci" in text) and mark not in _environ(pid).split(b"\0"):
                cwd = os.readlink(f"/proc/{pid}/cwd")
                if not Path(cwd).is_relative_to(repo):
                    found.append(f"pid {pid} in {cwd}: {text[:100]}")
    return found


def report(left: list[str], repo: Path) -> list[str]:
    lines = ["LEFTOVERS: the test run left these behind:", *(f"  {thing}" for thing in left)]
    others = other_sessions(repo)
    if others:
        lines += ["  (other test sessions ran on this daemon meanwhile; docker objects above may be theirs:",
                  *(f"    {o}" for o in others), "  )"]
    return lines


def main(argv: list[str]) -> int:
    """`snapshot FILE`: what is there now; `check FILE`: fail (exit 1) on anything new since then."""
    if len(argv) != 2 or argv[0] not in ("snapshot", "check"):
        print("usage: python3 -m tests.lab.leftovers snapshot|check FILE", file=sys.stderr)
        return 2
    path, token = Path(argv[1]), os.environ.get(MARK, "")
    if not token:
        print(f"tests.lab.leftovers: {MARK} is not set: the run's processes cannot be told apart",
              file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[2]
    try:
        if argv[0] == "snapshot":
            path.write_text(json.dumps(snapshot(token)))
            return 0
        left = left_behind(json.loads(path.read_text()), token, settle=30.0)
    except Blind as e:
        print(f"LEFTOVER CHECK FAILED: {e}")
        return 1
    if left:
        print("\n".join(report(left, repo)))
        return 1
    print("leftover check: nothing left behind (containers, networks, volumes, test image tags, untagged "
          "images, kind clusters, lab processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
