"""action.yml is generated from pyci.settings.INPUTS; these tests keep the two (and the outputs) in sync.

Regenerate after changing INPUTS or the outputs:  python tests/unit/test_action_yml.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import yaml

from pyci import report
from pyci.results import ExitCode, RunResult
from pyci.settings import INPUTS

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
SCHEMAS = REPO.parent / "shared" / "schemas"
IMAGE = "docker://ghcr.io/pyci-action/pyci-action:v1"

OUTPUTS = {
    "result": "success, failure (the app did not become healthy), error (docker, kind or the registry "
    "failed), invalid (bad input) or cancelled.",
    "cluster-name": "Name of the kind cluster the run used.",
    "kubeconfig": "Path of the cluster's kubeconfig; set with keep-cluster only "
    "(otherwise the cluster and the file are gone when the step ends).",
    "registry": "Registry the images were pushed to, as host:port or host/path.",
    "junit": "Path of the JUnit XML report.",
    "artifacts-dir": "Directory holding the diagnostics bundle (written on failure).",
    "duration": "Duration of the run in seconds.",
}


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def render() -> str:
    lines = [
        "# GENERATED from pyci.settings.INPUTS by `python tests/unit/test_action_yml.py --write`:",
        "# change INPUTS (or OUTPUTS in that test), not this file. tests/unit/test_action_yml.py checks it.",
        "name: pyci tilt ci",
        "description: "
        + quoted(
            "Prove a multi-service Tilt app starts on a fresh kind cluster: local registry, "
            "`tilt ci`, readiness watch, JUnit and a step summary."
        ),
        "author: pyci-action",
        "branding:",
        "  icon: check-circle",
        "  color: green",
        "# GitHub passes every input to the container as an INPUT_<NAME> environment variable (empty when",
        "# unset); pyci reads them there, so the inputs need no `args`.",
        "inputs:",
    ]
    for spec in INPUTS:
        lines += [
            f"  {spec.name}:",
            f"    description: {quoted(spec.description)}",
            "    required: false",
            f"    default: {quoted(spec.default)}",
        ]
    lines.append("outputs:")
    for name, description in OUTPUTS.items():
        lines += [f"  {name}:", f"    description: {quoted(description)}"]
    lines += [
        "runs:",
        "  using: docker",
        "  # The released multi-arch image, pulled as is: nothing is built on the runner, so a job starts in",
        "  # seconds. release.yml moves the v1 tag to every v1.x.y release; pin a v1.x.y tag or a digest",
        "  # (docker://ghcr.io/pyci-action/pyci-action@sha256:...) in a fork that wants no moving tag.",
        f"  image: {IMAGE}",
    ]
    return "\n".join(lines) + "\n"


def load() -> dict:
    loaded: dict = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    return loaded


def test_action_yml_is_valid_against_the_github_action_schema() -> None:
    schema = json.loads((SCHEMAS / "github-action.schema.json").read_text(encoding="utf-8"))
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(load())]
    assert errors == []


def test_inputs_and_defaults_are_exactly_settings_inputs() -> None:
    inputs = load()["inputs"]
    assert list(inputs) == [spec.name for spec in INPUTS]
    for spec in INPUTS:
        assert inputs[spec.name]["default"] == spec.default, spec.name
        assert inputs[spec.name]["description"] == spec.description, spec.name
        assert inputs[spec.name]["required"] is False, spec.name


def test_outputs_are_the_report_outputs_each_described() -> None:
    outputs = load()["outputs"]
    produced = report.outputs(RunResult(exit_code=ExitCode.HEALTHY, headline="ok"))
    assert set(outputs) == set(produced)
    assert all(outputs[name]["description"].strip() for name in outputs)


def test_runs_the_published_docker_image() -> None:
    runs = load()["runs"]
    assert runs == {"using": "docker", "image": IMAGE}


def test_action_yml_is_what_the_generator_writes() -> None:
    assert ACTION.read_text(encoding="utf-8") == render(), (
        "action.yml is out of date: run `python tests/unit/test_action_yml.py --write`"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/unit/test_action_yml.py --write")
    ACTION.write_text(render(), encoding="utf-8")
    print(f"wrote {ACTION}")
