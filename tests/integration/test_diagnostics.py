"""pyci.diagnostics against the lab control plane: a crashing Deployment, a Secret whose value shows
up in an env var and in a secret string, a tilt snapshot file, and a kind cluster that does not exist.

kwok runs no containers, so the API has no pod logs: the bundle's log files say so instead.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import yaml

from pyci import diagnostics, readiness
from tests.integration.test_readiness import (
    create,
    delete_namespace,
    deployment,
    new_namespace,
)

pytestmark = pytest.mark.integration

SECRET_VALUE = "pyci-s3cret-value-42"
INPUT_SECRET = "registry-password-xyz"


@pytest.fixture
def namespace(api) -> Iterator[str]:
    name = new_namespace(api, "pyci-diag")
    yield name
    delete_namespace(api, name)


def test_bundle_for_a_crashing_deployment(api, namespace, tmp_path):
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
    }  # fmt: skip
    web = deployment("web", behavior="crashloop")
    # a value copied from the Secret into plain env (a common mistake the bundle must not expose),
    # and the input secret in an annotation
    web["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": SECRET_VALUE}]
    web["metadata"]["annotations"] = {"note": f"pw {INPUT_SECRET}"}
    create(api, namespace, secret, web, deployment("fine"))
    results = readiness.wait_healthy(api, [namespace], 60, {}, 3, lambda _: None, unschedulable_grace=2)
    # fail fast may report "fine" not ready yet too: the bundle is about the crashing one
    failing = [r for r in results if r.name == f"deployment/{namespace}/web"]
    assert failing and failing[0].reason == "CrashLoopBackOff", results

    snapshot = tmp_path / "tilt-snapshot.json"
    snapshot.write_text('{"view": {"uiResources": [], "note": "registry-password-xyz"}}')
    lines: list[str] = []
    out = diagnostics.collect(
        api, tmp_path / "bundle", failing, [namespace], snapshot, kind_cluster="pyci-no-such-cluster",
        secrets=[INPUT_SECRET], log=lines.append, kind_bin="kind",
    )  # fmt: skip
    assert out == tmp_path / "bundle"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "events.txt" in files and "failing.txt" in files and "tilt-snapshot.json" in files
    assert f"objects/deployment-{namespace}-web.yaml" in files
    pod_yamls = [f for f in files if f.startswith(f"objects/pod-{namespace}-web-")]
    assert pod_yamls, files
    assert [f for f in files if f.startswith("logs/web-") and f.endswith("-app.log")], files
    assert [f for f in files if f.startswith("logs/web-") and f.endswith("-app.previous.log")], files
    assert not [f for f in files if "fine" in f]  # only the failing workload

    dep = yaml.safe_load((out / f"objects/deployment-{namespace}-web.yaml").read_text())
    assert dep["kind"] == "Deployment" and "managedFields" not in dep["metadata"]
    events = (out / "events.txt").read_text()
    assert "Scheduled" in events or "ScalingReplicaSet" in events, events
    times = [line.split(" ", 1)[0] for line in events.splitlines()]
    assert times == sorted(times)
    assert "CrashLoopBackOff" in (out / "failing.txt").read_text()

    everything = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert SECRET_VALUE not in everything and INPUT_SECRET not in everything
    assert "***" in (out / pod_yamls[0]).read_text() and "***" in (out / "tilt-snapshot.json").read_text()
    assert any("kind export logs failed" in line for line in lines), lines
    assert not (out / "kind-logs").exists()


def test_bundle_tolerates_missing_objects_and_tilt_names(api, namespace, tmp_path):
    from pyci.results import ResourceResult

    failing = [
        ResourceResult(f"deployment/{namespace}/gone", "kubernetes", False, reason="Timeout"),
        ResourceResult("api", "tilt", False, reason="BuildFailed", message="exit status 3"),
    ]
    lines: list[str] = []
    out = diagnostics.collect(api, tmp_path / "b", failing, [namespace], None, None, log=lines.append)
    assert (out / "events.txt").exists()
    assert (out / "failing.txt").read_text().splitlines() == [
        f"deployment/{namespace}/gone: Timeout",
        "api: BuildFailed: exit status 3",
    ]
    assert not (out / "objects").exists()
    assert any("cannot read" in line for line in lines)
