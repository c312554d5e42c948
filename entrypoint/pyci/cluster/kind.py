"""A kind cluster: config merged with the user's, create with one retry, kubeconfigs, delete."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pyci.cluster.base import ClusterInfo, write_private
from pyci.results import InfrastructureError, InputError

log = logging.getLogger(__name__)

KIND_API_VERSION = "kind.x-k8s.io/v1alpha4"
# Node images older than kind v0.27 read registry hosts only with this; newer ones already do.
CERTS_D_PATCH = '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n'
# kind failures seen to go away on a second try (slow CI machines, docker network races).
TRANSIENT_ERRORS = (
    "failed to init node with kubeadm",
    "could not find a log line that matches",
    "timed out waiting for the condition",
    "error adding container to network",
    # kind picks the API server's host port by binding 127.0.0.1:0 where kind runs; as a sibling
    # container that is pyci's own network namespace, not the daemon's host where docker publishes
    # it (seen: a port the host's other API server held). A second pick is another random port.
    "address already in use",
    "port is already allocated",
)
# kind's own validation of the config: the user's input is wrong, not the infrastructure.
CONFIG_ERRORS = ("invalid configuration", "failed to load config", "unknown field", "error converting YAML")
STDERR_TAIL_LINES = 20
DELETE_ATTEMPTS = 4
DELETE_SETTLE = 1.0  # seconds for a node container still being made to show up


def load_user_config(path: Path | None) -> dict[str, Any]:
    """The user's kind-config, validated; an empty Cluster when none is given."""
    if path is None:
        return {"kind": "Cluster", "apiVersion": KIND_API_VERSION}
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise InputError(f"kind-config: cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise InputError(f"kind-config: {path} is not valid YAML", str(err)) from err
    if not isinstance(data, dict):
        raise InputError(f"kind-config: {path} must be a YAML mapping (a kind Cluster)")
    if data.get("kind") != "Cluster" or data.get("apiVersion") != KIND_API_VERSION:
        raise InputError(
            f"kind-config: {path} must have kind: Cluster and apiVersion: {KIND_API_VERSION}, "
            f"found kind: {data.get('kind')!r}, apiVersion: {data.get('apiVersion')!r}"
        )
    return data


def merge_config(user: dict[str, Any]) -> dict[str, Any]:
    """The user's config plus what pyci needs; their nodes, networking and patches are kept."""
    merged = copy.deepcopy(user)
    patches = merged.get("containerdConfigPatches") or []
    if not isinstance(patches, list):
        raise InputError("kind-config: containerdConfigPatches must be a list of strings")
    if not any("config_path" in str(p) and "/etc/containerd/certs.d" in str(p) for p in patches):
        patches = [*patches, CERTS_D_PATCH]
    merged["containerdConfigPatches"] = patches
    return merged


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (containerd TOML patches) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def render_config(config: dict[str, Any]) -> str:
    return yaml.dump(config, Dumper=_BlockDumper, sort_keys=False)


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def is_transient(stderr: str) -> bool:
    return any(marker in stderr for marker in TRANSIENT_ERRORS)


class KindProvider:
    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        kind_config: Path | None = None,
        node_image: str | None = None,
        kind_bin: str = "kind",
        create_timeout: float = 600.0,
        command_timeout: float = 120.0,
    ) -> None:
        self.name = name
        self.workdir = workdir / name
        self.kind_config = kind_config
        self.node_image = node_image
        self.kind_bin = kind_bin
        self.create_timeout = create_timeout
        self.command_timeout = command_timeout
        self.interrupted = False  # a `kind create` of ours was stopped mid-way (a signal, a timeout)
        # Validate now so a bad input fails before anything is created.
        self.config = merge_config(load_user_config(kind_config))

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    @property
    def network(self) -> str:
        return os.environ.get("KIND_EXPERIMENTAL_DOCKER_NETWORK") or "kind"

    def _run(self, args: Sequence[str], timeout: float,
             own_session: bool = False) -> subprocess.CompletedProcess[str]:
        command = [self.kind_bin, *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                                  start_new_session=own_session)
        except FileNotFoundError as err:
            raise InfrastructureError(
                f"kind not found ({self.kind_bin}): install kind or put it on PATH"
            ) from err
        except subprocess.TimeoutExpired as err:
            stderr = (
                err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else err.stderr or ""
            )
            raise InfrastructureError(
                f"`kind {' '.join(args[:2])}` for cluster {self.name} timed out after {timeout:.0f}s",
                tail(stderr),
            ) from err

    def _check(self, args: Sequence[str], timeout: float | None = None, own_session: bool = False) -> str:
        result = self._run(args, timeout or self.command_timeout, own_session)
        if result.returncode != 0:
            raise InfrastructureError(
                f"`kind {' '.join(args)}` failed (exit {result.returncode})", tail(result.stderr)
            )
        return result.stdout

    def clusters(self) -> list[str]:
        return [line.strip() for line in self._check(["get", "clusters"]).splitlines() if line.strip()]

    def exists(self) -> bool:
        return self.name in self.clusters()

    def nodes(self) -> tuple[str, ...]:
        out = self._check(["get", "nodes", "--name", self.name])
        return tuple(sorted(line.strip() for line in out.splitlines() if line.strip()))

    def create(self, stack: contextlib.ExitStack) -> ClusterInfo:
        kubeconfig = self.workdir / "kubeconfig"
        network = self.network
        if self.exists():
            log.info("kind cluster %s exists: reusing it (it will not be deleted)", self.name)
            write_private(kubeconfig, self._check(["get", "kubeconfig", "--name", self.name]))
            network = self.nodes_network()
        else:
            # Registered before kind starts: a cancel during `kind create` leaves no half-made cluster.
            stack.callback(self.delete)
            self._create(kubeconfig)
        os.chmod(kubeconfig, 0o600)
        internal = write_private(
            self.workdir / "kubeconfig-internal",
            self._check(["get", "kubeconfig", "--internal", "--name", self.name]),
        )
        return ClusterInfo(
            name=self.name,
            kubeconfig=kubeconfig,
            internal_kubeconfig=internal,
            context=self.context,
            nodes=self.nodes(),
            network=network,
        )

    def run_network(self) -> tuple[str, bool]:
        """(the docker network this run's cluster is on, whether it exists already). A reused cluster's
        is its nodes' own, not where kind would put a new one: a KIND_EXPERIMENTAL_DOCKER_NETWORK that
        differs made the registry wait 60 s for a network never made."""
        return (self.nodes_network(), True) if self.exists() else (self.network, False)

    def nodes_network(self) -> str:
        """The docker network a reused cluster's nodes are on: KIND_EXPERIMENTAL_DOCKER_NETWORK says
        where kind puts a cluster it creates, not where someone else's cluster is."""
        wanted, nodes = self.network, self.nodes()
        if not nodes:
            return wanted
        template = "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}"
        try:
            done = subprocess.run(["docker", "inspect", "--format", template, nodes[0]], capture_output=True,
                                  text=True, timeout=self.command_timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return wanted
        on = done.stdout.split() if done.returncode == 0 else []
        if not on or wanted in on:
            return wanted
        found = "kind" if "kind" in on else on[0]
        log.info("kind cluster %s: its nodes are on docker network %s, not %s: using %s",
                 self.name, found, wanted, found)
        return found

    def create_args(self, config_file: Path, kubeconfig: Path) -> list[str]:
        args = ["create", "cluster", "--name", self.name, "--config", str(config_file)]
        args += ["--kubeconfig", str(kubeconfig), "--wait", "0s"]
        if self.node_image:
            args += ["--image", self.node_image]
        return args

    def _create(self, kubeconfig: Path) -> None:
        config_file = write_private(self.workdir / "kind-config.yaml", render_config(self.config))
        kubeconfig.unlink(missing_ok=True)  # kind merges into an existing file
        args = self.create_args(config_file, kubeconfig)
        for attempt in (1, 2):
            started = time.monotonic()
            log.info("creating kind cluster %s (attempt %d): kind %s", self.name, attempt, " ".join(args))
            try:
                result = self._run(args, self.create_timeout)
            except InfrastructureError:
                self.interrupted = True
                self.delete()  # a killed `kind create` leaves its node containers behind
                raise
            self.interrupted = self.interrupted or result.returncode < 0  # killed by a signal
            if result.returncode == 0:
                log.info("kind cluster %s created in %.1fs", self.name, time.monotonic() - started)
                return
            if attempt == 1 and is_transient(result.stderr):
                log.warning(
                    "kind create failed with a known transient error; retrying once:\n%s",
                    tail(result.stderr, 5),
                )
                self.delete()
                continue
            if any(marker in result.stderr for marker in CONFIG_ERRORS):
                raise InputError(
                    f"kind-config: kind rejected the cluster config for {self.name}", tail(result.stderr)
                )
            raise InfrastructureError(
                f"kind could not create cluster {self.name} (exit {result.returncode})", tail(result.stderr)
            )

    def delete(self) -> None:
        log.info("deleting kind cluster %s", self.name)
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            # Its own session: a Ctrl-C (SIGINT to the whole process group) during cleanup must not kill it.
            self._check(["delete", "cluster", "--name", self.name], self.command_timeout, own_session=True)
            # A `kind create` stopped mid-way may still have a `docker run` of a node in flight (its
            # child outlives it): that node shows up after the delete. Look again, delete again.
            if not self.interrupted:
                return
            time.sleep(DELETE_SETTLE)
            left = self._check(["get", "nodes", "--name", self.name]).split()
            if not left:
                return
            log.info("kind cluster %s: %s appeared after the delete; deleting again (%d)", self.name,
                     ", ".join(left), attempt)
