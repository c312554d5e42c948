"""The GitHub workflows: schema-valid, clean under actionlint, actions pinned by commit, doing their jobs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.schemas import SCHEMAS

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
NAMES = ("ci.yml", "e2e.yml", "release.yml")
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")


def load(name: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as True
    return loaded


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", NAMES)
def test_valid_against_the_github_workflow_schema(name: str) -> None:
    schema = json.loads((SCHEMAS / "github-workflow.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load(name))]
    assert errors == []


@pytest.mark.parametrize("name", NAMES)
def test_third_party_actions_are_pinned_by_commit(name: str) -> None:
    uses = [step["uses"] for step in steps(load(name)) if "uses" in step]
    third_party = [u for u in uses if not u.startswith(("./", "docker://"))]
    assert third_party, uses  # every workflow checks out at least: no pass by finding nothing
    for action in third_party:
        assert PINNED.fullmatch(action), f"{action} is not pinned to a full commit SHA"


def test_ci_lints_type_checks_and_runs_the_tests() -> None:
    commands = " ".join(step.get("run", "") for step in steps(load("ci.yml")))
    for needed in ("tools/lint", "tools/test", "tools/pack-orb --check"):
        assert needed in commands, needed


def test_e2e_runs_the_action_on_hello_and_expects_broken_to_fail() -> None:
    jobs = load("e2e.yml")["jobs"]
    hello = next(s for s in jobs["hello"]["steps"] if s.get("uses") == "./")
    assert hello["with"]["working-directory"] == "examples/hello"
    broken_steps = jobs["broken"]["steps"]
    broken = next(s for s in broken_steps if s.get("uses") == "./")
    assert broken["with"]["working-directory"] == "examples/broken"
    assert broken["continue-on-error"] is True
    check = broken_steps[broken_steps.index(broken) + 1]
    assert check["env"]["RESULT"] == f"${{{{ steps.{broken['id']}.outputs.result }}}}"
    assert 'test "$RESULT" = failure' in check["run"]
    assert all(job["runs-on"] == "ubuntu-latest" for job in jobs.values())


def test_e2e_runs_the_host_action_on_hello() -> None:
    job = load("e2e.yml")["jobs"]["host"]
    step = next(s for s in job["steps"] if s.get("uses") == "./host")
    assert step["with"]["working-directory"] == "examples/hello"
    check = job["steps"][job["steps"].index(step) + 1]
    assert check["env"]["RESULT"] == f"${{{{ steps.{step['id']}.outputs.result }}}}"
    assert 'test "$RESULT" = success' in check["run"]


@pytest.mark.parametrize("job", ["hello", "broken"])
def test_e2e_runs_this_commits_image(job: str, tmp_path: Path) -> None:
    job_steps = load("e2e.yml")["jobs"][job]["steps"]
    action = next(i for i, s in enumerate(job_steps) if s.get("uses") == "./")
    switch = job_steps[action - 1]["run"]
    (tmp_path / "action.yml").write_text((REPO / "action.yml").read_text(encoding="utf-8"), encoding="utf-8")
    subprocess.run(["bash", "-c", switch], cwd=tmp_path, check=True, timeout=30)
    switched = yaml.safe_load((tmp_path / "action.yml").read_text(encoding="utf-8"))
    assert switched["runs"]["image"] == "Dockerfile"  # the runner builds it from this checkout
    original = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    assert switched["inputs"] == original["inputs"] and switched["outputs"] == original["outputs"]


def release_platforms(tmp_path: Path, versions: str) -> subprocess.CompletedProcess[str]:
    """Run release.yml's platforms step against a versions.env; its output file's platforms in stdout."""
    step = next(s for s in steps(load("release.yml")) if s.get("id") == "platforms")
    (tmp_path / "entrypoint" / "pyci").mkdir(parents=True)
    (tmp_path / "entrypoint" / "pyci" / "versions.env").write_text(versions, encoding="utf-8")
    output = tmp_path / "github_output"
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, timeout=30, text=True,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output)}, capture_output=True)
    if output.exists():
        done.stdout = output.read_text(encoding="utf-8").strip().removeprefix("platforms=")
    return done


def test_release_builds_both_platforms_and_fails_on_unknown(tmp_path: Path) -> None:
    """Issue 22.1: one manifest list for linux/amd64 and linux/arm64; an UNKNOWN for either fails the
    release instead of leaving a platform out (tilt arm64 is SOURCE: built in the tilt-source stage)."""
    versions = (REPO / "entrypoint" / "pyci" / "versions.env").read_text(encoding="utf-8")
    now = release_platforms(tmp_path / "now", versions)
    assert now.returncode == 0 and now.stdout == "linux/amd64,linux/arm64", now
    for key in ("TILT_SHA256_ARM64", "KIND_SHA256_AMD64"):
        unknown = re.sub(rf"^{key}=.*$", f"{key}=UNKNOWN", versions, flags=re.M)
        done = release_platforms(tmp_path / key, unknown)
        assert done.returncode != 0 and "::error" in done.stdout + done.stderr, (key, done)


def test_release_pushes_a_multi_arch_image_with_sbom_and_provenance_and_moves_v1() -> None:
    release = load("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    build = next(s for s in steps(release) if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["platforms"] == "${{ steps.platforms.outputs.platforms }}"
    assert build["with"]["push"] is True
    assert build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    meta = next(s for s in steps(release) if s.get("uses", "").startswith("docker/metadata-action@"))
    assert "type=semver,pattern=v{{major}}" in meta["with"]["tags"]
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["image"] == f"docker://{release['env']['IMAGE']}:v1"
