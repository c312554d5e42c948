"""A fault that is about kind (issue 12 item 4): the kind node stopped mid-run, on real kind.

pyci is held just before `tilt ci` (the test-only hook, pyci/testhook.py) while the test runs
`docker stop` on the node, then goes on: the sentinel's watches find no API server, tilt ci is
stopped, and the run ends with exit 3 and one line naming the node; cleanup deletes the cluster,
the registry, the network and the marker all the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.lab import cancel
from tests.lab.github import read_outputs


def test_kind_node_stopped_mid_run_is_an_infrastructure_error(tmp_path: Path, node_image: str) -> None:
    tag = uuid.uuid4().hex[:6]
    cluster, network = f"kf-{tag}", f"pyci-kf-{tag}"
    app = cancel.make_app(tmp_path)
    env = cancel.env_with_lab({**os.environ, **cancel.github_files(tmp_path),
                               "KIND_EXPERIMENTAL_DOCKER_NETWORK": network,
                               "PYCI_TEST_PAUSE_AT": "tilt", "PYCI_TEST_PAUSE_SECONDS": "20"})
    cmd = [sys.executable, "-m", "pyci", "run", *cancel.pyci_args(app, tmp_path, cluster, node_image)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = cancel.Output(proc.stdout)
    run_id = None
    try:
        assert output.wait_for("pyci-test-hook: paused at tilt", 240), output.text()[-3000:]
        node = f"{cluster}-control-plane"
        stopped = time.monotonic()
        assert cancel.docker("stop", node, timeout=60).returncode == 0
        proc.wait(timeout=240)
        took = time.monotonic() - stopped
        output.thread.join(timeout=10)
        log = output.text()
        run_id = cancel._run_id(cluster, log)
        assert proc.returncode == 3, log[-5000:]
        errors = [line for line in log.splitlines() if line.startswith("::error")]
        assert len(errors) == 1, errors
        assert f"kind node {node} stopped during the run" in errors[0], errors
        assert read_outputs(tmp_path / "github" / "output")["result"] == "error"
        left = cancel.leftovers(cluster, network, run_id, cancel.registry_ports(log), [cluster, str(app)])
        assert left == [], left
        print(f"node stopped -> exit 3 {took:.0f}s later: {errors[0]}")
    finally:
        if proc.poll() is None:
            proc.kill()
        cancel.sweep(cluster, network, run_id, cancel.registry_ports(output.text()))
