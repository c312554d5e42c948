"""`pyci install-tools` (the host-mode action's downloader) against a local HTTP server on 127.0.0.1.

The server (tests/lab/downloads.py) is the one fake here: it stands in for github.com, dl.k8s.io and
get.helm.sh, reached through PYCI_DOWNLOAD_BASE. The "binaries" are small shell scripts in the release
files' real shapes (kind and kubectl bare, tilt and helm as .tar.gz with the member where the real
archives have it); the versions file carries digests computed from them. The command runs as the
action runs it: a subprocess, `python -m pyci install-tools`.
"""

from __future__ import annotations

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
