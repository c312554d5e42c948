"""The GitLab template read by gitlab-ci-local (npm, installed by tools/lab), which parses a project's
.gitlab-ci.yml the way GitLab does: `include`, `extends`, and its copy of GitLab's JSON schema. It cannot
run the job here: the job's `docker:28-dind` service comes from Docker Hub (tests/e2e/test_gitlab.py
runs the image the way the runner would instead)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import LAB_BIN, REPO

TEMPLATE = REPO / "gitlab" / "pyci.gitlab-ci.yml"


def gitlab_ci_local() -> str:
    path = LAB_BIN / "gitlab-ci-local"
    if not os.access(path, os.X_OK):
        pytest.skip(f"gitlab-ci-local is not in {LAB_BIN}: tools/lab installs it when npm is on PATH")
    return str(path)


def project(tmp_path: Path, job: dict) -> Path:
    """A project that includes the template as a user's would (local here; remote for users)."""
    (tmp_path / "gitlab").mkdir()
    shutil.copy(TEMPLATE, tmp_path / "gitlab" / TEMPLATE.name)
    config = {"include": [{"local": f"gitlab/{TEMPLATE.name}"}], "tilt-ci": job}
    (tmp_path / ".gitlab-ci.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=lab@pyci", "-c", "user.name=lab",
                                                  "commit", "-q", "-m", "project"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    return tmp_path


def preview(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([gitlab_ci_local(), "--preview"], cwd=folder, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("template", [".pyci", ".pyci-tls"])
def test_a_job_extending_the_template_expands_and_validates(tmp_path: Path, template: str) -> None:
    done = preview(project(tmp_path, {"extends": template,
                                      "variables": {"PYCI_WORKING_DIRECTORY": "examples/hello"}}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "json schema validated" in done.stdout + done.stderr
    job = yaml.safe_load(done.stdout[done.stdout.index("---"):])["tilt-ci"]
    assert job["script"][-1] == "pyci run"
    assert job["variables"]["PYCI_WORKING_DIRECTORY"] == "examples/hello"
    assert job["variables"]["DOCKER_HOST"] in ("tcp://docker:2375", "tcp://docker:2376")
    assert job["services"][0]["alias"] == "docker"
    assert set(job["artifacts"]["reports"]) == {"junit", "dotenv", "codequality"}


def test_a_misspelt_keyword_is_refused(tmp_path: Path) -> None:
    """The validation is live: the same tool rejects what GitLab would."""
    done = preview(project(tmp_path, {"extends": ".pyci", "artefacts": {"paths": ["x"]}}))
    assert done.returncode != 0
    assert "artefacts" in done.stdout + done.stderr
