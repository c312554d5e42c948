"""The compatibility corpus (tests/corpus): real Tiltfile features, run through the product image
exactly as GitHub starts a docker action, on a real kind cluster (issue 10).

kitchen-sink uses, between its files: load('ext://…') from an extension repo served locally (a git
repo: tilt clones it with the image's git), helm() on a local chart, kustomize(), bash-only syntax in
local() and a local_resource, custom_build, a multi-stage docker_build with target, build_args, only
and ignore, live_update, port_forwards, config.define_* arguments, include(), k8s_custom_deploy, a
StatefulSet, a DaemonSet, a CRD with a custom resource, and workloads in two namespaces, one of them
created by the Tiltfile. One run covers them all: real-kind runs cost 30-120 s each here.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from pyci.settings import INPUTS
from tests.conftest import REPO, lab_tool
from tests.e2e.test_image import SOCKET, docker_run
from tests.e2e.test_kind import without_kind_network
from tests.lab.github import read_outputs

CORPUS = REPO / "tests" / "corpus"
SHIM = REPO / "tools" / "kind-node" / "shim"


def as_github_action(tmp_path: Path, names: list[str], image: str, app: str, node_image: str,
                     breakage: dict[str, str] | None = None,
                     **inputs: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    workspace, commands = tmp_path / "workspace", tmp_path / "file_commands"
    shutil.copytree(CORPUS / app, workspace / app)
    for rel, text in (breakage or {}).items():  # a broken variant: files overwritten in the copy
        (workspace / app / rel).write_text(text)
    # The extension repo, as a git repository in the workspace (tilt fetches ext:// with git).
    extensions = workspace / "extensions-repo"
    shutil.copytree(CORPUS / app / "extensions", extensions)
    git = ["git", "-C", str(extensions), "-c", "user.email=lab@pyci", "-c", "user.name=lab"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "extensions"]):
        subprocess.run([*git, *args], check=True, timeout=30)
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
            "PATH": "/shim:/usr/local/bin:/usr/bin"}  # the lab's docker shim (see test_image)
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    done = docker_run(names, "--workdir", "/github/workspace", *env_args, "-v", f"{SOCKET}:{SOCKET}",
                      "-v", f"{workspace}:/github/workspace", "-v", f"{commands}:/github/file_commands",
                      "-v", f"{SHIM}:/shim:ro", image)
    return done, commands, workspace


def test_kitchen_sink_is_green_through_the_image_on_real_kind(image: str, names: list[str], tmp_path: Path,
                                                              node_image: str, docker_client) -> None:
    done, commands, workspace = as_github_action(
        tmp_path, names, image, "kitchen-sink", node_image,
        **{"tilt-args": "--base-image=pyci-lab/base:latest --greet=corpus --greet=pyci --with-worker"})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-8000:]
    assert "hello, pyci, from an ext:// extension" in log  # git fetched the extension repo
    assert "arrays: 3" in log and "lint ok" in log  # bash in local() and a local_resource
    out = read_outputs(commands / "set_output")
    assert out["result"] == "success", out
    junit = ET.parse(workspace / out["junit"].removeprefix("/github/workspace/")).getroot()
    cases = {c.get("name"): c for c in junit.iter("testcase")
             if c.get("classname", "").startswith("pyci.resources")}
    for component in ("web", "worker", "db", "node-agent", "widget-crd", "gizmo", "custom-cm", "lint"):
        assert component in cases, sorted(cases)
        assert cases[component].find("failure") is None, ET.tostring(cases[component], encoding="unicode")
    assert "statefulset/corpus-data/db" in ET.tostring(cases["db"], encoding="unicode")
    summary = (commands / "step_summary").read_text()
    assert "`web`" in summary and "daemonset/corpus-data/node-agent" in summary, summary
    cluster = out["cluster-name"]
    kind = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    assert cluster not in kind.stdout.split()
    left = docker_client.containers.list(all=True, filters={"label": f"io.pyci.cluster={cluster}"})
    assert left == [], [c.name for c in left]
    without_kind_network(docker_client)


def test_a_broken_corpus_app_fails_with_its_reason(image: str, names: list[str], tmp_path: Path,
                                                   node_image: str, docker_client) -> None:
    """The kitchen sink with its web server's source broken: the image build fails, exit 1, named."""
    done, commands, workspace = as_github_action(
        tmp_path, names, image, "kitchen-sink", node_image, breakage={"web/app.py": "def broken(:\n"},
        **{"tilt-args": "--base-image=pyci-lab/base:latest"})
    assert done.returncode == 1, (done.stdout + done.stderr)[-6000:]
    out = read_outputs(commands / "set_output")
    assert out["result"] == "failure", out
    junit = ET.parse(workspace / out["junit"].removeprefix("/github/workspace/")).getroot()
    failed = {c.get("name"): c.find("failure") for c in junit.iter("testcase")
              if c.find("failure") is not None}
    # The cause only, under the component tilt builds corpus-web for (db's StatefulSet uses it too and
    # comes first); the bystanders are "not finished", skipped, never blamed.
    assert len(failed) == 1 and set(failed) <= {"web", "db"}, sorted(failed)
    [(name, failure)] = failed.items()
    assert failure.get("type") == "BuildFailed", ET.tostring(failure, encoding="unicode")
    skipped = [c.get("name") for c in junit.iter("testcase") if c.find("skipped") is not None]
    assert "web" in skipped or name == "web", skipped
    annotations = [line for line in done.stdout.splitlines()
                   if line.startswith("::error") and "title=pyci" not in line]
    assert len(annotations) == 1 and name in annotations[0], annotations
    run_label = {"label": f"io.pyci.cluster={out['cluster-name']}"}
    left = docker_client.containers.list(all=True, filters=run_label)
    assert left == [], [c.name for c in left]
    without_kind_network(docker_client)
