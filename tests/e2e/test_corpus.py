"""The compatibility corpus (tests/corpus): real Tiltfile features, run through the product image
exactly as GitHub starts a docker action, on a real kind cluster (issue 10).

kitchen-sink uses, between its files: load('ext://…') from an extension repo served locally (a git
repo: tilt clones it with the image's git), helm() on a local chart, kustomize(), bash-only syntax in
local() and a local_resource, custom_build, a multi-stage docker_build with target, build_args, only
and ignore, live_update, port_forwards (a local_resource curls through it: only/ignore checked),
config.define_* arguments, include(), k8s_custom_deploy, a StatefulSet, a DaemonSet, a CRD with a
custom resource, and workloads in two namespaces, one of them created by the Tiltfile. One run covers
them all: real-kind runs cost 30-120 s each here.

breakages is broken one way per run (`-- --break=<way>`): each way must end the run with exit 1 and
its own reason. Those runs share one kind cluster that the test makes (pyci reuses a cluster named in
cluster-name and never deletes it) so each costs the run, not a cluster: ~10-20 s instead of ~35 s.
The kitchen sink with a broken build runs there too, its readiness watch on its own namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from pyci.cluster.kind import KIND_API_VERSION, merge_config, render_config
from pyci.settings import INPUTS
from pyci.tilt.failures import HOST_ACTION
from tests.conftest import LAB_BIN, REPO, lab_tool
from tests.e2e.test_image import SOCKET, docker_run
from tests.lab.github import read_outputs

CORPUS = REPO / "tests" / "corpus"
SHIM = REPO / "tools" / "kind-node" / "shim"
BASE = "--base-image=pyci-lab/base:latest"
KITCHEN_SINK_ARGS = f"{BASE} --greet=corpus --greet=pyci --with-worker"
# The module's kind clusters live on a docker network of their own (KIND_EXPERIMENTAL_DOCKER_NETWORK):
# they run beside the tests that check kind's default network `kind`.
NETWORK = f"pyci-e2e-corpus-{uuid.uuid4().hex[:6]}"
KITCHEN_SINK_COMPONENTS = ("web", "worker", "db", "node-agent", "widget-crd", "gizmo", "custom-cm", "lint",
                           "smoke")


def corpus_workspace(workspace: Path, app: str, breakage: dict[str, str] | None = None) -> Path:
    """The app copied into a workspace, its extension repo beside it as a git repository."""
    shutil.copytree(CORPUS / app, workspace / app)
    for rel, text in (breakage or {}).items():  # a broken variant: files overwritten in the copy
        (workspace / app / rel).write_text(text)
    if (CORPUS / app / "extensions").is_dir():  # tilt fetches ext:// with git
        extensions = workspace / "extensions-repo"
        shutil.copytree(CORPUS / app / "extensions", extensions)
        git = ["git", "-C", str(extensions), "-c", "user.email=lab@pyci", "-c", "user.name=lab"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "extensions"]):
            subprocess.run([*git, *args], check=True, timeout=30)
    return workspace


def as_github_action(tmp_path: Path, names: list[str], image: str, app: str, node_image: str,
                     breakage: dict[str, str] | None = None,
                     **inputs: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    workspace, commands = tmp_path / "workspace", tmp_path / "file_commands"
    corpus_workspace(workspace, app, breakage)
    commands.mkdir()
    (commands / "set_output").touch()
    (commands / "step_summary").touch()
    values = {"working-directory": app, "node-image": node_image,
              "registry-image": "pyci-lab/registry:latest", "timeout": "3m", "wait-timeout": "1m"} | inputs
    env = {f"INPUT_{spec.name.upper()}": values.get(spec.name, spec.default) for spec in INPUTS}
    env |= {"GITHUB_ACTIONS": "true", "CI": "true", "HOME": "/github/home",
            "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_OUTPUT": "/github/file_commands/set_output",
            "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
            "CORPUS_EXTENSIONS": "file:///github/workspace/extensions-repo",
            "KIND_EXPERIMENTAL_DOCKER_NETWORK": NETWORK,
            "PATH": "/shim:/usr/local/bin:/usr/bin"}  # the lab's docker shim (see test_image)
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    done = docker_run(names, "--workdir", "/github/workspace", *env_args, "-v", f"{SOCKET}:{SOCKET}",
                      "-v", f"{workspace}:/github/workspace", "-v", f"{commands}:/github/file_commands",
                      "-v", f"{SHIM}:/shim:ro", image)
    return done, commands, workspace


def resource_cases(junit: Path) -> dict[str, ET.Element]:
    return {c.get("name", ""): c for c in ET.parse(junit).getroot().iter("testcase")
            if c.get("classname", "").startswith("pyci.resources")}


def check_kitchen_sink_green(log: str, junit: Path, summary: str) -> None:
    """What a green kitchen sink shows, in every topology."""
    assert "hello, pyci, from an ext:// extension" in log  # git fetched the extension repo
    assert "arrays: 3" in log and "lint ok" in log  # bash in local() and a local_resource
    assert "smoke ok: the port-forward serves index.html, scratch.tmp ignored" in log
    cases = resource_cases(junit)
    for component in KITCHEN_SINK_COMPONENTS:
        assert component in cases, sorted(cases)
        assert cases[component].find("failure") is None, ET.tostring(cases[component], encoding="unicode")
        assert cases[component].find("skipped") is None, ET.tostring(cases[component], encoding="unicode")
    assert "statefulset/corpus-data/db" in ET.tostring(cases["db"], encoding="unicode")
    assert "`web`" in summary and "daemonset/corpus-data/node-agent" in summary, summary


def stage_times(junit: Path) -> str:
    cases = ET.parse(junit).getroot().iter("testcase")
    return ", ".join(f"{c.get('name')} {float(c.get('time') or 0):.1f}" for c in cases
                     if not c.get("classname", "").startswith("pyci.resources"))


def time_to_green(app: str, topology: str, wall: float, duration: str, junit: Path) -> None:
    print(f"time-to-green {app} ({topology}): {wall:.1f} s wall, pyci duration {duration} s; "
          f"stages: {stage_times(junit)}")


def test_kitchen_sink_is_green_through_the_image_on_real_kind(image: str, names: list[str], tmp_path: Path,
                                                              node_image: str, docker_client) -> None:
    started = time.monotonic()
    done, commands, workspace = as_github_action(
        # ignored below: mypy cannot tell that this **dict (hyphenated names) leaves `breakage` alone
        tmp_path, names, image, "kitchen-sink", node_image, **{"tilt-args": KITCHEN_SINK_ARGS},  # type: ignore[arg-type]
    )
    wall = time.monotonic() - started
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-8000:]
    assert "topology: sibling" in done.stdout, done.stdout[-3000:]
    out = read_outputs(commands / "set_output")
    assert out["result"] == "success", out
    junit = workspace / out["junit"].removeprefix("/github/workspace/")
    check_kitchen_sink_green(log, junit, (commands / "step_summary").read_text())
    time_to_green("kitchen-sink", "sibling", wall, out["duration"], junit)
    cluster = out["cluster-name"]
    kind = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    assert cluster not in kind.stdout.split()
    left = docker_client.containers.list(all=True, filters={"label": f"io.pyci.cluster={cluster}"})
    assert left == [], [c.name for c in left]


# --- the broken variants, on one shared cluster ------------------------------------------------------


def kind_clusters() -> list[str]:
    done = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    return done.stdout.split()


@pytest.fixture(scope="module", autouse=True)
def _network_removed(docker_client) -> Iterator[None]:
    """kind never removes its network: the module's goes after its last test (and cluster)."""
    yield
    for net in docker_client.networks.list(names=[NETWORK]):
        net.remove()


@pytest.fixture(scope="module")
def shared_cluster(node_image: str, docker_client, tmp_path_factory) -> Iterator[str]:
    """A kind cluster made as pyci makes its own (its kind config), that the broken runs reuse."""
    name = f"e2e-corpus-{os.getpid()}"
    config = tmp_path_factory.mktemp("shared-cluster") / "kind-config.yaml"
    config.write_text(render_config(merge_config({"kind": "Cluster", "apiVersion": KIND_API_VERSION})))
    env = dict(os.environ, PATH=f"{SHIM}{os.pathsep}{LAB_BIN}{os.pathsep}{os.environ['PATH']}",
               KIND_EXPERIMENTAL_DOCKER_NETWORK=NETWORK)
    kind = str(lab_tool("kind"))
    try:
        kubeconfig = config.with_name("kubeconfig")
        created = subprocess.run([kind, "create", "cluster", "--name", name, "--image", node_image,
                                  "--config", str(config), "--kubeconfig", str(kubeconfig), "--wait", "0s"],
                                 env=env, capture_output=True, text=True, timeout=300)
        assert created.returncode == 0, created.stderr[-3000:]
        yield name
    finally:
        subprocess.run([kind, "delete", "cluster", "--name", name], env=env, capture_output=True, timeout=180)


@pytest.fixture(scope="module")
def shared_kubeconfig(shared_cluster: str, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("shared-kubeconfig") / "kubeconfig"
    env = dict(os.environ, PATH=f"{SHIM}{os.pathsep}{LAB_BIN}{os.pathsep}{os.environ['PATH']}")  # docker exec
    done = subprocess.run([str(lab_tool("kind")), "get", "kubeconfig", "--name", shared_cluster],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    path.write_text(done.stdout)
    path.chmod(0o600)
    return path


def first_pod_start(kubeconfig: Path, namespace: str) -> float:
    """When the namespace's first pod started (its status.startTime: the kubelet took it, just
    before its first container ran), in seconds since the epoch."""
    done = subprocess.run([str(lab_tool("kubectl")), "--kubeconfig", str(kubeconfig), "get", "pods", "-n",
                           namespace, "-o", "jsonpath={.items[*].status.startTime}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split(), done.stderr
    return min(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in done.stdout.split())


# Crash-at-start ways: the run must be over within 30 s of the pod's start (issue 11: the first
# CrashLoopBackOff fails it; max-restarts bounds only containers that were once Ready).
CRASH_AT_START = {"crash-statefulset", "crash-deployment", "oom"}
CRASH_BOUND = 30.0

# way -> (the component that fails, the failure types allowed, words its report must carry, the
# namespace the readiness watch looks at: an earlier way's crash loop stays on the shared cluster)
BREAKAGES = {
    "crash-statefulset": ("ledger", {"CrashLoopBackOff", "Error"}, "ledger: cannot open /data/ledger.db",
                          "brk-statefulset"),
    "crash-deployment": ("api", {"CrashLoopBackOff", "Error"}, "api: cannot bind 0.0.0.0:8080", "brk-crash"),
    "pull-error": ("cache", {"ImagePullBackOff"}, "registry.invalid/pyci/cache:1.0", "brk-pull"),
    "oom": ("indexer", {"OOMKilled"}, "OOMKilled", "brk-oom"),
    "unschedulable": ("gpu-worker", {"Unschedulable"}, "cannot be scheduled", "brk-sched"),
    "failed-job": ("migrate", {"JobFailed", "PodFailed"}, "migrate: relation orders already exists",
                   "brk-job"),
    # A failed local command is CommandFailed, with the command's own output (issue 21).
    "local-bash": ("seed", {"CommandFailed"}, "seed: fixtures/orders.csv missing", "brk-none"),
    "helm-value": ("Tiltfile", {"TiltfileError"}, "image.tag is required", "brk-none"),
    "bad-kustomize": ("Tiltfile", {"TiltfileError"}, "overlays-not-here.yaml", "brk-none"),
    # issue 21: the cause beside bystanders (tools/verdict-matrix runs these, and more, 10 rounds each)
    "verdict-crash": ("payments", {"CrashLoopBackOff"}, "payments: PAYMENTS_API_KEY is not set",
                      "brk-verdict-crash"),
    "verdict-chain": ("db", {"CrashLoopBackOff"}, "db: data directory", "brk-verdict-chain"),
    # the image lacks the compile's tool (exit 127): its own output and the host action's hint
    "verdict-toolless": ("compile", {"CommandFailed"}, "nosuchtool: not found", "brk-verdict-toolless"),
}
# way -> the bystanders' rows: never failed, never annotated; what a not-finished one says it was doing
BYSTANDERS = {
    "verdict-crash": {"cart": ("skipped", "not finished: starting"),
                      "web": ("skipped", "not finished: starting")},
    "verdict-chain": {"api": ("skipped", "not finished: blocked by db"),
                      "web": ("skipped", "not finished: blocked by api")},
    "verdict-toolless": {"server": ("skipped", "not finished: blocked by compile")},
}


@pytest.mark.parametrize("way", sorted(BREAKAGES))
def test_each_breakage_fails_the_run_with_its_own_reason(
        way: str, shared_cluster: str, shared_kubeconfig: Path, image: str, names: list[str], tmp_path: Path,
        node_image: str, docker_client) -> None:
    component, types, words, namespace = BREAKAGES[way]
    started = time.monotonic()
    done, commands, workspace = as_github_action(
        tmp_path, names, image, "breakages", node_image,
        # ignored below: mypy cannot tell that this **dict (hyphenated names) leaves `breakage` alone
        **{"tilt-args": f"{BASE} --break={way}", "cluster-name": shared_cluster, "max-restarts": "1",  # type: ignore[arg-type]
           "namespaces": namespace},
    )
    wall, ended = time.monotonic() - started, time.time()
    log = done.stdout + done.stderr
    assert done.returncode == 1, log[-6000:]
    out = read_outputs(commands / "set_output")
    assert out["result"] == "failure", out
    junit_path = workspace / out["junit"].removeprefix("/github/workspace/")
    after_start = ""
    if way in CRASH_AT_START:
        since_pod = ended - first_pod_start(shared_kubeconfig, namespace)
        after_start = f", {since_pod:.1f} s after its pod started"
        assert since_pod <= CRASH_BOUND, f"{way}: the run ended {since_pod:.1f} s after the pod started"
    print(f"breakage {way}: exit 1 in {wall:.1f} s{after_start}; stages: {stage_times(junit_path)}")
    failed = {c.get("name", ""): c for c in ET.parse(junit_path).getroot().iter("testcase")
              if c.find("failure") is not None}
    assert list(failed) == [component], sorted(failed)
    case = ET.tostring(failed[component], encoding="unicode")  # the failure, and the logs beside it
    failure = failed[component].find("failure")
    assert failure is not None and failure.get("type") in types, case
    assert words in case, case  # a crash's and a failed Job's own last words: the container really ran
    if way == "verdict-toolless":  # the command, its exit code, and where to run a Tiltfile that needs `go`
        assert "exited 127" in case and "not in pyci's image" in case and HOST_ACTION in case, case
    cases = resource_cases(junit_path)
    for name, (tag, says) in BYSTANDERS.get(way, {}).items():
        element = cases[name].find(tag)
        # a slow starter may have become healthy by the time the crash ended the run: never blamed
        healthy = way == "verdict-crash" and all(cases[name].find(t) is None for t in ("failure", "skipped"))
        assert healthy or (element is not None and (element.get("message") or "").startswith(says)), \
            ET.tostring(cases[name], encoding="unicode")
    summary = (commands / "step_summary").read_text()
    assert f"`{component}`" in summary and words in summary, summary
    annotations = [line for line in done.stdout.splitlines()
                   if line.startswith("::error") and "title=pyci" not in line]
    assert len(annotations) == 1 and (words in annotations[0] or component in annotations[0]), annotations
    # The reused cluster stays (pyci never deletes what it did not make); the run's own things go.
    assert shared_cluster in kind_clusters()
    left = docker_client.containers.list(all=True, filters={"label": f"io.pyci.cluster={shared_cluster}"})
    assert left == [], [c.name for c in left]
    assert not docker_client.volumes.list(filters={"label": f"io.pyci.owns-cluster={shared_cluster}"})


def test_a_broken_corpus_app_fails_with_its_reason(shared_cluster: str, image: str, names: list[str],
                                                   tmp_path: Path, node_image: str, docker_client) -> None:
    """The kitchen sink with its web server's source broken: the image build fails, exit 1, named."""
    started = time.monotonic()
    done, commands, workspace = as_github_action(
        tmp_path, names, image, "kitchen-sink", node_image, breakage={"web/app.py": "def broken(:\n"},
        **{"tilt-args": BASE, "cluster-name": shared_cluster, "namespaces": "default,corpus-data"})
    print(f"breakage kitchen-sink web build: exit {done.returncode} in {time.monotonic() - started:.1f} s")
    assert done.returncode == 1, (done.stdout + done.stderr)[-6000:]
    out = read_outputs(commands / "set_output")
    assert out["result"] == "failure", out
    junit = ET.parse(workspace / out["junit"].removeprefix("/github/workspace/")).getroot()
    failed = {c.get("name", ""): f for c in junit.iter("testcase") if (f := c.find("failure")) is not None}
    # The cause only, under the component tilt builds corpus-web for (db's StatefulSet uses it too and
    # comes first); the bystanders are "not finished", skipped, never blamed.
    assert len(failed) == 1 and set(failed) <= {"web", "db"}, sorted(failed)
    [(name, failure)] = failed.items()
    assert failure.get("type") == "BuildFailed", ET.tostring(failure, encoding="unicode")
    skipped = [c.get("name", "") for c in junit.iter("testcase") if c.find("skipped") is not None]
    assert "web" in skipped or name == "web", skipped
    annotations = [line for line in done.stdout.splitlines()
                   if line.startswith("::error") and "title=pyci" not in line]
    assert len(annotations) == 1 and name in annotations[0], annotations
    assert out["cluster-name"] == shared_cluster and shared_cluster in kind_clusters()
    left = docker_client.containers.list(all=True, filters={"label": f"io.pyci.cluster={shared_cluster}"})
    assert left == [], [c.name for c in left]
