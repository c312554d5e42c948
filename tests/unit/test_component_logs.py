"""One log per component: tilt ci's log split by resource, with the diagnostics bundle's container logs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pyci import component_logs
from pyci.results import ResourceResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def tilt_prefix(name: str) -> str:
    """tilt's own SourcePrefix (pkg/model/logstore): right-aligned in 13, cut to 12 + "…"; none for the
    main Tiltfile."""
    if name in ("", "(Tiltfile)"):
        return ""
    shown = name[:12] + "…" if len(name) > 13 else name.rjust(13)
    return f"{shown} │ "


def log_from_snapshot(snapshot: dict) -> tuple[str, dict[str, list[str]]]:
    """The log tilt ci prints for a snapshot's logList, and each resource's lines as tilt recorded them."""
    view = snapshot["view"]
    spans = {k: (v or {}).get("manifestName", "") for k, v in view["logList"]["spans"].items()}
    printed: list[str] = []
    expected: dict[str, list[str]] = {}
    for segment in view["logList"]["segments"]:
        name = spans.get(segment.get("spanId", ""), "")
        for line in segment["text"].splitlines():
            printed.append(tilt_prefix(name) + line)
            expected.setdefault(name or "(Tiltfile)", []).append(line)
    return "\n".join(printed) + "\n", expected


def test_split_gives_each_resource_exactly_its_lines_from_a_real_snapshot():
    snapshot = json.loads((FIXTURES / "tilt-snapshot-ok.json").read_text())
    text, expected = log_from_snapshot(snapshot)
    split = component_logs.split_tilt_log(text.splitlines(), ["api", "web"])
    assert split == expected
    assert "STEP 3/3 — Deploying" in split["api"]
    assert any("Tracking new pod rollout (web-" in line for line in split["web"])
    assert split["(Tiltfile)"][0].startswith("Tilt started on")


def test_split_a_real_tilt_ci_log_of_examples_broken_on_kind():
    # tilt ci's own output of `pyci run` on examples/broken (real kind, lab node image)
    lines = (FIXTURES / "tilt-ci-broken.log").read_text().splitlines()
    split = component_logs.split_tilt_log(lines, ["api", "web", "migrate"])
    assert set(split) == {"(Tiltfile)", "api", "web", "migrate"}
    assert sum(len(v) for v in split.values()) == len(lines)  # every line, once
    for name in ("api", "web", "migrate"):
        assert len(split[name]) == sum(1 for line in lines if line.startswith(f"{name:>13} │ "))
    assert split["api"].count("api: DATABASE_URL is not set, giving up") == 3  # its container's words
    assert "STEP 1/3 — Building Dockerfile: [broken-api]" in split["api"]
    assert not any("hello-web" in line for line in split["api"])
    assert split["(Tiltfile)"][-1] == "Error: context canceled"


def test_a_name_tilt_cut_short_goes_to_the_one_component_it_names():
    lines = [tilt_prefix("payments-worker") + "crash!", tilt_prefix("payments") + "ok",
             tilt_prefix("notifications-a") + "a", tilt_prefix("notifications-b") + "b",
             tilt_prefix("payments") + "pipe │ inside",
             "\x1b[33m" + tilt_prefix("payments") + "\x1b[0mcolour"]
    split = component_logs.split_tilt_log(lines, ["payments-worker", "payments", "notifications-a",
                                                  "notifications-b"])
    assert split["payments-worker"] == ["crash!"]
    assert split["payments"] == ["ok", "pipe │ inside", "colour"]
    assert split["notification…"] == ["a", "b"]  # two candidates: not guessed


def test_filenames_are_safe():
    assert component_logs.filename("deployment/default/web") == "deployment_default_web.log"
    assert component_logs.filename("(Tiltfile)") == "Tiltfile.log"
    assert component_logs.filename("../../etc/passwd") == "etc_passwd.log"
    assert component_logs.filename("///") == "component.log"


def pod(name: str, owner_kind: str, owner: str, containers: list[str],
        template_hash: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default",
                  "ownerReferences": [{"kind": owner_kind, "name": owner, "controller": True}]}
    if template_hash:
        meta["labels"] = {"pod-template-hash": template_hash}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": c} for c in containers]}}


def make_bundle(artifacts: Path) -> None:
    bundle = artifacts / "diagnostics"
    (bundle / "objects").mkdir(parents=True)
    (bundle / "logs").mkdir()
    pods = [pod("api-7d9c8-x2x", "ReplicaSet", "api-7d9c8", ["api"], template_hash="7d9c8"),
            pod("migrate-q7", "Job", "migrate", ["migrate"])]
    for p in pods:
        # as the bundle writes it on a cluster with a Secret whose value is "true" (kind's bootstrap
        # token): masked after dumping, `controller: ***`, which is not YAML
        text = yaml.safe_dump(p).replace("true", "***")
        (bundle / "objects" / f"pod-default-{p['metadata']['name']}.yaml").write_text(text)
    (bundle / "logs" / "api-7d9c8-x2x-api.log").write_text("starting\nTraceback: boom token-s3cr3t\n")
    (bundle / "logs" / "api-7d9c8-x2x-api.previous.log").write_text("first try\n")
    (bundle / "logs" / "migrate-q7-migrate.log").write_text("migrated\n")


def test_write_one_file_per_component_with_tilt_and_container_output_redacted(tmp_path: Path):
    (tmp_path / "tilt.log").write_text(
        "Tilt started on http://localhost:1/\n"
        + tilt_prefix("api") + "STEP 1/3 — Building Dockerfile: [api]\n"
        + tilt_prefix("web") + "STEP 1/3 — Building Dockerfile: [web]\n"
        + tilt_prefix("api") + "\x1b[31mcrashed\x1b[0m with token-s3cr3t\n"
        + "Error: stopped\n")
    make_bundle(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "gone.log").write_text("from an earlier run\n")
    components = [
        ResourceResult("api", "tilt", ok=False, reason="CrashLoopBackOff",
                       workloads=["deployment/default/api"]),
        ResourceResult("web", "tilt", ok=True),
        ResourceResult("job/default/migrate", "kubernetes", ok=False, reason="JobFailed"),
    ]
    written = component_logs.write(tmp_path, components, secrets=["token-s3cr3t"])
    names = sorted(p.name for p in written)
    assert names == ["Tiltfile.log", "api.log", "job_default_migrate.log", "web.log"]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == names  # the stale one is gone
    api = (tmp_path / "logs" / "api.log").read_text()
    assert api == (
        "# api: build, deploy and container output of this run\n"
        "== tilt ci (2 lines) ==\n"
        "STEP 1/3 — Building Dockerfile: [api]\n"
        "crashed with ***\n"
        "== container api of pod default/api-7d9c8-x2x (the previous container, before its restart) ==\n"
        "first try\n"
        "== container api of pod default/api-7d9c8-x2x ==\n"
        "starting\nTraceback: boom ***\n")
    assert "web" not in api and "migrate" not in api
    assert "migrated" in (tmp_path / "logs" / "job_default_migrate.log").read_text()
    assert (tmp_path / "logs" / "Tiltfile.log").read_text().splitlines()[-1] == "Error: stopped"


def test_write_without_tilt_log_or_bundle_writes_nothing(tmp_path: Path):
    assert component_logs.write(tmp_path, [ResourceResult("api", "tilt", ok=True)]) == []
    assert not (tmp_path / "logs").exists()
