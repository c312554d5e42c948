"""pyci.install without a network: pins, URLs (the same as the Dockerfile's release build), refusals.

The downloads themselves are tested against a local HTTP server in tests/integration/test_install.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyci import install
from pyci.results import ExitCode, InputError

REPO = Path(__file__).resolve().parents[2]
VERSIONS = install.parse_versions((REPO / "entrypoint" / "pyci" / "versions.env").read_text(encoding="utf-8"))


def dockerfile_urls(arch: install.Arch) -> dict[str, str]:
    """The release build's `fetch NAME URL` lines with the shell's variables put in."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    found = {}
    for name, url in re.findall(r'fetch (\w+)(?:\.tgz)? "(https://[^"]+)"', text):
        for key, value in VERSIONS.items():
            url = url.replace(f"${{{key}#v}}", value.removeprefix("v")).replace(f"${key}", value)
        found[name] = url.replace("$tilt_arch", arch.uname).replace("$arch", arch.name)
    return found


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_urls_are_the_dockerfiles(arch: str) -> None:
    chosen = install.ARCHES[arch]
    expected = dockerfile_urls(chosen)
    assert set(expected) == set(install.TOOLS_BY_NAME)
    for tool in install.TOOLS:
        url = tool.url.format(version=VERSIONS[f"{tool.key}_VERSION"],
                              bare=VERSIONS[f"{tool.key}_VERSION"].removeprefix("v"),
                              arch=chosen.name, uname=chosen.uname)
        assert url == expected[tool.name]
    assert "linux-$arch/helm" in (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert install.TOOLS_BY_NAME["helm"].member == "linux-{arch}/helm"


def test_every_downloaded_tool_of_versions_env_is_installable() -> None:
    assert {t.key for t in install.TOOLS} == {k.removesuffix("_SHA256_AMD64") for k in VERSIONS
                                              if k.endswith("_SHA256_AMD64")}
    assert [t.name for t in install.TOOLS if not t.required] == ["helm"]  # pyci run needs the others


def test_the_packaged_pins_are_read_by_default() -> None:
    assert install.read_versions(None, {}) == VERSIONS


def test_pyci_versions_file_overrides_the_pins(tmp_path: Path) -> None:
    file = tmp_path / "v.env"
    file.write_text("# a comment\nKIND_VERSION=v0.1.0\nKIND_SHA256_AMD64=UNKNOWN\n")
    assert install.read_versions(None, {"PYCI_VERSIONS_FILE": str(file)}) == {
        "KIND_VERSION": "v0.1.0", "KIND_SHA256_AMD64": "UNKNOWN"}
    with pytest.raises(InputError, match="versions file"):
        install.read_versions(tmp_path / "missing.env", {})


def test_pins_of_this_machine_arch_and_a_mirror() -> None:
    kind = install.TOOLS_BY_NAME["kind"]
    got = install.pin(kind, VERSIONS, install.ARCHES["x86_64"], {"PYCI_DOWNLOAD_BASE": "http://127.0.0.1:9/m/"})
    assert got.sha256 == VERSIONS["KIND_SHA256_AMD64"]
    assert got.url == (f"http://127.0.0.1:9/m/github.com/kubernetes-sigs/kind/releases/download/"
                       f"{VERSIONS['KIND_VERSION']}/kind-linux-amd64")
    assert install.pin(kind, VERSIONS, install.ARCHES["aarch64"], {}).url.endswith("/kind-linux-arm64")
    with pytest.raises(InputError, match="amd64 and arm64"):
        install.machine_arch("riscv64")


@pytest.mark.parametrize("digest", ["", "abc", "G" * 64, "0" * 63])
def test_a_digest_that_is_neither_sha256_nor_unknown_is_bad_input(digest: str) -> None:
    with pytest.raises(InputError, match="KUBECTL_SHA256_AMD64"):
        install.pin(install.TOOLS_BY_NAME["kubectl"], {**VERSIONS, "KUBECTL_SHA256_AMD64": digest},
                    install.ARCHES["amd64"], {})


def test_unknown_is_refused_by_install_itself(tmp_path: Path) -> None:
    """Even a caller that skips the command's up-front check cannot get an unverified download."""
    helm = install.pin(install.TOOLS_BY_NAME["helm"], {**VERSIONS, "HELM_SHA256_AMD64": "UNKNOWN"},
                       install.ARCHES["amd64"], {"PYCI_DOWNLOAD_BASE": "http://127.0.0.1:9"})
    with pytest.raises(InputError) as caught:
        install.install(tmp_path, helm)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert "UNKNOWN" in caught.value.message and "never downloaded or run unverified" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_bad_tools_list_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from pyci.cli import main

    monkeypatch.delenv("GITHUB_PATH", raising=False)  # set when these tests run in a GitHub job

    assert main(["install-tools", "--dest", str(tmp_path), "--tools", "kind,docker"]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "pyci: error: tools: docker; allowed: kind, kubectl, tilt, helm"]
    assert main(["install-tools", "--dest", str(tmp_path), "--github-path"]) == ExitCode.BAD_INPUT
    assert "GITHUB_PATH" in capsys.readouterr().err
