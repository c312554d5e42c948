"""Image tags in the daemon, read in one call.

`client.images.list()` lists, then inspects each image; an image another run removes in between (a
shared daemon, a cleanup finishing) makes it raise 404. `/images/json` alone carries the tags.
"""

from __future__ import annotations

from typing import Any


def tags(client: Any, name: str | None = None, filters: dict[str, Any] | None = None) -> set[str]:
    """Every `repo:tag` of the images that match; a client without the image API has none."""
    api = getattr(client, "api", None)
    if api is None:
        return set()
    return {t for image in api.images(name=name, filters=filters) for t in image.get("RepoTags") or ()
            if t != "<none>:<none>"}
