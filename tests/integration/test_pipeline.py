"""`pyci run` end to end on the lab: the real CLI, docker, registry, control plane and tilt.

The cluster is the lab control plane (`cluster: existing`), since a kind node image cannot be had
offline; everything else is what a user's run does: a local registry container, the KEP-1755
ConfigMap, `tilt ci`, the readiness watch, JUnit, summary, outputs, diagnostics and cleanup.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xmlschema

from tests.lab.github import read_outputs
from tests.schemas import SCHEMAS

APP = Path(__file__).parent / "apps" / "twosvc"


@pytest.fixture
def namespace(control_plane):
    from kubernetes import client

    name = f"pipe-{os.getpid()}-{time.monotonic_ns() % 100000}"
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def workspace(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    return tmp_path


def pyci_command(control_plane, workspace: Path, namespace: str, *extra: str,
                 tilt_args: str = "") -> list[str]:
    return [
        sys.executable, "-m", "pyci", "run",
        "--cluster", "existing", "--kubeconfig", str(control_plane.kubeconfig),
        "--registry-image", "pyci-lab/registry:latest", "--registry-port", "0",
        "--cluster-name", f"pyci-{namespace}",
        "--working-directory", str(workspace / "app"),
        f"--tilt-args=--namespace={namespace} {tilt_args}".strip(),
        "--namespaces", namespace,
        "--junit", str(workspace / "junit.xml"), "--artifacts-dir", str(workspace / "artifacts"),
        "--timeout", "90s", "--wait-timeout", "60s", "--progress-interval", "2s",
        *extra,
    ]


def github_env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "PYCI_", "GITHUB_", "CIRCLE"))}
    (workspace / "output").touch()
    (workspace / "summary.md").touch()
    return env | {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(workspace / "output"),
                  "GITHUB_STEP_SUMMARY": str(workspace / "summary.md"), "GITHUB_RUN_ID": "4242"}


def outputs(workspace: Path) -> dict[str, str]:
    return read_outputs(workspace / "output")


def run_containers(docker_client, namespace: str) -> list[str]:
    """Containers the run labelled as its own (the cluster name is derived from the namespace)."""
    label = f"io.pyci.cluster=pyci-{namespace}"
    return [c.name for c in docker_client.containers.list(all=True, filters={"label": label})]


def junit_cases(path: Path) -> dict[str, bool]:
    xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate(str(path))
    import xml.etree.ElementTree as ET

    return {tc.get("name", ""): tc.find("failure") is None and tc.find("error") is None
            for tc in ET.parse(path).getroot().iter("testcase")}


def test_healthy_app_passes(control_plane, namespace, workspace, docker_client, registry_hosting):
    proc = subprocess.run(pyci_command(control_plane, workspace, namespace), env=github_env(workspace),
                          capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    out = outputs(workspace)
    assert out["result"] == "success"
    assert out["junit"].endswith("junit.xml")
    assert float(out["duration"]) > 0
    cases = junit_cases(workspace / "junit.xml")
    assert cases and all(cases.values()), cases
    assert any("api" in name for name in cases)
    # One row per component: the tilt resource with the workloads it applied inside it.
    assert set(cases) - {"docker", "topology", "preflight", "registry + cluster", "connect", "tilt ci",
                         "readiness", "cleanup"} == {"api", "web", "migrate"}, cases
    assert f"workloads: job/{namespace}/migrate" in (workspace / "junit.xml").read_text()
    summary = (workspace / "summary.md").read_text()
    assert "api" in summary and "web" in summary
    assert "::group::" in proc.stdout
    assert run_containers(docker_client, namespace) == []
    pushed = [t for i in docker_client.images.list() for t in i.tags if t.startswith(out["registry"] + "/")]
    assert out["registry"].startswith("localhost:") and pushed == [], pushed
    # The cluster outlives the run: the ConfigMap pyci wrote into it went with its registry.
    assert registry_hosting.read() is None


@pytest.mark.parametrize("behavior,reason,workload", [
    ("crashloop", "CrashLoopBackOff", "deployment/{ns}/api"),
    ("imagepull", "ImagePullBackOff", "deployment/{ns}/api"),
    ("oomkilled", "OOMKilled", "deployment/{ns}/api"),
    ("unschedulable", "Unschedulable", "deployment/{ns}/api"),
    ("jobfail", "JobFailed", "job/{ns}/migrate"),
])
def test_broken_service_fails_fast_with_reason(control_plane, namespace, workspace, docker_client,
                                               behavior, reason, workload):
    t0 = time.monotonic()
    proc = subprocess.run(pyci_command(control_plane, workspace, namespace, tilt_args=f"--break={behavior}"),
                          env=github_env(workspace), capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-4000:]
    # tilt ci alone waits out its 90s timeout here; the readiness sentinel stops it.
    assert time.monotonic() - t0 < 45, "a workload that failed for good must end the run early"
    if behavior != "jobfail":  # tilt ci fails a failed Job by itself; the rest it would wait out
        assert "stopping tilt ci early" in proc.stdout
    assert outputs(workspace)["result"] == "failure"
    cases = junit_cases(workspace / "junit.xml")
    component = workload.rsplit("/", 1)[-1]  # tilt names the resource after its workload
    assert cases[component] is False, cases
    assert workload.format(ns=namespace) not in cases  # merged into its component, not a row of its own
    assert reason in (workspace / "junit.xml").read_text()
    annotations = [line for line in proc.stdout.splitlines()
                   if line.startswith("::error ") and "title=pyci" not in line]  # file=… comes first
    assert len(annotations) == 1 and reason in annotations[0], annotations  # the cause, not its echoes
    assert reason in (workspace / "summary.md").read_text()
    bundle = workspace / "artifacts" / "diagnostics"
    assert (bundle / "events.txt").exists()
    assert list((bundle / "objects").glob("*.yaml"))
    assert run_containers(docker_client, namespace) == []


def test_timeout_says_what_it_waits_on(control_plane, namespace, workspace):
    cmd = pyci_command(control_plane, workspace, namespace, tilt_args="--break=notready")
    cmd[cmd.index("--timeout") + 1] = "15s"
    proc = subprocess.run(cmd, env=github_env(workspace), capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-4000:]
    assert "waiting on:" in log
    assert outputs(workspace)["result"] == "failure"


def test_sigterm_during_tilt_cleans_up(control_plane, namespace, workspace, docker_client):
    proc = subprocess.Popen(pyci_command(control_plane, workspace, namespace, tilt_args="--break=notready"),
                            env=github_env(workspace), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "tilt ci" in line and "tilt:" in line:
                break
        time.sleep(3)  # let tilt start building
        assert run_containers(docker_client, namespace), "the registry should exist while tilt runs"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # the test failed before the run ended: end it the same way
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen)[-2000:] + rest[-3000:]
    assert time.monotonic() - t0 < 30
    assert run_containers(docker_client, namespace) == []
    assert outputs(workspace)["result"] == "cancelled"
    left = subprocess.run(["pgrep", "-f", shlex.quote(str(workspace))], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a process of the run is still alive"
