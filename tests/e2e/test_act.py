"""The GitHub contract through a real workflow runner: `act` runs a workflow that `uses: ./`.

act (built from the module proxy) runs the action as GitHub does: a container from the action's image
on the same daemon, inputs as INPUT_*, the socket mounted, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY. The
only change from the shipped action.yml is its image, pointed at the offline-built one (the published
image cannot be pulled here).

Two runner set-ups:
- `-P ubuntu-latest=-self-hosted` (steps on this machine): a bad input (exit 2, one line, nothing
  created), and a real sibling run that creates its registry, fails at kind (no node image offline:
  exit 3) and leaves nothing behind. Here act starts the action's container on the default bridge,
  which cannot reach the lab's loopback API server, and mounts no GITHUB_OUTPUT into it.
- `-P ubuntu-latest=pyci-lab/base:latest` (a job container; act puts it on the host network and the
  action's container in its network): examples/hello deploys green against the lab's API server
  (cluster: existing), and the next step reads the step's outputs. act gives every step its own
  GITHUB_STEP_SUMMARY file and shows none, so the summary is checked in test_image.py instead.
- `-P ubuntu-latest=pyci-lab/base:latest --network bridge --bind` on a real kind cluster: the job
  container on the default bridge, the action's container in its network (`container:<job>`); pyci
  joins the job container to kind's network. The corpus's kitchen sink goes green, outputs reach the
  next step, and a background copier started by an earlier step keeps the summary pyci wrote.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, lab_tool

WORKFLOW = """\
name: act-e2e
on: push
jobs:
  pyci:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: pyci
        uses: ./
        with:
{inputs}
      - if: always()
        run: |
          echo "pyci-result=${{{{ steps.pyci.outputs.result }}}} junit=${{{{ steps.pyci.outputs.junit }}}}"
"""


@pytest.fixture
def repo_copy(tmp_path: Path, image: str) -> Path:
    """A git checkout of this tree whose action.yml runs the offline-built image."""
    dest = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    action = dest / "action.yml"
    text = action.read_text()
    assert "docker://ghcr.io/pyci-action/pyci-action:v1" in text
    action.write_text(text.replace("docker://ghcr.io/pyci-action/pyci-action:v1", f"docker://{image}"))
    return dest


def act(repo: Path, platform: str = "-self-hosted", **inputs: str) -> subprocess.CompletedProcess[str]:
    wf = repo / ".github" / "act" / "e2e.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text(WORKFLOW.format(inputs="\n".join(f"          {k}: '{v}'" for k, v in inputs.items())))
    git = ["git", "-c", "user.email=lab@pyci.invalid", "-c", "user.name=lab"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "act"], cwd=repo, check=True)
    return subprocess.run([str(lab_tool("act")), "push", "-W", str(wf), "-P", f"ubuntu-latest={platform}",
                           "--pull=false"], cwd=repo, capture_output=True, text=True, timeout=600)


def test_bad_input_fails_the_step_with_one_line(repo_copy: Path) -> None:
    done = act(repo_copy, **{"working-directory": "examples/hello", "timeout": "forever"})
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-3000:]
    assert "exit with `FAILURE`: 2" in log, log[-3000:]
    errors = [line for line in log.splitlines() if "pyci: error:" in line]
    assert len(errors) == 1 and "timeout" in errors[0], errors


def test_sibling_run_creates_and_cleans_up(repo_copy: Path, docker_client) -> None:
    done = act(repo_copy, **{"working-directory": "examples/hello", "cluster-name": "act-e2e",
                             "registry-image": "pyci-lab/registry:latest", "registry-port": "0",
                             "node-image": "pyci-lab/no-such-node:v0", "timeout": "2m"})
    log = done.stdout + done.stderr
    assert "topology: sibling" in log, log[-4000:]  # act runs the action as a container on the daemon
    assert "local registry act-e2e-registry" in log, log[-4000:]
    assert "exit with `FAILURE`: 3" in log, log[-4000:]  # kind: no node image offline
    left = docker_client.containers.list(all=True, filters={"label": "io.pyci.cluster=act-e2e"})
    assert left == [], [c.name for c in left]


def test_green_deploy_with_outputs_in_a_job_container(repo_copy: Path, control_plane, docker_client) -> None:
    """The job runs in a container (act's default network for it is the host's), so the action's
    container, which act starts in that job container's network, reaches the lab's loopback API
    server: examples/hello deploys green and the step's outputs reach the next step."""
    flat = subprocess.run([str(lab_tool("kubectl")), "config", "view", "--raw", "--flatten",
                           "--kubeconfig", str(control_plane.kubeconfig)],
                          capture_output=True, text=True, check=True, timeout=60)
    kubeconfig = repo_copy / "lab-kubeconfig"
    kubeconfig.write_text(flat.stdout)
    kubeconfig.chmod(0o600)
    done = act(repo_copy, platform="pyci-lab/base:latest",
               **{"working-directory": "examples/hello", "cluster": "existing", "cluster-name": "act-green",
                  "kubeconfig": "lab-kubeconfig", "registry-image": "pyci-lab/registry:latest",
                  "registry-port": "0", "namespaces": "default", "timeout": "3m", "wait-timeout": "2m",
                  "tilt-args": "--base-image=pyci-lab/base:latest --allow-context=pyci-lab"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    assert "pyci-result=success junit=pyci-junit.xml" in log, log[-6000:]  # outputs reach the next step
    assert "readiness: 3/3 workloads healthy" in log, log[-6000:]
    left = docker_client.containers.list(all=True, filters={"label": "io.pyci.cluster=act-green"})
    assert left == [], [c.name for c in left]


KIND_WORKFLOW = """\
name: act-kind
on: push
jobs:
  pyci:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      # A lab tap: act gives each step a fresh GITHUB_STEP_SUMMARY and shows none, so a background
      # copier keeps what the action wrote there (in act's own file) for the test to read.
      - run: |
          nohup sh -c 'while sleep 0.2; do [ -s "$1" ] && cp "$1" "$0/summary-seen.md"; done' \\
            "$PWD" "$GITHUB_STEP_SUMMARY" >/dev/null 2>&1 &
      - id: pyci
        uses: ./
        env:
          PATH: {shim}:/usr/local/bin:/usr/bin:/bin
          CORPUS_EXTENSIONS: file://{repo}/extensions-repo
        with:
{inputs}
      - if: always()
        run: |
          echo "pyci-outputs result=${{{{ steps.pyci.outputs.result }}}}" \\
            "cluster=${{{{ steps.pyci.outputs.cluster-name }}}} junit=${{{{ steps.pyci.outputs.junit }}}}" \\
            "duration=${{{{ steps.pyci.outputs.duration }}}}"
"""


def test_kitchen_sink_green_on_real_kind_through_act(repo_copy: Path, node_image: str, docker_client) -> None:
    """SIBLING through a real workflow runner on a real kind cluster. act runs the job in a container
    (here on the default bridge: `--network bridge`) and the docker action with `--network
    container:<job container>`; pyci joins that job container to kind's network, as Docker refuses to
    connect a container that shares another's network. The step's outputs reach the next step through
    act; the summary pyci wrote into act's GITHUB_STEP_SUMMARY is read through the tap above.
    Lab differences: the node image, the docker shim first in PATH, the image in action.yml."""
    from tests.e2e.test_corpus import (
        KITCHEN_SINK_ARGS,
        check_kitchen_sink_green,
        corpus_workspace,
        kind_clusters,
        time_to_green,
    )

    corpus_workspace(repo_copy / "corpus-ws", "kitchen-sink")  # the app and its extension repo (git)
    shutil.move(repo_copy / "corpus-ws" / "extensions-repo", repo_copy / "extensions-repo")
    inputs = {"working-directory": "tests/corpus/kitchen-sink", "node-image": node_image,
              "registry-image": "pyci-lab/registry:latest", "timeout": "4m", "wait-timeout": "1m",
              "tilt-args": KITCHEN_SINK_ARGS}
    wf = repo_copy / ".github" / "act" / "kind.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text(KIND_WORKFLOW.format(shim=repo_copy / "tools" / "kind-node" / "shim", repo=repo_copy,
                                       inputs="\n".join(f"          {k}: '{v}'" for k, v in inputs.items())))
    git = ["git", "-c", "user.email=lab@pyci.invalid", "-c", "user.name=lab"]
    for args in (["init", "-q"], ["add", "-A", "--", ".", ":!extensions-repo", ":!corpus-ws"],
                 ["commit", "-qm", "act"]):
        subprocess.run([*git, *args], cwd=repo_copy, check=True, capture_output=True)
    started = time.monotonic()
    done = subprocess.run([str(lab_tool("act")), "push", "-W", str(wf), "--pull=false", "--bind",
                           "-P", "ubuntu-latest=pyci-lab/base:latest", "--network", "bridge"],
                          cwd=repo_copy, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    log = done.stdout + done.stderr
    found = re.search(r"pyci-outputs result=(\S*) cluster=(\S*) junit=(\S*) duration=(\S*)", log)
    cluster = found.group(2) if found else ""
    try:
        assert done.returncode == 0, log[-8000:]
        assert "topology: sibling" in log, log[-4000:]
        assert found, log[-4000:]
        result, junit, duration = found.group(1), found.group(3), found.group(4)
        assert result == "success" and cluster.startswith("pyci-") and duration, found.group(0)
        junit_path = Path(junit) if Path(junit).is_absolute() else repo_copy / junit
        check_kitchen_sink_green(log, junit_path, (repo_copy / "summary-seen.md").read_text())
        time_to_green("kitchen-sink", "sibling, act", wall, duration, junit_path)
        assert cluster not in kind_clusters()
        run_id = re.search(r"run id (\S+)", log)
        assert run_id, log[-3000:]
        for label in (f"io.pyci.cluster={cluster}", f"io.x-k8s.kind.cluster={cluster}",
                      f"io.pyci.run={run_id.group(1)}"):
            left = docker_client.containers.list(all=True, filters={"label": label})
            assert left == [], [c.name for c in left]
        reaper = docker_client.containers.list(all=True, filters={"name": f"pyci-reaper-{run_id.group(1)}"})
        assert reaper == [], [c.name for c in reaper]
        jobs = docker_client.containers.list(all=True, filters={"name": "act-act-kind-pyci"})
        assert jobs == [], [c.name for c in jobs]  # act removed its job container
        assert not docker_client.volumes.list(filters={"label": f"io.pyci.owns-cluster={cluster}"})
    finally:
        if cluster and cluster in kind_clusters():
            subprocess.run([str(lab_tool("kind")), "delete", "cluster", "--name", cluster],
                           capture_output=True, timeout=180)
