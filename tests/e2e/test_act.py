"""The GitHub contract through a real workflow runner: `act` runs a workflow that `uses: ./`.

act (built from the module proxy) runs the job on this machine (`-P ubuntu-latest=-self-hosted`) and
the action as GitHub does: a container from the action's image on the same daemon, inputs as
INPUT_*, the socket mounted. The only change from the shipped action.yml is its image, pointed at
the offline-built one (the published image cannot be pulled here).

What act cannot show here: a green deploy. The lab's API server listens on this machine's loopback,
which a sibling container cannot reach, and kind has no node image offline. So the runs below go as
far as the lab allows: a bad input (exit 2, one line, nothing created) and a real sibling run that
creates its registry, fails at kind (no node image: exit 3), and leaves nothing behind.
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


def act(repo: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
    wf = repo / ".github" / "act" / "e2e.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text(WORKFLOW.format(inputs="\n".join(f"          {k}: '{v}'" for k, v in inputs.items())))
    git = ["git", "-c", "user.email=lab@pyci.invalid", "-c", "user.name=lab"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "act"], cwd=repo, check=True)
    return subprocess.run([str(lab_tool("act")), "push", "-W", str(wf), "-P", "ubuntu-latest=-self-hosted",
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
