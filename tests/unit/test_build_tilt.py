"""entrypoint/pyci/build-tilt.sh refuses bad arguments and unchecked settings before it fetches anything
(its build itself is proved by the lab: GOARCH=arm64 tools/build-go-tools, and the nightly arm64 tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "entrypoint" / "pyci" / "build-tilt.sh"


def build(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GONOSUM", "GOINSECURE", "GOSUMDB"))}
    environ.update(env)
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, env=environ, timeout=30)


@pytest.mark.parametrize(("args", "message"), [
    ((), "--arch is required"),
    (("--arch", "riscv64", "--out", "x"), "--arch riscv64: amd64 or arm64"),
    (("--arch", "arm64"), "--out is required"),
    (("--arch", "arm64", "--out", "x", "--versions", "/nonexistent/versions.env"), "not readable"),
    (("--arch", "arm64", "--out", "x", "--bogus"), "unknown argument '--bogus'"),
])
def test_bad_arguments_stop_with_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = build(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("env", [{"GOSUMDB": "off"}, {"GONOSUMDB": "github.com/docker"},
                                 {"GOINSECURE": "*"}, {"GOFLAGS": "-insecure"}])
def test_settings_that_skip_a_checksum_are_refused(tmp_path: Path, env: dict[str, str]) -> None:
    done = build("--arch", "arm64", "--out", str(tmp_path / "tilt"), **env)
    assert done.returncode == 2, done.stderr
    assert "refused" in done.stderr
    assert not (tmp_path / "tilt").exists()


def test_a_versions_file_without_the_recipe_is_refused(tmp_path: Path) -> None:
    versions = tmp_path / "versions.env"
    versions.write_text("TILT_VERSION=v0.37.6\n")
    done = build("--arch", "arm64", "--out", str(tmp_path / "tilt"), "--versions", str(versions))
    assert done.returncode == 2, done.stderr
    assert "has no TILT_SOURCE_H1" in done.stderr


def test_it_is_packaged_beside_versions_env() -> None:
    text = (SCRIPT.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"build-tilt.sh"' in text
    assert SCRIPT.read_text(encoding="utf-8").startswith("#!/bin/sh\n")  # POSIX sh: the image's busybox too
