"""The product image, built offline by tools/build-image, run the ways its users run it.

The dry-run is started exactly as GitHub starts a docker action: every declared input as INPUT_<NAME>
(hyphens kept), workdir /github/workspace, the file-command files GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
mounted under /github/file_commands, and the runner's Docker socket mounted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pyci.settings import INPUTS
from tests.conftest import REPO, lab_tool
from tests.e2e.conftest import IMAGE
from tests.e2e.test_kind import without_kind_network
from tests.lab.github import read_outputs

SOCKET = "/var/run/docker.sock"


RUN_TIMEOUT = 300.0  # seconds a docker run may take; the emulated arm64 run (test_arm64) raises it


def docker_run(names: list[str], *args: str,
               timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    name = f"pyci-e2e-{os.getpid()}-{len(names)}"
    names.append(name)
    return subprocess.run(["docker", "run", "--rm", "--name", name, "--label", "io.pyci.lab=true", *args],
                          capture_output=True, text=True, timeout=timeout or RUN_TIMEOUT)


def test_version_prints_the_bundled_tools(image: str, names: list[str]) -> None:
    done = docker_run(names, "--entrypoint", "pyci", image, "version")
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


def test_entrypoint_is_pyci_run(image: str) -> None:
    config = subprocess.run(["docker", "image", "inspect", "-f", "{{json .Config.Entrypoint}}", image],
                            capture_output=True, text=True, check=True)
    assert config.stdout.strip() == '["pyci","run"]'


def test_the_image_is_the_bundled_tools_plus_at_most_90_mb(image: str, names: list[str]) -> None:
    tools = docker_run(names, "--entrypoint", "/bin/sh", image, "-c",
                       "cd /usr/local/bin && du -cb kind kubectl tilt docker helm")
    assert tools.returncode == 0, tools.stderr
    tools_bytes = int(tools.stdout.splitlines()[-1].split()[0])
    size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image],
                          capture_output=True, text=True, check=True)
    rest_mb = (int(size.stdout) - tools_bytes) / 1e6
    print(f"image {int(size.stdout) / 1e6:.1f} MB = tools {tools_bytes / 1e6:.1f} MB + rest {rest_mb:.1f} MB")
    assert rest_mb <= 90, f"everything but the bundled tools is {rest_mb:.1f} MB"


def test_the_toolbox_real_tiltfiles_call(image: str, names: list[str], tmp_path: Path) -> None:
    """git (tilt clones ext:// extensions with it), bash, curl and jq for local() commands."""
    repo, app = tmp_path / "ext" / "repo", tmp_path / "ext" / "app"
    (repo / "greet").mkdir(parents=True)
    app.mkdir()
    (repo / "greet" / "Tiltfile").write_text('def greet(who):\n    print("hello " + who)\n')
    git = ["git", "-C", str(repo), "-c", "user.email=lab@pyci", "-c", "user.name=lab"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "an extension"]):
        subprocess.run([*git, *args], check=True, timeout=30)
    # helm() runs `helm template` on a local chart; kustomize() falls back to `kubectl kustomize`.
    (app / "chart" / "templates").mkdir(parents=True)
    (app / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (app / "chart" / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-helm\n")
    (app / "kust").mkdir()
    (app / "kust" / "kustomization.yaml").write_text("resources: [cm.yaml]\nnamePrefix: kust-\n")
    (app / "kust" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\n")
    # The default extension repo, moved to a local one: tilt fetches it with the image's git.
    (app / "Tiltfile").write_text('v1alpha1.extension_repo(name="default", url="file:///ext/repo")\n'
                                  'load("ext://greet", "greet")\ngreet("pyci")\n'
                                  'k8s_yaml(helm("chart", name="demo"))\nk8s_yaml(kustomize("kust"))\n')
    script = ("tilt alpha tiltfile-result >result.json && echo ext-loaded; "
              # the https transport is there and loads its libraries: it fails only at connecting
              "git ls-remote https://127.0.0.1:1/x 2>&1 | grep -q 'Failed to connect' "
              "&& echo https-ok; "
              "bash -c 'a=(1 2 3); echo bash-${#a[@]}'; echo '{\"k\": 7}' | jq .k; "
              "curl --version | head -n 1")
    done = docker_run(names, "-v", f"{tmp_path / 'ext'}:/ext", "-w", "/ext/app", "--entrypoint", "/bin/sh",
                      image, "-c", script)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == ["ext-loaded", "https-ok", "bash-3", "7"], done.stdout + done.stderr
    assert lines[4].startswith("curl ")
    objects = (app / "result.json").read_text()
    assert "demo-helm" in objects and "kust-made" in objects  # helm template and kubectl kustomize ran
    version = docker_run(names, "--entrypoint", "pyci", image, "version")
    for tool in ("helm: v3.19.5", "git: git version", "bash: GNU bash", "curl: curl", "jq: jq-"):
        assert tool in version.stdout, version.stdout


def test_the_runtime_has_a_shell_and_archivers_but_no_package_manager(image: str, names: list[str]) -> None:
    # sh for Tiltfiles' local() commands; tar and gzip for a CircleCI primary container.
    done = docker_run(names, "--entrypoint", "/bin/sh", image, "-c",
                      "echo hello | gzip | gzip -d && tar -cf - /etc/passwd | tar -tf - && "
                      "command -v apt-get dpkg pip || echo no-package-manager")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hello", "etc/passwd", "no-package-manager"]


def test_python_in_the_image_has_tls_and_the_ca_bundle(image: str, names: list[str]) -> None:
    code = ("import ssl, ctypes, uuid, zlib, bz2, lzma, hashlib, threading\n"
            "ctx = ssl.create_default_context()\n"
            "assert ctx.cert_store_stats()['x509_ca'] > 50, ctx.cert_store_stats()\n"
            "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
            "print('ok')")
    done = docker_run(names, "--entrypoint", "python3", image, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def github_docker_action(tmp_path: Path, names: list[str], image: str, *docker_args: str,
                         args: tuple[str, ...] = ("--dry-run",),
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
        # ignored below: mypy cannot tell that this **dict (hyphenated names) leaves `args` alone
        tmp_path, names, image, **{"working-directory": "examples/hello", "cluster-name": "e2e-hello"},  # type: ignore[arg-type]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pyci run --dry-run: nothing is created" in done.stdout
    assert "platform      github" in done.stdout
    assert "tiltfile      examples/hello/Tiltfile" in done.stdout
    assert "kind cluster e2e-hello" in done.stdout
    assert (commands / "set_output").read_text() == ""  # a dry run reports nothing


def test_a_bad_input_exits_2_with_one_clear_line(image: str, names: list[str], tmp_path: Path) -> None:
    done, _ = github_docker_action(
        # ignored below: mypy cannot tell that this **dict (hyphenated names) leaves `args` alone
        tmp_path, names, image, **{"working-directory": "examples/hello", "timeout": "forever"},  # type: ignore[arg-type]
    )
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


ORB_SCRIPT = REPO / "orb" / "src" / "scripts" / "run.sh"


def orb_env(project: Path, **extra: str) -> dict[str, str]:
    """What the orb's run-pyci command sets: PYCI_* parameters, CircleCI's own variables."""
    return {"CIRCLECI": "true", "CI": "true", "CIRCLE_WORKING_DIRECTORY": str(project),
            "PYCI_IMAGE": IMAGE, "PYCI_WORKING_DIRECTORY": "examples/hello",
            "PYCI_REGISTRY": "ghcr.io/acme/ci", "PYCI_REGISTRY_USERNAME": "bob",
            "PYCI_REGISTRY_PASSWORD_ENV": "ACME_TOKEN", **extra}


def test_orb_script_in_the_image_as_a_circleci_docker_executor(image: str, names: list[str],
                                                               tmp_path: Path) -> None:
    # The docker executor runs the step in pyci's image with its /bin/sh, busybox's.
    project = tmp_path / "project"
    shutil.copytree(REPO / "examples", project / "examples")

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        env_args = [a for k, v in orb_env(Path("/root/project"), **extra).items() for a in ("-e", f"{k}={v}")]
        return docker_run(names, *env_args, "-v", f"{ORB_SCRIPT}:/orb/run.sh:ro",
                          "-v", f"{project}:/root/project", "-w", "/root/project",
                          "-v", f"{SOCKET}:{SOCKET}", "--entrypoint", "/bin/sh",
                          image, "/orb/run.sh", "--dry-run")

    missing = run()  # the variable registry-password-env names is not set in the project
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "registry-password: is missing" in missing.stderr
    given = run(ACME_TOKEN="s3cret-token")
    assert given.returncode == 0, given.stdout + given.stderr
    assert "nothing is created" in given.stdout
    assert "s3cret-token" not in given.stdout + given.stderr
    bad = run(PYCI_REGISTRY_PASSWORD_ENV="$(reboot)")
    assert bad.returncode == 2 and "is not a variable name" in bad.stderr, bad.stderr


def test_orb_script_on_a_circleci_machine_executor(image: str, tmp_path: Path) -> None:
    # A machine executor: pyci is not installed on the VM, so the script runs the image beside the
    # VM's daemon with the project mounted at the same path.
    project = tmp_path / "project"
    shutil.copytree(REPO / "examples", project / "examples")
    docker = shutil.which("docker")
    assert docker
    path = f"{Path(docker).parent}:/usr/bin:/bin"
    assert shutil.which("pyci", path=path) is None, "pyci must not be on the machine executor's PATH"
    env = {"PATH": path, "HOME": str(tmp_path), **orb_env(project, ACME_TOKEN="s3cret-token")}
    done = subprocess.run(["sh", str(ORB_SCRIPT), "--dry-run"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing is created" in done.stdout
    assert "platform      circleci" in done.stdout  # pyci read CircleCI's variables in the image


def test_green_on_real_kind_as_a_github_docker_action_sibling(image: str, names: list[str], tmp_path: Path,
                                                               node_image: str, docker_client) -> None:
    """The GitHub way on a real kind cluster: the image as a sibling container on the runner's daemon
    (socket mounted, no --network host). pyci creates registry and cluster, joins kind's network and
    reaches the API server through it.

    The one lab difference: the docker shim (tools/kind-node/shim, first in PATH) that maps kind's
    --privileged onto the capabilities this daemon has; it reads them from the daemon's side.
    """
    shim = REPO / "tools" / "kind-node" / "shim"
    done, commands = github_docker_action(
        tmp_path, names, image, "-v", f"{shim}:/shim:ro", "-e", "PATH=/shim:/usr/local/bin:/usr/bin",
        args=(), **{"working-directory": "examples/hello", "node-image": node_image,
                    "registry-image": "pyci-lab/registry:latest", "timeout": "5m",
                    "tilt-args": "--base-image=pyci-lab/base:latest"})
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert "topology: sibling" in done.stdout, done.stdout[-3000:]
    out = outputs(commands)
    assert out["result"] == "success", out
    summary = (commands / "step_summary").read_text()
    for component in ("api", "web", "migrate"):
        assert f"`{component}`" in summary, summary
    cluster = out["cluster-name"]
    assert cluster.startswith("pyci-"), cluster  # a name of the run's own
    kind = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    assert cluster not in kind.stdout.split(), kind.stdout
    for label in (f"io.pyci.cluster={cluster}", f"io.x-k8s.kind.cluster={cluster}"):
        left = docker_client.containers.list(all=True, filters={"label": label})
        assert left == [], [c.name for c in left]


@pytest.mark.nightly  # README: test_cancel's tilt/docker-kill and kind-middle/docker-stop cover it every run
def test_docker_kill_of_the_action_container_leaves_nothing(image: str, names: list[str], tmp_path: Path,
                                                            node_image: str, docker_client) -> None:
    """GitHub's cancel: `docker kill` of the action's container while kind creates the cluster. pyci
    dies with no chance to clean up; its reaper (started beside it) removes what the run made."""
    shim = REPO / "tools" / "kind-node" / "shim"
    started, _ = github_docker_action(
        tmp_path, names, image, "-d", "-v", f"{shim}:/shim:ro", "-e", "PATH=/shim:/usr/local/bin:/usr/bin",
        args=(), **{"working-directory": "examples/hello", "node-image": node_image,
                    "registry-image": "pyci-lab/registry:latest", "cluster-name": f"e2e-kill-{os.getpid()}"})
    assert started.returncode == 0, started.stderr
    cluster = f"e2e-kill-{os.getpid()}"
    node = {"label": f"io.x-k8s.kind.cluster={cluster}"}
    deadline = time.monotonic() + 120
    while not docker_client.containers.list(filters=node):
        assert time.monotonic() < deadline, "kind's node never started"
        time.sleep(0.2)
    assert docker_client.containers.list(filters={"label": "io.pyci.reaper"}), "no reaper beside pyci"
    killed = time.monotonic()
    subprocess.run(["docker", "kill", names[-1]], capture_output=True, check=True, timeout=30)

    def left() -> list[str]:
        things = []
        for label in (f"io.x-k8s.kind.cluster={cluster}", f"io.pyci.cluster={cluster}", "io.pyci.reaper"):
            things += [c.name for c in docker_client.containers.list(all=True, filters={"label": label})]
        marker = {"label": f"io.pyci.owns-cluster={cluster}"}
        return things + [v.name for v in docker_client.volumes.list(filters=marker)]

    while left():
        assert time.monotonic() - killed < 30, f"left 30 s after docker kill: {left()}"
        time.sleep(0.5)
    print(f"everything gone {time.monotonic() - killed:.1f}s after docker kill")
    kind = subprocess.run([str(lab_tool("kind")), "get", "clusters"], capture_output=True, text=True,
                          timeout=60)
    assert cluster not in kind.stdout.split()
    without_kind_network(docker_client)  # kind's own network is the one thing kind never removes
