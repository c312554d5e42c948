"""A failed run on the lab points at the line, leaves one log per component and draws its timeline.

The real CLI, docker, registry, lab control plane and tilt (as in test_pipeline), on the two-service
app whose api crash-loops (the lab's kwok gives its pods a CrashLoopBackOff).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from tests.integration.test_pipeline import APP, github_env, pyci_command, run_containers


@pytest.fixture
def lab_namespace(control_plane):
    from kubernetes import client

    name = f"where-{os.getpid()}-{time.monotonic_ns() % 100000}"
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def test_a_crash_is_annotated_at_its_manifest_with_its_own_log_and_a_timeline(
        control_plane, lab_namespace, tmp_path, docker_client):
    shutil.copytree(APP, tmp_path / "app")
    env = github_env(tmp_path) | {"GITHUB_WORKSPACE": str(tmp_path)}
    proc = subprocess.run(pyci_command(control_plane, tmp_path, lab_namespace, tilt_args="--break=crashloop"),
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-4000:]
    annotations = [line for line in proc.stdout.splitlines()
                   if line.startswith("::error ") and "title=pyci" not in line]
    # app.yaml's first document, the Deployment api: its `kind:` is line 2
    assert len(annotations) == 1 and annotations[0].startswith(
        "::error file=app/app.yaml,line=2,col=1,title=api%3A CrashLoopBackOff::"), annotations

    logs = tmp_path / "artifacts" / "logs"
    api = (logs / "api.log").read_text()
    assert "== tilt ci (" in api and "Building Dockerfile" in api  # its build, from tilt's log
    assert re.search(rf"== container api of pod {lab_namespace}/api-", api), api[-2000:]
    assert "Building Dockerfile: [pyci-test-app]" not in (logs / "Tiltfile.log").read_text()

    summary = (tmp_path / "summary.md").read_text()
    drawn = summary.split("### Timeline\n\n```text\n", 1)[1].split("\n```", 1)[0]
    rows = {line.split()[0]: line for line in drawn.splitlines()[3:] if line.strip()}
    assert {"preflight", "tilt", "api"} <= set(rows), drawn
    assert "▓" in rows["api"] and rows["api"].endswith("❌"), drawn  # its build, and the cause's icon
    assert drawn in proc.stdout  # and at the end of the log
    assert run_containers(docker_client, lab_namespace) == []
