"""The CircleCI orb: orb-tools layout, packed orb/orb.yml in sync and schema-valid, parameters = INPUTS."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from pyci.platforms import CircleCI
from pyci.settings import INPUTS
from tests.schemas import SCHEMAS

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "orb" / "src"
BOOLEANS = {"build-ahead", "wait", "summary", "keep-cluster", "debug"}


def pack_orb() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("pack_orb", str(REPO / "tools" / "pack-orb"))
    spec = importlib.util.spec_from_loader("pack_orb", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def orb() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "orb" / "orb.yml").read_text(encoding="utf-8"))
    return loaded


def test_packed_orb_is_what_the_source_packs_to() -> None:
    assert (REPO / "orb" / "orb.yml").read_text(encoding="utf-8") == pack_orb().pack(SRC), (
        "orb/orb.yml is out of date: run tools/pack-orb"
    )


def test_packed_orb_is_valid_against_the_circleci_schema(orb: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "circleci-config.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(orb)]
    assert errors == []
    assert orb["examples"]
    for name, example in orb["examples"].items():  # an example's usage is a config of its own
        assert [e.message for e in validator.iter_errors(example["usage"])] == [], name


def test_source_has_the_orb_tools_layout() -> None:
    assert (SRC / "@orb.yml").is_file()
    assert {p.stem for p in (SRC / "executors").glob("*.yml")} == {"machine", "docker"}
    for folder in ("commands", "jobs", "examples"):
        assert list((SRC / folder).glob("*.yml")), folder


def test_executors_are_a_machine_and_a_docker_executor(orb: dict[str, Any]) -> None:
    assert "machine" in orb["executors"]["machine"]
    assert orb["executors"]["docker"]["docker"][0]["image"] == "<< parameters.image >>"


def _steps(job: dict[str, Any]) -> list[str]:
    return [step if isinstance(step, str) else next(iter(step)) for step in job["steps"]]


def test_jobs_store_what_pyci_writes_on_circleci(orb: dict[str, Any]) -> None:
    platform = CircleCI(None, {})  # type: ignore[arg-type]  # only its default folders are read
    assert orb["jobs"]
    for name, job in orb["jobs"].items():
        stored = {next(iter(s)): next(iter(s.values())) for s in job["steps"] if isinstance(s, dict)}
        assert stored["store_test_results"]["path"] == str(platform.test_results_dir), name
        assert stored["store_artifacts"]["path"] == str(platform.artifacts_dir), name
        assert "run-pyci" in stored, name


def test_docker_job_uses_setup_remote_docker_and_the_machine_job_does_not(orb: dict[str, Any]) -> None:
    assert "setup_remote_docker" in _steps(orb["jobs"]["tilt-ci-docker"])
    assert orb["jobs"]["tilt-ci-docker"]["executor"]["name"] == "docker"
    assert "setup_remote_docker" not in _steps(orb["jobs"]["tilt-ci"])
    assert orb["jobs"]["tilt-ci"]["executor"]["name"] == "machine"


def _param_name(spec: Any) -> str:
    return f"{spec.name}-env" if spec.secret else spec.name


def test_command_parameters_are_the_inputs_each_mapped_to_its_pyci_variable(orb: dict[str, Any]) -> None:
    command = orb["commands"]["run-pyci"]
    params = command["parameters"]
    assert set(params) == {"image"} | {_param_name(s) for s in INPUTS}
    environment = command["steps"][0]["run"]["environment"]
    for spec in INPUTS:
        param = params[_param_name(spec)]
        if spec.secret:  # the value stays in a project variable; the parameter names it
            assert param["type"] == "env_var_name"
            continue
        variable = "PYCI_" + spec.name.upper().replace("-", "_")
        assert environment[variable] == f"<< parameters.{spec.name} >>"
        if spec.name in BOOLEANS:
            assert (param["type"], param["default"]) == ("boolean", spec.default == "true"), spec.name
        elif spec.name in ("junit", "artifacts-dir"):  # empty: pyci's CircleCI folders under /tmp/pyci
            assert param["default"] == "", spec.name
        else:
            assert (param["type"], param["default"]) == ("string", spec.default), spec.name


def test_jobs_pass_every_parameter_to_the_command(orb: dict[str, Any]) -> None:
    wanted = set(orb["commands"]["run-pyci"]["parameters"])
    assert orb["jobs"] and wanted
    for name, job in orb["jobs"].items():
        call = next(s["run-pyci"] for s in job["steps"] if isinstance(s, dict) and "run-pyci" in s)
        assert call == {p: f"<< parameters.{p} >>" for p in wanted}, name
        assert set(job["parameters"]) - {"machine-image"} == wanted, name


def test_run_script_is_posix_sh_without_circleci_parameter_syntax() -> None:
    script = (SRC / "scripts" / "run.sh").read_text(encoding="utf-8")
    assert "<<" not in script  # CircleCI would read it as a parameter reference
    # The docker executor runs it with busybox's sh (tests/e2e checks that for real); dash is the
    # strict POSIX shell at hand here.
    dash = shutil.which("dash")
    assert dash, "dash is needed to check the orb's script"
    subprocess.run([dash, "-n", str(SRC / "scripts" / "run.sh")], check=True, timeout=30)


def test_jobs_restore_the_cache_dir_before_pyci_and_save_it_after_always(orb: dict[str, Any]) -> None:
    for name, job in orb["jobs"].items():
        steps = [s for s in job["steps"] if isinstance(s, dict)]
        kinds = [next(iter(s)) for s in steps]
        first, run = kinds.index("when"), kinds.index("run-pyci")
        last = len(kinds) - 1 - kinds[::-1].index("when")
        assert first < run < last, name
        restore = steps[first]["when"]
        save = steps[last]["when"]
        assert restore["condition"] == save["condition"] == "<< parameters.cache-dir >>", name
        [restore_step] = restore["steps"]
        [save_step] = save["steps"]
        keys = restore_step["restore_cache"]["keys"]
        saved = save_step["save_cache"]
        assert saved["when"] == "always" and saved["paths"] == ["<< parameters.cache-dir >>"], name
        assert saved["key"].startswith(keys[0]) and keys[0].startswith(keys[1]), name
        assert 'checksum "<< parameters.working-directory >>/<< parameters.tiltfile >>"' in keys[0], name
        assert "{{ epoch }}" in saved["key"], name  # save_cache never overwrites a key: each run has its own
