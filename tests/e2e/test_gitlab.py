"""GitLab CI on a real kind cluster, through the image, as a GitLab runner runs the template's job:
the job container is pyci's image with GitLab's predefined variables, the project checked out at
CI_PROJECT_DIR, the template's variables, and the template's own script lines run by `sh -e`; the
daemon is the `docker` service, reached as tcp://docker:2375 exactly as the template says.

Stood in for (tests/e2e/test_remote.py has the details): the `docker:28-dind` service cannot be pulled
here (no Docker Hub), so `docker` resolves (the job's /etc/hosts) to the lab's remote daemon, this
machine's dockerd behind `socat -t 3600` on a veth address, seen from a network namespace of the
job's own; its loopback is its own, as a job container's is beside a dind service. gitlab-runner is
not here either: the reports are checked where the template's `artifacts:reports` would collect them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse

from tests.conftest import REPO
from tests.e2e import test_remote
from tests.e2e.test_corpus import SHIM
from tests.e2e.test_kind import without_kind_network
from tests.e2e.test_remote import _leftovers, _sweep, dockerd_capbnd
from tests.integration._pyci_helpers import RemoteDaemon
from tests.unit.test_gitlab import END, START, merged

# The remote-daemon lab and the image's root filesystem as a job's, as CircleCI's remote test has them.
remote_daemon = test_remote.remote_daemon
job_rootfs = test_remote.job_rootfs
PROJECT = "/builds/pyci/project"  # CI_PROJECT_DIR as the docker executor sets it: /builds/<group>/<project>


def gitlab_job(image_rootfs: Path, daemon: RemoteDaemon, example: str, cluster: str, node_image: str,
               lab_images, docker_client) -> tuple[int, str, Path, float]:
    """Run the template's job on examples/<example>; returns exit code, log, the project folder, seconds."""
    project = image_rootfs / PROJECT.lstrip("/")
    for name in ("hello", "broken"):  # broken builds hello's images too (../hello)
        shutil.copytree(REPO / "examples" / name, project / "examples" / name)
    shutil.copytree(SHIM, image_rootfs / "shim")
    daemon_ip = urlparse(daemon.docker_host).hostname
    with open(image_rootfs / "etc" / "hosts", "a", encoding="utf-8") as hosts:
        hosts.write(f"{daemon_ip} docker\n")  # the service's alias
    job = merged(".pyci")
    (image_rootfs / "gitlab-job.sh").write_text("\n".join(job["script"]) + "\n")
    env = {
        # GitLab's predefined variables (those a docker-executor job has that pyci could read)
        "CI": "true", "GITLAB_CI": "true", "CI_PROJECT_DIR": PROJECT, "CI_JOB_NAME": "tilt-ci",
        "CI_JOB_ID": str(os.getpid()), "CI_PIPELINE_ID": "1", "CI_JOB_STAGE": "test",
        "CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_PATH": "pyci/project",
        "HOME": "/root", "PATH": "/shim:/usr/local/bin:/usr/bin:/bin",
        **job["variables"],  # DOCKER_HOST=tcp://docker:2375, DOCKER_TLS_CERTDIR=""
        # the user's job variables: inputs, and the lab's image names
        "PYCI_WORKING_DIRECTORY": f"examples/{example}", "PYCI_CLUSTER_NAME": cluster,
        "PYCI_NODE_IMAGE": node_image, "PYCI_REGISTRY_IMAGE": lab_images.registry,
        "PYCI_SOCAT_IMAGE": lab_images.socat, "PYCI_TILT_ARGS": "--base-image=pyci-lab/base:latest",
        "PYCI_TIMEOUT": "5m", "PYCI_WAIT_TIMEOUT": "3m",
        "PYCI_SHIM_CAPBND": dockerd_capbnd(),  # the lab's docker shim (tools/kind-node/shim)
    }
    assert env["DOCKER_HOST"] == "tcp://docker:2375"
    had_kind_network = bool(docker_client.networks.list(names=["kind"]))
    started = time.monotonic()
    try:
        done = run_raw(daemon, image_rootfs, env, "/bin/sh", "-e", "/gitlab-job.sh")
    finally:
        seconds = time.monotonic() - started
        leftovers = _leftovers(docker_client, cluster)
        _sweep(cluster)
        if not had_kind_network:
            without_kind_network(docker_client)
    assert leftovers == [], leftovers
    return done.returncode, done.stdout + done.stderr, project, seconds


def run_raw(daemon: RemoteDaemon, rootfs: Path, env: dict[str, str],
            *command: str) -> subprocess.CompletedProcess[str]:
    """run_in_the_job, with the log as the runner gets it: text mode would turn the `\r` in a section
    line into a line break."""
    cmd = ["ip", "netns", "exec", daemon.netns, "unshare", "--pid", "--fork", "--mount-proc",
           "--root", str(rootfs), "--wd", PROJECT, *command]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    return subprocess.CompletedProcess(cmd, done.returncode, done.stdout.decode(errors="replace"),
                                       done.stderr.decode(errors="replace"))


def reports(project: Path) -> dict[str, Path]:
    """Where the runner would upload each `artifacts:reports` file from (the template's paths)."""
    return {kind: project / path for kind, path in merged(".pyci")["artifacts"]["reports"].items()}


def dotenv(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert all(re.fullmatch(r"[A-Za-z0-9_]+=[^\n]*", line) for line in lines), lines  # GitLab's parser
    return dict(line.split("=", 1) for line in lines)


def check_sections(log: str) -> None:
    lines = log.split("\n")
    starts = [m.group(2) for line in lines if (m := START.match(line))]
    ends = [m.group(2) for line in lines if (m := END.match(line))]
    assert starts and starts == ends, (starts, ends)  # each section closed, in order
    assert any(name.endswith("tilt-ci") for name in starts), starts


def test_the_template_job_is_green_on_hello(image: str, node_image: str, docker_client, lab_images,
                                            remote_daemon: RemoteDaemon, job_rootfs: Path) -> None:
    cluster = f"e2e-gitlab-hello-{os.getpid()}"
    code, log, project, seconds = gitlab_job(job_rootfs, remote_daemon, "hello", cluster, node_image,
                                             lab_images, docker_client)
    assert code == 0, log[-8000:]
    assert "topology: remote" in log and "forwarding 127.0.0.1:" in log, log[-3000:]
    check_sections(log)
    found = reports(project)
    outputs = dotenv(found["dotenv"])
    assert outputs["PYCI_OUTPUT_RESULT"] == "success", outputs
    assert outputs["PYCI_OUTPUT_CLUSTER_NAME"] == cluster
    assert outputs["PYCI_OUTPUT_JUNIT"] == f"{PROJECT}/pyci-reports/pyci-junit.xml"  # the report's own path
    root = ET.parse(found["junit"]).getroot()
    assert root.get("failures") == "0"
    assert {"api", "web", "migrate"} <= {c.get("name") for c in root.iter("testcase")}
    assert json.loads(found["codequality"].read_text()) == []  # no causes: the MR's findings clear
    assert (project / "pyci-artifacts" / "summary.md").is_file()
    print(f"gitlab hello green in {seconds:.0f}s")


def test_the_template_job_is_red_on_broken_with_the_cause_on_the_merge_request(
        image: str, node_image: str, docker_client, lab_images, remote_daemon: RemoteDaemon,
        job_rootfs: Path) -> None:
    cluster = f"e2e-gitlab-broken-{os.getpid()}"
    code, log, project, seconds = gitlab_job(job_rootfs, remote_daemon, "broken", cluster, node_image,
                                             lab_images, docker_client)
    assert code == 1, log[-8000:]
    check_sections(log)
    found = reports(project)
    outputs = dotenv(found["dotenv"])
    assert outputs["PYCI_OUTPUT_RESULT"] == "failure", outputs
    assert "api" in outputs["PYCI_OUTPUT_FAILED"].split(","), outputs
    failures = {c.get("name"): f for c in ET.parse(found["junit"]).getroot().iter("testcase")
                if (f := c.find("failure")) is not None}
    assert failures["api"].get("type") == "CrashLoopBackOff", {k: v.attrib for k, v in failures.items()}
    quality = json.loads(found["codequality"].read_text())
    manifest = project / "examples" / "broken" / "k8s" / "api.yaml"
    kind_line = manifest.read_text().splitlines().index("kind: Deployment") + 1
    api = [q for q in quality if q["description"].startswith("api:")]
    assert len(api) == 1, quality
    assert api[0]["location"] == {"path": "examples/broken/k8s/api.yaml", "lines": {"begin": kind_line}}
    assert api[0]["severity"] == "critical" and api[0]["check_name"] == "pyci/CrashLoopBackOff"
    assert len(api[0]["fingerprint"]) == 64
    # Only causes: web and migrate wait on api (not finished), never a finding of their own.
    assert {q["description"].split(":")[0] for q in quality} == set(outputs["PYCI_OUTPUT_FAILED"].split(","))
    assert "CrashLoopBackOff" in (project / "pyci-artifacts" / "summary.md").read_text()
    print(f"gitlab broken red in {seconds:.0f}s")
