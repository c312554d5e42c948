"""action.yml (the docker action) and host/action.yml (the host-mode composite action) are generated
from pyci.settings.INPUTS; these tests keep them (and the outputs) in sync.

Regenerate after changing INPUTS or the outputs:  python tests/unit/test_action_yml.py --write
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from pyci import report
from pyci.results import ExitCode, RunResult
from pyci.settings import INPUTS, InputSpec
from tests.schemas import SCHEMAS

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
HOST_ACTION = REPO / "host" / "action.yml"
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
    "failed": "Comma-separated names of the components that failed (the causes; empty when none).",
    "not-finished": "Comma-separated names of the components still on their way when the run stopped on "
    "a failure (never a cause).",
}


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def input_lines() -> list[str]:
    """The `inputs:` entries both actions share, one per INPUTS spec."""
    lines: list[str] = []
    for spec in INPUTS:
        lines += [
            f"  {spec.name}:",
            f"    description: {quoted(spec.description)}",
            "    required: false",
            f"    default: {quoted(spec.default)}",
        ]
    return lines


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
    lines += input_lines()
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


def env_name(spec: InputSpec) -> str:
    """How the host action hands an input to pyci: one of the names pyci reads (InputSpec.env_names)."""
    return f"INPUT_{spec.field.upper()}"


# The host action's steps, as bash. Inputs reach pyci only through `env:` (never pasted into a script),
# so no input value is ever parsed as shell.
HOST_INSTALL_PYCI = r"""set -euo pipefail
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  found=$(python3 -V 2>&1 || echo none)
  echo "::error title=pyci host action::pyci needs Python 3.11 or newer as python3 (found: $found);" \
    "run actions/setup-python before this step"
  exit 2
fi
# One virtual environment per job and action checkout (RUNNER_TEMP is emptied between jobs): a second
# step of the job reuses it, and pyci's dependencies never touch the runner's Python.
venv="${RUNNER_TEMP:?}/pyci-host/$(printf '%s' "$PYCI_ACTION_PATH" | sha256sum | cut -c1-16)"
if [ "$(cat "$venv/.pyci-source" 2>/dev/null)" = "$PYCI_ACTION_PATH" ] \
    && "$venv/bin/python" -c 'import pyci' 2>/dev/null; then
  echo "pyci: reusing $venv"
else
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "$PYCI_ACTION_PATH/.."
  printf '%s' "$PYCI_ACTION_PATH" > "$venv/.pyci-source"
fi
"$venv/bin/python" -c 'import sys, pyci; print(f"pyci {pyci.__version__} in {sys.prefix}")'
echo "$venv/bin" >> "$GITHUB_PATH"
"""

HOST_INSTALL_TOOLS = r"""set -euo pipefail
# The tool cache survives the job on a self-hosted runner: later steps and jobs find the tools there,
# re-check their digests and download nothing.
pyci install-tools --dest "${RUNNER_TOOL_CACHE:-$RUNNER_TEMP/tool-cache}/pyci" --github-path
"""

# exec: pyci is the step's process, so the runner's SIGINT/SIGTERM on cancel reaches pyci itself, which
# cleans up (exit 130).
HOST_RUN = "exec pyci run"


# cache-dir through actions/cache: restored before pyci runs, saved after it (even when the app failed:
# its layers are still good). The key names the Tiltfile and Dockerfiles' contents; a run always saves
# under its own key (actions/cache never overwrites one), and restore-keys take the newest partial hit.
CACHE_FILES = ("format('{0}/{1}', inputs.working-directory, inputs.tiltfile), "
               "format('{0}/**/Dockerfile*', inputs.working-directory)")
CACHE_PREFIX = "pyci-${{ runner.os }}-${{ runner.arch }}-"
CACHE_KEY = f"{CACHE_PREFIX}${{{{ hashFiles({CACHE_FILES}) }}}}-"
HOST_CACHE_RESTORE = [
    "    - name: Restore pyci's cache (cache-dir)",
    "      if: inputs.cache-dir != ''",
    "      uses: actions/cache/restore@v4",
    "      with:",
    "        path: ${{ inputs.cache-dir }}",
    f"        key: {CACHE_KEY}${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}",
    "        restore-keys: |",
    f"          {CACHE_KEY}",
    f"          {CACHE_PREFIX}",
]
HOST_CACHE_SAVE = [
    "    - name: Save pyci's cache (cache-dir)",
    "      if: always() && inputs.cache-dir != ''",
    "      uses: actions/cache/save@v4",
    "      with:",
    "        path: ${{ inputs.cache-dir }}",
    f"        key: {CACHE_KEY}${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}",
]


def block(script: str, indent: str) -> list[str]:
    return [f"{indent}{line}" if line else "" for line in script.splitlines()]


def render_host() -> str:
    lines = [
        "# GENERATED from pyci.settings.INPUTS by `python tests/unit/test_action_yml.py --write`:",
        "# change INPUTS (or OUTPUTS in that test), not this file. tests/unit/test_action_yml.py checks it.",
        "#",
        "# The host-mode action (uses: pyci-action/pyci-action/host@v1): pyci runs on the runner itself,",
        "# so a Tiltfile's local_resource and custom_build find the runner's own go, node, make. Same",
        "# inputs and outputs as the docker action in ../action.yml.",
        "name: pyci tilt ci (host)",
        "description: "
        + quoted(
            "pyci on the runner itself: pinned kind, kubectl, tilt and helm (SHA256-verified, in the tool "
            "cache), pyci from pip, `tilt ci` with the runner's own toolchains."
        ),
        "author: pyci-action",
        "branding:",
        "  icon: check-circle",
        "  color: green",
        "inputs:",
    ]
    lines += input_lines()
    lines.append("outputs:")
    for name, description in OUTPUTS.items():
        lines += [f"  {name}:", f"    description: {quoted(description)}",
                  f"    value: ${{{{ steps.pyci.outputs.{name} }}}}"]
    lines += [
        "runs:",
        "  using: composite",
        "  steps:",
        "    - name: Install pyci with pip (from this action's checkout, in a virtual environment)",
        "      shell: bash",
        "      env:",
        "        PYCI_ACTION_PATH: ${{ github.action_path }}",
        "      run: |",
        *block(HOST_INSTALL_PYCI, "        "),
        "    - name: Install kind, kubectl, tilt and helm (pinned in versions.env, SHA256-verified)",
        "      shell: bash",
        "      run: |",
        *block(HOST_INSTALL_TOOLS, "        "),
        *HOST_CACHE_RESTORE,
        "    - id: pyci",
        "      name: pyci run",
        "      shell: bash",
        "      env:",
        *[f"        {env_name(spec)}: ${{{{ inputs.{spec.name} }}}}" for spec in INPUTS],
        f"      run: {HOST_RUN}",
        *HOST_CACHE_SAVE,
    ]
    return "\n".join(lines) + "\n"


def load(path: Path = ACTION) -> dict:
    loaded: dict = yaml.safe_load(path.read_text(encoding="utf-8"))
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


# --- host/action.yml, the composite action ---
def test_host_action_is_valid_against_the_github_action_schema() -> None:
    schema = json.loads((SCHEMAS / "github-action.schema.json").read_text(encoding="utf-8"))
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(load(HOST_ACTION))]
    assert errors == []


def test_host_action_has_the_docker_actions_inputs_and_outputs() -> None:
    host, docker = load(HOST_ACTION), load()
    assert host["inputs"] == docker["inputs"]
    assert list(host["inputs"]) == [spec.name for spec in INPUTS]
    assert {n: o["description"] for n, o in host["outputs"].items()} == \
        {n: o["description"] for n, o in docker["outputs"].items()}
    for name, output in host["outputs"].items():
        assert output["value"] == f"${{{{ steps.pyci.outputs.{name} }}}}", name


def test_host_action_hands_every_input_to_pyci_under_a_name_pyci_reads() -> None:
    steps = load(HOST_ACTION)["runs"]["steps"]
    run = next(step for step in steps if step.get("id") == "pyci")
    assert run["run"] == "exec pyci run"
    assert run["env"] == {env_name(spec): f"${{{{ inputs.{spec.name} }}}}" for spec in INPUTS}
    assert all(env_name(spec) in spec.env_names for spec in INPUTS)
    for step in steps:  # an input pasted into a script would be parsed as shell
        assert "inputs." not in step.get("run", ""), step["name"]


def test_host_action_installs_pyci_from_its_checkout_then_the_verified_tools() -> None:
    steps = load(HOST_ACTION)["runs"]["steps"]
    assert load(HOST_ACTION)["runs"]["using"] == "composite"
    pip, tools, restore, run, save = steps
    assert pip["env"]["PYCI_ACTION_PATH"] == "${{ github.action_path }}"
    assert 'pip install --disable-pip-version-check --no-input --quiet "$PYCI_ACTION_PATH/.."' in pip["run"]
    assert "pyci install-tools --dest \"${RUNNER_TOOL_CACHE:-$RUNNER_TEMP/tool-cache}/pyci\"" in tools["run"]
    assert "--github-path" in tools["run"]
    assert all(step["shell"] == "bash" for step in (pip, tools, run))


def test_host_action_restores_the_cache_dir_before_pyci_and_saves_it_after_even_on_failure() -> None:
    steps = load(HOST_ACTION)["runs"]["steps"]
    names = [step.get("uses") or step.get("id") or step["name"] for step in steps]
    assert names[2:] == ["actions/cache/restore@v4", "pyci", "actions/cache/save@v4"]
    restore, save = steps[2], steps[4]
    assert restore["if"] == "inputs.cache-dir != ''" and save["if"] == "always() && inputs.cache-dir != ''"
    assert restore["with"]["path"] == save["with"]["path"] == "${{ inputs.cache-dir }}"
    assert restore["with"]["key"] == save["with"]["key"]  # each run saves under its own key
    assert "hashFiles(" in restore["with"]["key"] and "Dockerfile*" in restore["with"]["key"]
    assert "inputs.tiltfile" in restore["with"]["key"] and "github.run_id" in save["with"]["key"]
    own_hash, any_hash = restore["with"]["restore-keys"].splitlines()
    assert restore["with"]["key"].startswith(own_hash) and own_hash.startswith(any_hash)


def test_host_action_scripts_are_bash() -> None:
    for step in load(HOST_ACTION)["runs"]["steps"]:
        if "run" not in step:
            continue
        subprocess.run(["bash", "-n", "-c", step["run"]], check=True, timeout=30)


def test_host_action_refuses_an_old_python_with_one_line(tmp_path: Path) -> None:
    """ubuntu-22.04's python3 is 3.10: the step says what to do, in one line, and installs nothing."""
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = -V ] && { echo "Python 3.10.12"; exit 0; }\nexit 1\n')
    fake.chmod(0o755)
    script = load(HOST_ACTION)["runs"]["steps"][0]["run"]
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "RUNNER_TEMP": str(tmp_path / "temp"),
           "GITHUB_PATH": str(tmp_path / "github_path"), "PYCI_ACTION_PATH": str(REPO / "host")}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stdout.splitlines() == [
        "::error title=pyci host action::pyci needs Python 3.11 or newer as python3 (found: Python 3.10.12); "
        "run actions/setup-python before this step"]
    assert not (tmp_path / "temp").exists() and not (tmp_path / "github_path").exists()


def test_host_action_yml_is_what_the_generator_writes() -> None:
    assert HOST_ACTION.read_text(encoding="utf-8") == render_host(), (
        "host/action.yml is out of date: run `python tests/unit/test_action_yml.py --write`"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/unit/test_action_yml.py --write")
    ACTION.write_text(render(), encoding="utf-8")
    print(f"wrote {ACTION}")
    HOST_ACTION.parent.mkdir(exist_ok=True)
    HOST_ACTION.write_text(render_host(), encoding="utf-8")
    print(f"wrote {HOST_ACTION}")
