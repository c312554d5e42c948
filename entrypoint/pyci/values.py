"""Input values: strings as the CI platforms hand them over, converted (a ValueError is the user's
mistake, its text one line naming what is wrong), and output paths tried before the run."""

from __future__ import annotations

import math
import re
import shlex
import tempfile
import types
from collections.abc import Callable, Mapping
from pathlib import Path

MAX_DURATION = 7 * 24 * 3600.0  # a week: anything longer is a typo, not a CI timeout
_TRUE = frozenset({"true", "yes", "on", "1"})
_PLAIN_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DURATION = re.compile(r"(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+(?:\.[0-9]+)?)s)?")


def split_list(value: str, spaces: bool) -> list[str]:
    separators = r"[,\s]+" if spaces else r"[,\n\r]+"
    return [item.strip() for item in re.split(separators, value) if item.strip()]


def show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_bool(value: str) -> bool:
    return value.lower() in _TRUE


def parse_duration(value: str) -> float:
    """`90s`, `5m`, `1h`, `1h30m`, `1.5` (plain seconds) to seconds, more than 0 and at most a week."""
    match = _DURATION.fullmatch(value)
    if _PLAIN_SECONDS.fullmatch(value):
        seconds = float(value)
    elif value and match:
        hours, minutes, secs = (float(match.group(g) or 0) for g in "hms")
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(f"{show(value)} is not a duration")
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DURATION:
        raise ValueError(f"{show(value)} is not more than 0 and at most 7 days")
    return seconds


_SIZE = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_size(value: str) -> int:
    """`500MB`, `4GB`, `4GiB`, `1.5G` or plain bytes to bytes (binary units: a cache is sized in them),
    at least 1 MB."""
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{show(value)} is not a size")
    size = int(float(match["n"]) * 1024 ** " KMGT".index(match["unit"].upper() or " "))
    if size < 1024**2:
        raise ValueError(f"{show(value)} is less than 1MB")
    return size


def parse_readiness_timeouts(entries: list[str]) -> Mapping[str, float]:
    timeouts: dict[str, float] = {}
    for entry in entries:
        key, _, duration = entry.partition("=")
        try:
            timeouts[key] = parse_duration(duration)
        except ValueError as err:
            raise ValueError(f"entry {show(entry)}: {err}") from None
    return types.MappingProxyType(timeouts)  # read-only, like the rest of the frozen Settings


def parse_tilt_args(value: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value))
    except ValueError as err:  # shlex: "No closing quotation", "No escaped character"
        raise ValueError(f"{show(value)} cannot be split: {str(err).lower()}") from None


def unwritable(path: Path, is_dir: bool) -> str | None:
    """Why pyci could not write there, or None. Tried, not inferred from permission bits: pyci runs as
    root in its image, where access() says yes to a read-only mount or /proc. The probe leaves nothing:
    an existing file is opened for appending (not written), a new one is a temporary file, removed."""
    if _is(Path.exists, path):
        if is_dir != _is(Path.is_dir, path):
            return "is a directory" if not is_dir else "is a file, not a directory"
        return _cannot_write(path, "is not writable")
    parent = path.parent
    while not _is(Path.exists, parent) and parent != parent.parent:
        parent = parent.parent
    if not _is(Path.is_dir, parent):
        return f"cannot be created: {show(str(parent))} is not a directory"
    return _cannot_write(parent, f"cannot be created: {show(str(parent))} is not writable")


def _cannot_write(path: Path, why: str) -> str | None:
    try:
        if path.is_dir():
            with tempfile.TemporaryFile(dir=path):
                pass
        else:
            with open(path, "ab"):
                pass
    except OSError as err:
        return f"{why} ({err.strerror or err})"
    return None


def _is(predicate: Callable[[Path], bool], path: Path) -> bool:
    try:
        return predicate(path)
    except (OSError, ValueError):  # name too long, embedded NUL: not an existing file either way
        return False
