"""The ownership marker (pyci.ownership): one run per cluster name, and a marker left by a run that
was killed before it could clean up does not block the name for ever."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from pyci import ownership
from pyci.results import InfrastructureError
from pyci.settings import LABEL_REAPER, LABEL_RUN
from tests.unit.fixtures.docker_fake import FakeCollection, FakeObject

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


class Marker(FakeObject):
    created: str = ""

    @property
    def attrs(self) -> dict[str, object]:
        return {"Labels": self.labels, "CreatedAt": self.created}


class Volumes:
    """docker's volume create: an existing volume of the same name is returned, not replaced."""

    def __init__(self, existing: list[Marker]) -> None:
        self.items = {v.name: v for v in existing}

    def create(self, name: str, labels: dict[str, str]) -> Marker:
        if name not in self.items or self.items[name].removed:
            self.items[name] = Marker(name, labels)
            self.items[name].created = NOW.isoformat().replace("+00:00", "Z")
        return self.items[name]


class Client:
    def __init__(self, markers: list[Marker], running: list[FakeObject]) -> None:
        self.volumes = Volumes(markers)
        self.containers = FakeCollection(running)


def left_by(run: str, seconds_ago: float) -> Marker:
    marker = Marker("pyci-owner-pr-7", {LABEL_RUN: run, ownership.LABEL_OWNS: "pr-7"})
    marker.created = datetime.fromtimestamp(NOW.timestamp() - seconds_ago, UTC).isoformat()
    return marker


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ownership.time, "time", NOW.timestamp)


def claim(client: Client) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    ownership.claim_cluster(client, "pr-7", "run-new", stack)
    return stack


def test_a_free_name_is_claimed_and_released_with_the_run() -> None:
    client = Client([], [])
    with claim(client):
        assert client.volumes.items["pyci-owner-pr-7"].labels[LABEL_RUN] == "run-new"
    assert client.volumes.items["pyci-owner-pr-7"].removed


@pytest.mark.parametrize("running, says", [
    (FakeObject("pr-7-registry", {LABEL_RUN: "run-old"}), "its container pr-7-registry is running"),
    (FakeObject("pyci-reaper-run-old", {LABEL_REAPER: "run-old"}),
     "its reaper pyci-reaper-run-old is running"),
    (FakeObject("pr-7-control-plane", {ownership.KIND_CLUSTER_LABEL: "pr-7"}),
     "the cluster's node pr-7-control-plane is running"),
])
def test_a_run_with_something_running_keeps_its_name(running: FakeObject, says: str) -> None:
    client = Client([left_by("run-old", 3600)], [running])
    with pytest.raises(InfrastructureError) as err:
        claim(client)
    message = str(err.value)
    assert f"being created by another pyci run, run-old ({says})" in message, message
    assert "`pyci cleanup --run-id run-old` removes what it left" in message
    assert not client.volumes.items["pyci-owner-pr-7"].removed


def test_a_young_marker_is_never_taken_over() -> None:
    # a run that made its marker a moment ago may not have started any container yet
    client = Client([left_by("run-old", 30)], [])
    with pytest.raises(InfrastructureError, match=r"run-old \(its marker is 30s old\)"):
        claim(client)


def test_a_marker_left_by_a_run_that_is_gone_is_taken_over_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """What the act e2e test met: a run killed by `docker rm -f` left its marker, and every later run
    with that cluster-name stopped, blaming a run that had been gone for hours."""
    client = Client([left_by("run-old", 3 * 3600)], [FakeObject("someone-else", {"other": "x"})])
    with caplog.at_level(logging.WARNING), claim(client):
        assert client.volumes.items["pyci-owner-pr-7"].labels[LABEL_RUN] == "run-new"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["cluster pr-7: run run-old left its ownership marker and is gone (nothing of it "
                        "runs): this run takes the name over"], warnings


def test_signs_of_life_asks_only_for_running_containers_by_exact_labels() -> None:
    client = Client([], [])
    assert ownership.signs_of_life(client, "run-old", "pr-7", left_by("run-old", 600)) == ""
    asked = [f["label"] for f in client.containers.filters]
    assert asked == [[f"{LABEL_RUN}=run-old"], [f"{LABEL_REAPER}=run-old"],
                     [f"{ownership.KIND_CLUSTER_LABEL}=pr-7"]]
    unknown: Any = Marker("m", {})
    assert ownership.signs_of_life(client, "run-old", "pr-7", unknown) == "its marker's age is unknown"
