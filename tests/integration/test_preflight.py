"""The preflight on the lab's real tilt: a Tiltfile error ends `pyci run` before anything exists."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import created_since, lab_tool, run_token


def test_a_tiltfile_error_ends_the_run_in_under_two_seconds_creating_nothing(tmp_path: Path, docker_client):
    lab_tool("tilt")
    app = tmp_path / "repo" / "app"
    app.mkdir(parents=True)
    (app / "Tiltfile").write_text('k8s_yaml("app.yaml")\nimages = [\n  "api",\nprint(images)\n')
    (tmp_path / "output").touch()
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(tmp_path / "repo"),
               GITHUB_OUTPUT=str(tmp_path / "output"), GITHUB_STEP_SUMMARY=str(tmp_path / "summary"))
    since, t0 = time.time(), time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pyci", "run", "--working-directory", str(app),
                           "--junit", str(tmp_path / "junit.xml")],
                          env=env, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert done.returncode == 1, done.stdout + done.stderr
    assert took < 2.0, took
    # On the pull request's diff, at the line: the path is relative to the repository.
    assert "::error file=app/Tiltfile,line=5,col=1,title=Tiltfile error::" in done.stdout, done.stdout
    assert created_since(docker_client, since, run_token(done.stdout)) == []  # no registry, no cluster
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    failure = cases["Tiltfile"].find("failure")  # was `(Tiltfile)`, tilt's internal name
    assert failure is not None and "app/Tiltfile:5:1" in (failure.get("message") or ""), failure
    assert "Tiltfile" in (tmp_path / "summary").read_text()
    assert _failed(cases["preflight"]), ET.tostring(cases["preflight"])  # the stage that found it


def _failed(case: ET.Element) -> bool:
    return case.find("failure") is not None or case.find("error") is not None


def run_pyci(tmp_path: Path, app: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    (tmp_path / "output").touch()
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(tmp_path / "repo"),
               GITHUB_OUTPUT=str(tmp_path / "output"), GITHUB_STEP_SUMMARY=str(tmp_path / "summary"))
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pyci", "run", "--working-directory", str(app),
                           "--junit", str(tmp_path / "junit.xml")],
                          env=env, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - t0


def test_an_extension_that_cannot_be_fetched_ends_the_run_in_preflight(tmp_path: Path, docker_client):
    """Issue 21: preflight called it "may need the cluster; tilt ci decides", a cluster was made for
    nothing, and the run ended "(Tiltfile) (BuildFailed)" with no line. No cluster fetches an extension."""
    lab_tool("tilt")
    app = tmp_path / "repo" / "app"
    app.mkdir(parents=True)
    (app / "Tiltfile").write_text(
        "# an extension repository that cannot be fetched (as GitHub, offline)\n"
        "v1alpha1.extension_repo(name='default', url='file:///nonexistent/pyci-tilt-verdicts/extensions')\n"
        "\n"
        "load('ext://restart_process', 'docker_build_with_restart')\n")
    since = time.time()
    done, took = run_pyci(tmp_path, app)
    assert done.returncode == 1, done.stdout + done.stderr
    assert created_since(docker_client, since, run_token(done.stdout)) == []  # no registry, no cluster
    assert "::error file=app/Tiltfile,line=4,col=1,title=Tiltfile error::" in done.stdout, done.stdout
    cases = {str(c.get("name")): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert _failed(cases["preflight"]) and _failed(cases["Tiltfile"]), sorted(cases)
    assert "registry + cluster" not in cases, sorted(cases)  # nothing after preflight ran
    print(f"extension load error: exit 1 in {took:.1f} s")
