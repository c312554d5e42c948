"""Reading `tilt alpha tiltfile-result` (real outputs of tilt 0.37, captured in tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

from pyci import tiltfile
from pyci.tiltfile import SourceLocation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_components_and_images_of_the_hello_example():
    found = tiltfile.parse_result(json.loads((FIXTURES / "tiltfile-result-hello.json").read_text()))
    by = {c.name: c for c in found.components}
    assert list(by) == ["api", "web", "migrate"]
    assert by["api"].objects == ("service/api", "deployment/api") and by["api"].images == ("hello-api",)
    assert by["migrate"].objects == ("job/migrate",) and by["migrate"].images == ("hello-api",)
    assert tiltfile.resource_deps(found) == {"web": ("api",), "migrate": ("api",)}  # resource_deps=['api']
    assert tiltfile.resource_deps(None) == {}
    assert [i.ref for i in found.images] == ["hello-api", "hello-web"]  # one target, used twice
    api = found.images[0]
    assert (api.context, api.build_args, api.custom) == (
        "/repo/examples/hello/api", ("BASE_IMAGE=pyci-lab/base:latest",), False)
    assert "FROM ${BASE_IMAGE}" in (api.dockerfile_contents or "")
    assert found.third_party_images == ()  # every image the manifests name is built here


def test_a_syntax_error_has_its_location():
    error = tiltfile.parse_error((FIXTURES / "tiltfile-error-syntax.txt").read_text())
    assert error is not None
    assert (error.location, error.message, error.environmental) == (
        SourceLocation("/tmp/tfe/Tiltfile", 2, 6), "got identifier, want ']'", False)


def test_an_evaluation_error_points_at_the_innermost_frame():
    error = tiltfile.parse_error((FIXTURES / "tiltfile-error-runtime.txt").read_text())
    assert error is not None
    assert error.location == SourceLocation("/tmp/tfe/Tiltfile", 2, 9)  # inside f(), not the call of f
    assert error.message == "Error in fail: boom" and not error.environmental


def test_a_failing_local_command_is_not_held_against_the_tiltfile():
    error = tiltfile.parse_error((FIXTURES / "tiltfile-error-local.txt").read_text())
    assert error is not None and error.environmental
    assert error.message.startswith('Error in local: command "exit 3" failed.')


def test_an_extension_that_cannot_be_fetched_stops_the_run_with_gits_reason():
    """Seen offline (tilt 0.37.6): was "may need the cluster; tilt ci decides": a cluster for nothing."""
    error = tiltfile.parse_error((FIXTURES / "tiltfile-error-extension.txt").read_text())
    assert error is not None and not error.environmental
    assert error.location == SourceLocation("/tmp/tfe/Tiltfile", 1, 1)
    assert error.message.startswith("Error: cannot load ext://restart_process: loading extension repo")
    assert error.message.endswith("git: fatal: unable to access 'https://github.com/tilt-dev/tilt-extensions/"
                                  "': Could not resolve host: github.com"), error.message


def test_a_missing_file_stops_the_run():
    error = tiltfile.parse_error((FIXTURES / "tiltfile-error-missing-file.txt").read_text())
    assert error is not None and not error.environmental
    assert error.location == SourceLocation("/tmp/tfe/Tiltfile", 1, 9)
    assert "missing.yaml: no such file or directory" in error.message


def test_a_local_command_that_is_not_installed_stops_the_run():
    """exit 127 (`sh: 1: nosuchtool: not found`): no cluster installs it."""
    error = tiltfile.parse_error((FIXTURES / "tiltfile-error-local-missing.txt").read_text())
    assert error is not None and not error.environmental
    assert error.message.startswith('Error in local: command "nosuchtool version" failed.')


def test_an_error_of_a_tiltfile_that_asks_for_its_cluster_is_left_to_tilt_ci(tmp_path: Path):
    """`k8s_context()` has no cluster to name in preflight: the branch it takes there proves nothing."""
    text = (FIXTURES / "tiltfile-error-context.txt").read_text()
    plain, asks = tiltfile.parse_error(text), tiltfile.parse_error(text, reads_cluster=True)
    assert plain is not None and not plain.environmental
    assert asks is not None and asks.environmental
    (tmp_path / "Tiltfile").write_text("if k8s_context() != 'kind-pyci':\n    fail('wrong cluster')\n")
    (tmp_path / "Other").write_text("k8s_yaml('app.yaml')  # k8s_context is not called here\n")
    assert tiltfile._reads_cluster(tmp_path / "Tiltfile") and not tiltfile._reads_cluster(tmp_path / "Other")
    syntax = (FIXTURES / "tiltfile-error-syntax.txt").read_text()
    error = tiltfile.parse_error(syntax, reads_cluster=True)
    assert error is not None and not error.environmental  # read before any branch runs


def test_third_party_images_are_those_no_target_builds():
    deploy = ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  template:\n"
              "    spec:\n      initContainers: [{name: init, image: busybox:1.36}]\n"
              "      containers: [{name: db, image: 'postgres:16'}, {name: app, image: app}]\n")
    result = {"Manifests": [{"Name": "db", "ImageTargets": [{"selector": "app", "BuildDetails": {
        "context": "/x", "dockerfileContents": "FROM scratch\n"}}], "DeployTarget": {"yaml": deploy}}]}
    found = tiltfile.parse_result(result)
    assert found.third_party_images == ("busybox:1.36", "postgres:16")
    assert found.components[0].objects == ("statefulset/db",)


def test_a_custom_build_cannot_be_built_ahead():
    result = {"Manifests": [{"Name": "x", "ImageTargets": [{"selector": "x", "BuildDetails": {
        "command": {"args": ["make"]}}}]}]}
    assert tiltfile.parse_result(result).images[0].custom


def test_locations_are_relative_to_the_workspace(tmp_path: Path):
    (tmp_path / "app").mkdir()
    here = SourceLocation(str(tmp_path / "app" / "Tiltfile"), 3, 1)
    assert tiltfile.relative_location(here, [tmp_path]) == SourceLocation("app/Tiltfile", 3, 1)
    assert tiltfile.relative_location(here, [tmp_path / "elsewhere"]) == here


def test_no_tilt_means_not_read_ahead(tmp_path: Path):
    found = tiltfile.evaluate(tmp_path / "Tiltfile", tilt_bin=str(tmp_path / "no-such-tilt"))
    assert found.unavailable and found.error is None
