"""The repository tests itself: a copy of it alone (no ../shared or anything else beside it) collects
the same unit tests as this checkout, and the tests that validate against schemas pass there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.schemas import SCHEMAS

REPO = Path(__file__).resolve().parents[2]
# The unit tests that read tests/schemas: they must pass in the copy, not merely be collected.
SCHEMA_USERS = ("test_action_yml.py", "test_workflows.py", "test_orb.py", "test_report.py",
                "test_report_real_snapshot.py", "test_gitlab.py")
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly"]


def repo_files() -> list[str]:
    """What a clone of this checkout holds once it is committed: tracked files and new ones not ignored."""
    if not (REPO / ".git").exists():
        pytest.fail(f"{REPO} is not a git checkout: which files would a clone hold?", pytrace=False)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def copy_repo(into: Path) -> Path:
    for name in repo_files():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, into / name)
    return into


def env_for(tree: Path) -> dict[str, str]:
    # The session's PYTHONPATH points at this checkout (tests/conftest.py); the copy must import itself.
    return {**os.environ, "PYTHONPATH": str(tree / "entrypoint")}


def collected(out: str) -> list[str]:
    return [line for line in out.splitlines() if "::" in line]


def counts(out: str) -> dict[str, int]:
    """The closing line's counts: {"passed": 67, "deselected": 484, ...}."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", out.strip().splitlines()[-1])}


def test_a_copy_of_the_repository_alone_collects_and_passes_its_schema_tests(tmp_path: Path):
    assert SCHEMAS.is_relative_to(REPO) and sorted(p.name for p in SCHEMAS.glob("*.*")) == [
        "README.md", "circleci-config.schema.json", "github-action.schema.json",
        "github-workflow.schema.json", "gitlab-ci.schema.json", "junit-10.xsd"]
    tree = copy_repo(tmp_path / "clone")
    assert not (tree.parent / "shared").exists()
    # This checkout's collection runs meanwhile: it is what the copy must match.
    here = subprocess.Popen([*PYTEST, "--collect-only", "-q", "tests/unit"], cwd=REPO, env=env_for(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # One run in the copy collects every unit test and runs the schema users (-k matches module names).
    there = subprocess.run([*PYTEST, "-q", "tests/unit", "-k", " or ".join(SCHEMA_USERS)], cwd=tree,
                           env=env_for(tree), capture_output=True, text=True, timeout=300)
    expected = collected(here.communicate(timeout=300)[0])
    assert here.returncode == 0 and len(expected) > 500, expected[-20:]
    assert there.returncode == 0, there.stdout[-4000:] + there.stderr[-2000:]
    schema_users = [t for t in expected if t.split("::")[0].rsplit("/", 1)[-1] in SCHEMA_USERS]
    assert len(schema_users) > 50
    got = counts(there.stdout)
    want = (len(schema_users), len(expected) - len(schema_users))
    assert (got.get("passed"), got.get("deselected")) == want, there.stdout[-2000:]
