"""Proof that the lab is real: registry push/pull, a Deployment turning Ready on the control plane,
`tilt ci` building, pushing and deploying, and the Go-built CLIs running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import lab_tool

APPS = Path(__file__).parent / "apps"


def test_registry_push_and_pull(docker_client, lab_images, lab_registry):
    ref = f"{lab_registry.host}/lab-proof/base:push-pull"
    image = docker_client.images.get(lab_images.base)
    image.tag(ref)
    try:
        out = docker_client.images.push(ref)
        assert '"error"' not in out, out
        catalog = requests.get(f"http://127.0.0.1:{lab_registry.port}/v2/_catalog", timeout=5).json()
        assert "lab-proof/base" in catalog["repositories"]
        docker_client.images.remove(ref)
        pulled = docker_client.images.pull(ref)
        assert pulled.id == image.id
    finally:
        if any(ref in t for i in docker_client.images.list() for t in i.tags):
            docker_client.images.remove(ref)


def test_deployment_turns_ready(control_plane):
    from kubernetes import client

    api = control_plane.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = f"lab-ready-{os.getpid()}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        labels = {"app": "ready"}
        apps.create_namespaced_deployment(ns, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="ready"),
            spec=client.V1DeploymentSpec(
                replicas=2, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="lab/none:1")])))))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            d = apps.read_namespaced_deployment("ready", ns)
            if d.status and d.status.available_replicas == 2:
                break
            time.sleep(0.2)
        assert d.status and d.status.available_replicas == 2
        pods = core.list_namespaced_pod(ns).items
        # Each pod's Ready condition, so that no pod (or no condition) passes by being absent.
        conditions = [c for p in pods for c in ((p.status and p.status.conditions) or [])]
        ready = [c.status for c in conditions if c.type == "Ready"]
        assert ready == ["True", "True"], ready
    finally:
        core.delete_namespace(ns)


def test_tilt_ci_builds_pushes_and_deploys(control_plane, lab_registry, registry_hosting, docker_client,
                                           tmp_path):
    from kubernetes import client

    tilt = lab_tool("tilt")
    api = control_plane.api_client()
    registry_hosting.apply(lab_registry.host, "https://kind.sigs.k8s.io/docs/user/local-registry/")
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyci-proof")))
    app = tmp_path / "proof"
    shutil.copytree(APPS / "proof", app)
    snapshot = tmp_path / "snapshot.json"
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "TILT_DISABLE_ANALYTICS": "1"}
    try:
        proc = subprocess.run(
            [str(tilt), "ci", "--timeout", "120s", "--port", "0", "--output-snapshot-on-exit", str(snapshot)],
            cwd=app, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "SUCCESS" in proc.stdout + proc.stderr
        catalog = requests.get(f"http://127.0.0.1:{lab_registry.port}/v2/_catalog", timeout=5).json()
        assert "proof-app" in catalog["repositories"]
        dep = client.AppsV1Api(api).read_namespaced_deployment("proof-app", "pyci-proof")
        assert dep.spec and dep.spec.template.spec and dep.status
        image = dep.spec.template.spec.containers[0].image or ""
        assert image.startswith(f"{lab_registry.host}/proof-app:tilt-"), image
        assert dep.status.available_replicas == 1
        resources = json.loads(snapshot.read_text())["view"]["uiResources"]
        assert {r["metadata"]["name"] for r in resources} >= {"proof-app"}
    finally:
        core.delete_namespace("pyci-proof")
        for image in docker_client.images.list():
            for tag in image.tags:
                if "proof-app:tilt-" in tag:
                    docker_client.images.remove(tag, force=True)


@pytest.mark.parametrize("tool,args,expect", [
    ("kind", ["version"], "kind v0.30.0"),
    ("act", ["--version"], "act version"),
    ("actionlint", ["-version"], "1.7.12"),
    ("tilt", ["version"], "v0.37.6"),
    ("kubectl", ["version", "--client"], "v1.34.4"),
])
def test_go_tools_run(tool, args, expect):
    out = subprocess.run([str(lab_tool(tool)), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout + out.stderr
