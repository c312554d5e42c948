"""tools/bench: benchmarks of pyci (scripts that print numbers, not timed tests).

  tools/bench [--reps N] [--apps hello,shop] [--fail-reps N] [--methods plain,pyci,...]
      real kind (the default): the plain recipe against `pyci run`, time to a verdict (bench_kind.py)
  tools/bench --mode overhead [--reps N]
      pyci's own overhead against bare `tilt ci` on the lab control plane (kwok; bench_overhead.py)
  tools/bench --mode cache [--reps N]
      warm starts with cache-dir on real kind: cold against warm (a fresh runner's emptied daemon, the
      cache dir kept, the stand-in upstream stopped), and the plain recipe (bench_cache.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["kind", "overhead", "cache"], default="kind")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per app and method (default 5)")
    ap.add_argument("--apps", default="hello,shop", help="green apps, comma-separated (kind mode)")
    ap.add_argument("--fail-reps", type=int, default=None,
                    help="repetitions of examples/broken, the time to a failing verdict (default: --reps)")
    ap.add_argument("--methods", default="", help="only these methods, comma-separated (kind mode)")
    ap.add_argument("--skip", default="",
                    help="app:method pairs not to run, comma-separated, e.g. hello:pyci-no-build-ahead")
    ap.add_argument("--budget", type=float, default=0.0,
                    help="seconds: start no repetition that would end past it (kind mode; 0: no limit)")
    ap.add_argument("--keep-logs", type=Path, default=None, help="copy every run's log here (kind mode)")
    args = ap.parse_args(argv)
    if args.mode == "overhead":
        from tests.lab import bench_overhead

        return bench_overhead.main(args.reps)
    if args.mode == "cache":
        from tests.lab import bench_cache

        return bench_cache.main(args.reps)
    from tests.lab import bench_kind

    apps = [a for a in args.apps.split(",") if a]
    unknown = sorted(set(apps) - set(bench_kind.APPS))
    if unknown:
        ap.error(f"unknown apps {unknown}; known: {sorted(bench_kind.APPS)}")
    fail_reps = args.reps if args.fail_reps is None else args.fail_reps
    only = [m for m in args.methods.split(",") if m] or None
    skip = frozenset((a, m) for a, _, m in (pair.partition(":") for pair in args.skip.split(",")) if m)
    return bench_kind.main(args.reps, apps, fail_reps, only, args.keep_logs, args.budget, skip)


if __name__ == "__main__":
    raise SystemExit(main())
