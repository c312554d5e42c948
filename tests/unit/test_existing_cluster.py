from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pyci.cluster.existing import ExistingProvider, current_context, resolve_kubeconfig
from pyci.results import InfrastructureError, InputError


def kubeconfig(path, server="https://127.0.0.1:1", context="ctx"):
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    return path


def test_explicit_kubeconfig_wins(tmp_path):
    explicit = kubeconfig(tmp_path / "a")
    kubeconfig(tmp_path / "b")
    assert resolve_kubeconfig(explicit, {"KUBECONFIG": str(tmp_path / "b")}) == explicit


def test_first_existing_file_of_KUBECONFIG(tmp_path):
    b = kubeconfig(tmp_path / "b")
    assert resolve_kubeconfig(None, {"KUBECONFIG": f"{tmp_path / 'missing'}:{b}"}) == b


def test_a_relative_kubeconfig_is_made_absolute(tmp_path, monkeypatch):
    # tilt runs in the Tiltfile's folder: a relative KUBECONFIG would point elsewhere from there.
    kubeconfig(tmp_path / "lab-kubeconfig")
    monkeypatch.chdir(tmp_path)
    assert resolve_kubeconfig(Path("lab-kubeconfig"), {}) == tmp_path / "lab-kubeconfig"
    assert resolve_kubeconfig(None, {"KUBECONFIG": "lab-kubeconfig"}).is_absolute()


def test_no_kubeconfig_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no kubeconfig"):
        resolve_kubeconfig(tmp_path / "missing", {})


def test_current_context(tmp_path):
    assert current_context(kubeconfig(tmp_path / "k", context="prod-ish")) == "prod-ish"


def test_garbage_kubeconfig_is_an_input_error(tmp_path):
    path = tmp_path / "k"
    path.write_text("just: text\n")
    with pytest.raises(InputError):
        current_context(path)


def test_unreachable_api_server_is_an_infrastructure_error(tmp_path):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    path = kubeconfig(tmp_path / "k")
    provider = ExistingProvider(path, timeout=3)
    import contextlib

    with pytest.raises(InfrastructureError, match="did not answer"), contextlib.ExitStack() as stack:
        provider.create(stack)
    before = path.read_bytes()
    provider.delete()  # the cluster is not ours: delete never fails and touches nothing
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]
