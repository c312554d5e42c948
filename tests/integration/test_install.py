"""`pyci install-tools` (the host-mode action's downloader) against a local HTTP server on 127.0.0.1.

The server (tests/lab/downloads.py) is the one fake here: it stands in for github.com, dl.k8s.io and
get.helm.sh, reached through PYCI_DOWNLOAD_BASE. The "binaries" are small shell scripts in the release
files' real shapes (kind and kubectl bare, tilt and helm as .tar.gz with the member where the real
archives have it); the versions file carries digests computed from them. The command runs as the
action runs it: a subprocess, `python -m pyci install-tools`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import downloads

VERSIONS = {"KIND_VERSION": "v0.30.0", "KUBECTL_VERSION": "v1.34.4", "TILT_VERSION": "v0.37.6",
            "HELM_VERSION": "v3.19.5"}
TOOLS = ("kind", "kubectl", "tilt", "helm")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[downloads.Server, dict[str, str]]]:
    """A download server holding the four tools; the versions pinned to what it serves."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    binaries = {}
    for tool in TOOLS:
        script = scripts / tool
        script.write_text(f"#!/bin/sh\necho {tool} {VERSIONS[tool.upper() + '_VERSION']} lab-fake\n")
        binaries[tool] = script
    root = tmp_path / "site"
    pinned = downloads.mirror(root, binaries, VERSIONS)
    with downloads.serve(root) as server:
        yield server, pinned


def install_tools(tmp_path: Path, server: downloads.Server, versions: dict[str, str],
                  *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    file = tmp_path / "versions.env"
    file.write_text(downloads.versions_env(versions))
    environ = {**os.environ, "PYCI_DOWNLOAD_BASE": server.base, "PYCI_VERSIONS_FILE": str(file)}
    environ.pop("GITHUB_PATH", None)
    environ.update(env)
    command = [sys.executable, "-m", "pyci", "install-tools", "--dest", str(tmp_path / "cache"),
               "--arch", "amd64", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environ, timeout=120)


def binary(tmp_path: Path, tool: str) -> Path:
    return tmp_path / "cache" / tool / VERSIONS[f"{tool.upper()}_VERSION"] / "amd64" / tool


def test_good_checksums_install_every_tool_executable(tmp_path: Path, site) -> None:
    server, pinned = site
    github_path = tmp_path / "github_path"
    done = install_tools(tmp_path, server, pinned, "--github-path", GITHUB_PATH=str(github_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    for tool in TOOLS:
        path = binary(tmp_path, tool)
        assert path.stat().st_mode & 0o777 == 0o755, tool
        ran = subprocess.run([str(path)], capture_output=True, text=True, timeout=10, check=True)
        assert ran.stdout.strip() == f"{tool} {VERSIONS[tool.upper() + '_VERSION']} lab-fake"
        assert (path.parent / ".pyci-verified").is_file()
        hidden = [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
        assert hidden == [".pyci-verified"]  # no temporary file left
    assert len(server.requests) == 4
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all("downloaded, sha256 verified" in line for line in lines), lines
    assert github_path.read_text().splitlines() == [str(binary(tmp_path, t).parent) for t in TOOLS]


def test_a_cached_tool_is_rechecked_not_downloaded_again(tmp_path: Path, site) -> None:
    server, pinned = site
    assert install_tools(tmp_path, server, pinned).returncode == 0
    first = len(server.requests)
    again = install_tools(tmp_path, server, pinned)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == first  # nothing asked of the server
    lines = again.stdout.splitlines()
    assert len(lines) == 4 and all("cached, sha256 re-checked" in line for line in lines), again.stdout
    # A cached binary that no longer hashes as recorded is not trusted: it is downloaded again.
    kubectl = binary(tmp_path, "kubectl")
    kubectl.write_text("#!/bin/sh\necho tampered\n")
    third = install_tools(tmp_path, server, pinned, "--tools", "kind,kubectl")
    assert third.returncode == 0, third.stderr
    assert server.requests[first:] == ["/" + downloads.url_path("kubectl", pinned)]
    assert "lab-fake" in subprocess.run([str(kubectl)], capture_output=True, text=True, timeout=10).stdout


def test_a_wrong_checksum_is_refused_with_one_line(tmp_path: Path, site) -> None:
    server, pinned = site
    wrong = "0123456789abcdef" * 4
    done = install_tools(tmp_path, server, {**pinned, "TILT_SHA256_AMD64": wrong}, "--tools", "tilt")
    assert done.returncode == 3, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    url = f"{server.base}/{downloads.url_path('tilt', pinned)}"
    assert lines[0] == (f"pyci: error: tilt v0.37.6 (linux/amd64): checksum mismatch for {url}: expected "
                        f"sha256 {wrong}, got {pinned['TILT_SHA256_AMD64']}; the download was deleted, "
                        "nothing installed")
    folder = binary(tmp_path, "tilt").parent
    assert list(folder.iterdir()) == []  # neither the download nor anything taken from it


def test_a_wrong_checksum_never_replaces_a_good_cached_binary(tmp_path: Path, site) -> None:
    server, pinned = site
    assert install_tools(tmp_path, server, pinned, "--tools", "kind").returncode == 0
    kind = binary(tmp_path, "kind")
    good = kind.read_bytes()
    # A new pin for the same version (say, a corrected digest) does not match the cache; the server
    # still sends the old file, so the download is refused and the cached binary stays as it was.
    done = install_tools(tmp_path, server, {**pinned, "KIND_SHA256_AMD64": "f" * 64}, "--tools", "kind")
    assert done.returncode == 3 and "checksum mismatch" in done.stderr, done.stderr
    assert kind.read_bytes() == good


def test_unknown_for_a_required_tool_is_refused_before_any_download(tmp_path: Path, site) -> None:
    server, pinned = site
    done = install_tools(tmp_path, server, {**pinned, "TILT_SHA256_AMD64": "UNKNOWN"})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("pyci: error: tilt v0.37.6 (linux/amd64): no SHA256 is pinned (UNKNOWN"), lines
    assert "never downloaded or run unverified" in lines[0]
    assert server.requests == []  # not even kind: a refusal is known before anything is fetched
    assert not (tmp_path / "cache").exists()


def test_unknown_helm_is_left_out_with_one_line_and_the_rest_installed(tmp_path: Path, site) -> None:
    server, pinned = site
    done = install_tools(tmp_path, server, {**pinned, "HELM_SHA256_AMD64": "UNKNOWN"})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("pyci: warning: helm v3.19.5 (linux/amd64): no SHA256"), lines
    assert not any("helm" in path for path in server.requests)
    assert not (tmp_path / "cache" / "helm").exists()
    assert all(binary(tmp_path, t).is_file() for t in ("kind", "kubectl", "tilt"))


def test_a_missing_file_is_an_infrastructure_error(tmp_path: Path, site) -> None:
    server, pinned = site
    done = install_tools(tmp_path, server, {**pinned, "KIND_VERSION": "v9.9.9"}, "--tools", "kind")
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        f"pyci: error: kind v9.9.9 (linux/amd64): download of {server.base}/github.com/kubernetes-sigs/kind/"
        "releases/download/v9.9.9/kind-linux-amd64 failed: HTTP 404"]


def test_nothing_is_executable_while_a_download_is_unverified(tmp_path: Path, site) -> None:
    """Halfway through the download the target folder holds one 0600 file and no binary."""
    server, pinned = site
    release = threading.Event()
    server.hold["/" + downloads.url_path("kubectl", pinned)] = release
    file = tmp_path / "versions.env"
    file.write_text(downloads.versions_env(pinned))
    environ = {**os.environ, "PYCI_DOWNLOAD_BASE": server.base, "PYCI_VERSIONS_FILE": str(file)}
    proc = subprocess.Popen([sys.executable, "-m", "pyci", "install-tools", "--dest", str(tmp_path / "cache"),
                             "--arch", "amd64", "--tools", "kubectl"], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.holding.wait(30), "the download never started"
        folder = binary(tmp_path, "kubectl").parent
        entries = list(folder.iterdir())
        assert [p.name.startswith(".download-") for p in entries] == [True], entries
        mode = stat.S_IMODE(entries[0].stat().st_mode)
        assert mode == 0o600, oct(mode)
    finally:
        release.set()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert binary(tmp_path, "kubectl").stat().st_mode & 0o111


# --- linux/arm64 (issue 22.2): the host action on an arm64 runner -----------------------------------------
STANDIN_BUILD = """#!/bin/sh
# Stand-in for build-tilt.sh (a source build takes minutes; the real one is proved by the lab's
# GOARCH=arm64 tools/build-go-tools and the nightly arm64 image tests). Records its arguments.
echo "$@" > "$(dirname "$0")/build-args"
while [ $# -gt 0 ]; do case $1 in --out) out=$2; shift 2 ;; *) shift ;; esac; done
[ -n "${STANDIN_FAIL:-}" ] && { echo "stand-in build failed" >&2; exit 3; }
printf '#!/bin/sh\\necho tilt v0.37.6 built from source (stand-in)\\n' > "$out"
"""


@pytest.fixture
def arm64_site(tmp_path: Path) -> Iterator[tuple[downloads.Server, dict[str, str], Path]]:
    """The stand-in server holding the arm64 release files of kind, kubectl and helm (their digests for
    ARM64 pinned, AMD64 left wrong on purpose), tilt's ARM64 pin SOURCE, and a stand-in build script."""
    scripts = tmp_path / "scripts-arm64"
    scripts.mkdir()
    binaries = {}
    for tool in ("kind", "kubectl", "helm"):
        script = scripts / tool
        script.write_text(f"#!/bin/sh\necho {tool} linux/arm64 lab-fake\n")
        binaries[tool] = script
    root = tmp_path / "site"
    pinned = downloads.mirror(root, binaries, VERSIONS, arch="arm64")
    pinned |= {f"{t.upper()}_SHA256_AMD64": "0" * 64 for t in TOOLS} | {"TILT_SHA256_ARM64": "SOURCE"}
    build = tmp_path / "build-tilt-standin.sh"
    build.write_text(STANDIN_BUILD)
    with downloads.serve(root) as server:
        yield server, pinned, build


def test_arm64_installs_the_arm64_files_verified_and_builds_tilt_from_source(tmp_path: Path,
                                                                            arm64_site) -> None:
    server, pinned, build = arm64_site
    file = tmp_path / "versions.env"
    file.write_text(downloads.versions_env(pinned))
    environ = {**os.environ, "PYCI_DOWNLOAD_BASE": server.base, "PYCI_VERSIONS_FILE": str(file),
               "PYCI_BUILD_TILT": str(build)}
    command = [sys.executable, "-m", "pyci", "install-tools", "--dest", str(tmp_path / "cache"),
               "--arch", "arm64"]
    done = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(server.requests) == sorted("/" + downloads.url_path(t, pinned, "arm64")
                                             for t in ("kind", "kubectl", "helm"))
    assert all("arm64" in path and "amd64" not in path for path in server.requests), server.requests
    for tool in ("kind", "kubectl", "helm"):
        path = tmp_path / "cache" / tool / VERSIONS[f"{tool.upper()}_VERSION"] / "arm64" / tool
        ran = subprocess.run([str(path)], capture_output=True, text=True, timeout=10, check=True)
        assert ran.stdout.strip() == f"{tool} linux/arm64 lab-fake"
    tilt = tmp_path / "cache" / "tilt" / "v0.37.6" / "arm64" / "tilt"
    assert tilt.stat().st_mode & 0o777 == 0o755
    args = (build.parent / "build-args").read_text().split()
    assert args[:3] == ["--arch", "arm64", "--out"] and args[4:] == ["--versions", str(file)], args
    assert Path(args[3]).parent == tilt.parent  # built into a temporary file beside the target
    record = json.loads((tilt.parent / ".pyci-verified").read_text())
    assert record["sha256"] == "SOURCE" and record["arch"] == "arm64" and len(record["binary_sha256"]) == 64
    assert [p.name for p in tilt.parent.iterdir() if p.name.startswith(".")] == [".pyci-verified"]
    lines = done.stdout.splitlines()
    built = "tilt v0.37.6 (linux/arm64): built from source, inputs verified"
    assert any(ln.startswith(built) for ln in lines), lines
    assert sum("downloaded, sha256 verified" in ln for ln in lines) == 3, lines
    # Again: everything from the cache, re-hashed; no download, no build.
    (build.parent / "build-args").unlink()
    again = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == 3 and not (build.parent / "build-args").exists()
    assert "cached source build, sha256 re-checked" in again.stdout


def test_arm64_a_failed_source_build_installs_no_tilt(tmp_path: Path, arm64_site) -> None:
    server, pinned, build = arm64_site
    file = tmp_path / "versions.env"
    file.write_text(downloads.versions_env(pinned))
    environ = {**os.environ, "PYCI_DOWNLOAD_BASE": server.base, "PYCI_VERSIONS_FILE": str(file),
               "PYCI_BUILD_TILT": str(build), "STANDIN_FAIL": "1"}
    done = subprocess.run([sys.executable, "-m", "pyci", "install-tools", "--dest", str(tmp_path / "cache"),
                           "--arch", "arm64", "--tools", "tilt"], capture_output=True, text=True, env=environ,
                          timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "pyci: error: tilt v0.37.6 (linux/arm64): the source build" in done.stderr
    folder = tmp_path / "cache" / "tilt" / "v0.37.6" / "arm64"
    assert list(folder.iterdir()) == []  # no binary, no record, no temporary file
    assert server.requests == []
