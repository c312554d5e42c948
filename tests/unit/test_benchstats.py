"""tools/bench's statistics and table (tests/lab/benchstats.py): medians, spread, ratios, rotation."""

from __future__ import annotations

from typing import Any

from tests.lab import benchstats
from tests.lab.benchstats import Sample


def sample(app: str, method: str, verdict: float, ok: bool = True, **kw: Any) -> Sample:
    return Sample(app, method, 0, verdict, verdict + 2.0, ok, **kw)


def test_spread_is_median_min_max() -> None:
    s = benchstats.spread([30.0, 10.0, 20.0, 50.0])
    assert s is not None and (s.n, s.median, s.min, s.max) == (4, 25.0, 10.0, 50.0)
    assert benchstats.spread([]) is None


def test_table_counts_only_runs_that_ended_as_they_should() -> None:
    rows = benchstats.table([sample("shop", "plain", 40.0), sample("shop", "plain", 44.0),
                             sample("shop", "plain", 999.0, ok=False),
                             sample("shop", "pyci", 30.0, phases={"tilt ci": 12.0})]).splitlines()
    assert rows[0].startswith("| app | method | ok |")
    plain = next(r for r in rows if "| plain |" in r)
    assert "| 2/3 |" in plain and "42.0 s (40.0–44.0)" in plain and "44.0 s (42.0–46.0)" in plain
    assert "999" not in plain
    pyci = next(r for r in rows if "| pyci |" in r)
    assert "tilt ci 12.0" in pyci


def test_ratio_is_median_over_median_of_the_baseline() -> None:
    lines = benchstats.ratios([sample("shop", "plain", 40.0), sample("shop", "pyci", 30.0),
                               sample("hello", "plain", 20.0), sample("hello", "pyci", 20.0, ok=False)])
    assert lines[0] == "ratio pyci/plain on shop: 0.75 to the verdict, 0.76 with cleanup"
    assert lines[1].startswith("ratio pyci/plain on hello: —")


def test_rotation_puts_each_method_first_in_turn() -> None:
    methods = ["plain", "pyci", "pyci-no-build-ahead"]
    firsts = [benchstats.rotation(methods, rep)[0] for rep in range(3)]
    assert firsts == methods
    assert sorted(benchstats.rotation(methods, 4)) == sorted(methods)


def test_load_line_names_load_and_other_clusters() -> None:
    line = benchstats.load_line([sample("hello", "plain", 1.0, load=3.0, others=2),
                                 sample("hello", "pyci", 1.0, load=5.0, others=0)])
    assert "median 4.0" in line and "max 5.0" in line and "max 2" in line


def test_cache_hits_are_read_from_tilts_build_log() -> None:
    log = ("          api │      [1/2] FROM docker.io/pyci-lab/base:latest\n"
           "          api │      [2/2] COPY server.py /app/server.py [cached]\n"
           "          web │      [build 2/4] WORKDIR /src [cached]\n"
           "          web │      [build 3/4] COPY build.py .\n"
           "          web │      [build 3/4] COPY build.py . [done: 493ms]\n"
           "          web │      [build 4/4] RUN python3 build.py /out\n"
           "          web │      [stage-1 2/2] COPY --from=build /out /app\n"
           "pyci: something else [cached]\n")
    assert benchstats.tilt_cache_hits(log) == (2, 5)
