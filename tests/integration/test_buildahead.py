"""pyci.buildahead against the lab daemon, proven by the real tilt (v0.37.6) building afterwards.

The app is written per test with a fresh nonce in its files, so no earlier build has these layers:
whatever tilt finds cached, build-ahead put there. Its shapes are those whose cache keys depend on the
context being filtered exactly as tilt filters it: named files with their modes and a directory, a
.dockerignore, `ignore=`, `only=`, a multi-stage build with `target` and a build arg, an image built
FROM another target of the same Tiltfile, a RUN after the COPYs, and a COPY of the context's root
(which BuildKit cannot match across a tar and a session: see pyci.buildahead). A fourth image is left
out of build-ahead: its steps must not be cached, which shows the check can fail.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pyci import buildahead, tilt, tiltfile
from pyci.settings import Settings
from tests.integration.test_readiness import delete_namespace, new_namespace

pytestmark = pytest.mark.integration

TILTFILE = """\
allow_k8s_contexts('pyci-lab')
docker_build('ahead-base', 'base', build_args={'BASE_IMAGE': 'pyci-lab/base:latest'})
docker_build('ahead-app', 'app', ignore=['scratch'])
docker_build('ahead-multi', 'multi', target='final', only=['src', 'Dockerfile'],
             build_args={'GREETING': 'hi'})
docker_build('ahead-control', 'control', build_args={'BASE_IMAGE': 'pyci-lab/base:latest'})
k8s_yaml(['deploy.yaml'])
"""
DEPLOYMENTS = ("app", "multi", "control")


def write_app(root: Path, nonce: str) -> Path:
    files = {
        "Tiltfile": TILTFILE,
        "base/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY base.txt /base.txt\n",
        "base/base.txt": f"base {nonce}\n",
        # FROM another target: tilt points it at its own build, pyci at the one built ahead.
        "app/Dockerfile": ("FROM ahead-base\nCOPY main.py run.sh /app/\nCOPY pkg /app/pkg\n"
                           "RUN ls -lR /app > /listing\nCOPY . /src\n"),
        "app/.dockerignore": "*.log\n",
        "app/main.py": f"print('app {nonce}')\n",
        "app/run.sh": "#!/bin/sh\nexec python3 /app/main.py\n",
        "app/debug.log": "left out by .dockerignore\n",
        "app/scratch/tmp.txt": "left out by ignore=\n",
        "app/pkg/util.py": f"X = '{nonce}'\n",
        "multi/Dockerfile": ("FROM pyci-lab/base:latest AS build\nARG GREETING\nCOPY src /src\n"
                             "RUN echo $GREETING > /src/greeting\n"
                             "FROM pyci-lab/base:latest AS final\nCOPY --from=build /src /src\n"
                             "FROM final AS unused\nRUN false\n"),
        "multi/src/a.py": f"A = '{nonce}'\n",
        "multi/README.md": "left out by only=\n",
        "control/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY c.txt /c.txt\n",
        "control/c.txt": f"control {nonce}\n",
        "deploy.yaml": "\n---\n".join(
            yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                     "template": {"metadata": {"labels": {"app": name}},
                                                  "spec": {"containers": [{"name": name,
                                                                           "image": f"ahead-{name}"}]}}}})
            for name in DEPLOYMENTS),
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "app" / "run.sh").chmod(0o755)  # a mode is part of a COPY's cache key
    return root


@pytest.fixture
def app(api, registry_hosting, lab_registry, control_plane, tmp_path) -> Iterator[dict]:
    registry_hosting.apply(lab_registry.host)
    folder = write_app(tmp_path / "ahead", secrets.token_hex(8))
    namespace = new_namespace(api, "pyci-ahead")
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    kubeconfig.chmod(0o600)
    yield {"dir": folder, "kubeconfig": kubeconfig, "artifacts": tmp_path / "art"}
    delete_namespace(api, namespace)


def ahead_tags(docker_client, run_id: str) -> list[str]:
    return [t for i in docker_client.images.list() for t in i.tags
            if t.startswith(f"{buildahead.AHEAD_REPOSITORY}/{run_id}:")]


def test_tilt_finds_every_step_built_ahead_cached(app, docker_client, lab_registry) -> None:
    evaluation = tiltfile.evaluate(app["dir"] / "Tiltfile")
    planned = buildahead.plan(evaluation)
    assert planned is not None, evaluation
    found, skipped, _ = planned
    assert skipped == [] and {t.ref for t in found} == {"ahead-base", "ahead-app", "ahead-multi",
                                                        "ahead-control"}
    run_id = f"it-{secrets.token_hex(3)}"
    lines: list[str] = []
    ahead = buildahead.BuildAhead(docker_client, [t for t in found if t.ref != "ahead-control"], run_id,
                                  lines.append)
    try:
        ahead.start()
        ahead.push_to(lab_registry.host)
        ahead.wait(300, threading.Event())
        ahead.wait_pushed(300, threading.Event())
        assert [b.error for b in ahead.profile.built] == [None, None, None], lines
        assert len(ahead_tags(docker_client, run_id)) == 3
        assert sorted(ahead.profile.pushed) == [f"{lab_registry.host}/{name}:pyci-ahead" for name in
                                                ("ahead-app", "ahead-base", "ahead-multi")], lines

        settings = Settings(tiltfile=app["dir"] / "Tiltfile", timeout=180, progress_interval=5)
        out = tilt.run_ci(settings, app["kubeconfig"], app["artifacts"], lines.append)
        assert out.exit_code == 0, "\n".join(lines[-60:])
        log = out.log_path.read_text()
    finally:
        ahead.close()
    assert ahead_tags(docker_client, run_id) == []  # the throwaway tags go, tilt's images stay its own
    pushed_tags = [t for i in docker_client.images.list() for t in i.tags if t.endswith(":pyci-ahead")]
    assert not [t for t in pushed_tags if t.startswith(lab_registry.host + "/")], pushed_tags

    # tilt's pushes found the layers pushed ahead: the image built identically (multi) pushed nothing,
    # the control image, not built ahead, pushed its own layer.
    def pushes(resource: str) -> list[str]:
        return [line for line in log.splitlines() if line.strip().startswith(resource)
                and ("Layer already exists" in line or "Pushed" in line)]
    multi = pushes("multi")
    assert multi and all("Layer already exists" in line for line in multi), multi
    assert any("Pushed" in line for line in pushes("control")), pushes("control")

    steps = [line.strip() for line in log.splitlines() if buildahead.TILT_STEP.search(line)
             and " FROM " not in line and "[done: " not in line]
    print("\n".join(steps))
    control = [s for s in steps if s.startswith("control")]
    # BuildKit hashes a session context's root with a fixed header and an unpacked tar's from its stat:
    # a COPY of the root misses (see pyci.buildahead); this shows it if that ever changes.
    root_copy = [s for s in steps if "COPY . /src" in s]
    built_ahead = [s for s in steps if s not in control and s not in root_copy]
    # Every other step of the images built ahead came from the cache: named files and directories with
    # a mode, ignore=, only=, .dockerignore, a multi-stage target with a build arg, the RUN after them.
    assert len(built_ahead) >= 6 and all(s.endswith("[cached]") for s in built_ahead), "\n".join(steps)
    assert any("RUN ls -lR" in s for s in built_ahead) and any("COPY --from=build" in s for s in built_ahead)
    assert root_copy and not root_copy[0].endswith("[cached]"), root_copy
    # The control image, not built ahead, was really built: the check above can fail.
    assert control and not any(s.endswith("[cached]") for s in control), "\n".join(control)
    hits = buildahead.cache_hits(log)
    assert (hits.cached, hits.steps) == (len(built_ahead), len(steps))


def test_a_failing_build_ahead_is_one_line_and_leaves_no_tag(docker_client, tmp_path) -> None:
    context = tmp_path / "bad"
    context.mkdir()
    run_id = f"it-{secrets.token_hex(3)}"
    lines: list[str] = []
    broken = buildahead.Target("broken", str(context), "FROM pyci-lab/base:latest\nCOPY missing.txt /\n")
    ahead = buildahead.BuildAhead(docker_client, [broken], run_id, lines.append,
                                  third_party=["pyci-lab/no-such-image:1"])
    ahead.start()
    ahead.wait(120, threading.Event())
    ahead.wait_loaded(1, threading.Event())
    ahead.close()
    assert ahead.profile.built[0].error and "missing.txt" in ahead.profile.built[0].error, lines
    assert [line for line in lines if line.startswith("build ahead: broken")] == [
        f"build ahead: broken not built ahead ({ahead.profile.built[0].error}); tilt ci builds it"]
    assert ahead.profile.third_party_missing == ["pyci-lab/no-such-image:1"]  # offline: no pull
    assert ahead_tags(docker_client, run_id) == []


def test_without_pulls_a_missing_image_is_left_to_the_kubelet_and_a_present_one_is_kept(
        docker_client, lab_images) -> None:
    """`build-ahead: false`: no pull is tried (a pull would take minutes on a slow registry and
    fail here), an image the daemon has still goes to the nodes."""
    lines: list[str] = []
    ahead = buildahead.BuildAhead(docker_client, [], f"it-{secrets.token_hex(3)}", lines.append,
                                  third_party=["pyci-lab/no-such-image:1", lab_images.base], pull=False)
    ahead.start()
    ahead.wait(30, threading.Event())
    assert ahead._prefetcher is not None  # third-party images to look for: a prefetch ran
    ahead._prefetcher.join(30)
    ahead.close()
    assert ahead.profile.third_party_present == [lab_images.base]
    assert ahead.profile.third_party_missing == ["pyci-lab/no-such-image:1"]
    assert "build ahead: pyci-lab/no-such-image:1 is not in the daemon (build-ahead off: not pulled); " \
           "the nodes pull it themselves" in lines, lines
    assert not any("pulled" in line and "not pulled" not in line for line in lines), lines


def test_third_party_images_wait_for_the_nodes_to_begin_kubeadm(docker_client, lab_images) -> None:
    """The loader's gate, on a stand-in node (a container with kind's label; no kind needed): it opens
    when every node has kubeadm's certificates, or when the boot ended first."""
    cluster = f"ahead-gate-{secrets.token_hex(3)}"
    node = docker_client.containers.run(
        lab_images.base,
        ["sh", "-c", "sleep 2; mkdir -p /etc/kubernetes/pki; touch /etc/kubernetes/pki/ca.crt; sleep 60"],
        name=f"{cluster}-control-plane", detach=True, labels={"io.x-k8s.kind.cluster": cluster})
    try:
        ahead = buildahead.BuildAhead(docker_client, [], "gate", print)
        t0 = time.monotonic()
        assert ahead.loader.wait_for_nodes(cluster) is True
        assert 1.5 < time.monotonic() - t0 < 20
        late = buildahead.BuildAhead(docker_client, [], "gate", print)
        late.booted(0.0, 0.0)  # the boot ended before any node was ready: load after it, no wait
        assert late.loader.wait_for_nodes(f"{cluster}-none") is False
    finally:
        node.remove(force=True)
