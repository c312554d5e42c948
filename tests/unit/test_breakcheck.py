"""tools/break-check's mutants still apply to the code as it is: each replaces text found exactly once,
and names tests that exist (a mutant that drifted would otherwise only fail when someone runs it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.lab import breakcheck

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mutant", breakcheck.MUTANTS, ids=lambda m: m.name)
def test_each_mutant_applies_once_and_names_real_tests(mutant: breakcheck.Mutant) -> None:
    if mutant.path:
        assert (REPO / mutant.path).read_text(encoding="utf-8").count(mutant.old) == 1
        assert mutant.new != mutant.old
    else:
        assert mutant.env and mutant.expect_output
    for node in mutant.tests or (breakcheck.BLIND_TEST,):
        path, _, name = node.partition("::")
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        if name:
            assert name in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}, node


def test_failed_ids_reads_pytests_short_summary() -> None:
    out = ("FAILED tests/unit/test_x.py::test_a - AssertionError: boom\n"
           "ERROR tests/unit/test_x.py::test_b\nFAILED tests/unit/test_x.py::test_c[1] - x\n")
    assert breakcheck.failed_ids(out) == {"tests/unit/test_x.py::test_a", "tests/unit/test_x.py::test_b",
                                          "tests/unit/test_x.py::test_c[1]"}
