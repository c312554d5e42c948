"""kind's network at the end of a run: the run that made it removes it, or hands it over to the last pyci
run on it (seen in a side-by-side suite run: the maker ended first, the other had not made it, and the
empty `kind` network stayed); a network a user made is never touched."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyci import cleanup, ownership
from pyci.settings import LABEL_MANAGED


@dataclass
class Network:
    name: str
    containers: list[str] = field(default_factory=list)
    removed: bool = False
    on_reload: Any = None  # what happens between two looks (another run leaves)

    @property
    def attrs(self) -> dict[str, Any]:
        return {"Containers": {c: {} for c in self.containers}}

    def reload(self) -> None:
        if self.on_reload is not None:
            self.on_reload(self)

    def remove(self) -> None:
        assert not self.containers, "docker refuses to remove a network in use"
        self.removed = True


@dataclass
class Volume:
    name: str
    labels: dict[str, str]
    removed: bool = False

    @property
    def attrs(self) -> dict[str, Any]:
        return {"Labels": self.labels}

    def remove(self, force: bool = False) -> None:
        self.removed = True


class Networks:
    def __init__(self, *items: Network) -> None:
        self.items = list(items)

    def list(self, names: list[str] | None = None, filters: Any = None, **_: Any) -> list[Network]:
        live = [n for n in self.items if not n.removed]
        return [n for n in live if any(x in n.name for x in names)] if names else ([] if filters else live)


class Volumes:
    def __init__(self) -> None:
        self.items: list[Volume] = []

    def create(self, name: str, labels: dict[str, str]) -> Volume:
        volume = Volume(name, labels)
        self.items.append(volume)
        return volume

    def list(self, filters: dict[str, list[str]]) -> list[Volume]:
        def match(v: Volume, f: str) -> bool:
            key, _, value = f.partition("=")
            return key in v.labels and (not value or v.labels[key] == value)

        return [v for v in self.items if not v.removed and all(match(v, f) for f in filters["label"])]


class Client:
    def __init__(self, *networks: Network) -> None:
        self.networks = Networks(*networks)
        self.volumes = Volumes()
        self.containers = Networks()  # nothing labelled


def markers(client: Client) -> list[Volume]:
    return ownership.handed_over(client)


def test_the_maker_removes_it_when_nothing_is_on_it() -> None:
    client = Client(kind := Network("kind"))
    ownership.leave_network(client, "kind", made=True)
    assert kind.removed and markers(client) == []


def test_the_maker_hands_it_over_while_another_runs_nodes_are_on_it() -> None:
    client = Client(kind := Network("kind", ["other-control-plane"]))
    ownership.leave_network(client, "kind", made=True)
    assert not kind.removed
    [marker] = markers(client)
    assert marker.labels == {LABEL_MANAGED: "true", ownership.LABEL_MADE_NETWORK: "kind"}
    # The other run, which found the network there, removes it at its end: it is the last one on it.
    kind.containers.clear()
    ownership.leave_network(client, "kind", made=False)
    assert kind.removed and markers(client) == []


def test_a_run_that_did_not_make_it_never_touches_a_users_network() -> None:
    client = Client(kind := Network("kind"))  # made by hand (or by kind outside pyci): no marker
    ownership.leave_network(client, "kind", made=False)
    assert not kind.removed


def test_a_handed_over_network_still_in_use_stays_with_its_marker() -> None:
    client = Client(kind := Network("kind", ["a-control-plane"]))
    ownership.leave_network(client, "kind", made=True)
    ownership.leave_network(client, "kind", made=False)  # another run ends; a third's nodes are still on it
    assert not kind.removed and len(markers(client)) == 1


def test_the_other_run_leaving_between_the_look_and_the_marker_still_removes_it() -> None:
    def other_leaves(network: Network) -> None:  # its nodes go after our first look
        network.on_reload = lambda n: n.containers.clear()

    client = Client(kind := Network("kind", ["other-control-plane"], on_reload=other_leaves))
    ownership.leave_network(client, "kind", made=True)
    assert kind.removed and markers(client) == []


def test_a_network_of_another_name_is_not_taken_for_it() -> None:
    client = Client(mine := Network("kind-of-mine"))
    ownership.leave_network(client, "kind", made=True)  # `names` matches substrings
    assert not mine.removed


def test_pyci_cleanup_removes_a_handed_over_network_once_unused(capsys) -> None:
    client = Client(kind := Network("kind", ["killed-run-control-plane"]))
    ownership.leave_network(client, "kind", made=True)
    kind.containers.clear()  # the run on it was killed; `pyci cleanup` deleted its cluster
    assert cleanup.remove_labelled(client, None) == []
    assert kind.removed and markers(client) == []
    assert "removed network kind" in capsys.readouterr().out
