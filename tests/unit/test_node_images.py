"""kubernetes-version → a kind node image pinned by digest, for the kind the image bundles."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from pyci import cli, node_images
from pyci.cluster import get_provider
from pyci.results import ExitCode
from pyci.settings import Settings, load_settings, schema

VERSIONS_ENV = Path(__file__).resolve().parents[2] / "entrypoint" / "pyci" / "versions.env"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "Tiltfile").write_text("")
    monkeypatch.chdir(tmp_path)
    for name in ("INPUT_NODE_IMAGE", "PYCI_NODE_IMAGE", "INPUT_KUBERNETES_VERSION",
                 "PYCI_KUBERNETES_VERSION"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_table_is_for_the_kind_the_image_bundles():
    pinned = re.search(r"^KIND_VERSION=(\S+)$", VERSIONS_ENV.read_text(), re.M)
    assert pinned is not None and pinned.group(1) == node_images.KIND_VERSION, (
        "kind moved in versions.env: take the node images from that release's notes into node_images.py")


def test_every_image_is_its_version_pinned_by_digest():
    for version, image in node_images.IMAGES.items():
        assert re.fullmatch(rf"kindest/node:v{re.escape(version)}@sha256:[0-9a-f]{{64}}", image), image
    assert node_images.DEFAULT in node_images.IMAGES


@pytest.mark.parametrize(("asked", "full"), [
    ("1.34", "1.34.0"), ("v1.33", "1.33.4"), ("1.33.4", "1.33.4"), ("v1.32.8", "1.32.8"), ("1.31", "1.31.12"),
    ("01.31", "1.31.12"),
])
def test_a_minor_is_its_newest_patch_and_a_v_is_accepted(asked: str, full: str):
    assert node_images.resolve(asked) == full
    assert node_images.image(asked) == node_images.IMAGES[full]


@pytest.mark.parametrize(("asked", "says"), [
    ("1.35", "'1.35' has no node image for kind v0.30.0"), ("1.33.0", "has no node image"),
    ("latest", "'latest' is not a Kubernetes version"), ("", "is not a Kubernetes version"),
])
def test_an_unsupported_version_is_a_value_error(asked: str, says: str):
    with pytest.raises(ValueError, match=re.escape(says)):
        node_images.resolve(asked)


def test_the_allowed_sentence_lists_what_the_table_supports():
    allowed = schema()["properties"]["kubernetes-version"]["x-allowed"]
    assert allowed.endswith(f"kind {node_images.KIND_VERSION}: {node_images.supported()}"), allowed


def test_kind_gets_the_pinned_image(workspace: Path, tmp_path: Path):
    loaded = load_settings({"kubernetes-version": "1.32"}, {})
    assert loaded.kind_node_image == node_images.IMAGES["1.32.8"]
    assert get_provider(loaded, tmp_path).node_image == node_images.IMAGES["1.32.8"]  # type: ignore[attr-defined]
    assert Settings().kind_node_image is None  # neither: kind's own default


def test_node_image_wins_with_one_log_line(workspace: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    loaded = load_settings({"kubernetes-version": "1.33", "node-image": "mirror/node:v1.33.4"}, {})
    assert loaded.kind_node_image == "mirror/node:v1.33.4"
    logger = logging.getLogger("pyci.pipeline")  # caught here: route_logging may stop it propagating
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="pyci.pipeline"):
            provider = get_provider(loaded, tmp_path)
    finally:
        logger.removeHandler(caplog.handler)
    assert provider.node_image == "mirror/node:v1.33.4"  # type: ignore[attr-defined]
    assert sorted({r.getMessage() for r in caplog.records}) == [
        "node-image mirror/node:v1.33.4 wins over kubernetes-version 1.33.4"]


def test_a_bad_version_is_one_line_exit_2_naming_the_supported_ones(
        workspace: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["run", "--kubernetes-version", "1.36"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.splitlines()
    assert err == [f"pyci: error: kubernetes-version: '1.36' has no node image for kind v0.30.0; allowed: "
                   f"a Kubernetes version with a node image for kind v0.30.0: {node_images.supported()}"]


def test_environment_inputs_and_the_dry_run_plan(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("PYCI_KUBERNETES_VERSION", "v1.31")  # CircleCI's orb
    assert cli.main(["run", "--dry-run", "--cluster-name", "k8s"]) == 0
    out = capsys.readouterr().out
    assert f"kind cluster k8s ({node_images.IMAGES['1.31.12']} for Kubernetes 1.31.12)" in out
    assert "first the host's limits: inotify, free disk, Docker version, cgroup v1" in out
    assert cli.main(["run", "--dry-run", "--cluster-name", "k8s", "--node-image", "mine:v1"]) == 0
    out = capsys.readouterr().out
    assert "kind cluster k8s (mine:v1 (node-image wins over kubernetes-version 1.31.12))" in out


@pytest.mark.parametrize(("image", "version", "minor"), [
    ("pyci-lab/kind-node:v1.34.4", None, (1, 34)), (node_images.IMAGES["1.33.4"], None, (1, 33)),
    ("kindest/node:v1.35.0@sha256:" + "a" * 64, "1.31", (1, 35)),  # the image wins here too
    ("my/node:latest", None, None), (None, "1.32", (1, 32)), (None, None, (1, 34)),
])
def test_the_minor_a_cluster_will_run(image: str | None, version: str | None, minor: tuple[int, int] | None):
    assert node_images.minor_of(image, version) == minor
