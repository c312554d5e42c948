"""A remote registry: `docker login` on the daemon, a per-run repository prefix, and deletion of the
run's tags at the end through the Registry v2 API (basic or bearer-token auth)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence

import docker
import docker.errors
import requests

from pyci.registry.info import RegistryInfo
from pyci.results import InfrastructureError
from pyci.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def split_remote(registry: str) -> tuple[str, str]:
    """`ghcr.io/org/pyci` -> (`ghcr.io`, `org/pyci`)."""
    registry = registry.removeprefix("https://").removeprefix("http://").strip("/")
    host, _, path = registry.partition("/")
    return host, path


def remote_prefix(registry: str, run_id: str) -> str:
    host, path = split_remote(registry)
    return "/".join(part for part in (host, path, run_id) if part)


def provision_remote(
    settings: Settings, client: docker.DockerClient, stack: contextlib.ExitStack
) -> RegistryInfo:
    host, _ = split_remote(settings.registry)
    if settings.registry_username and settings.registry_password:
        try:
            client.login(
                username=settings.registry_username,
                password=settings.registry_password,
                registry=host,
                reauth=True,
            )
        except docker.errors.APIError as err:
            # The daemon's message never contains the password.
            raise InfrastructureError(
                f"docker login to {host} as {settings.registry_username} failed", str(err)
            ) from err
        log.info("logged in to %s as %s", host, settings.registry_username)
    info = RegistryInfo(
        mode="remote",
        host=host,
        host_from_cluster=remote_prefix(settings.registry, settings.run_id),
        prefix=remote_prefix(settings.registry, settings.run_id),
        username=settings.registry_username,
        password=settings.registry_password,
    )
    stack.callback(delete_run_images, info)
    return info


class RegistryAPI:
    """The few Registry v2 calls cleanup needs, with basic or bearer-token auth."""

    def __init__(self, host: str, username: str | None, password: str | None, timeout: float = 15.0) -> None:
        local = host.startswith(("localhost", "127.", "[::1]"))
        self.base = f"{'http' if local else 'https'}://{host}/v2"
        self.auth = (username, password) if username and password else None
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        url = f"{self.base}/{path}"
        response = self.session.request(method, url, headers=headers, auth=self.auth, timeout=self.timeout)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and challenge.lower().startswith("bearer"):
            token = self._token(challenge)
            headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
            response = self.session.request(method, url, headers=headers, timeout=self.timeout)
        return response

    def _token(self, challenge: str) -> str:
        params = parse_challenge(challenge)
        realm = params.pop("realm", "")
        response = self.session.get(realm, params=params, auth=self.auth, timeout=self.timeout)
        response.raise_for_status()
        body = response.json()
        return str(body.get("token") or body.get("access_token") or "")

    def repositories(self, under: str) -> list[str]:
        """Repositories at or below `under`, following the catalog's pagination."""
        names: list[str] = []
        path: str | None = "_catalog?n=100"
        while path:
            response = self.request("GET", path)
            response.raise_for_status()
            names.extend(response.json().get("repositories") or [])
            link = response.links.get("next", {}).get("url", "")
            path = link.split("/v2/", 1)[1] if "/v2/" in link else None
        return [n for n in names if n == under or n.startswith(under + "/")]

    def tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"{repository}/tags/list")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json().get("tags") or [])

    def digest(self, repository: str, tag: str) -> str | None:
        response = self.request("HEAD", f"{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers.get("Docker-Content-Digest")

    def delete_manifest(self, repository: str, digest: str) -> int:
        return self.request("DELETE", f"{repository}/manifests/{digest}").status_code


def parse_challenge(challenge: str) -> dict[str, str]:
    """`Bearer realm="https://x/token",service="x",scope="repository:a:pull"` -> its parameters."""
    _, _, rest = challenge.partition(" ")
    params: dict[str, str] = {}
    for part in _split_params(rest):
        key, _, value = part.partition("=")
        params[key.strip()] = value.strip().strip('"')
    return params


def _split_params(text: str) -> Iterable[str]:
    current, quoted = "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield current
            current = ""
        else:
            current += char
    if current.strip():
        yield current


def delete_run_images(info: RegistryInfo, repositories: Sequence[str] | None = None) -> int:
    """Delete every tag under the run's prefix; returns how many manifests were deleted.

    Registries that do not allow deletion (405) or listing get a warning, never a failure: cleanup
    must not turn a green run red.
    """
    if info.mode != "remote" or not info.host or not info.prefix:
        return 0
    api = RegistryAPI(info.host, info.username, info.password)
    under = info.prefix.removeprefix(info.host + "/")
    deleted = 0
    try:
        names = list(repositories) if repositories is not None else api.repositories(under)
        for repository in names:
            for tag in api.tags(repository):
                digest = api.digest(repository, tag)
                if digest is None:
                    continue
                status = api.delete_manifest(repository, digest)
                if status in (405, 501):
                    log.warning(
                        "registry %s does not allow deleting manifests (HTTP %d): delete %s by hand",
                        info.host,
                        status,
                        info.prefix,
                    )
                    return deleted
                if status < 300:
                    deleted += 1
                elif status != 404:
                    log.warning("deleting %s@%s: HTTP %d", repository, digest, status)
    except (requests.RequestException, ValueError) as err:
        log.warning("could not clean up %s: %s", info.prefix, err)
    log.info("deleted %d manifests under %s", deleted, info.prefix)
    return deleted
