"""The host-mode action (host/action.yml, a composite action) through a real workflow runner, `act`.

act runs the workflow with `-P ubuntu-latest=-self-hosted`: the steps run on this machine, as on a
runner, with this machine's python3, go, node and make. The action does what it does on GitHub: pip
installs pyci from the action's own checkout into a venv, `pyci install-tools` downloads kind,
kubectl, tilt and helm and checks their digests, then `pyci run`.

What is faked, for the test only (the action itself is the shipped file, unchanged):
- the download sites: a local HTTP server on 127.0.0.1 (tests/lab/downloads.py) serving the lab's
  own Go-built binaries in the release files' shapes, reached through PYCI_DOWNLOAD_BASE;
- the pins: PYCI_VERSIONS_FILE names a versions.env whose digests were computed from those files
  (the product's own versions.env pins the published release digests, which these builds don't have);
- actions/cache: a stand-in that keeps entries in a local folder (tests/lab/actions-cache), handed to
  act with `--local-repository`;
- act's own folder (`--action-cache-path`, where act keeps its runner tool cache, RUNNER_TOOL_CACHE,
  and the host workspaces) is in the test's temporary folder, so every test starts with an empty cache.
pip installs pyci's dependencies from the package index, as on a runner.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyci import install
from tests.conftest import LAB_BIN, REPO, lab_tool
from tests.e2e.test_kind import SHIM, assert_nothing_left
from tests.lab import downloads

TOOLS = ("kind", "kubectl", "tilt", "helm")
# act fetches every action a composite names, even one whose `if:` is false; github.com is out of reach.
ACTIONS_CACHE = REPO / "tests" / "lab" / "actions-cache"

WORKFLOW = """\
name: act-host
on: push
jobs:
  pyci:
    runs-on: ubuntu-latest
    env:
{env}
    steps:
      - uses: actions/checkout@v4
{steps}
"""

HOST_STEP = """\
      - id: {id}
        uses: ./host
        with:
{inputs}
      - if: always()
        run: |
          echo "{id}-result=${{{{ steps.{id}.outputs.result }}}} junit=${{{{ steps.{id}.outputs.junit }}}}"
          echo "{id}-registry=${{{{ steps.{id}.outputs.registry }}}}"
          echo "{id}-duration=${{{{ steps.{id}.outputs.duration }}}}"
"""

# A Tiltfile that only the runner's own toolchains can run (the docker action's image has no go, node
# or make): a local_resource runs make, which builds and runs a Go program and runs node.
TOOLCHAIN = {
    "Tiltfile": "local_resource('toolchains', cmd='make', dir='.')\n",
    "Makefile": "all:\n\tgo build -o bin/hello .\n\t./bin/hello\n"
                "\tnode -e 'console.log(\"node \" + process.version + \" from the runner\")'\n",
    "go.mod": "module example.com/toolchain\n\ngo 1.22\n",
    "main.go": 'package main\n\nimport (\n\t"fmt"\n\t"runtime"\n)\n\n'
               'func main() { fmt.Println("built by the runner\'s go", runtime.Version()) }\n',
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[downloads.Server, dict[str, str]]]:
    """The lab's binaries served as the release files, and versions pinned to their digests."""
    for tool in ("kind", "kubectl", "tilt"):
        lab_tool(tool)
    root = tmp_path_factory.mktemp("download-site")
    versions = install.read_versions(None, {})
    binaries = {t: LAB_BIN / t for t in TOOLS if os.access(LAB_BIN / t, os.X_OK)}
    pinned = downloads.mirror(root, binaries, versions)
    if "helm" not in binaries:
        pinned["HELM_SHA256_AMD64"] = "UNKNOWN"
    with downloads.serve(root) as server:
        yield server, pinned


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A git checkout of this tree (the action is host/action.yml as it is) plus the toolchain app."""
    dest = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    assert (dest / "host" / "action.yml").read_text() == (REPO / "host" / "action.yml").read_text()
    for name, text in TOOLCHAIN.items():
        (dest / "toolchain" / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / "toolchain" / name).write_text(text)
    return dest


def act(repo: Path, env: dict[str, str], *steps: tuple[str, dict[str, str]],
        path_first: str = "") -> subprocess.CompletedProcess[str]:
    body = "".join(HOST_STEP.format(id=step_id, inputs="\n".join(f"          {k}: '{v}'"
                                                                  for k, v in inputs.items()))
                   for step_id, inputs in steps)
    wf = repo / ".github" / "act" / "host.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text(WORKFLOW.format(env="\n".join(f"      {k}: '{v}'" for k, v in env.items()), steps=body))
    git = ["git", "-c", "user.email=lab@pyci.invalid", "-c", "user.name=lab"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "act"], cwd=repo, check=True)
    environ = dict(os.environ)
    if path_first:
        environ["PATH"] = f"{path_first}{os.pathsep}{environ['PATH']}"
    command = [str(lab_tool("act")), "push", "-W", str(wf), "-P", "ubuntu-latest=-self-hosted",
               "--pull=false", "--action-cache-path", str(repo.parent / "act"),
               "--local-repository", f"actions/cache@v4={ACTIONS_CACHE}"]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=900, env=environ)
    # act's per-step times (`✅  Success - Main pyci run [41.2s]`) and pyci's own, for the -s report.
    print("\n".join(line for line in (done.stdout + done.stderr).splitlines()
                    if re.search(r"(Success|Failure) - |-duration=", line)))
    return done


def job_env(tmp_path: Path, server: downloads.Server, pinned: dict[str, str]) -> dict[str, str]:
    versions = tmp_path / "versions.env"
    versions.write_text(downloads.versions_env(pinned))
    return {"PYCI_DOWNLOAD_BASE": server.base, "PYCI_VERSIONS_FILE": str(versions),
            "TILT_DISABLE_ANALYTICS": "1"}


def lab_kubeconfig(repo: Path, control_plane) -> str:
    flat = subprocess.run([str(lab_tool("kubectl")), "config", "view", "--raw", "--flatten",
                           "--kubeconfig", str(control_plane.kubeconfig)],
                          capture_output=True, text=True, check=True, timeout=60)
    (repo / "lab-kubeconfig").write_text(flat.stdout)
    (repo / "lab-kubeconfig").chmod(0o600)
    return "lab-kubeconfig"


def lines_with(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


def test_host_action_installs_verified_tools_and_runs_pyci_on_the_runner(
        tmp_path: Path, repo_copy: Path, site, control_plane, docker_client) -> None:
    """Two uses in one job: hello deploys green against the lab's API server; the second use finds
    pyci's venv and every tool in the cache (nothing downloaded again) and runs a Tiltfile whose
    local_resource builds with the runner's go and make and runs its node."""
    server, pinned = site
    before = len(server.requests)
    kubeconfig = lab_kubeconfig(repo_copy, control_plane)
    common = {"cluster": "existing", "kubeconfig": kubeconfig, "registry-image": "pyci-lab/registry:latest",
              "timeout": "3m", "wait-timeout": "2m"}
    done = act(repo_copy, job_env(tmp_path, server, pinned),
               ("hello", {**common, "working-directory": "examples/hello", "cluster-name": "act-host",
                          "namespaces": "default",
                          "tilt-args": "--base-image=pyci-lab/base:latest --allow-context=pyci-lab"}),
               ("toolchain", {**common, "working-directory": "toolchain", "cluster-name": "act-host-tc",
                              "wait": "false"}))
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-8000:]
    assert "hello-result=success junit=pyci-junit.xml" in log, log[-8000:]
    assert "toolchain-result=success junit=pyci-junit.xml" in log, log[-8000:]
    assert "topology: host" in log, log[-8000:]  # pyci ran on the runner, not in a container
    assert "readiness: 3/3 workloads healthy" in log, log[-8000:]
    # The first use downloaded and verified each tool once; the second downloaded nothing.
    installed = [t for t in TOOLS if pinned[f"{t.upper()}_SHA256_AMD64"] != "UNKNOWN"]
    assert sorted(server.requests[before:]) == sorted("/" + downloads.url_path(t, pinned) for t in installed)
    assert len(lines_with(log, "downloaded, sha256 verified")) == len(installed), log[-8000:]
    assert len(lines_with(log, "cached, sha256 re-checked")) == len(installed), log[-8000:]
    assert len(lines_with(log, "pyci: reusing ")) == 1, log[-8000:]
    for tool in installed:
        version = pinned[f"{tool.upper()}_VERSION"]
        assert (tmp_path / "act" / "tool_cache" / "pyci" / tool / version / "amd64" / tool).is_file(), tool
    # local_resource ran the runner's own toolchains.
    assert re.search(r"built by the runner's go go1\.\d+", log), log[-8000:]
    assert re.search(r"node v\d+\.\d+\.\d+ from the runner", log), log[-8000:]
    for cluster in ("act-host", "act-host-tc"):
        left = docker_client.containers.list(all=True, filters={"label": f"io.pyci.cluster={cluster}"})
        assert left == [], [c.name for c in left]


def test_host_action_refuses_a_wrong_checksum_and_runs_nothing(tmp_path: Path, repo_copy: Path, site,
                                                               docker_client) -> None:
    server, pinned = site
    wrong = "0123456789abcdef" * 4
    done = act(repo_copy, job_env(tmp_path, server, {**pinned, "KUBECTL_SHA256_AMD64": wrong}),
               ("bad", {"working-directory": "examples/hello", "cluster-name": "act-host-bad"}))
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-6000:]
    mismatch = lines_with(log, "checksum mismatch")
    assert len(mismatch) == 1, mismatch
    url = f"{server.base}/{downloads.url_path('kubectl', pinned)}"
    expected = (f"kubectl {pinned['KUBECTL_VERSION']} (linux/amd64): checksum mismatch for {url}: "
                f"expected sha256 {wrong}, got {pinned['KUBECTL_SHA256_AMD64']}")
    assert expected in mismatch[0], mismatch
    assert "bad-result= " in log, log[-6000:]  # pyci run never started: no result
    assert not (tmp_path / "act" / "tool_cache" / "pyci" / "kubectl" / pinned["KUBECTL_VERSION"] / "amd64" /
                "kubectl").exists()
    left = docker_client.containers.list(all=True, filters={"label": "io.pyci.cluster=act-host-bad"})
    assert left == []


def test_host_action_on_a_real_kind_cluster(tmp_path: Path, repo_copy: Path, site, node_image: str,
                                            docker_client) -> None:
    """The default path, cluster: kind, on the lab's node image: the kind the action installed creates
    the cluster (the lab's docker shim first in PATH, see test_kind.py), and the corpus's kitchen sink
    goes green on the runner (its helm() and kubectl are the ones the action installed; its ext://
    extension repo is a local git repository, outside the checkout)."""
    from tests.e2e.test_corpus import KITCHEN_SINK_ARGS, KITCHEN_SINK_COMPONENTS, corpus_workspace
    from tests.e2e.test_kind import without_kind_network

    server, pinned = site
    corpus = corpus_workspace(tmp_path / "corpus", "kitchen-sink")
    shutil.copytree(corpus / "kitchen-sink", repo_copy / "corpus" / "kitchen-sink")
    env = job_env(tmp_path, server, pinned) | {"CORPUS_EXTENSIONS": f"file://{corpus / 'extensions-repo'}"}
    cluster = f"act-host-kind-{os.getpid()}"
    without_kind_network(docker_client)
    # Other runs on this daemon may be using kind's network; then this run neither makes nor removes it.
    shared_network = "kind" in {n.name for n in docker_client.networks.list()}
    try:
        done = act(repo_copy, env,
                   ("kind", {"working-directory": "corpus/kitchen-sink", "cluster-name": cluster,
                             "node-image": node_image, "registry-image": "pyci-lab/registry:latest",
                             "timeout": "5m", "tilt-args": KITCHEN_SINK_ARGS}),
                   path_first=str(SHIM))
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-8000:]
        assert "kind-result=success junit=pyci-junit.xml" in log, log[-8000:]
        assert "topology: host" in log
        assert "hello, pyci, from an ext:// extension" in log  # the runner's git fetched the extension
        assert "arrays: 3" in log and "lint ok" in log
        assert "smoke ok: the port-forward serves index.html, scratch.tmp ignored" in log
        healthy = re.search(r"all (\d+) components are healthy", log)
        assert healthy and int(healthy.group(1)) >= len(KITCHEN_SINK_COMPONENTS), log[-6000:]
        registry = re.search(r"kind-registry=(\S+)", log)
        assert registry, log[-4000:]
        assert_nothing_left(docker_client, cluster, registry.group(1), kind_network=not shared_network)
    finally:
        kind = str(lab_tool("kind"))
        clusters = subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, timeout=60)
        if cluster in clusters.stdout.split():
            subprocess.run([kind, "delete", "cluster", "--name", cluster], capture_output=True, timeout=120)
