"""The linux/arm64 image, proved in the lab under qemu user-mode emulation (issue 22.2). Nightly: the
arm64 parts of the lab are built only when asked (`PYCI_LAB_ARM64=1 tools/lab`; `PYCI_TEST_NIGHTLY=1
tools/test` asks), and a missing part fails here saying what to run, never a silent skip.

Real: Debian's qemu-user-static registered with binfmt_misc, the arm64 image built FROM a debootstrap
arm64 base with the tools cross-built from source (tilt by build-tilt.sh, as the release builds it),
the lab's registry and daemon, a real kind cluster. The kind node and the app's images stay amd64 (the
host's architecture): only pyci and its tools run emulated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LAB_CACHE, REPO
from tests.e2e import test_image
from tests.e2e.test_image import SOCKET, github_docker_action, outputs
from tests.lab.leftovers import E2E_ARM64_IMAGE

pytestmark = pytest.mark.nightly

ARM64_BIN = LAB_CACHE / "bin-arm64"
ARM64_BASE = "pyci-lab/base-arm64:latest"
HINT = "PYCI_LAB_ARM64=1 tools/lab (or PYCI_TEST_NIGHTLY=1 tools/test)"
EM_AARCH64 = 183  # ELF e_machine
EM_X86_64 = 62


def arm64_missing(what: str) -> None:
    pytest.fail(f"arm64 lab part missing: {what}. Build it with `{HINT}` (README: the nightly matrix).",
                pytrace=False)


@pytest.fixture(scope="session")
def arm64_image(docker_client, lab_images) -> str:
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        arm64_missing("qemu-aarch64 in binfmt_misc (tools/lab-qemu)")
    try:
        docker_client.images.get(ARM64_BASE)
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound
        arm64_missing(f"image {ARM64_BASE}")
    for tool in ("kind", "kubectl", "tilt", "helm"):
        if not os.access(ARM64_BIN / tool, os.X_OK):
            arm64_missing(f"{ARM64_BIN / tool} (GOARCH=arm64 tools/build-go-tools)")
    started = time.monotonic()
    done = subprocess.run([str(REPO / "tools" / "build-image"), "--reuse", "--arch", "arm64",
                           E2E_ARM64_IMAGE],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout, f"arm64 image ready in {time.monotonic() - started:.0f}s")
    return E2E_ARM64_IMAGE


def elf_machines(image: str) -> dict[str, int]:
    """Every ELF file in the image's filesystem -> its e_machine, read from `docker export` (nothing
    runs: the container is created, exported and removed)."""
    created = subprocess.run(["docker", "create", "--label", "io.pyci.lab=true", image], capture_output=True,
                             text=True, timeout=120, check=True)
    container = created.stdout.strip()
    found: dict[str, int] = {}
    try:
        with subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE) as export:
            assert export.stdout is not None
            with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
                for member in tar:
                    if not member.isfile() or member.size < 20:
                        continue
                    f = tar.extractfile(member)
                    head = f.read(20) if f else b""
                    if head[:4] == b"\x7fELF":
                        found[member.name] = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
        assert export.returncode == 0
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
    return found


def test_every_elf_in_the_arm64_image_is_aarch64(arm64_image: str) -> None:
    machines = elf_machines(arm64_image)
    assert len(machines) > 50, sorted(machines)  # the interpreter, libraries, busybox, git, the tools
    wrong = {name: m for name, m in machines.items() if m != EM_AARCH64}
    assert wrong == {}, wrong
    for tool in ("kind", "kubectl", "tilt", "helm", "docker"):
        assert f"usr/local/bin/{tool}" in machines, tool
    print(f"{len(machines)} ELF files, all aarch64")


def run(image: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "run", "--rm", "--label", "io.pyci.lab=true", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_pyci_and_each_tool_report_their_versions_under_emulation(arm64_image: str) -> None:
    from pyci.cli import pinned_versions

    pins = pinned_versions()
    started = time.monotonic()
    done = run(arm64_image, "--entrypoint", "pyci", arm64_image, "version")
    assert done.returncode == 0, done.stderr
    assert f"kind: kind {pins['KIND_VERSION']}" in done.stdout, done.stdout
    script = ("uname -m; kind version; kubectl version --client; tilt version; helm version --short; "
              "docker --version; git --version; jq --version; socat -V | head -n 2; python3 --version")
    tools = run(arm64_image, "--entrypoint", "/bin/sh", arm64_image, "-c", script)
    seconds = time.monotonic() - started
    assert tools.returncode == 0, tools.stdout + tools.stderr
    out = tools.stdout
    assert out.splitlines()[0] == "aarch64", out
    assert f"kind {pins['KIND_VERSION']} " in out and "linux/arm64" in out, out
    assert f"Client Version: {pins['KUBECTL_VERSION']}" in out, out
    assert f"{pins['TILT_VERSION']}, built" in out, out
    assert pins["HELM_VERSION"] in out, out
    assert "Docker version" in out and "git version" in out and "jq-" in out and "socat" in out, out
    print(done.stdout + out + f"pyci version + tool versions under emulation: {seconds:.1f}s")


@pytest.fixture
def registry(docker_client, lab_images) -> Iterator[str]:
    """The lab's registry on 127.0.0.1 (a free port), removed with what was pushed to it."""
    name = f"pyci-e2e-arm64-registry-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--label", "io.pyci.lab=true",
                    "-p", "127.0.0.1::5000", lab_images.registry],
                   capture_output=True, text=True, timeout=120, check=True)
    try:
        port = subprocess.run(["docker", "port", name, "5000/tcp"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.split(":")[-1].strip()
        yield f"localhost:{port}"
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=60)


def test_a_release_manifest_list_names_both_platforms(image: str, arm64_image: str, registry: str,
                                                      tmp_path: Path) -> None:
    """What release.yml publishes, made from the lab's two builds: one tag, a manifest list of
    linux/amd64 and linux/arm64, each entry the image whose config says that platform."""
    started = time.monotonic()
    config = tmp_path / "docker-config"  # the CLI's manifest store, not the user's ~/.docker
    config.mkdir()
    cli = ["docker", "--config", str(config)]
    refs = {"amd64": f"{registry}/pyci:amd64", "arm64": f"{registry}/pyci:arm64"}
    tagged = []
    try:
        for arch, source in (("amd64", image), ("arm64", arm64_image)):
            inspect = json.loads(subprocess.run(["docker", "image", "inspect", source], capture_output=True,
                                                text=True, timeout=60, check=True).stdout)[0]
            platform = (inspect["Os"], inspect["Architecture"])
            assert platform == ("linux", arch), (source, platform)
            subprocess.run(["docker", "tag", source, refs[arch]], check=True, timeout=60)
            tagged.append(refs[arch])
            push = subprocess.run(["docker", "push", "-q", refs[arch]], capture_output=True, text=True,
                                  timeout=900)
            assert push.returncode == 0, push.stdout + push.stderr
        release = f"{registry}/pyci:v0.0.0-lab"
        made = subprocess.run([*cli, "manifest", "create", "--insecure", release, refs["amd64"],
                               refs["arm64"]], capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stdout + made.stderr
        pushed = subprocess.run([*cli, "manifest", "push", "--insecure", "--purge", release],
                                capture_output=True, text=True, timeout=300)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        inspect = subprocess.run([*cli, "manifest", "inspect", "--insecure", release], capture_output=True,
                                 text=True, timeout=120)
        assert inspect.returncode == 0, inspect.stderr
        listed = json.loads(inspect.stdout)
        assert "manifest.list" in listed["mediaType"] or "image.index" in listed["mediaType"], listed
        platforms = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}"
                           for m in listed["manifests"])
        assert platforms == ["linux/amd64", "linux/arm64"], listed
        print(f"docker manifest inspect {release}: {platforms} in {time.monotonic() - started:.0f}s")
    finally:
        for ref in tagged:
            subprocess.run(["docker", "image", "rm", ref], capture_output=True, timeout=60)


def test_hello_green_with_the_arm64_image_as_a_sibling_on_real_kind(arm64_image: str, names: list[str],
                                                                   tmp_path: Path, node_image: str,
                                                                   docker_client, monkeypatch) -> None:
    """One whole `pyci run` of examples/hello, the GitHub way (test_image's sibling test), with pyci and
    its tools emulated: kind, tilt, kubectl and docker are aarch64 under qemu, the kind node and the
    app's images are the host's amd64."""
    monkeypatch.setattr(test_image, "RUN_TIMEOUT", 1500.0)  # emulated: minutes, not seconds
    shim = REPO / "tools" / "kind-node" / "shim"
    assert shutil.which("docker") and Path(SOCKET).exists()
    started = time.monotonic()
    done, commands = github_docker_action(
        tmp_path, names, arm64_image, "-v", f"{shim}:/shim:ro", "-e", "PATH=/shim:/usr/local/bin:/usr/bin",
        args=(), **{"working-directory": "examples/hello", "node-image": node_image,
                    "registry-image": "pyci-lab/registry:latest", "timeout": "15m", "wait-timeout": "10m",
                    "tilt-args": "--base-image=pyci-lab/base:latest"})
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "topology: sibling" in done.stdout, done.stdout[-3000:]
    out = outputs(commands)
    assert out["result"] == "success", out
    cluster = out["cluster-name"]
    for label in (f"io.pyci.cluster={cluster}", f"io.x-k8s.kind.cluster={cluster}"):
        assert docker_client.containers.list(all=True, filters={"label": label}) == []
    print(f"arm64 image, examples/hello green on real kind under emulation: {seconds:.0f}s wall, "
          f"pyci's duration {out['duration']}s")


def test_the_dockerfiles_tilt_source_stage_builds_the_labs_arm64_tilt(tmp_path: Path) -> None:
    """The release's own recipe for arm64 tilt, the Dockerfile's tilt-source stage with TOOLS=download,
    run for real (module proxy and Debian, cross-compiled; ~6 min cold): an aarch64 binary, the same
    bytes as the lab's build-tilt.sh build when the lab has one."""
    out = tmp_path / "tilt"
    done = subprocess.run([str(REPO / "tools" / "build-tilt-stage"), "arm64", str(out)], capture_output=True,
                          text=True, timeout=3600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with out.open("rb") as f:
        assert int.from_bytes(f.read(20)[18:20], "little") == EM_AARCH64
    lab_tilt = ARM64_BIN / "tilt"
    if lab_tilt.is_file():  # not built without PYCI_LAB_ARM64: then the hash has nothing to match
        import hashlib

        def sha(path: Path) -> str:
            return hashlib.sha256(path.read_bytes()).hexdigest()

        assert sha(out) == sha(lab_tilt)
