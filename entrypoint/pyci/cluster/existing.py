"""`cluster: existing`: use a cluster someone else made; check it answers; never delete anything."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.rest import ApiException

from pyci.cluster.base import ClusterInfo
from pyci.results import InfrastructureError, InputError

log = logging.getLogger(__name__)


def resolve_kubeconfig(explicit: Path | None, environ: dict[str, str] | None = None) -> Path:
    """settings.kubeconfig, else the first file in $KUBECONFIG, else ~/.kube/config; made absolute,
    because tilt runs in the Tiltfile's folder and would read a relative path from there."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        candidates = [explicit]
    elif env.get("KUBECONFIG"):
        candidates = [Path(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
    else:
        candidates = [Path.home() / ".kube" / "config"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise InputError(
        f"kubeconfig: no kubeconfig found at {', '.join(map(str, candidates))} (cluster: existing)"
    )


def current_context(kubeconfig: Path) -> str:
    try:
        _, active = kubernetes.config.list_kube_config_contexts(config_file=str(kubeconfig))
    except (kubernetes.config.ConfigException, OSError) as err:
        raise InputError(f"kubeconfig: {kubeconfig} is not a usable kubeconfig: {err}") from err
    return str(active["name"])


def check_api_server(kubeconfig: Path, context: str, timeout: float = 10.0) -> str:
    """The server's git version; InfrastructureError when it does not answer."""
    try:
        api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig), context=context)
    except (kubernetes.config.ConfigException, OSError) as err:
        raise InputError(f"kubeconfig: {kubeconfig} is not a usable kubeconfig: {err}") from err
    with api:
        try:
            version = kubernetes.client.VersionApi(api).get_code(_request_timeout=timeout)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as err:
            server = api.configuration.host
            raise InfrastructureError(
                f"the API server of context {context} ({server}) did not answer within {timeout:.0f}s",
                str(err),
            ) from err
    return str(version.git_version)


class ExistingProvider:
    def __init__(self, kubeconfig: Path | None, timeout: float = 10.0) -> None:
        self.kubeconfig = resolve_kubeconfig(kubeconfig)
        self.context = current_context(self.kubeconfig)
        self.name = self.context
        self.timeout = timeout

    def create(self, stack: contextlib.ExitStack) -> ClusterInfo:
        version = check_api_server(self.kubeconfig, self.context, self.timeout)
        log.info("using existing cluster, context %s (Kubernetes %s)", self.context, version)
        return ClusterInfo(
            name=self.name, kubeconfig=self.kubeconfig, internal_kubeconfig=None, context=self.context
        )

    def delete(self) -> None:
        """Never: this cluster is not ours."""
