"""Benchmark on real kind (tools/bench, the default mode): time to a verdict of the plain recipe against
`pyci run`, on the same apps, interleaved, on this machine's daemon.

Methods
  plain     kind's local-registry script, step by step as a CI job runs it: the registry container
            (`docker run -p 127.0.0.1:<port>:5000`), `kind create cluster` with the containerd
            certs.d patch, hosts.toml on every node (`docker exec`), `docker network connect kind`,
            the local-registry-hosting ConfigMap (`kubectl apply`), `kind load docker-image` for each
            third-party image the manifests name (the node cannot pull them here), `tilt ci`; then
            `kind delete cluster` and `docker rm` of the registry. Its kubeconfig is a file of its own.
  pyci      `pyci run` with its defaults (cluster kind, local registry), as tests/e2e/test_kind.py
            starts it (build-ahead on where pyci has that input);
  pyci-no-build-ahead
            `pyci run --build-ahead false`, only when pyci has that input: no builds or pulls ahead,
            but the third-party images the daemon has are still loaded into the node, as the plain
            recipe does (before that, examples/shop failed here: ErrImagePull for its db image).
  ctlptl    tilt-dev/ctlptl's own set-up, when PYCI_BENCH_CTLPTL names a ctlptl binary: one
            `ctlptl apply` of a Registry (the lab's registry image, loopback) and a kind Cluster wired
            to it (the lab's node image via kindExtraCreateArguments), `kind load docker-image` for the
            third-party images, `tilt ci`; then `ctlptl delete` of both. The Go module proxy answers 403
            for github.com/tilt-dev/ctlptl, so it cannot be installed here: build it from a source
            snapshot (README, "The benchmark") and point PYCI_BENCH_CTLPTL at it.
Apps: examples/hello (2 images), examples/shop (4 images, a third-party db), and for the time to a
failing verdict examples/broken (an api that crashes on start).

Each repetition runs every app with every method; the methods' order rotates by one each repetition
(benchstats.rotation), so none always goes first. "To verdict" is the time until the run knew the
answer (plain: the set-up plus `tilt ci`; pyci: its whole run less its own cleanup stage, from its
JUnit); "with cleanup" is the whole wall time. The table gives medians, min and max over the runs that
ended as they should; a run that did not is counted in the ok column and its log is kept.

Cold builds, fairly: `docker builder prune -af` would empty the BuildKit cache of everyone on this
shared daemon (and race their builds), so it is not used. Instead every run gets a copy of examples/
in which each .py file ends with a comment holding a random nonce. Every image of these apps COPYs its
Python sources before its build steps, so each run's COPY layer and everything after it (the RUN steps
of shop's multi-stage builds) misses the cache, for every method alike; only the base image's own
layers, which no method builds, are shared. The "tilt steps cached" count printed per run (the
Dockerfile steps tilt's build log marks [cached], of all it shows) is the evidence: a cold run has
only the steps before the first COPY (a WORKDIR) cached, a build-ahead run has tilt finding the
layers pyci built while kind booted.

Load: the machine has 2 cores shared with other people's clusters and tests; each run records the
load average and how many kind nodes of other clusters were running when it started, and the output
prints both. Everything the bench creates carries its own names (bench-<pid>-…); nothing else is
touched, and on the way out it sweeps only what it made.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import LAB_BIN  # noqa: E402
from tests.lab import benchstats  # noqa: E402
from tests.lab.benchstats import Sample  # noqa: E402
from tests.lab.controlplane import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "tools" / "kind-node" / "shim"
NODE_IMAGE = "pyci-lab/kind-node:v1.34.4"
REGISTRY_IMAGE = "pyci-lab/registry:latest"
BASE_IMAGE = "pyci-lab/base:latest"
TILT_ARGS = [f"--base-image={BASE_IMAGE}"]
TIMEOUT = "5m"  # tilt ci's and pyci's
PROCESS_TIMEOUT = 600


@dataclasses.dataclass(frozen=True)
class App:
    name: str
    third_party: tuple[str, ...]  # images the manifests name and no target builds
    healthy: bool  # True: the run should end green; False: with a failing verdict


APPS = {
    "hello": App("hello", (), True),
    "shop": App("shop", (BASE_IMAGE,), True),
    "broken": App("broken", (), False),
}
CERTS_D_PATCH = '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"'


def env() -> dict[str, str]:
    """PATH with the lab's docker shim (kind's --privileged) and Go tools first; no CI platform variables,
    so pyci runs as on a developer's machine and nothing writes to a job's outputs."""
    out = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "CIRCLE", "INPUT_", "PYCI_"))
           and k not in {"CI", "GITHUB_ACTIONS", "CIRCLECI", "KUBECONFIG"}}
    out["PATH"] = f"{SHIM}{os.pathsep}{LAB_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    # The pyci under test is the one beside this file (a snapshot of a commit, say), not whichever
    # checkout `pip install -e` points at: the working tree may change under a long run.
    paths = [str(REPO / "entrypoint"), os.environ.get("PYTHONPATH", "")]
    out["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    out["TILT_DISABLE_ANALYTICS"] = "1"
    return out


def pyci_has(input_name: str) -> bool:
    """Whether this checkout's pyci knows an input (e.g. build-ahead), from its settings schema."""
    import json

    schema = json.loads((REPO / "entrypoint" / "pyci" / "schema" / "settings.schema.json").read_text())
    return input_name in schema.get("properties", {})


def ctlptl_binary() -> str | None:
    path = os.environ.get("PYCI_BENCH_CTLPTL", "")
    return path if path and os.access(path, os.X_OK) else None


@functools.cache
def daemon_api_version() -> str:
    done = subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip()


def methods() -> list[str]:
    names = ["plain", "pyci"]
    if pyci_has("build-ahead"):
        names.append("pyci-no-build-ahead")
    if ctlptl_binary():
        names.append("ctlptl")
    return names


def unique_sources(dest: Path) -> Path:
    """A copy of examples/ whose every .py file ends with a fresh nonce: cold builds (see the docstring)."""
    examples = dest / "examples"
    shutil.copytree(REPO / "examples", examples, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    nonce = secrets.token_hex(8)
    for py in examples.rglob("*.py"):
        with py.open("a") as f:
            f.write(f"\n# tools/bench nonce {nonce}: a cold build cache for this run\n")
    return examples


class Runner:
    """Runs one method on one app at a time; remembers what it created, to sweep it at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = env()
        self.prefix = f"bench-{os.getpid()}"
        self.clusters: list[str] = []
        self.registries: list[str] = []
        self.ports: list[int] = []  # plain registries' host ports: tilt's tags carry them
        self.count = 0
        found = subprocess.run(["docker", "network", "ls", "-q", "--filter", "name=^kind$"],
                               capture_output=True, text=True, env=self.env, timeout=60, check=False)
        self.had_kind_network = bool(found.stdout.split())

    # --- helpers ------------------------------------------------------------------------------------
    def run(self, cmd: list[str], log: Path, *, check: bool = True, cwd: Path | None = None,
            stdin: str | None = None, extra_env: dict[str, str] | None = None) -> int:
        with log.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else None,
                                    text=True, stdout=out, stderr=subprocess.STDOUT,
                                    env={**self.env, **(extra_env or {})})
            try:
                proc.communicate(stdin, timeout=PROCESS_TIMEOUT)
            except BaseException:  # a timeout or an interrupt: let it clean up (pyci does on SIGTERM)
                proc.terminate()
                try:
                    proc.wait(180)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise
            out.write(f"[exit {proc.returncode}]\n")
        if check and proc.returncode != 0:
            what = " ".join(cmd[:2])
            raise RuntimeError(f"{what} exited {proc.returncode} (log {log})")
        return proc.returncode

    @staticmethod
    def timed(phases: dict[str, float], name: str, fn: Callable[[], object]) -> object:
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            phases[name] = phases.get(name, 0.0) + time.monotonic() - t0

    def other_kind_nodes(self) -> int:
        done = subprocess.run(["docker", "ps", "-q", "--filter", "label=io.x-k8s.kind.role"],
                              capture_output=True, text=True, env=self.env, timeout=60, check=False)
        return len(done.stdout.split())

    def next_name(self, method: str, app: str) -> str:
        self.count += 1
        short = {"pyci-no-build-ahead": "pycinb"}.get(method, method)
        return f"{self.prefix}-{self.count}-{short}-{app}"

    # --- one run ------------------------------------------------------------------------------------
    def sample(self, app: App, method: str, rep: int) -> Sample:
        name = self.next_name(method, app.name)
        run_dir = self.work / name
        run_dir.mkdir()
        examples = unique_sources(run_dir)
        load, others = os.getloadavg()[0], self.other_kind_nodes()
        log = self.work / f"{name}.log"
        try:
            if method == "plain":
                verdict, total, ok, phases, note = self.plain(app, examples / app.name, name, log)
            elif method == "ctlptl":
                verdict, total, ok, phases, note = self.ctlptl(app, examples / app.name, name, log)
            else:
                verdict, total, ok, phases, note = self.pyci(app, examples / app.name, name, log, run_dir,
                                                             build_ahead=method == "pyci")
        finally:
            shutil.rmtree(examples, ignore_errors=True)
        cached, steps = benchstats.tilt_cache_hits(log.read_text(errors="replace"))
        return Sample(app.name, method, rep, verdict, total, ok, phases, load, others, cached, steps, note)

    def plain(self, app: App, src: Path, name: str, log: Path
              ) -> tuple[float, float, bool, dict[str, float], str]:
        phases: dict[str, float] = {}
        kubeconfig = str(log.with_suffix(".kubeconfig"))
        kube = {"KUBECONFIG": kubeconfig}
        reg = f"{name}-registry"
        port = free_port()
        t0 = time.monotonic()
        self.registries.append(reg)
        self.ports.append(port)
        self.clusters.append(name)
        ok, note = False, ""
        try:
            self.timed(phases, "registry", lambda: self.run(
                ["docker", "run", "-d", "--restart=always", "-p", f"127.0.0.1:{port}:5000",
                 "--network", "bridge", "--name", reg, REGISTRY_IMAGE], log))
            config = ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\ncontainerdConfigPatches:\n- |-\n"
                      + "".join(f"  {line}\n" for line in CERTS_D_PATCH.splitlines()))
            self.timed(phases, "kind create", lambda: self.run(
                ["kind", "create", "cluster", "--name", name, "--image", NODE_IMAGE, "--config=-"], log,
                stdin=config, extra_env=kube))

            def wire() -> None:
                nodes = subprocess.run(["kind", "get", "nodes", "--name", name], capture_output=True,
                                       text=True, env=self.env, timeout=60, check=True).stdout.split()
                directory = f"/etc/containerd/certs.d/localhost:{port}"
                for node in nodes:
                    self.run(["docker", "exec", node, "mkdir", "-p", directory], log)
                    self.run(["docker", "exec", "-i", node, "cp", "/dev/stdin", f"{directory}/hosts.toml"],
                             log, stdin=f'[host."http://{reg}:5000"]\n')
                self.run(["docker", "network", "connect", "kind", reg], log)
                configmap = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local-registry-hosting\n"
                             "  namespace: kube-public\ndata:\n  localRegistryHosting.v1: |\n"
                             f'    host: "localhost:{port}"\n'
                             '    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n')
                self.run(["kubectl", "apply", "-f", "-"], log, stdin=configmap, extra_env=kube)

            self.timed(phases, "wire registry", wire)
            ok, note = self.load_and_tilt(app, src, name, log, kube, phases)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            note = str(e)
        verdict = time.monotonic() - t0
        self.timed(phases, "cleanup", lambda: self.delete_plain(name, reg, log, kube))
        total = time.monotonic() - t0
        self.untag(port)  # not part of the recipe (a CI machine is thrown away): untimed
        return verdict, total, ok, phases, note

    def ctlptl(self, app: App, src: Path, name: str, log: Path
               ) -> tuple[float, float, bool, dict[str, float], str]:
        ctlptl = ctlptl_binary() or "ctlptl"
        phases: dict[str, float] = {}
        # ctlptl's Docker client (API 1.52) does not negotiate down to an older daemon (the lab's: 1.41).
        kube = {"KUBECONFIG": str(log.with_suffix(".kubeconfig")), "DOCKER_API_VERSION": daemon_api_version()}
        reg, port = f"{name}-registry", free_port()
        # ctlptl names a kind cluster by its kube context: kind-<name> is kind cluster <name>.
        doc = (f"apiVersion: ctlptl.dev/v1alpha1\nkind: Registry\nname: {reg}\nport: {port}\n"
               f"listenAddress: 127.0.0.1\nimage: {REGISTRY_IMAGE}\n---\n"
               f"apiVersion: ctlptl.dev/v1alpha1\nkind: Cluster\nproduct: kind\nname: kind-{name}\n"
               f"registry: {reg}\nkindExtraCreateArguments: [--image, {NODE_IMAGE}]\n")
        t0 = time.monotonic()
        self.registries.append(reg)
        self.ports.append(port)
        self.clusters.append(name)
        ok, note = False, ""
        try:
            self.timed(phases, "ctlptl apply", lambda: self.run([ctlptl, "apply", "-f", "-"], log, stdin=doc,
                                                               extra_env=kube))
            ok, note = self.load_and_tilt(app, src, name, log, kube, phases)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            note = str(e)
        verdict = time.monotonic() - t0

        def delete() -> None:
            self.run([ctlptl, "delete", "-f", "-"], log, check=False, stdin=doc, extra_env=kube)
            self.delete_plain(name, reg, log, kube)  # whatever ctlptl left (nothing, when it works)

        self.timed(phases, "cleanup", delete)
        total = time.monotonic() - t0
        self.untag(port)
        return verdict, total, ok, phases, note

    def load_and_tilt(self, app: App, src: Path, name: str, log: Path, kube: dict[str, str],
                      phases: dict[str, float]) -> tuple[bool, str]:
        """The recipe after its set-up (plain and ctlptl alike): `kind load` of the third-party
        images, then `tilt ci`; (ended as it should, note)."""
        for image in app.third_party:
            load = ["kind", "load", "docker-image", image, "--name", name]
            self.timed(phases, "kind load", functools.partial(self.run, load, log))
        code = self.timed(phases, "tilt ci", lambda: self.run(
            ["tilt", "ci", "--timeout", TIMEOUT, "--port", str(free_port()), "--", *TILT_ARGS], log,
            check=False, cwd=src, extra_env=kube))
        ok = (code == 0) == app.healthy
        return ok, "" if ok else f"tilt ci exited {code}"

    def delete_plain(self, name: str, reg: str, log: Path, kube: dict[str, str]) -> None:
        self.run(["kind", "delete", "cluster", "--name", name], log, check=False, extra_env=kube)
        self.run(["docker", "rm", "-f", "-v", reg], log, check=False)
        self.clusters.remove(name)
        self.registries.remove(reg)

    def untag(self, port: int) -> None:
        """Remove the localhost:<port>/… tags tilt left in the daemon (pyci removes its own)."""
        done = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                              capture_output=True, text=True, env=self.env, timeout=60, check=False)
        tags = [t for t in done.stdout.split() if t.startswith(f"localhost:{port}/")]
        if tags:
            subprocess.run(["docker", "rmi", *tags], capture_output=True, env=self.env, timeout=120,
                           check=False)

    def pyci(self, app: App, src: Path, name: str, log: Path, run_dir: Path, *, build_ahead: bool
             ) -> tuple[float, float, bool, dict[str, float], str]:
        junit = run_dir / "junit.xml"
        cmd = [sys.executable, "-m", "pyci", "run", "--working-directory", str(src), "--cluster-name", name,
               "--node-image", NODE_IMAGE, "--registry-image", REGISTRY_IMAGE, "--junit", str(junit),
               "--artifacts-dir", str(run_dir / "artifacts"), "--summary", "false", "--timeout", TIMEOUT,
               f"--tilt-args={' '.join(TILT_ARGS)}"]
        if pyci_has("build-ahead"):
            cmd += ["--build-ahead", "true" if build_ahead else "false"]
        self.clusters.append(name)
        t0 = time.monotonic()
        try:
            code = self.run(cmd, log, check=False)
        except subprocess.TimeoutExpired:
            code = -1
        total = time.monotonic() - t0
        phases = stage_seconds(junit)
        verdict = total - phases.get("cleanup", 0.0)
        ok = code == (0 if app.healthy else 1)
        self.sweep_pyci(name)
        self.clusters.remove(name)
        return verdict, total, ok, phases, "" if ok else f"pyci exited {code}"

    def sweep_pyci(self, name: str) -> None:
        """pyci removes what it made; if a run did not (a bug, a timeout), remove it here, by its labels."""
        kind = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, env=self.env,
                              timeout=60, check=False)
        if name in kind.stdout.split():
            print(f"  (pyci left cluster {name}: deleting it)", flush=True)
            subprocess.run(["kind", "delete", "cluster", "--name", name], capture_output=True, env=self.env,
                           timeout=180, check=False)
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.pyci.cluster={name}"],
                              capture_output=True, text=True, env=self.env, timeout=60, check=False)
        if left.stdout.split():
            subprocess.run(["docker", "rm", "-f", "-v", *left.stdout.split()], capture_output=True,
                           env=self.env, timeout=120, check=False)

    def sweep(self) -> None:
        """On the way out (an interrupt, an error, the end): delete what this bench made and is still
        there, kind's `kind` network too when the bench's first kind create made it."""
        for name in list(self.clusters):
            subprocess.run(["kind", "delete", "cluster", "--name", name], capture_output=True, env=self.env,
                           timeout=180, check=False)
            self.sweep_pyci(name)
        for reg in list(self.registries):
            subprocess.run(["docker", "rm", "-f", "-v", reg], capture_output=True, env=self.env, timeout=60,
                           check=False)
        for port in self.ports:  # an interrupted plain run's tilt tags (seen: left after a Ctrl-C)
            self.untag(port)
        if not self.had_kind_network:  # `docker network rm` refuses while anything else uses it
            subprocess.run(["docker", "network", "rm", "kind"], capture_output=True, env=self.env, timeout=60,
                           check=False)


def stage_seconds(junit: Path) -> dict[str, float]:
    """pyci's stages and their seconds, from its JUnit report (empty when it wrote none)."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return {}
    return {str(c.get("name")): float(c.get("time", "nan"))
            for c in root.iterfind(".//testcase[@classname='pyci.setup']")}


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def check_lab() -> None:
    missing = [str(LAB_BIN / t) for t in ("kind", "tilt", "kubectl") if not (LAB_BIN / t).is_file()]
    done = subprocess.run(["docker", "image", "inspect", NODE_IMAGE, REGISTRY_IMAGE, BASE_IMAGE],
                          capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        missing.append(f"images {NODE_IMAGE}, {REGISTRY_IMAGE}, {BASE_IMAGE}")
    if missing:
        raise SystemExit(f"bench: the lab is missing {', '.join(missing)}: run tools/lab")


def line(s: Sample) -> str:
    mark = "ok" if s.ok else f"NOT OK ({s.note})"
    phases = ", ".join(f"{k} {v:.1f}" for k, v in s.phases.items())
    return (f"rep {s.rep + 1} {s.app:6} {s.method:20} verdict {s.verdict:6.1f} s  total {s.total:6.1f} s  "
            f"{mark}  [load {s.load:.1f}, other kind nodes {s.others}, "
            f"tilt steps cached {s.cached}/{s.steps}]  {phases}")


def main(reps: int, apps: list[str], fail_reps: int, only: list[str] | None, keep_logs: Path | None,
         budget: float = 0.0, skip: frozenset[tuple[str, str]] = frozenset()) -> int:
    """budget: seconds; when > 0, no repetition starts that the last one's duration says would end past it."""
    check_lab()
    # Started in the background, SIGINT is ignored: SIGINT and SIGTERM both stop the bench cleanly
    # (the run in progress is ended, then what the bench made is swept).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    chosen = [m for m in methods() if not only or m in only]
    work = Path(tempfile.mkdtemp(prefix="pyci-bench-kind-"))
    runner = Runner(work)
    samples: list[Sample] = []
    print(f"bench on real kind: methods {', '.join(chosen)}; apps {', '.join(apps)} x {reps}, "
          f"broken x {fail_reps}; skipped {sorted(f'{a}:{m}' for a, m in skip) or 'none'}; "
          f"node {NODE_IMAGE}; logs in {work}", flush=True)
    print(f"pyci under test: {REPO / 'entrypoint' / 'pyci'}; load now {os.getloadavg()[0]:.1f}")
    if "ctlptl" in chosen:
        print(f"ctlptl: {ctlptl_binary()} (built from a source snapshot: the Go module proxy answers 403)")
    else:
        print("ctlptl: not benchmarked: set PYCI_BENCH_CTLPTL to a ctlptl binary (github.com/tilt-dev/"
              "ctlptl: 403 Forbidden from the Go module proxy, so build it from a source snapshot)")
    started = time.monotonic()
    try:
        last = 0.0
        for rep in range(max(reps, fail_reps)):
            rep_started = time.monotonic()
            if budget and rep and rep_started - started + last > budget:
                print(f"bench: stopping after {rep} repetitions: another would end past the "
                      f"{budget:.0f} s budget (the last took {last:.0f} s)", flush=True)
                break
            todo = [a for a in apps if rep < reps] + (["broken"] if rep < fail_reps else [])
            for app in todo:
                for method in benchstats.rotation(chosen, rep):
                    if (app, method) in skip:
                        continue
                    samples.append(runner.sample(APPS[app], method, rep))
                    print(line(samples[-1]), flush=True)
            last = time.monotonic() - rep_started
    except KeyboardInterrupt:
        print("bench: interrupted; sweeping what it made", flush=True)
    finally:
        runner.sweep()
    print(f"\n{len(samples)} runs in {time.monotonic() - started:.0f} s; logs in {work}\n")
    green = [s for s in samples if s.app != "broken"]
    broken = [s for s in samples if s.app == "broken"]
    if green:
        print("Time to green (seconds):\n" + benchstats.table(green) + "\n")
    if broken:
        print("Time to a failing verdict, examples/broken (an api that crashes on start):\n"
              + benchstats.table(broken) + "\n")
    print(benchstats.load_line(samples))
    for r in benchstats.ratios(broken) + benchstats.ratios(green):
        print(r)
    if "ctlptl" in chosen:  # pyci against ctlptl's set-up too
        for r in benchstats.ratios([s for s in broken + green if s.method in ("pyci", "ctlptl")], "ctlptl"):
            print(r)
    if keep_logs:
        keep_logs.mkdir(parents=True, exist_ok=True)
        for f in work.glob("*.log"):
            shutil.copy2(f, keep_logs / f.name)
    return 0 if all(s.ok for s in samples) else 1
