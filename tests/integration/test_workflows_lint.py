"""Workflows checked by the lab's actionlint (a Go tool built by tools/lab; unit tests need nothing)."""

from __future__ import annotations

import subprocess

from tests.conftest import lab_tool
from tests.unit.test_workflows import NAMES, WORKFLOWS


def test_clean_under_actionlint() -> None:
    done = subprocess.run(
        [str(lab_tool("actionlint")), *NAMES], cwd=WORKFLOWS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
