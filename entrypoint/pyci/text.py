"""Text from tools made fit to publish: secrets redacted, terminal colours and characters XML cannot
carry removed. Every report, log file and timeline goes through `clean`."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "***"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Characters XML 1.0 cannot carry at all (tilt and pod logs do contain some).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def redact(text: str, secrets: Iterable[str]) -> str:
    lines = {line for secret in secrets for line in secret.splitlines() if line.strip()}
    for line in sorted(lines, key=len, reverse=True):  # longer first: no partial leftovers
        text = text.replace(line, REDACTED)
    return text


def clean(text: str | None, secrets: Iterable[str]) -> str:
    """Redacted, without terminal colour codes, and only characters XML 1.0 allows."""
    return _NOT_XML.sub("", _ANSI.sub("", redact(text or "", secrets)))
