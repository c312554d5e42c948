"""Reading what a GitHub step wrote, as the runner reads it."""

from __future__ import annotations

from pathlib import Path


def read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT: `name=value` lines and `name<<DELIMITER` heredocs."""
    lines, found, i = path.read_text().splitlines(), {}, 0
    while i < len(lines):
        name, sep, delim = lines[i].partition("<<")
        if sep and "=" not in name:
            end = lines.index(delim, i + 1)
            found[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            key, _, value = lines[i].partition("=")
            found[key] = value
            i += 1
    return found
