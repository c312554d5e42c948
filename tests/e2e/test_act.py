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
"""

from __future__ import annotations

import shutil
import subprocess
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
