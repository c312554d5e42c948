"""The run's timeline: spans from tilt's real snapshots, and bars on one axis as text."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from pyci import timeline
from pyci.report import summary_markdown
from pyci.results import RENDERING, ExitCode, ResourceResult, RunResult, Span, StageResult, Status

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def snapshot(name: str) -> dict:
    return json.loads((FIXTURES / f"tilt-snapshot-{name}.json").read_text())


def test_spans_of_a_healthy_run_split_build_and_deploy_at_tilts_deploying_step():
    spans = timeline.spans_from_snapshot(snapshot("ok"))
    api = spans["api"]
    assert [s.phase for s in api] == ["build", "deploy", "ready"]
    assert api[0] == Span("build", at("2026-11-23T08:04:34.038484Z"), at("2026-11-23T08:04:41.021013Z"))
    assert api[1] == Span("deploy", at("2026-11-23T08:04:41.021013Z"), at("2026-11-23T08:04:41.049849Z"))
    # tilt's podCreationTime is whole seconds (08:04:41Z): the ready span starts at the apply instead
    assert api[2] == Span("ready", at("2026-11-23T08:04:41.049849Z"), at("2026-11-23T08:04:41.109853Z"))
    assert [s.phase for s in spans["(Tiltfile)"]] == ["build"]


def test_spans_of_a_failed_run_a_failed_build_and_one_still_running():
    spans = timeline.spans_from_snapshot(snapshot("fail"))
    assert spans["broken"] == [Span("build", at("2026-11-23T08:05:23.321661Z"),
                                    at("2026-11-23T08:05:23.643135Z"))]
    assert spans["ok"] == [Span("build", at("2026-11-23T08:05:23.319629Z"), None)]  # still building


def test_a_resource_that_never_started_has_no_spans():
    assert "seed" not in timeline.spans_from_snapshot(snapshot("held"))


def test_snapshot_spans_do_not_replace_the_ready_span_the_watch_set(tmp_path: Path):
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snapshot("ok")))
    watched = Span("ready", 100.0, 110.0)
    api, web = ResourceResult("api", "tilt", True, spans=[watched]), ResourceResult("web", "tilt", True)
    timeline.add_snapshot_spans([api, web], path)
    assert [s.phase for s in api.spans] == ["ready", "build", "deploy"] and api.spans[0] is watched
    assert [s.phase for s in web.spans] == ["build", "deploy", "ready"]
    timeline.add_snapshot_spans([web], tmp_path / "missing.json")  # no snapshot: nothing changes
    assert len(web.spans) == 3


T0 = 1_000_000.0


def run() -> RunResult:
    """36 s on 36 columns: one column is one second."""
    return RunResult(
        exit_code=ExitCode.APP_FAILED, headline="the app did not start: api", duration=36.0, started_at=T0,
        stages=[StageResult("preflight", 0.2, started_at=T0),
                StageResult("registry + cluster", 11.8, started_at=T0 + 0.2),
                StageResult("tilt ci", 20.0, started_at=T0 + 12.0, stopped=True),
                StageResult("diagnostics", 0.0, skipped=True),
                StageResult("cleanup", 4.0)],  # no start recorded: right after the stage before
        resources=[
            ResourceResult("api", "tilt", ok=False, reason="CrashLoopBackOff", spans=[
                Span("build", T0 + 12.0, T0 + 18.0), Span("deploy", T0 + 18.0, T0 + 19.0),
                Span("ready", T0 + 19.0, None)]),
            ResourceResult("web", "tilt", ok=False, finished=False,
                           spans=[Span("build", T0 + 12.0, T0 + 14.0)]),
            ResourceResult("db", "tilt", ok=True),  # no spans: no row
        ])


def rows(text: str) -> dict[str, str]:
    return {line[:timeline.LABEL].strip(): line for line in text.splitlines() if line[:1].strip()}


def bar(line: str) -> str:
    return line[timeline.LABEL + 1:timeline.LABEL + 1 + timeline.BAR]


def test_text_bars_sit_on_one_axis_with_durations_and_status_icons():
    text = timeline.text(run())
    found = rows(text)
    assert bar(found["preflight"]) == "█" + " " * 35  # shorter than a column: still one
    assert bar(found["registry + cluster"]) == "█" * 12 + " " * 24  # from 0.2 s: shares column 0
    assert bar(found["tilt ci"]) == " " * 12 + "█" * 20 + " " * 4
    assert bar(found["cleanup"]) == " " * 32 + "█" * 4
    assert bar(found["diagnostics"]).strip() == ""
    # ready still going when pyci stopped watching: drawn to there, not through the cleanup
    assert bar(found["api"]) == " " * 12 + "▓" * 6 + "▒" + "░" * 13 + " " * 4
    assert bar(found["web"]) == " " * 12 + "▓" * 2 + " " * 22
    assert "db" not in found
    assert found["tilt ci"].endswith(f"20.0s {RENDERING[Status.STOPPED].icon}")
    assert found["diagnostics"].endswith(f"– {RENDERING[Status.SKIPPED].icon}")
    assert found["api"].endswith(f"20.0s… {RENDERING[Status.FAILED].icon}")
    assert found["web"].endswith(f"2.0s {RENDERING[Status.NOT_FINISHED].icon}")
    assert text.splitlines()[0] == "run: 36.0s, one column ≈ 1.0s"
    scale, axis = text.splitlines()[1:3]
    assert scale.split() == ["0s", "10s", "20s", "30s"]
    assert axis.strip() == "┼─────────┼─────────┼─────────┼─────"
    # about 60 columns: label, bar, duration, then the icon (an emoji: one or two cells)
    assert max(len(line) for line in text.splitlines()) <= timeline.LABEL + timeline.BAR + 12


def test_a_phase_shorter_than_a_column_still_shows_where_it_began():
    result = run()
    result.resources[0].spans = [Span("build", T0 + 12.1, T0 + 12.4), Span("deploy", T0 + 12.4, T0 + 12.5),
                                 Span("ready", T0 + 12.5, T0 + 20.0)]
    assert bar(rows(timeline.text(result))["api"]) == " " * 12 + "▓" + "░" * 7 + " " * 16


def test_text_of_a_run_with_nothing_to_draw_is_empty():
    assert timeline.text(RunResult(exit_code=ExitCode.BAD_INPUT, headline="bad input")) == ""


def test_text_redacts_labels_and_cuts_long_ones():
    result = run()
    result.resources[0].name = "api-with-token-s3cr3t-in-its-name"
    text = timeline.text(result, secrets=["s3cr3t"])
    assert "s3cr3t" not in text
    assert "api-with-token-***"[:timeline.LABEL - 1] + "…" in text


@pytest.mark.parametrize("minutes", [0.5, 3, 12, 70])
def test_every_scale_label_stands_on_a_tick_of_the_axis(minutes: float):
    scale, axis = timeline._scale(minutes * 60)
    labels = [(m.start(), m.group()) for m in re.finditer(r"\S+", scale)]
    assert 3 <= len(labels) <= 5
    assert all(axis[col] == "┼" for col, _ in labels)
    assert labels[0][1] == "0s"


def test_the_summary_has_the_timeline_in_a_text_block():
    markdown = summary_markdown(run())
    section = markdown.split("### Timeline\n\n", 1)[1]
    assert section.startswith("```text\nrun: 36.0s")
    assert timeline.text(run()).rstrip("\n") in section
