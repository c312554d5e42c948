"""`pyci install-tools`: the pinned kind, kubectl, tilt and helm on a runner, each checked against the
SHA256 in versions.env before it is ever made executable (the host-mode action, host/action.yml).

Layout: DEST/<tool>/<version>/<arch>/<tool> (the runner tool cache's <tool>/<version>/<arch>), with a
`.pyci-verified` record beside it. A later step (or job, on a self-hosted runner) finds the record,
re-hashes the cached binary against it and downloads nothing.

The order for every download: stream to a temporary file (mode 0600, in the target folder) while
hashing; compare with the pinned digest; only then extract (tarballs) and chmod + rename into place.
A wrong digest deletes the download and ends the command with one line naming the tool, the URL, the
expected and the actual digest (exit 3). A pin that says UNKNOWN is refused before anything is
downloaded: exit 2 for kind, kubectl and tilt (pyci cannot run without them); helm, which only
Tiltfiles calling helm() need, is left out with one line and the others are installed.

A pin that says SOURCE (tilt for linux/arm64: no published digest) is built from the tag's source by
build-tilt.sh, shipped beside versions.env: the pinned Go, tilt's module and every dependency checked
against the pins and the tag's go.sum (see versions.env), minutes on a cold runner, cached like a
download afterwards (the record says `"sha256": "SOURCE"` and the binary's own digest).

Overrides, for mirrors and for the tests (the digests are checked whatever they say):
  PYCI_DOWNLOAD_BASE   replaces `https://` in every URL: BASE/github.com/kubernetes-sigs/kind/...
  PYCI_VERSIONS_FILE   a versions.env to read instead of the one in this package (--versions too)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from pyci.results import ExitCode, InfrastructureError, InputError, PyciError

CHUNK = 1 << 20
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0  # seconds without a byte, not for the whole file
RECORD = ".pyci-verified"
UNKNOWN = "UNKNOWN"
SOURCE = "SOURCE"  # no published digest: built from the pinned tag's source (build-tilt.sh)
SOURCE_BUILDS = {"tilt"}
BUILD_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Tool:
    name: str
    url: str  # {version}, {bare} (version without v), {arch} (amd64|arm64), {uname} (x86_64|arm64)
    member: str | None = None  # the binary's path inside a .tar.gz download; None: the download is it
    required: bool = True  # pyci run needs it; a tool that is not is left out when its pin is UNKNOWN

    @property
    def key(self) -> str:
        return self.name.upper()


# The URLs are the ones the versions.env comments and the Dockerfile's release build use.
TOOLS: tuple[Tool, ...] = (
    Tool("kind", "https://github.com/kubernetes-sigs/kind/releases/download/{version}/kind-linux-{arch}"),
    Tool("kubectl", "https://dl.k8s.io/release/{version}/bin/linux/{arch}/kubectl"),
    Tool("tilt", "https://github.com/tilt-dev/tilt/releases/download/{version}/tilt.{bare}.linux.{uname}.tar.gz",
         member="tilt"),
    Tool("helm", "https://get.helm.sh/helm-{version}-linux-{arch}.tar.gz", member="linux-{arch}/helm",
         required=False),
)
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}


@dataclass(frozen=True)
class Arch:
    name: str  # amd64 | arm64 (Go's, and the key suffix in versions.env upper-cased)
    uname: str  # x86_64 | arm64 (tilt's release file names)


ARCHES = {"x86_64": Arch("amd64", "x86_64"), "amd64": Arch("amd64", "x86_64"),
          "aarch64": Arch("arm64", "arm64"), "arm64": Arch("arm64", "arm64")}


class ChecksumMismatch(InfrastructureError):
    """What the server sent is not the pinned release (exit 3)."""


@dataclass(frozen=True)
class Pin:
    tool: Tool
    version: str
    sha256: str  # 64 hex digits, UNKNOWN, or SOURCE
    url: str
    arch: Arch
    versions_file: Path | None = None  # what a SOURCE build reads (None: the packaged versions.env)

    @property
    def label(self) -> str:
        return f"{self.tool.name} {self.version} (linux/{self.arch.name})"

    @property
    def member(self) -> str | None:
        return self.tool.member.format(arch=self.arch.name) if self.tool.member else None


@dataclass(frozen=True)
class Installed:
    pin: Pin
    path: Path
    downloaded: bool
    seconds: float


def parse_versions(text: str) -> dict[str, str]:
    """KEY=value lines, comments and blank lines ignored (the sh-sourceable versions.env)."""
    pairs = (ln.split("=", 1) for ln in text.splitlines() if "=" in ln and not ln.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def read_versions(path: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    chosen = path or (Path(environ["PYCI_VERSIONS_FILE"]) if environ.get("PYCI_VERSIONS_FILE") else None)
    if chosen is None:
        return parse_versions(resources.files("pyci").joinpath("versions.env").read_text(encoding="utf-8"))
    try:
        return parse_versions(chosen.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"versions file {chosen}: {err.strerror or err}") from err


def machine_arch(machine: str | None = None) -> Arch:
    found = (machine or platform.machine()).lower()
    if found not in ARCHES:
        raise InputError(f"architecture {found}: kind, kubectl, tilt and helm are pinned for amd64 and arm64")
    return ARCHES[found]


def mirrored(url: str, environ: Mapping[str, str]) -> str:
    base = environ.get("PYCI_DOWNLOAD_BASE", "").rstrip("/")
    return f"{base}/{url.removeprefix('https://')}" if base else url


def pin(tool: Tool, versions: Mapping[str, str], arch: Arch, environ: Mapping[str, str]) -> Pin:
    version = versions.get(f"{tool.key}_VERSION", "")
    sha = versions.get(f"{tool.key}_SHA256_{arch.name.upper()}", "")
    if not version:
        raise InputError(f"{tool.name}: no {tool.key}_VERSION in the versions file")
    url = tool.url.format(version=version, bare=version.removeprefix("v"), arch=arch.name, uname=arch.uname)
    if sha == SOURCE and tool.name not in SOURCE_BUILDS:
        raise InputError(f"{tool.name} {version}: {tool.key}_SHA256_{arch.name.upper()} is SOURCE, but only "
                         f"{', '.join(sorted(SOURCE_BUILDS))} can be built from source")
    if sha not in (UNKNOWN, SOURCE) and not (len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise InputError(f"{tool.name} {version}: {tool.key}_SHA256_{arch.name.upper()} is "
                         f"{sha or 'missing'}, not a SHA256 (64 hex digits), SOURCE or UNKNOWN")
    return Pin(tool, version, sha, mirrored(url, environ), arch)


def refusal(p: Pin) -> str:
    return (f"{p.label}: no SHA256 is pinned (UNKNOWN in versions.env): refused, "
            f"{p.url} is never downloaded or run unverified")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def target(dest: Path, p: Pin) -> Path:
    return dest / p.tool.name / p.version / p.arch.name


def cached(dest: Path, p: Pin) -> Path | None:
    """The cached binary when its record names this pin and the file still hashes as recorded."""
    folder = target(dest, p)
    binary = folder / p.tool.name
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("sha256") != p.sha256:
        return None
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None
    return binary if sha256_of(binary) == record.get("binary_sha256") else None


@contextlib.contextmanager
def _temporary(folder: Path, prefix: str) -> Iterator[tuple[IO[bytes], Path]]:
    """A 0600 file in `folder` (same file system as the target, so rename is atomic), removed unless
    the caller renamed it away."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, path
    finally:
        path.unlink(missing_ok=True)


def download(url: str, out: IO[bytes], label: str) -> str:
    """Stream `url` into `out`; return the SHA256 of what arrived."""
    import requests
    import urllib3

    digest = hashlib.sha256()
    # The digest is of the bytes as published: ask for no transfer encoding and decode none (a server
    # that gzips a .tar.gz "for transfer" would otherwise hand over something else).
    headers = {"Accept-Encoding": "identity", "User-Agent": "pyci-install-tools"}
    try:
        with requests.get(url, stream=True, headers=headers,
                          timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as response:
            if response.status_code != 200:
                raise InfrastructureError(f"{label}: download of {url} failed: HTTP {response.status_code}")
            for chunk in response.raw.stream(CHUNK, decode_content=False):
                digest.update(chunk)
                out.write(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
        raise InfrastructureError(f"{label}: download of {url} failed: {_one_line(err)}") from err
    out.flush()
    return digest.hexdigest()


def _extract(archive: Path, member: str, out: IO[bytes], label: str) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            info = tar.getmember(member)
            source = tar.extractfile(info) if info.isfile() else None
            if source is None:
                raise InfrastructureError(f"{label}: {member} in the verified archive is not a regular file")
            with source:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
    except (KeyError, tarfile.TarError, OSError, EOFError) as err:
        raise InfrastructureError(f"{label}: cannot take {member} from the verified archive: "
                                  f"{_one_line(err)}") from err
    out.flush()


def build_script(environ: Mapping[str, str]) -> Path:
    """build-tilt.sh as packaged; PYCI_BUILD_TILT names another (the tests' stand-in)."""
    if environ.get("PYCI_BUILD_TILT"):
        return Path(environ["PYCI_BUILD_TILT"])
    return Path(str(resources.files("pyci").joinpath("build-tilt.sh")))


def build_from_source(folder: Path, p: Pin, environ: Mapping[str, str]) -> tuple[Path, str]:
    """Run build-tilt.sh into a temporary file in `folder`; return it (not yet executable by anyone but
    its owner) and its SHA256. The script checks every input against versions.env and the tag's go.sum."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".build-")
    os.close(fd)
    out = Path(name)
    command = ["sh", str(build_script(environ)), "--arch", p.arch.name, "--out", str(out)]
    if p.versions_file is not None:
        command += ["--versions", str(p.versions_file)]
    print(f"{p.label}: no published digest (SOURCE in versions.env): building it from source "
          f"({' '.join(command[1:])}); minutes on a cold runner", flush=True)
    import subprocess

    try:
        done = subprocess.run(command, env=dict(environ), timeout=BUILD_TIMEOUT, stdout=sys.stderr)
    except (OSError, subprocess.TimeoutExpired) as err:
        out.unlink(missing_ok=True)
        raise InfrastructureError(f"{p.label}: the source build failed: {_one_line(err)}") from err
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        out.unlink(missing_ok=True)
        raise InfrastructureError(f"{p.label}: the source build ({command[1]}) exited {done.returncode}; "
                                  "nothing installed (its log is above)")
    out.chmod(0o600)
    return out, sha256_of(out)


def install(dest: Path, p: Pin, environ: Mapping[str, str] | None = None) -> Installed:
    """The verified binary of `p` under `dest`: from the cache if it is there and intact, else downloaded
    (or, for a SOURCE pin, built from source)."""
    if p.sha256 == UNKNOWN:
        raise InputError(refusal(p))
    started = time.monotonic()
    folder = target(dest, p)
    binary = folder / p.tool.name
    if (found := cached(dest, p)) is not None:
        return Installed(p, found, downloaded=False, seconds=time.monotonic() - started)
    folder.mkdir(parents=True, exist_ok=True)
    if p.sha256 == SOURCE:
        built, binary_sha = build_from_source(folder, p, os.environ if environ is None else environ)
        try:
            _make_executable(built, binary)
        finally:
            built.unlink(missing_ok=True)
        _write_record(folder, p, binary_sha, how="built from source by build-tilt.sh")
        return Installed(p, binary, downloaded=True, seconds=time.monotonic() - started)
    with _temporary(folder, ".download-") as (raw, raw_path):
        actual = download(p.url, raw, p.label)
        raw.close()
        if actual != p.sha256:
            raise ChecksumMismatch(f"{p.label}: checksum mismatch for {p.url}: expected sha256 {p.sha256}, "
                                   f"got {actual}; the download was deleted, nothing installed")
        member = p.member
        if member is None:
            binary_sha = actual
            _make_executable(raw_path, binary)
        else:
            with _temporary(folder, ".extract-") as (out, out_path):
                _extract(raw_path, member, out, p.label)
                out.close()
                binary_sha = sha256_of(out_path)
                _make_executable(out_path, binary)
    _write_record(folder, p, binary_sha)
    return Installed(p, binary, downloaded=True, seconds=time.monotonic() - started)


def _write_record(folder: Path, p: Pin, binary_sha: str, how: str = "") -> None:
    record = {"tool": p.tool.name, "version": p.version, "arch": p.arch.name, "url": p.url,
              "sha256": p.sha256, "binary_sha256": binary_sha}
    if how:
        record["how"] = how
    with _temporary(folder, ".record-") as (f, record_path):
        f.write(json.dumps(record, indent=2).encode() + b"\n")
        f.close()
        record_path.chmod(0o644)
        os.replace(record_path, folder / RECORD)


def _make_executable(verified: Path, final: Path) -> None:
    """Only ever called on a file whose digest matched: the first moment it can be run."""
    verified.chmod(0o755)
    os.replace(verified, final)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --- the command ---
def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "install-tools", help="download the pinned kind, kubectl, tilt, helm (SHA256-verified) into a folder",
        description="Download the tools pinned in versions.env, verify each SHA256 before it is made "
        "executable, and keep them in DEST/<tool>/<version>/<arch>. PYCI_DOWNLOAD_BASE replaces "
        "https:// in every URL (a mirror); PYCI_VERSIONS_FILE names another versions.env.")
    parser.add_argument("--dest", required=True, type=Path, help="the tool cache folder")
    parser.add_argument("--tools", default=",".join(t.name for t in TOOLS),
                        help="comma-separated, of " + ", ".join(TOOLS_BY_NAME) + " (default: all)")
    parser.add_argument("--versions", type=Path,
                        help="a versions.env (default: PYCI_VERSIONS_FILE, else pyci's)")
    parser.add_argument("--arch", help="amd64 or arm64 (default: this machine's)")
    parser.add_argument("--github-path", action="store_true",
                        help="append each tool's folder to the file GITHUB_PATH names (later steps' PATH)")
    parser.set_defaults(handler=lambda ns: run(ns, os.environ))


def run(namespace: argparse.Namespace, environ: Mapping[str, str]) -> int:
    try:
        return _run(namespace, environ)
    except PyciError as err:
        print(f"pyci: error: {err.message}", file=sys.stderr, flush=True)
        return int(err.exit_code)


def _run(namespace: argparse.Namespace, environ: Mapping[str, str]) -> int:
    names = [n.strip() for n in namespace.tools.split(",") if n.strip()]
    unknown = [n for n in names if n not in TOOLS_BY_NAME]
    if unknown or not names:
        raise InputError(f"tools: {', '.join(unknown) or 'none given'}; allowed: {', '.join(TOOLS_BY_NAME)}")
    github_path = environ.get("GITHUB_PATH", "")
    if namespace.github_path and not github_path:
        raise InputError("--github-path: GITHUB_PATH is not set (not in a GitHub Actions step)")
    versions = read_versions(namespace.versions, environ)
    arch = machine_arch(namespace.arch)
    from_env = environ.get("PYCI_VERSIONS_FILE")
    chosen = namespace.versions or (Path(from_env) if from_env else None)
    pins = [dataclasses.replace(pin(TOOLS_BY_NAME[n], versions, arch, environ), versions_file=chosen)
            for n in names]
    # Every pin is looked at before anything is downloaded: a refusal leaves nothing half-installed.
    refused = [p for p in pins if p.sha256 == UNKNOWN]
    required = [p for p in refused if p.tool.required]
    if required:
        raise InputError(refusal(required[0]))
    for p in refused:
        print(f"pyci: warning: {refusal(p)}; left out (a Tiltfile's {p.tool.name}() finds the runner's "
              f"own {p.tool.name}, if it has one)", file=sys.stderr, flush=True)
    dest = namespace.dest.resolve()
    done = [install_one(dest, p, environ) for p in pins if p.sha256 != UNKNOWN]
    if namespace.github_path:
        with open(github_path, "a", encoding="utf-8") as f:
            f.writelines(f"{item.path.parent}\n" for item in done)
    return ExitCode.HEALTHY


def install_one(dest: Path, p: Pin, environ: Mapping[str, str] | None = None) -> Installed:
    try:
        item = install(dest, p, environ)
    except OSError as err:  # a full disk, a tool cache the runner's user cannot write
        raise InfrastructureError(f"{p.label}: cannot write under {dest}: {_one_line(err)}") from err
    if p.sha256 == SOURCE:
        how = ("built from source, inputs verified" if item.downloaded
               else "cached source build, sha256 re-checked")
        print(f"{p.label}: {how} -> {item.path} in {item.seconds:.1f}s", flush=True)
        return item
    how = "downloaded, sha256 verified" if item.downloaded else "cached, sha256 re-checked"
    print(f"{p.label}: {how} ({p.sha256[:12]}…) -> {item.path} in {item.seconds:.1f}s", flush=True)
    return item


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pyci.install ...`: the same command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="pyci")
    add_parser(parser.add_subparsers(dest="command", required=True))
    namespace = parser.parse_args(["install-tools", *(sys.argv[1:] if argv is None else argv)])
    return run(namespace, os.environ)


if __name__ == "__main__":
    raise SystemExit(main())
