"""A crash's last words when the kubelet has already removed the previous container
(pyci.readiness.explain)."""

from __future__ import annotations

import pytest

from pyci.readiness import explain

WORDS = "ledger: cannot open /data/ledger.db"
GONE = "unable to retrieve container logs for containerd://9dc0003636114768f3bc3f4d5ed7fe1c"


class Core:
    """read_namespaced_pod_log answering from a script: one answer per call, by `previous`."""

    def __init__(self, answers: list[tuple[bool, str]]) -> None:
        self.answers, self.calls = answers, list[bool]()

    def read_namespaced_pod_log(self, pod, namespace, **kwargs):
        self.calls.append(kwargs["previous"])
        expected, text = self.answers.pop(0)
        assert kwargs["previous"] is expected
        if text == "raise":
            raise RuntimeError("no kubelet")
        return text


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.setattr(explain, "RETRY_PAUSE", 0.0)


def test_the_previous_containers_log_when_the_kubelet_has_it():
    core = Core([(True, "ledger: cannot open /data/ledger.db\n")])
    assert explain._pod_logs(core, "ns", "ledger-0", "ledger", previous=True) == WORDS


def test_a_removed_previous_container_falls_back_to_the_current_one():
    core = Core([(True, GONE), (False, "ledger: cannot open /data/ledger.db")])
    assert explain._pod_logs(core, "ns", "ledger-0", "ledger", previous=True) == WORDS


def test_then_the_previous_one_once_more():
    core = Core([(True, GONE), (False, ""), (True, "ledger: cannot open /data/ledger.db")])
    assert explain._pod_logs(core, "ns", "ledger-0", "ledger", previous=True) == WORDS


def test_the_kubelets_words_are_never_taken_for_the_containers():
    core = Core([(True, GONE), (False, "raise"), (True, GONE)])
    assert explain._pod_logs(core, "ns", "ledger-0", "ledger", previous=True) == ""
    assert core.calls == [True, False, True]


def test_a_current_log_is_asked_once():
    core = Core([(False, GONE)])
    assert explain._pod_logs(core, "ns", "job-x", None, previous=False) == ""
