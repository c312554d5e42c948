"""cluster: existing against the lab control plane (a real kube-apiserver)."""

from __future__ import annotations

import contextlib

from pyci.cluster import get_provider
from pyci.settings import Settings


def test_existing_cluster_answers_and_is_never_deleted(control_plane, tmp_path):
    provider = get_provider(Settings(cluster="existing", kubeconfig=control_plane.kubeconfig), tmp_path)
    with contextlib.ExitStack() as stack:
        info = provider.create(stack)
        # nothing registered: nothing of ours to delete (typeshed does not declare the callbacks' deque)
        assert len(stack._exit_callbacks) == 0  # type: ignore[attr-defined]
    assert info.kubeconfig == control_plane.kubeconfig
    assert info.context == control_plane.context
    assert info.internal_kubeconfig is None and info.network is None
    provider.delete()
    import kubernetes

    api = control_plane.api_client()
    assert kubernetes.client.VersionApi(api).get_code().git_version.startswith("v1.")


def test_existing_cluster_from_KUBECONFIG(control_plane, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    provider = get_provider(Settings(cluster="existing"), tmp_path)
    with contextlib.ExitStack() as stack:
        assert provider.create(stack).context == control_plane.context
