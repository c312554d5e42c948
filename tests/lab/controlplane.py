"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager +
kube-scheduler + kwok, as processes on 127.0.0.1 with free ports and a temp dir.

kwok plays the kubelet (no container can run here): pods on its node turn Running/Ready, and pods
labelled `pyci-lab/behavior=<crashloop|oomkilled|imagepull|notready|failed>` get that failure
(see kwok-stages.yaml). Everything else is the real Kubernetes code.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

HERE = Path(__file__).resolve().parent
CONTEXT = "pyci-lab"
NODE = "pyci-lab-node"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_certs(d: Path) -> None:
    """A throwaway CA, a serving cert for 127.0.0.1/localhost, and the service-account key."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-subj", "/CN=pyci-lab-ca", "-days", "3", cwd=d)
    (d / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.96.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=d)
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "apiserver.crt", "-days", "3", "-extfile", "san.ext", cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)


@dataclass
class ControlPlane:
    bin_dir: Path
    etcd_bin: str = "etcd"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pyci-lab-cp-")))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    server: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def context(self) -> str:
        return CONTEXT

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    def api_client(self):  # -> kubernetes.client.ApiClient
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig), context=CONTEXT)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> ControlPlane:
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        _make_certs(self.workdir)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self._spawn("etcd", [
            self.etcd_bin, "--name", "lab", "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"lab=http://127.0.0.1:{peer_port}",
        ])
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        d = self.workdir
        self._spawn("kube-apiserver", [
            str(self.bin_dir / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(api_port),
            "--tls-cert-file", str(d / "apiserver.crt"), "--tls-private-key-file", str(d / "apiserver.key"),
            "--client-ca-file", str(d / "ca.crt"),
            "--token-auth-file", str(d / "tokens.csv"),
            "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(d / "sa.key"),
            "--service-account-signing-key-file", str(d / "sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/16",
            # No kubelet mounts tokens here; skipping the plugin avoids racing the SA controller.
            # TaintNodesByCondition would taint the kwok node not-ready until a node-lifecycle
            # controller clears it; the lab runs none (it would evict pods when heartbeats lag).
            "--disable-admission-plugins", "ServiceAccount,TaintNodesByCondition",
            "--enable-priority-and-fairness=false",
        ])
        self.server = f"https://127.0.0.1:{api_port}"
        self._write_kubeconfig()
        self._wait_http("/readyz", timeout, deadline_from=t0)
        timings["apiserver"] = time.monotonic() - t0
        kc = str(self.kubeconfig)
        self._spawn("kube-controller-manager", [
            str(self.bin_dir / "kube-controller-manager"), "--kubeconfig", kc,
            "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
            "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--service-account-private-key-file", str(d / "sa.key"), "--root-ca-file", str(d / "ca.crt"),
            "--use-service-account-credentials=false",
            "--controllers", "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller",
        ])
        self._spawn("kube-scheduler", [
            str(self.bin_dir / "kube-scheduler"), "--kubeconfig", kc,
            "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
            "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
        ])
        self._spawn("kwok", [
            str(self.bin_dir / "kwok"), "--kubeconfig", kc, "--config", str(HERE / "kwok-stages.yaml"),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
            "--node-ip", "10.250.0.1", "--cidr", "10.250.0.0/16",
        ])
        self._create_node()
        self._wait_ready(timeout, t0)
        timings["total"] = time.monotonic() - t0
        self.timings = timings
        return self

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()
        subprocess.run(["rm", "-rf", str(self.workdir)], check=False, timeout=60)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    # --- helpers -------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        # Debian's etcd 3.4 lacks the progress notifications that client-go's streaming list needs;
        # without this every client falls back after an error and a delay.
        env = {**os.environ, "KUBE_FEATURE_WatchListClient": "false"}
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _write_kubeconfig(self) -> None:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT,
            "clusters": [{"name": CONTEXT, "cluster": {"server": self.server,
                                                        "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
        }
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(cfg, f)

    def _get(self, path: str) -> requests.Response:
        return requests.get(self.server + path, headers={"Authorization": f"Bearer {self.token}"},
                            verify=str(self.ca_file), timeout=5)

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = self.log_tail(name)
                raise RuntimeError(f"lab control plane: {name} exited ({p.returncode}):\n{tail}")

    def _wait_http(self, path: str, timeout: float, deadline_from: float) -> None:
        while time.monotonic() - deadline_from < timeout:
            self._check_alive()
            with contextlib.suppress(requests.RequestException):
                if self._get(path).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"lab control plane: {path} not ready after {timeout}s:\n"
                           f"{self.log_tail('kube-apiserver')}")

    def _create_node(self) -> None:
        from kubernetes import client

        node = client.V1Node(metadata=client.V1ObjectMeta(
            name=NODE,
            annotations={"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            labels={"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", "type": "kwok"}))
        client.CoreV1Api(self.api_client()).create_node(node)

    def _wait_ready(self, timeout: float, t0: float) -> None:
        """Until the node is Ready and the default service account exists (controllers up)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        while time.monotonic() - t0 < timeout:
            self._check_alive()
            node = core.read_node(NODE)
            conditions = (node.status.conditions if node.status else None) or []
            ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
            sas = core.list_namespaced_service_account("default").items
            if ready and any(sa.metadata and sa.metadata.name == "default" for sa in sas):
                return
            time.sleep(0.2)
        raise RuntimeError("lab control plane: node not Ready or no default service account in time:\n"
                           + self.log_tail("kwok") + "\n" + self.log_tail("kube-controller-manager"))
