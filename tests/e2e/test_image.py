"""The product image, built offline by tools/build-image, run the ways its users run it.

The dry-run is started exactly as GitHub starts a docker action: every declared input as INPUT_<NAME>
(hyphens kept), workdir /github/workspace, the file-command files GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
mounted under /github/file_commands, and the runner's Docker socket mounted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pyci.settings import INPUTS
from tests.conftest import REPO
from tests.lab.github import read_outputs

IMAGE = "pyci-lab/pyci:e2e"
SOCKET = "/var/run/docker.sock"


def docker_run(names: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    name = f"pyci-e2e-{os.getpid()}-{len(names)}"
    names.append(name)
    return subprocess.run(["docker", "run", "--rm", "--name", name, "--label", "io.pyci.lab=true", *args],
                          capture_output=True, text=True, timeout=300)


def test_version_prints_the_bundled_tools(image: str, names: list[str]) -> None:
    done = docker_run(names, image, "version")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("pyci ")
    assert "kind: kind v0.30.0" in out
    assert "tilt: v0.37.6" in out
    assert "kubectl: Client Version: v1.34.4" in out
    assert "docker: not found" not in out and "\ndocker: " in out
    assert "pinned kubectl: v1.34.4" in out


def test_socat_runs_in_the_image(image: str, names: list[str]) -> None:
    done = docker_run(names, "--entrypoint", "socat", image, "-V")
    assert done.returncode == 0, done.stderr
    assert "socat version" in done.stdout


def github_docker_action(tmp_path: Path, names: list[str], image: str, *docker_args: str,
                         args: tuple[str, ...] = ("run", "--dry-run"),
                         **inputs: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    workspace = tmp_path / "workspace"
    shutil.copytree(REPO / "examples", workspace / "examples")
    commands = tmp_path / "file_commands"
    commands.mkdir()
    (commands / "set_output").touch()
    (commands / "step_summary").touch()
    env = {f"INPUT_{spec.name.upper()}": inputs.get(spec.name, spec.default) for spec in INPUTS}
    env |= {
        "GITHUB_ACTIONS": "true", "CI": "true", "HOME": "/github/home",
        "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_OUTPUT": "/github/file_commands/set_output",
        "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
    }
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    done = docker_run(
        names, "--workdir", "/github/workspace", *env_args,
        "-v", f"{SOCKET}:{SOCKET}",
        "-v", f"{workspace}:/github/workspace",
        "-v", f"{commands}:/github/file_commands",
        *docker_args, image, *args,
    )
    return done, commands


def test_dry_run_as_a_github_docker_action(image: str, names: list[str], tmp_path: Path) -> None:
    done, commands = github_docker_action(
        tmp_path, names, image, **{"working-directory": "examples/hello", "cluster-name": "e2e-hello"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pyci run --dry-run: nothing is created" in done.stdout
    assert "platform      github" in done.stdout
    assert "tiltfile      examples/hello/Tiltfile" in done.stdout
    assert "kind cluster e2e-hello" in done.stdout
    assert (commands / "set_output").read_text() == ""  # a dry run reports nothing


def test_a_bad_input_exits_2_with_one_clear_line(image: str, names: list[str], tmp_path: Path) -> None:
    done, _ = github_docker_action(
        tmp_path, names, image, **{"working-directory": "examples/hello", "timeout": "forever"})
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("pyci: error:")]
    assert len(errors) == 1, done.stderr
    assert "timeout" in errors[0] and "'forever'" in errors[0]


def outputs(commands: Path) -> dict[str, str]:
    return read_outputs(commands / "set_output")


def test_deploys_the_example_as_a_github_docker_action(image: str, names: list[str], tmp_path: Path,
                                                      control_plane, docker_client) -> None:
    """The real job, started as the runner starts a docker action, deploying examples/hello.

    Differences from a runner, and why: the container gets `--network host` and the control plane's
    folder mounted, because the lab's API server listens on this machine's loopback (a kind cluster's
    would be reached through the kind network instead: that path is tested in tests/integration).
    """
    cp_dir = str(control_plane.kubeconfig.parent)
    done, commands = github_docker_action(
        tmp_path, names, image, "--network", "host", "-v", f"{cp_dir}:{cp_dir}:ro", args=(),
        **{"working-directory": "examples/hello", "cluster": "existing", "cluster-name": "e2e-deploy",
           "kubeconfig": str(control_plane.kubeconfig), "registry-image": "pyci-lab/registry:latest",
           "registry-port": "0", "namespaces": "default", "timeout": "3m", "wait-timeout": "2m",
           "tilt-args": "--base-image=pyci-lab/base:latest --allow-context=pyci-lab"})
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    out = outputs(commands)
    assert out["result"] == "success", out
    assert out["junit"] and out["duration"]
    summary = (commands / "step_summary").read_text()
    for resource in ("api", "web", "migrate"):
        assert f"`{resource}`" in summary, summary
    assert "::group::tilt ci" in done.stdout
    left = docker_client.containers.list(all=True, filters={"label": "io.pyci.cluster=e2e-deploy"})
    assert left == [], [c.name for c in left]
