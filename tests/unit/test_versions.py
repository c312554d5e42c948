"""entrypoint/pyci/versions.env: the one place tool versions and release digests are pinned."""

from __future__ import annotations

import re
from pathlib import Path

from pyci.cli import pinned_versions

REPO = Path(__file__).resolve().parents[2]
VERSIONS = REPO / "entrypoint" / "pyci" / "versions.env"
DOWNLOADED = ("KIND", "KUBECTL", "TILT", "HELM")  # release files checked against a pinned SHA256
TOOLS = (*DOWNLOADED, "DOCKER_CLI")  # the docker CLI comes from Docker's signed apt repository
LINE = re.compile(r"[A-Z0-9_]+=[A-Za-z0-9.,/:@=+-]+")  # sh-sourceable as is: no quotes, spaces or expansions
SOURCE_KEYS = {"TILT_SOURCE_H1", "TILT_SOURCE_GO", "TILT_SOURCE_GO_H1_AMD64", "TILT_SOURCE_GO_H1_ARM64",
               "TILT_SOURCE_GOSUM_FIX"}


def entries() -> dict[str, str]:
    lines = [ln for ln in VERSIONS.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    bad = [ln for ln in lines if not LINE.fullmatch(ln)]
    assert bad == [], "versions.env must stay plain KEY=value lines"
    return dict(line.split("=", 1) for line in lines)


def test_every_tool_has_a_version_and_a_digest_or_unknown_per_arch() -> None:
    found = entries()
    suffixes = ("VERSION", "SHA256_AMD64", "SHA256_ARM64")
    expected = {f"{tool}_{suffix}" for tool in DOWNLOADED for suffix in suffixes}
    expected |= {"DOCKER_CLI_VERSION", "DOCKER_APT_KEY_FINGERPRINT", "TOOLBOX_DEBS"} | SOURCE_KEYS
    assert set(found) == expected
    # Docker's release key as docs.docker.com gives it: 9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88
    assert found["DOCKER_APT_KEY_FINGERPRINT"] == "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
    for key, value in found.items():
        if "_SHA256_" in key:  # never a guess: a published digest, UNKNOWN (refused), or SOURCE (built)
            assert re.fullmatch(r"[0-9a-f]{64}", value) or value in ("UNKNOWN", "SOURCE"), key
            assert value != "SOURCE" or key.startswith("TILT_"), key  # only tilt has a source build


def test_no_released_platform_is_unknown_and_source_says_how_it_is_made() -> None:
    """Issue 22.1: both platforms are released, so no UNKNOWN; SOURCE comes with its recipe's pins."""
    found = entries()
    assert [k for k, v in found.items() if v == "UNKNOWN"] == []
    assert found["TILT_SHA256_ARM64"] == "SOURCE"
    assert re.fullmatch(r"go1\.\d+\.\d+", found["TILT_SOURCE_GO"])
    for key in ("TILT_SOURCE_H1", "TILT_SOURCE_GO_H1_AMD64", "TILT_SOURCE_GO_H1_ARM64"):
        assert re.fullmatch(r"h1:[A-Za-z0-9+/]{43}=", found[key]), key
    # The one go.sum line replaced: buildx v0.32.1, with sum.golang.org's hash (tilt's go.sum has another).
    assert found["TILT_SOURCE_GOSUM_FIX"] == (
        "github.com/docker/buildx@v0.32.1=h1:ecen0VNo7UINEv+Wx7xDPlTH5nQ1EaxzFOoslYIISuk=")
    text = VERSIONS.read_text(encoding="utf-8")
    assert "h1:Zlau3oApu/xjwgRsOc4YLcnmpHUsCXOH1GR6KlOhTME=" in text  # the replaced value is on record
    assert (REPO / "entrypoint" / "pyci" / "build-tilt.sh").is_file()


def test_versions_match_the_lab_builds() -> None:
    found = entries()
    go_tools = (REPO / "tools" / "build-go-tools").read_text(encoding="utf-8")
    assert f"K8S={found['KUBECTL_VERSION']}" in go_tools
    assert f"main.version={found['TILT_VERSION'].removeprefix('v')}" in go_tools
    assert re.search(rf"sigs\.k8s\.io/kind {re.escape(found['KIND_VERSION'])}\b",
                     (REPO / "tools" / "go.mod").read_text(encoding="utf-8"))


def test_the_dockerfile_reads_every_pin_from_versions_env() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY entrypoint/pyci/versions.env" in dockerfile
    assert ". /build/versions.env" in dockerfile
    for tool in TOOLS:
        assert f"${tool}_VERSION" in dockerfile or f"${{{tool}_VERSION" in dockerfile, tool
    for tool in DOWNLOADED:
        assert f"sha {tool})" in dockerfile, f"{tool} download is not checked against its digest"
    # The docker CLI: apt verifies the package, and the build refuses a key with another fingerprint.
    assert '[ "$fpr" != "$DOCKER_APT_KEY_FINGERPRINT" ]' in dockerfile
    assert "signed-by=/etc/apt/keyrings/docker.asc" in dockerfile
    assert "sha256sum -c" in dockerfile
    assert "UNKNOWN" in dockerfile  # the download refuses a missing digest instead of skipping the check


def test_pyci_reads_the_same_file() -> None:
    assert pinned_versions() == entries()


def test_the_toolbox_is_what_real_tiltfiles_call() -> None:
    debs = entries()["TOOLBOX_DEBS"].split(",")
    assert {"git", "bash", "curl", "jq"} <= set(debs)  # ext:// extensions need git; local() bash
    assert "libcurl3-gnutls" in debs  # git's https transport links it
    assert not {"perl", "git-man"} & set(debs)  # what a clone never runs stays out
