"""Warm starts on real kind: `pyci run --cache-dir` twice. The second run starts on a daemon emptied as
a fresh runner's (the app's image and this test's build-cache records gone, the third-party image gone)
with the stand-in upstream stopped: the app's dependency step comes from the cache dir (tilt finds it
cached), the third-party image from the cache dir's mirror, and the run is green.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import docker.errors

from tests.e2e.test_kind import checked_cleanup, pyci_command, without_kind_network
from tests.integration.test_cache import prune_records
from tests.integration.test_cache_mirror import silence, start_upstream
from tests.lab.github import read_outputs

BASE = "pyci-lab/base:latest"


def write_app(root: Path, nonce: str, third_party: str) -> Path:
    deployments = []
    for name, image, command in (("e2e-cache-api", "e2e-cache-api", None),
                                 ("e2e-cache-tp", third_party, ["sleep", "infinity"])):
        container = {"name": name, "image": image, **({"command": command} if command else {})}
        deployments.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                     "template": {"metadata": {"labels": {"app": name}},
                                                  "spec": {"containers": [container]}}}})
    files = {
        "Tiltfile": "docker_build('e2e-cache-api', 'api')\nk8s_yaml('k8s.yaml')\n",
        "api/Dockerfile": (f"FROM {BASE}\nRUN echo {nonce} > /nonce && sleep 8 && date +%s%N > /stamp\n"
                           "COPY server.py /app/server.py\nCMD [\"python3\", \"/app/server.py\"]\n"),
        "api/server.py": ("import http.server\nhttp.server.HTTPServer(('', 8000), "
                          "http.server.SimpleHTTPRequestHandler).serve_forever()\n"),
        "k8s.yaml": "\n---\n".join(json.dumps(d) for d in deployments),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def empty_daemon(client, nonce: str, refs: list[str]) -> None:
    for image in client.images.list():
        for tag in image.tags:
            if "e2e-cache-api" in tag or tag in refs:
                client.images.remove(tag, force=True)
    prune_records(client, nonce)


def test_a_warm_run_takes_layers_and_third_party_images_from_the_cache_dir(tmp_path: Path, node_image: str,
                                                                          docker_client, lab_images) -> None:
    nonce = secrets.token_hex(6)
    upstream = start_upstream(docker_client, lab_images.registry, f"e2e-upstream-{nonce}")
    try:
        upstream.reload()
        port = upstream.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"]
        host = f"{upstream.attrs['NetworkSettings']['IPAddress']}:5000"
        docker_client.images.get(BASE).tag(f"localhost:{port}/lab/tp", "1")
        for line in docker_client.api.push(f"localhost:{port}/lab/tp", tag="1", stream=True, decode=True):
            assert "error" not in line, line
        docker_client.images.remove(f"localhost:{port}/lab/tp:1")
        ref = f"{host}/lab/tp:1"
        app = write_app(tmp_path / "app", nonce, ref)
        cache = tmp_path / "cache"
        logs = []
        for run in ("cold", "warm"):
            empty_daemon(docker_client, nonce, [ref])
            if run == "warm":
                silence(upstream)
            cluster = f"e2e-cache-{run}-{os.getpid()}"
            without_kind_network(docker_client)
            with checked_cleanup(docker_client, cluster) as found:
                cmd, env, files = pyci_command(tmp_path / run, "hello", cluster, node_image,
                                               "--cache-dir", str(cache))
                cmd[cmd.index("--working-directory") + 1] = str(app)
                cmd = [c for c in cmd if not c.startswith("--tilt-args")]
                env["PYCI_MIRROR_PLAIN_HTTP"] = host
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
                log = done.stdout + done.stderr
                (tmp_path / f"{run}.log").write_text(log)
                assert done.returncode == 0, log[-6000:]
                found["registry"] = read_outputs(files / "output")["registry"]
                logs.append((log, (files / "summary").read_text()))
        (cold, _), (warm, summary) = logs
        assert "cache: miss, restored 0 bytes" in cold and "cache: saved " in cold, cold[-4000:]
        assert f"pulled {ref} through the mirror" in cold, cold[-4000:]
        assert "cache: hit, restored " in warm, warm[-4000:]
        assert f"pulled {ref} through the mirror" in warm and "serving the cache only" in warm, warm[-4000:]
        assert "hit, restored" in summary  # the summary's cache stage
    finally:
        upstream.remove(force=True, v=True)
        try:
            docker_client.images.remove(ref, force=True)
        except (docker.errors.ImageNotFound, NameError):
            pass
        prune_records(docker_client, nonce)
