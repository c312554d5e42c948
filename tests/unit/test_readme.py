"""The README documents every input and output exactly as action.yml and pyci.settings define them,
and names the test command that .ci/run calls."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pyci.settings import INPUTS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
ROW = re.compile(r"^\| `([a-z-]+)` \|(.*)$", re.M)


def table(header: str) -> dict[str, list[str]]:
    """Rows of the Markdown table whose header starts with `| header |`."""
    start = README.index(f"| {header} |")
    block = README[start:].split("\n\n", 1)[0]
    return {m.group(1): [c.strip() for c in m.group(2).split(" | ")] for m in ROW.finditer(block)}


def test_inputs_table_matches_settings_and_action_yml():
    action = yaml.safe_load((REPO / "action.yml").read_text())
    rows = table("input")
    assert list(rows) == [s.name for s in INPUTS] == list(action["inputs"])
    for spec in INPUTS:
        default = rows[spec.name][0].strip("`")
        assert default == spec.default == str(action["inputs"][spec.name].get("default", "")), spec.name


def test_outputs_table_matches_action_yml():
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert list(table("output")) == list(action["outputs"])


def test_readme_names_the_commands_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert "tools/test" in ci and "tools/test" in README
    assert "tools/demo" in README
    for script in ("tools/test", "tools/demo", "tools/lab"):
        assert (REPO / script).is_file(), script


def test_schema_properties_are_the_inputs():
    import json

    schema = json.loads((REPO / "entrypoint" / "pyci" / "schema" / "settings.schema.json").read_text())
    assert set(schema["properties"]) == {s.name for s in INPUTS}


def test_readme_shows_both_github_actions_and_the_host_actions_overrides():
    assert "uses: pyci-action/pyci-action@v1" in README
    assert "uses: pyci-action/pyci-action/host@v1" in README
    assert (REPO / "host" / "action.yml").is_file()
    # Every environment variable the downloader reads is documented.
    source = (REPO / "entrypoint" / "pyci" / "install.py").read_text()
    read = set(re.findall(r'environ(?:\.get\(|\[)"(PYCI_[A-Z_]+)"', source))
    assert read == {"PYCI_DOWNLOAD_BASE", "PYCI_VERSIONS_FILE", "PYCI_BUILD_TILT"}
    assert all(f"`{name}`" in README for name in read)
