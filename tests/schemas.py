"""Where the tests find the public schemas they validate against: inside the repository, so that a
plain clone tests itself (tests/schemas/README.md names each file's source and licence)."""

from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent / "schemas"
