"""Benchmark (tools/bench --mode overhead): pyci's own overhead against the plain recipe, on the lab
control plane (kwok: no kind cluster, so no cluster boot in either method).

plain  = a registry container (`docker run`) + the local-registry-hosting ConfigMap (`kubectl apply`)
         + `tilt ci` + `docker rm`  — what kind's docs and a CI script do by hand (the kind cluster
         itself is the same in both, so it is left out: the lab control plane stands in for it)
pyci   = `pyci run --cluster existing` on the same Tiltfile
Each repetition deploys into a fresh namespace. Also reports pyci's stages (from its JUnit report;
readiness is the pass after `tilt ci`) and readiness detection latency: the last pod turning Ready
(as a watch of our own sees it) -> readiness.wait_healthy returning.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import LAB_BIN  # noqa: E402
from tests.lab.controlplane import ControlPlane, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "integration" / "apps" / "twosvc"
ENV = {**os.environ, "PATH": f"{LAB_BIN}{os.pathsep}{os.environ['PATH']}", "TILT_DISABLE_ANALYTICS": "1"}


def namespace(cp: ControlPlane, name: str) -> str:
    from kubernetes import client

    client.CoreV1Api(cp.api_client()).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def run_plain(cp: ControlPlane, app: Path, ns: str) -> float:
    t0 = time.monotonic()
    port = free_port()
    name = f"bench-plain-{ns}"
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:5000",
                    "pyci-lab/registry:latest"], check=True, capture_output=True, env=ENV)
    try:
        cm = ("apiVersion: v1\nkind: ConfigMap\n"
              "metadata: {name: local-registry-hosting, namespace: kube-public}\n"
              f"data:\n  localRegistryHosting.v1: |\n    host: \"localhost:{port}\"\n")
        subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "apply", "-f", "-"],
                       input=cm.encode(), check=True, capture_output=True, env=ENV)
        subprocess.run(["tilt", "ci", "--timeout", "3m", "--port", str(free_port()), "--",
                        f"--namespace={ns}"], cwd=app, check=True, capture_output=True,
                       env={**ENV, "KUBECONFIG": str(cp.kubeconfig)})
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], check=True, capture_output=True, env=ENV)
    return time.monotonic() - t0


def run_pyci(cp: ControlPlane, app: Path, ns: str, out: Path) -> tuple[float, dict[str, float]]:
    """(seconds the run took, seconds of each of its stages, as its JUnit report says)."""
    t0 = time.monotonic()
    junit = out / f"{ns}.xml"
    run = subprocess.run(["pyci", "run", "--cluster", "existing", "--kubeconfig", str(cp.kubeconfig),
                          "--cluster-name", f"bench-{ns}", "--registry-image", "pyci-lab/registry:latest",
                          "--registry-port", "0", "--working-directory", str(app),
                          f"--tilt-args=--namespace={ns}", "--namespaces", ns, "--timeout", "3m",
                          "--junit", str(junit), "--artifacts-dir", str(out / ns), "--summary", "false"],
                         capture_output=True, text=True, env=ENV)
    took = time.monotonic() - t0
    if run.returncode != 0:  # a failed run's numbers mean nothing: say why it failed
        raise SystemExit(f"pyci run exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return took, stage_seconds(junit)


def stage_seconds(junit: Path) -> dict[str, float]:
    cases = ET.parse(junit).getroot().iterfind(".//testcase[@classname='pyci.setup']")
    return {str(c.get("name")): float(c.get("time", "nan")) for c in cases}


def readiness_latency(cp: ControlPlane, ns: str) -> float:
    """Last pod Ready (seen by our own watch) -> wait_healthy returns."""
    from kubernetes import client, watch

    from pyci import readiness

    api = cp.api_client()
    result: dict[str, float] = {}

    def waiter() -> None:
        readiness.wait_healthy(api, [ns], 60, {}, 3, log=lambda _l: None)
        result["done"] = time.monotonic()

    def last_ready() -> None:
        ready: set[str] = set()
        for ev in watch.Watch().stream(client.CoreV1Api(api).list_namespaced_pod, ns, timeout_seconds=60):
            pod = ev["object"]
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                ready.add(pod.metadata.name)
            if len(ready) == 3:
                result["ready"] = time.monotonic()
                return

    labels = {"app": "lat"}
    client.AppsV1Api(api).create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="lat"),
        spec=client.V1DeploymentSpec(replicas=3, selector=client.V1LabelSelector(match_labels=labels),
                                     template=client.V1PodTemplateSpec(
                                         metadata=client.V1ObjectMeta(labels=labels),
                                         spec=client.V1PodSpec(containers=[client.V1Container(
                                             name="c", image="lab/none:1")])))))
    threads = [threading.Thread(target=f) for f in (last_ready, waiter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return result["done"] - result["ready"]


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f}s, min {min(xs):.2f}s, max {max(xs):.2f}s"


def main(reps: int) -> int:
    cp = ControlPlane(bin_dir=LAB_BIN, etcd_bin=str(LAB_BIN / "etcd")).start()
    work = Path(tempfile.mkdtemp(prefix="pyci-bench-"))
    app = work / "app"
    shutil.copytree(APP, app)
    plain, pyci, latency = [], [], []
    stage: list[dict[str, float]] = []
    try:
        run_plain(cp, app, namespace(cp, "warm"))  # warm the docker build cache for both
        for i in range(reps):
            plain.append(run_plain(cp, app, namespace(cp, f"plain-{i}")))
            took, stages = run_pyci(cp, app, namespace(cp, f"pyci-{i}"), work)
            pyci.append(took)
            stage.append(stages)
            latency.append(readiness_latency(cp, namespace(cp, f"lat-{i}")))
            print(f"rep {i + 1}: plain {plain[-1]:.2f}s  pyci {pyci[-1]:.2f}s  readiness stage "
                  f"{stage[-1]['readiness']:.2f}s  readiness latency {latency[-1] * 1000:.0f}ms", flush=True)
    finally:
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)
    overhead = [p - q for p, q in zip(pyci, plain, strict=True)]
    print(f"plain recipe (registry + ConfigMap + tilt ci): {spread(plain)}")
    print(f"pyci run (cluster: existing):                  {spread(pyci)}")
    print(f"pyci overhead:                                 {spread(overhead)}  "
          f"(ratio pyci/plain {statistics.median(pyci) / statistics.median(plain):.2f})")
    print(f"pyci readiness stage (after tilt ci):          {spread([x['readiness'] for x in stage])}")
    outside = [total - sum(x.values()) for total, x in zip(pyci, stage, strict=True)]
    medians = [f"{name} {statistics.median(x[name] for x in stage):.2f}s" for name in stage[0]]
    print(f"pyci stages (medians): {', '.join(medians)}, outside stages {statistics.median(outside):.2f}s")
    print(f"readiness detection latency:                   {spread(latency)}")
    return 0
