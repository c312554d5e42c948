"""Where a failed component is declared: a manifest document, else its Tiltfile call, else the Tiltfile."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pyci import locate, tiltfile
from pyci.results import ResourceResult
from pyci.tiltfile import SourceLocation

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def failed(name: str, workloads: list[str] | None = None, reason: str = "CrashLoopBackOff") -> ResourceResult:
    return ResourceResult(name=name, source="tilt", ok=False, reason=reason, workloads=workloads or [])


SERVICE_AND_DEPLOYMENT = """\
# the api: a Service, then its Deployment
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 1
"""


def test_the_deployment_document_in_a_multi_document_file_not_the_service_of_the_same_name(tmp_path: Path):
    write(tmp_path, {"Tiltfile": "k8s_yaml('k8s/api.yaml')\n", "k8s/api.yaml": SERVICE_AND_DEPLOYMENT})
    found = locate.locate([failed("api", ["deployment/default/api"])], tmp_path, tmp_path / "Tiltfile")
    assert found == {"api": SourceLocation("k8s/api.yaml", 10, 1)}  # the second document's `kind:`


def test_a_name_shared_by_two_kinds_in_two_files_matches_the_workload_kind(tmp_path: Path):
    write(tmp_path, {
        "Tiltfile": "k8s_yaml(['a-service.yaml', 'z-statefulset.yaml'])\n",
        "a-service.yaml": "kind: Service\nmetadata: {name: db}\n",
        "z-statefulset.yaml": "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n",
    })
    found = locate.locate([failed("db", ["statefulset/default/db"])], tmp_path, tmp_path / "Tiltfile")
    assert found["db"] == SourceLocation("z-statefulset.yaml", 2, 1)


def test_the_document_naming_the_workloads_namespace_wins(tmp_path: Path):
    write(tmp_path, {
        "Tiltfile": "",
        "k8s/web.yaml": "kind: Deployment\nmetadata: {name: web}\n---\n"
                        "kind: Deployment\nmetadata: {name: web, namespace: shop}\n---\n"
                        "kind: Deployment\nmetadata: {name: web, namespace: other}\n",
    })
    found = locate.locate([failed("web", ["deployment/shop/web"]), failed("deployment/default/web")],
                          tmp_path, tmp_path / "Tiltfile")
    assert found["web"].line == 4  # namespace shop
    assert found["deployment/default/web"].line == 1  # no namespace: applies to default; `other` never


def test_a_document_without_kind_line_points_at_its_first_line(tmp_path: Path):
    write(tmp_path, {"Tiltfile": "", "j.yml": "---\n# comment\n{kind: Job, metadata: {name: migrate}}\n"})
    found = locate.locate([failed("migrate", ["job/default/migrate"])], tmp_path, tmp_path / "Tiltfile")
    assert found["migrate"] == SourceLocation("j.yml", 3, 1)


def test_a_helm_template_is_never_matched_the_helm_call_is(tmp_path: Path):
    # The template names `web` literally, but what it renders depends on the values: not trusted.
    write(tmp_path, {
        "Tiltfile": "docker_build('img', '.')\n\nk8s_yaml(helm('chart', name='cfg', set=['x=1']))\n",
        "chart/Chart.yaml": "apiVersion: v2\nname: chart\nversion: 0.1.0\n",
        "chart/templates/web.yaml": "kind: Deployment\nmetadata:\n  name: cfg-web\n"
                                    "  labels: {{ include \"labels\" . }}\n",
    })
    component = failed("cfg-web", ["deployment/default/cfg-web"])
    found = locate.locate([component], tmp_path, tmp_path / "Tiltfile")
    assert found["cfg-web"] == SourceLocation("Tiltfile", 3, 1)  # the k8s_yaml(helm(...)) call
    assert list(locate.documents(tmp_path / "chart/templates/web.yaml",
                                 (tmp_path / "chart/templates/web.yaml").read_text())) == []


def test_k8s_resource_call_when_no_manifest_file_declares_it(tmp_path: Path):
    write(tmp_path, {"Tiltfile": "k8s_yaml(blob(local('gen.sh')))\n\n"
                                 "  k8s_resource(\n  'api', port_forwards=8080)\n"})
    found = locate.locate([failed("api", ["deployment/default/api"])], tmp_path, tmp_path / "Tiltfile")
    assert found["api"] == SourceLocation("Tiltfile", 3, 3)


def test_k8s_resource_by_keyword_and_new_name(tmp_path: Path):
    write(tmp_path, {"Tiltfile": "# k8s_resource('api') in a comment\n"
                                 "k8s_resource(workload='api', labels=['x'])\n"
                                 "k8s_resource(new_name='gizmo', objects=['gizmo:widget'])\n"})
    found = locate.locate([failed("api"), failed("gizmo")], tmp_path, tmp_path / "Tiltfile")
    assert (found["api"].line, found["gizmo"].line) == (2, 3)


def test_a_failed_build_points_at_its_docker_build_not_its_manifest(tmp_path: Path):
    write(tmp_path, {
        "Tiltfile": "k8s_yaml('api.yaml')\ndocker_build(\n  'api-image', 'api')\nk8s_resource('api')\n",
        "api.yaml": "kind: Deployment\nmetadata: {name: api}\n",
    })
    evaluation = tiltfile.Evaluation(0.0, components=(
        tiltfile.Component("api", images=("api-image",), objects=("deployment/api",)),))
    component = failed("api", reason="BuildFailed")
    found = locate.locate([component], tmp_path, tmp_path / "Tiltfile", evaluation)
    assert found["api"] == SourceLocation("Tiltfile", 2, 1)
    crashed = failed("api")  # the same component crashing: its manifest, found through the preflight
    assert locate.locate([crashed], tmp_path, tmp_path / "Tiltfile", evaluation)["api"] == \
        SourceLocation("api.yaml", 1, 1)


def test_local_resource_and_included_tiltfiles(tmp_path: Path):
    write(tmp_path, {
        "Tiltfile": "include('./db/Tiltfile')\nlocal_resource('lint', cmd='make lint')\n",
        "db/Tiltfile": "\n\nlocal_resource(name='seed', cmd='./seed.sh')\n",
    })
    found = locate.locate([failed("lint", reason="BuildFailed"), failed("seed", reason="BuildFailed")],
                          tmp_path, tmp_path / "Tiltfile")
    assert found == {"lint": SourceLocation("Tiltfile", 2, 1), "seed": SourceLocation("db/Tiltfile", 3, 1)}


def test_nothing_found_is_the_tiltfiles_first_line(tmp_path: Path):
    write(tmp_path, {"app/Tiltfile": "k8s_yaml(local('kustomize build overlays/ci'))\n"})
    found = locate.locate([failed("deployment/default/ghost")], tmp_path, tmp_path / "app" / "Tiltfile")
    assert found == {"deployment/default/ghost": SourceLocation("app/Tiltfile", 1, 1)}


def test_skipped_folders_and_files_outside_the_tiltfiles_folder_unless_named(tmp_path: Path):
    write(tmp_path, {
        "app/Tiltfile": "k8s_yaml('../shared/web.yaml')\n",
        "app/node_modules/pkg/web.yaml": "kind: Deployment\nmetadata: {name: web}\n",
        "app/.git/web.yaml": "kind: Deployment\nmetadata: {name: web}\n",
        "other/web.yaml": "kind: Deployment\nmetadata: {name: web}\n",
        "shared/web.yaml": "\nkind: Deployment\nmetadata: {name: web}\n",
    })
    found = locate.locate([failed("web", ["deployment/default/web"])], tmp_path,
                          tmp_path / "app" / "Tiltfile")
    assert found["web"] == SourceLocation("shared/web.yaml", 2, 1)


def test_of_two_documents_declaring_one_workload_the_one_like_what_is_applied(tmp_path: Path):
    # examples/broken: k8s/api.yaml and k8s/api-lab.yaml both declare Deployment api; --lab picks one.
    broken = REPO / "examples" / "broken"
    raw: dict[str, Any] = {"Manifests": [{"Name": "api", "DeployTarget": {
        "yaml": (broken / "k8s" / "api.yaml").read_text()}}]}
    evaluation = tiltfile.parse_result(raw)
    found = locate.locate([failed("api", ["deployment/default/api"])], REPO, broken / "Tiltfile", evaluation)
    assert found["api"] == SourceLocation("examples/broken/k8s/api.yaml", 2, 1)
    raw["Manifests"][0]["DeployTarget"]["yaml"] = (broken / "k8s" / "api-lab.yaml").read_text()
    lab = locate.locate([failed("api", ["deployment/default/api"])], REPO, broken / "Tiltfile",
                        tiltfile.parse_result(raw))
    assert lab["api"] == SourceLocation("examples/broken/k8s/api-lab.yaml", 5, 1)


def test_the_scan_is_bounded(tmp_path: Path):
    for i in range(50):
        write(tmp_path, {f"d{i:02d}/x.yaml": "kind: Deployment\nmetadata: {name: other}\n"})
    write(tmp_path, {"zz/web.yaml": "kind: Deployment\nmetadata: {name: web}\n"})
    files = list(locate.yaml_files(tmp_path, max_files=10))
    assert len(files) == 10
    assert locate.find_document([locate.Workload("deployment", "web")], files) is None
    t0 = time.monotonic()
    web = locate.find_document([locate.Workload("deployment", "web")], locate.yaml_files(tmp_path))
    assert time.monotonic() - t0 < 1.0
    assert web is not None and web.path == tmp_path / "zz" / "web.yaml"


def test_the_kitchen_sinks_components_are_located(tmp_path: Path):
    sink = REPO / "tests" / "corpus" / "kitchen-sink"
    components = [failed("web", ["deployment/default/web"]), failed("smoke", reason="BuildFailed"),
                  failed("custom-cm")]
    found = locate.locate(components, REPO, sink / "Tiltfile")
    text = (sink / "Tiltfile").read_text().splitlines()
    assert found["web"].path == "tests/corpus/kitchen-sink/web/k8s.yaml"
    assert text[found["smoke"].line - 1].startswith('local_resource("smoke"')
    assert text[found["custom-cm"].line - 1].startswith('k8s_resource("custom-cm"')  # before its deploy


def test_a_location_already_known_is_kept_and_an_unreadable_yaml_file_is_passed_over(tmp_path: Path):
    write(tmp_path, {"Tiltfile": "\nk8s_resource('api')\n",
                     "deep.yaml": "kind: Deployment\nmetadata: {name: api}\nx: " + "[" * 5000 + "\n"})
    tiltfile_error = failed("(Tiltfile)", reason="TiltfileError")
    tiltfile_error.location = SourceLocation("Tiltfile", 4, 1)
    found = locate.locate([tiltfile_error, failed("api", ["deployment/default/api"])], tmp_path,
                          tmp_path / "Tiltfile")
    assert found == {"(Tiltfile)": SourceLocation("Tiltfile", 4, 1), "api": SourceLocation("Tiltfile", 2, 1)}
