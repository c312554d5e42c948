"""Faults give a reason, then a clean slate (issue 12 item 4), and secrets stay secret (item 5), on the
lab control plane (kwok): the faults that are not about kind. Stopping a kind node is in
tests/e2e/test_kind_faults.py.

- the registry container killed while the run is about to build: exit 3, one line naming it;
- the API server unreachable during the readiness watch (a TCP proxy in front of the lab's API
  server, cut): exit 3, one line naming the API server, within ~20 s instead of wait-timeout;
- the registry port taken by someone else before docker binds it: the run moves to a free port
  with one warning naming the port, and goes green (exit 0): nothing is harmed, nothing to fail;
- a registry password and a token the Tiltfile prints (declared with `::add-mask::`) appear in no
  log, output, JUnit, summary or file of the diagnostics bundle: every byte is scanned.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.test_pipeline import APP, github_env, outputs, run_containers
from tests.lab.cancel import Output, scan_for_secrets

SLOW = Path(__file__).parent / "apps" / "slow" / "deploy.yaml"
SCANNED: dict[str, int] = {}


@pytest.fixture
def namespace(control_plane):
    from kubernetes import client

    name = f"fault-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def command(kubeconfig: Path, workspace: Path, namespace: str, *extra: str, tilt_args: str = "") -> list[str]:
    return [sys.executable, "-m", "pyci", "run", "--cluster", "existing", "--kubeconfig", str(kubeconfig),
            "--registry-image", "pyci-lab/registry:latest", "--cluster-name", f"pyci-{namespace}",
            "--working-directory", str(workspace / "app"),
            f"--tilt-args=--namespace={namespace} {tilt_args}".strip(), "--namespaces", namespace,
            "--junit", str(workspace / "junit.xml"), "--artifacts-dir", str(workspace / "artifacts"),
            "--timeout", "90s", "--wait-timeout", "90s", "--progress-interval", "2s", *extra]


def error_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("::error")]


def start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], Output]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, Output(proc.stdout)


def finish(proc: subprocess.Popen[str], output: Output, timeout: float = 180) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    output.thread.join(timeout=10)
    return output.text()


def test_registry_killed_mid_run_is_an_infrastructure_error(control_plane, namespace, tmp_path, docker_client,
                                                            registry_hosting):
    shutil.copytree(APP, tmp_path / "app")
    env = github_env(tmp_path) | {"PYCI_TEST_PAUSE_AT": "tilt", "PYCI_TEST_PAUSE_SECONDS": "5"}
    proc, output = start(command(control_plane.kubeconfig, tmp_path, namespace), env)
    assert output.wait_for("pyci-test-hook: paused at tilt", 120), output.text()[-3000:]
    registry = f"pyci-{namespace}-registry"
    docker_client.containers.get(registry).kill()
    log = finish(proc, output)
    assert proc.returncode == 3, log[-4000:]
    errors = error_lines(log)
    assert len(errors) == 1, errors
    assert f"the local registry {registry} stopped during the run" in errors[0], errors
    assert outputs(tmp_path)["result"] == "error"
    assert run_containers(docker_client, namespace) == []
    assert registry_hosting.read() is None


class Proxy:
    """A TCP proxy to the lab API server that a test can cut: listener and every connection closed."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.cut_ = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut_:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        self.cut_ = True
        self.listener.close()
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


def proxied_kubeconfig(control_plane, proxy: Proxy, where: Path) -> Path:
    doc = yaml.safe_load(control_plane.kubeconfig.read_text())
    for entry in doc["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = where / "kubeconfig-proxied"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def test_api_server_unreachable_during_readiness_is_an_infrastructure_error(
        control_plane, namespace, tmp_path, docker_client, registry_hosting):
    # tilt ci is done at once (a local_resource applies the workload); readiness then waits on a pod
    # that never turns Ready, and the API server goes away under it.
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(SLOW, app / "slow.yaml")
    (app / "Tiltfile").write_text(
        "allow_k8s_contexts('pyci-lab')\nconfig.define_string('namespace')\ncfg = config.parse()\n"
        "local_resource('apply', cmd='kubectl apply -n %s -f slow.yaml' % cfg.get('namespace'))\n")
    host, _, port = control_plane.server.removeprefix("https://").rpartition(":")
    proxy = Proxy((host, int(port)))
    kubeconfig = proxied_kubeconfig(control_plane, proxy, tmp_path)
    proc, output = start(command(kubeconfig, tmp_path, namespace), github_env(tmp_path))
    try:
        assert output.wait_for("readiness: watching workloads", 120), output.text()[-3000:]
        time.sleep(1)
        cut = time.monotonic()
        proxy.cut()
        log = finish(proc, output)
        took = time.monotonic() - cut
    finally:
        proxy.cut()
        registry_hosting.delete()  # pyci could not reach the cluster to remove it: said so, below
    assert proc.returncode == 3, log[-4000:]
    errors = error_lines(log)
    assert len(errors) == 1, errors
    assert f"the Kubernetes API server at https://127.0.0.1:{proxy.port} stopped answering during the " \
           "readiness watch" in errors[0], errors
    assert took < 45, f"{took:.0f}s after the cut (wait-timeout is 90s)"
    assert "could not restore ConfigMap" in log  # the one thing it could not undo, and it says so
    assert outputs(tmp_path)["result"] == "error"
    assert run_containers(docker_client, namespace) == []
    print(f"API server cut -> exit 3 in {took:.1f}s: {errors[0]}")


def test_a_taken_registry_port_moves_the_registry_with_one_warning(control_plane, namespace, tmp_path,
                                                                    docker_client, registry_hosting):
    shutil.copytree(APP, tmp_path / "app")
    with socket.create_server(("127.0.0.1", 0)) as squatter:  # someone else took the port
        port = squatter.getsockname()[1]
        cmd = command(control_plane.kubeconfig, tmp_path, namespace, "--registry-port", str(port))
        done = subprocess.run(cmd, env=github_env(tmp_path), capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    # (The lab control plane has no docker network: pyci warns about that too, every run here.)
    warnings = [line for line in done.stdout.splitlines() if line.startswith("::warning") and "port" in line]
    assert len(warnings) == 1 and f"registry port {port} is already in use" in warnings[0], warnings
    assert outputs(tmp_path)["registry"] != f"localhost:{port}"
    assert run_containers(docker_client, namespace) == []
    assert registry_hosting.read() is None


def test_secrets_never_reach_logs_outputs_junit_summary_or_the_bundle(control_plane, namespace, tmp_path,
                                                                     docker_client, lab_registry,
                                                                     registry_hosting):
    password, token = f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    shutil.copytree(APP, tmp_path / "app")
    with (tmp_path / "app" / "Tiltfile").open("a") as tiltfile:  # a Tiltfile that prints a deploy token
        tiltfile.write(f"print('::add-mask::{token}')\nprint('deploying with token {token}')\n"
                       f"local_resource('token', cmd='echo the token is {token}')\n")
    env = github_env(tmp_path) | {"INPUT_REGISTRY-PASSWORD": password}
    # A remote registry with a login (the lab's, which takes any), and a crash: the bundle is written.
    cmd = command(control_plane.kubeconfig, tmp_path, namespace, "--registry", f"{lab_registry.host}/ci",
                  "--registry-username", "bob", tilt_args="--break=crashloop")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 1, log[-4000:]
    assert f"deploying with token {'*' * 3}" in log  # the Tiltfile really printed it
    bundle = tmp_path / "artifacts" / "diagnostics"
    assert list(bundle.rglob("*")), "no diagnostics bundle: the scan would prove nothing"
    scanned, found = scan_for_secrets([password, token], tmp_path, log, skip=[tmp_path / "app"])
    SCANNED["kwok"] = scanned
    print(f"scanned {scanned} bytes of log, outputs, JUnit, summary and artifacts")
    assert found == [], found
    # The password really went somewhere a leak could come from: the cluster's pull secret.
    from kubernetes import client

    secret = client.CoreV1Api(control_plane.api_client()).read_namespaced_secret("pyci-registry-auth",
                                                                                 namespace)
    assert secret.data is not None
    assert password in base64.b64decode(secret.data[".dockerconfigjson"]).decode()
    assert run_containers(docker_client, namespace) == []
    assert os.environ.get("INPUT_REGISTRY-PASSWORD") is None
