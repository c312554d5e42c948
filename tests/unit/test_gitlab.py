"""GitLab CI: detection from GitLab's variables, log sections in GitLab's format, the dotenv and Code
Quality reports, inputs from PYCI_* variables, and the template checked against GitLab's own schema."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from pyci import cli, gitlab
from pyci.platforms import CircleCI, GitHubActions, GitLab, Local, detect
from pyci.results import ExitCode, ResourceResult, RunResult, StageResult
from pyci.settings import load_settings, run_id
from pyci.tiltfile import SourceLocation, workspace_roots
from tests.schemas import SCHEMAS

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "gitlab" / "pyci.gitlab-ci.yml"
# What a GitLab runner sets in every job (a subset: the ones pyci reads, and a few it must not need).
RUNNER = {"GITLAB_CI": "true", "CI": "true", "CI_JOB_NAME": "tilt-ci", "CI_JOB_ID": "4242",
          "CI_PIPELINE_ID": "77", "CI_SERVER_URL": "https://gitlab.example.com"}
START = re.compile(r"^\x1b\[0Ksection_start:(\d+):([A-Za-z0-9_.-]+)\[collapsed=true\]\r\x1b\[0K(.*)$")
END = re.compile(r"^\x1b\[0Ksection_end:(\d+):([A-Za-z0-9_.-]+)\r\x1b\[0K$")
SEVERITIES = {"info", "minor", "major", "critical", "blocker"}  # GitLab's Code Quality severities


def gitlab_env(project: Path, **more: str) -> dict[str, str]:
    return {**RUNNER, "CI_PROJECT_DIR": str(project), **more}


def platform(project: Path, **more: str) -> tuple[GitLab, io.StringIO]:
    out = io.StringIO()
    found = detect(gitlab_env(project, **more), out)
    assert isinstance(found, GitLab)
    found.wall = lambda: 1_700_000_000.7
    return found, out


# --- detection ---
def test_a_gitlab_job_is_detected_from_gitlabs_variables(tmp_path: Path) -> None:
    assert isinstance(detect(gitlab_env(tmp_path), io.StringIO()), GitLab)
    # gitlab-ci-local sets GITLAB_CI=false, yet runs the job as a runner would.
    local_runner = {"GITLAB_CI": "false", "CI_PROJECT_DIR": str(tmp_path), "CI_JOB_NAME": "tilt-ci"}
    assert isinstance(detect(local_runner, io.StringIO()), GitLab)
    assert isinstance(detect({"GITLAB_CI": "false"}, io.StringIO()), Local)
    assert isinstance(detect({"CI_PROJECT_DIR": str(tmp_path), "CI_JOB_NAME": "x"}, io.StringIO()), Local)
    github = {**gitlab_env(tmp_path), "GITHUB_ACTIONS": "true"}
    assert isinstance(detect(github, io.StringIO()), GitHubActions)
    assert isinstance(detect({**gitlab_env(tmp_path), "CIRCLECI": "true"}, io.StringIO()), CircleCI)


def test_gitlab_colours_unless_no_color(tmp_path: Path) -> None:
    assert detect(gitlab_env(tmp_path), io.StringIO()).color is True
    assert detect(gitlab_env(tmp_path, NO_COLOR="1"), io.StringIO()).color is False


# --- sections ---
def test_a_stage_is_a_collapsed_section_closed_with_its_duration(tmp_path: Path) -> None:
    gl, out = platform(tmp_path, NO_COLOR="1")
    with gl.group("registry + cluster"):
        gl.info("kind: creating")
    lines = out.getvalue().split("\n")[:-1]
    start, end = START.match(lines[0]), END.match(lines[2])
    assert start and end, lines
    assert start.group(1) == end.group(1) == "1700000000"  # Unix seconds, whole
    assert start.group(2) == end.group(2) == "pyci-1-registry-cluster"
    assert start.group(3) == "registry + cluster"
    assert lines[1] == "kind: creating"
    assert re.fullmatch(r"✓ registry \+ cluster \(\d+\.\ds\)", lines[3])  # after the end: seen folded


def test_sections_have_unique_names_and_a_failed_stage_still_closes(tmp_path: Path) -> None:
    gl, out = platform(tmp_path, NO_COLOR="1")
    with gl.group("tilt ci"):
        pass
    with pytest.raises(RuntimeError), gl.group("tilt ci"):
        raise RuntimeError("boom")
    lines = out.getvalue().split("\n")[:-1]
    names = [m.group(2) for line in lines if (m := START.match(line) or END.match(line))]
    assert names == ["pyci-1-tilt-ci", "pyci-1-tilt-ci", "pyci-2-tilt-ci", "pyci-2-tilt-ci"]
    assert out.getvalue().split("\n")[:-1][-1].startswith("✗ tilt ci failed after")


def test_an_inner_or_concurrent_stage_is_a_heading_inside_the_section(tmp_path: Path) -> None:
    gl, out = platform(tmp_path, NO_COLOR="1")
    with gl.group("outer"), gl.group("inner"):
        pass
    lines = out.getvalue().split("\n")[:-1]
    assert [bool(START.match(line)) for line in lines].count(True) == 1
    assert [bool(END.match(line)) for line in lines].count(True) == 1
    assert "▶ inner" in lines
    assert END.match(lines[-2]) and lines[-1].startswith("✓ outer")


def test_section_names_and_headers_are_what_gitlab_parses() -> None:
    assert gitlab.section_name("Registry + Cluster (kind)", 3) == "pyci-3-registry-cluster-kind"
    assert gitlab.section_name("✓✓", 1) == "pyci-1-stage"
    line = gitlab.section_start("pyci-1-x", "two\nlines", 12.9, collapsed=False)
    assert line == "\x1b[0Ksection_start:12:pyci-1-x\r\x1b[0Ktwo lines"


def test_secrets_are_redacted_in_the_log_and_not_announced(tmp_path: Path) -> None:
    gl, out = platform(tmp_path)
    gl.mask("hunter2-registry-token")
    gl.untrusted("login with hunter2-registry-token\n::add-mask::another-secret-value\nanother-secret-value")
    gl.info("stage hunter2-registry-token")
    text = out.getvalue()
    assert "hunter2-registry-token" not in text and "another-secret-value\n" not in text
    assert "add-mask" in text  # a GitHub command is only text here: shown (its value masked), not obeyed
    assert text.count("***") == 4


# --- inputs ---
def test_inputs_come_from_pyci_variables_and_reports_go_under_the_project(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Tiltfile").write_text("")
    env = gitlab_env(tmp_path, PYCI_WORKING_DIRECTORY=str(tmp_path / "app"), PYCI_TIMEOUT="7m",
                     PYCI_REGISTRY="none")
    gl = detect(env, io.StringIO())
    settings = load_settings({}, env, gl.input_defaults())
    assert settings.working_directory == tmp_path / "app"
    assert settings.timeout == 420.0
    assert settings.registry == "none"
    assert settings.junit == tmp_path / "pyci-reports" / "pyci-junit.xml"
    assert settings.artifacts_dir == tmp_path / "pyci-artifacts"
    assert settings.run_id.startswith("gl-4242-")


def test_run_id_names_the_gitlab_job() -> None:
    assert re.fullmatch(r"gl-4242-[0-9a-f]{6}", run_id(RUNNER))


def test_locations_are_relative_to_the_project_dir(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    assert workspace_roots({"CI_PROJECT_DIR": str(tmp_path)})[0] == tmp_path


# --- dotenv ---
def test_dotenv_is_one_plain_key_value_line_per_output() -> None:
    text = gitlab.dotenv({"result": "failure", "cluster-name": "pyci-ab12", "registry": "",
                          "failed": "api,web", "junit": "a 'quoted' path", "odd": "two\nlines"})
    assert text == ("PYCI_OUTPUT_RESULT=failure\nPYCI_OUTPUT_CLUSTER_NAME=pyci-ab12\nPYCI_OUTPUT_REGISTRY=\n"
                    "PYCI_OUTPUT_FAILED=api,web\nPYCI_OUTPUT_JUNIT=a 'quoted' path\n"
                    "PYCI_OUTPUT_ODD=two lines\n")
    # What GitLab's dotenv parser accepts: no blank lines, no comments, ASCII word keys.
    assert all(re.fullmatch(r"[A-Za-z0-9_]+=[^\n]*", line) for line in text.splitlines())


def test_a_dotenv_report_gitlab_would_reject_is_refused() -> None:
    with pytest.raises(ValueError, match="5120"):
        gitlab.dotenv({"failed": "x" * 6000})


def test_outputs_are_printed_and_written_as_the_dotenv_report(tmp_path: Path) -> None:
    gl, out = platform(tmp_path)
    gl.set_outputs({"result": "success", "duration": "12.5"})
    report = tmp_path / "pyci-reports" / "pyci.env"
    assert report.read_text() == "PYCI_OUTPUT_RESULT=success\nPYCI_OUTPUT_DURATION=12.5\n"
    assert "result    success" in out.getvalue()


# --- Code Quality ---
def failed(name: str, location: SourceLocation | None, message: str = "exit status 1") -> ResourceResult:
    return ResourceResult(name=name, source="tilt", ok=False, reason="CrashLoopBackOff", message=message,
                          location=location)


def test_code_quality_names_each_cause_at_its_line_relative_to_the_project(tmp_path: Path) -> None:
    resources = [
        failed("api", SourceLocation("k8s/api.yaml", 12, 1)),
        failed("worker", SourceLocation(str(tmp_path / "app" / "k8s" / "w.yaml"), 3, 1),
               "token s3cr3t-token"),
        failed("orphan", None),
        ResourceResult(name="web", source="tilt", ok=False, finished=False, message="blocked by api"),
        ResourceResult(name="db", source="tilt", ok=True),
    ]
    found = gitlab.code_quality(resources, tmp_path, "app/Tiltfile", ["s3cr3t-token"])
    assert [(f["location"]["path"], f["location"]["lines"]["begin"]) for f in found] == [
        ("k8s/api.yaml", 12), ("app/k8s/w.yaml", 3), ("app/Tiltfile", 1)]  # never the unfinished web
    assert found[0]["description"] == "api: CrashLoopBackOff — exit status 1"
    assert found[0]["check_name"] == "pyci/CrashLoopBackOff"
    assert "s3cr3t-token" not in json.dumps(found)
    assert {f["severity"] for f in found} <= SEVERITIES
    assert len({f["fingerprint"] for f in found}) == 3
    again = gitlab.code_quality(resources, tmp_path, "app/Tiltfile", ["s3cr3t-token"])
    assert [f["fingerprint"] for f in again] == [f["fingerprint"] for f in found]  # stable across runs
    for entry in found:
        assert set(entry) == {"description", "check_name", "fingerprint", "severity", "location"}


def test_a_path_outside_the_project_is_left_as_it_is(tmp_path: Path) -> None:
    assert gitlab.relative_to_project("/elsewhere/k8s.yaml", tmp_path / "project") == "/elsewhere/k8s.yaml"
    assert gitlab.relative_to_project("k8s/a.yaml", tmp_path) == "k8s/a.yaml"


def test_the_report_is_written_on_success_too(tmp_path: Path) -> None:
    gl, _ = platform(tmp_path)
    gl.write_findings(RunResult(ExitCode.HEALTHY, "healthy"), tmp_path / "Tiltfile", ())
    assert json.loads((tmp_path / "pyci-reports" / "gl-code-quality-report.json").read_text()) == []


def test_publish_writes_junit_dotenv_code_quality_and_summary_where_the_template_collects(
        tmp_path: Path) -> None:
    (tmp_path / "Tiltfile").write_text("")
    env = gitlab_env(tmp_path, PYCI_WORKING_DIRECTORY=str(tmp_path))
    gl, out = platform(tmp_path)
    settings = load_settings({}, env, gl.input_defaults())
    result = RunResult(ExitCode.APP_FAILED, "the app did not start: api (CrashLoopBackOff)", 9.0,
                       stages=[StageResult("tilt ci", 5.0, ok=False, error="exit 1")],
                       resources=[failed("api", SourceLocation("k8s/api.yaml", 7, 1))])
    cli.publish(result, settings, gl)
    template = yaml.safe_load(TEMPLATE.read_text())[".pyci"]["artifacts"]
    reports = {kind: tmp_path / path for kind, path in template["reports"].items()}
    assert set(reports) == {"junit", "dotenv", "codequality"}
    assert "failures=\"1\"" in reports["junit"].read_text()
    assert "PYCI_OUTPUT_RESULT=failure\n" in reports["dotenv"].read_text()
    assert json.loads(reports["codequality"].read_text())[0]["location"] == {
        "path": "k8s/api.yaml", "lines": {"begin": 7}}
    assert (tmp_path / "pyci-artifacts" / "summary.md").is_file()
    assert all((tmp_path / p.rstrip("/")).exists() for p in template["paths"])
    assert "error: pyci: failure: the app did not start" in out.getvalue()


def test_an_unwritable_dotenv_is_a_warning(tmp_path: Path) -> None:
    gl, out = platform(tmp_path)
    (tmp_path / "pyci-reports").write_text("a file where the folder should be")
    (tmp_path / "Tiltfile").write_text("")
    settings = load_settings({"junit": str(tmp_path / "j.xml")}, gitlab_env(tmp_path,
                             PYCI_WORKING_DIRECTORY=str(tmp_path)))
    cli.publish(RunResult(ExitCode.HEALTHY, "healthy"), settings, gl)
    assert "could not write the outputs" in out.getvalue()
    assert "could not write the Code Quality report" in out.getvalue()


# --- the template ---
def template() -> dict:
    loaded: dict = yaml.safe_load(TEMPLATE.read_text())
    return loaded


def gitlab_schema() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads((SCHEMAS / "gitlab-ci.schema.json").read_text()))


def merged(job: str) -> dict:
    """The job as GitLab sees it after `extends` (a deep merge of mappings; lists are replaced)."""
    jobs = template()

    def resolve(name: str) -> dict:
        body = dict(jobs[name])
        parent = body.pop("extends", None)
        return deep_merge(resolve(parent), body) if parent else body

    return resolve(job)


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def test_the_template_is_valid_gitlab_ci_as_included_and_as_a_job() -> None:
    validator = gitlab_schema()
    assert list(validator.iter_errors(template())) == []
    # Hidden jobs may be any YAML to the schema: check each as the job a user gets from `extends`.
    for name in (".pyci", ".pyci-tls"):
        errors = [e.message for e in validator.iter_errors({"tilt-ci": merged(name)})]
        assert errors == [], (name, errors)
    user = {"include": [{"remote": "https://example.com/pyci.gitlab-ci.yml"}],
            "tilt-ci": {"extends": ".pyci", "variables": {"PYCI_WORKING_DIRECTORY": "examples/hello"}}}
    assert list(validator.iter_errors(user)) == []
    # The schema bites: a misspelt keyword in a job is an error.
    assert list(validator.iter_errors({"tilt-ci": {**merged(".pyci"), "artefacts": {}}}))


def test_the_template_reaches_dind_over_tcp_with_and_without_tls() -> None:
    plain, tls = merged(".pyci"), merged(".pyci-tls")
    for job in (plain, tls):
        assert job["image"]["entrypoint"] == [""]
        service = job["services"][0]
        assert re.fullmatch(r"docker:\d+-dind", service["name"]) and service["alias"] == "docker"
    assert plain["variables"] == {"DOCKER_HOST": "tcp://docker:2375", "DOCKER_TLS_CERTDIR": ""}
    assert plain["services"][0]["command"] == ["--tls=false"]
    assert tls["variables"]["DOCKER_HOST"] == "tcp://docker:2376"
    assert tls["variables"]["DOCKER_TLS_CERTDIR"] == "/certs"
    assert tls["variables"]["DOCKER_CERT_PATH"] == "/certs/client"
    assert "command" not in tls["services"][0]


def test_the_template_collects_the_files_pyci_writes() -> None:
    artifacts = merged(".pyci")["artifacts"]
    assert artifacts["when"] == "always"  # a red run's reports matter most
    assert artifacts["reports"] == {
        "junit": f"{gitlab.REPORTS}/{gitlab.JUNIT}",
        "dotenv": f"{gitlab.REPORTS}/{gitlab.DOTENV}",
        "codequality": f"{gitlab.REPORTS}/{gitlab.CODE_QUALITY}",
    }
    assert f"{gitlab.ARTIFACTS}/" in artifacts["paths"]


def test_the_templates_script_is_posix_sh(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("\n".join(merged(".pyci")["script"]) + "\n")
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert merged(".pyci")["script"][-1] == "pyci run"


def test_the_readme_shows_the_include() -> None:
    readme = (REPO / "README.md").read_text()
    assert "gitlab/pyci.gitlab-ci.yml" in readme and "extends: .pyci" in readme
