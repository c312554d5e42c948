"""Start the lab control plane, run `pyci run` on an example app against it, stop the control plane."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import LAB_BIN  # noqa: E402
from tests.lab.controlplane import ControlPlane  # noqa: E402


def main(app: Path) -> int:
    cp = ControlPlane(bin_dir=LAB_BIN, etcd_bin=str(LAB_BIN / "etcd"))
    print("lab: starting the control plane (kube-apiserver, controllers, scheduler, kwok) ...", flush=True)
    try:
        cp.start()
        print(f"lab: control plane up in {cp.timings['total']:.1f}s", flush=True)
        out = Path.cwd() / "pyci-demo"
        cmd = ["pyci", "run", "--cluster", "existing", "--kubeconfig", str(cp.kubeconfig),
               "--cluster-name", "pyci-demo", "--registry-image", "pyci-lab/registry:latest",
               "--registry-port", "0", "--working-directory", str(app),
               "--tilt-args=--base-image=pyci-lab/base:latest --allow-context=pyci-lab",
               "--namespaces", "default", "--timeout", "3m", "--wait-timeout", "2m",
               "--progress-interval", "5s",
               "--junit", str(out / "junit.xml"), "--artifacts-dir", str(out / "artifacts")]
        env = {**os.environ, "PATH": f"{LAB_BIN}{os.pathsep}{os.environ['PATH']}"}
        code = subprocess.run(cmd, env=env, check=False).returncode
        print(f"demo: pyci exited {code}; JUnit and artifacts in {out}")
        return code
    finally:
        cp.stop()


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]).resolve()))
