"""Before anything exists, on the lab's real daemon: a Kubernetes version kind has no image for, and a
host whose inotify limit is too low (a folder standing in for /proc/sys/fs/inotify), each end the run
with one line and exit 2, leaving no container, network or volume behind (no reaper either)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pyci import cli, hostlimits, node_images
from pyci.results import ExitCode
from tests.conftest import created_since

ENTRYPOINT = Path(__file__).resolve().parents[2] / "entrypoint"




def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "Tiltfile").write_text("print('hi')\n")
    return folder


def test_a_kubernetes_version_without_an_image_is_one_line_exit_2_and_nothing_made(tmp_path: Path,
                                                                                  docker_client):
    since, cluster = time.time(), f"pyci-kv-{uuid.uuid4().hex[:6]}"
    # This checkout's pyci, whatever an editable install elsewhere points at.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ENTRYPOINT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "pyci", "run", "--working-directory", str(app(tmp_path)),
                           "--cluster-name", cluster,
                           "--kubernetes-version", "v1.29", "--junit", str(tmp_path / "junit.xml")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.BAD_INPUT, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"pyci: error: kubernetes-version: 'v1.29' has no node image for kind {node_images.KIND_VERSION}; "
        f"allowed: a Kubernetes version with a node image for kind {node_images.KIND_VERSION}: "
        f"{node_images.supported()}"], done.stderr
    assert "run id" not in done.stdout  # the pipeline never started
    assert created_since(docker_client, since, cluster) == []  # by name: other tiers share the daemon


def test_inotify_instances_at_8_stop_the_run_before_anything_is_made(
        tmp_path: Path, docker_client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    proc = tmp_path / "inotify"
    proc.mkdir()
    (proc / "max_user_instances").write_text("8\n")
    (proc / "max_user_watches").write_text("524288\n")
    monkeypatch.setattr(hostlimits, "INOTIFY", proc)
    monkeypatch.setattr(hostlimits, "writable", lambda path: False)  # as in a container, or not root
    monkeypatch.chdir(tmp_path)
    since, cluster = time.time(), f"pyci-limits-{uuid.uuid4().hex[:6]}"
    code = cli.main(["run", "--working-directory", str(app(tmp_path)), "--cluster-name",
                     cluster, "--topology", "host", "--summary", "false",
                     "--junit", str(tmp_path / "junit.xml"), "--artifacts-dir", str(tmp_path / "artifacts")])
    out = capsys.readouterr().out
    assert code == ExitCode.BAD_INPUT, out
    stop = ("fs.inotify.max_user_instances is 8, below the 128 a kind cluster needs: run "
            "`sysctl -w fs.inotify.max_user_instances=512` on the Docker host")
    assert [line for line in out.splitlines() if "max_user_instances" in line][-1].endswith(stop), out
    assert created_since(docker_client, since, cluster) == []
    assert (proc / "max_user_instances").read_text() == "8\n"
