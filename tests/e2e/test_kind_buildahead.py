"""Build ahead on a real kind cluster: `pyci run` on a copy of examples/hello whose sources carry a fresh
nonce (no earlier build on this shared daemon has their layers), so a step tilt's log shows
`[cached]` was put in BuildKit's cache by pyci's build-ahead while kind booted. One run (~35 s).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import REPO
from tests.e2e.test_kind import checked_cleanup, pyci_command, without_kind_network
from tests.lab.github import read_outputs


def fresh_hello(tmp_path: Path) -> Path:
    app = tmp_path / "hello"
    shutil.copytree(REPO / "examples" / "hello", app)
    nonce = secrets.token_hex(8)
    for server in app.glob("*/server.py"):
        server.write_text(server.read_text() + f"\n# build-ahead e2e nonce {nonce}\n")
    return app


def test_tilt_finds_the_images_built_ahead_cached(tmp_path: Path, node_image: str, docker_client) -> None:
    cluster = f"e2e-ahead-{os.getpid()}"
    app = fresh_hello(tmp_path)
    without_kind_network(docker_client)
    with checked_cleanup(docker_client, cluster, kind_network=False) as found:
        cmd, env, files = pyci_command(tmp_path, "hello", cluster, node_image)
        cmd[cmd.index("--working-directory") + 1] = str(app)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-6000:]
        outputs = read_outputs(files / "output")
        found["registry"] = outputs["registry"]
        assert outputs["result"] == "success", outputs

        assert "build ahead: hello-api built in" in log and "build ahead: hello-web built in" in log, log
        tilt_log = (tmp_path / "artifacts" / "tilt.log").read_text()
        cached = [line.strip() for line in tilt_log.splitlines() if "] COPY server.py" in line]
        print("\n".join(cached))
        print("\n".join(line for line in log.splitlines() if "build ahead" in line))
        # tilt builds each image once (migrate reuses hello-api): both COPY steps came from the cache.
        assert len(cached) == 2 and all(line.endswith("[cached]") for line in cached), tilt_log[-4000:]
        assert all(line in log for line in cached)  # pyci streamed them too

        stage = next(c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
                     if c.get("name") == "build ahead")
        detail = stage.findtext("system-out") or ""
        assert "2/2 images built ahead" in detail and "tilt: 2/2 build steps cached" in detail, detail
        assert "during the" in detail and "cluster boot" in detail
        # pushed into the run's registry while kind booted: tilt's pushes found every layer there
        assert "2 pushed to the registry" in detail, detail
        pushes = [line for line in tilt_log.splitlines()
                  if "Layer already exists" in line or "Pushed" in line]
        assert pushes and all("Layer already exists" in line for line in pushes), "\n".join(pushes)
        assert "build ahead" in (files / "summary").read_text()

        tags = re.search(r"build ahead: .*tags (pyci-ahead/[a-z0-9-]+):", log)
        assert tags, log[-3000:]
        left = [t for i in docker_client.images.list() for t in i.tags if t.startswith(tags[1] + ":")]
        assert left == []  # the throwaway tags went with the run
    assert_kind_network_gone_or_others(docker_client, cluster)


def assert_kind_network_gone_or_others(docker_client, cluster: str) -> None:
    """The run made the network `kind` and removes it, unless another run's cluster (this daemon is
    shared) joined it meanwhile: then it must stay, and nothing of this run may be on it."""
    for net in docker_client.networks.list(names=["kind"]):
        net.reload()
        if net.name == "kind":
            attached = [c["Name"] for c in (net.attrs.get("Containers") or {}).values()]
            assert attached and not [n for n in attached if n.startswith(cluster)], attached
