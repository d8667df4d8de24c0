"""How long the live hub holds its event loop to publish one branch's predictions at a boundary.

At every 5-minute boundary the hub publishes a prediction for every waiting number of every
branch (hub/predictions.py), one branch at a time under its lock, in the event loop: nothing else
of that process runs meanwhile. This script runs the same publishing (`Estimator.publish` on the
replay's schedule, as the hub does) over simulated days of a busy branch and prints what one
boundary of one branch costs, wall and CPU, with the number of waiting numbers it covered.
A benchmark, not a test: it prints figures and asserts nothing.

Usage: .venv/bin/python bench/predictions_boundary.py [--scenario busy] [--branch 1] [--days 2] [--seed 1000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hub.config import load_config  # noqa: E402
from hub.domain.eta.estimator import Estimator  # noqa: E402
from hub.domain.eta.plans import Setting  # noqa: E402
from hub.domain.eta.replay import points  # noqa: E402  (first: the eta package imports the rest)
from hub.domain.events import in_trace, to_trace  # noqa: E402
from hub.domain.trace import from_dict  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.sim import run  # noqa: E402


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(int(q * len(s)), len(s) - 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="busy")
    ap.add_argument("--branch", default="1")
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args(argv)

    centre = load_config()
    branch = centre.branches[args.branch]
    zone = Settings().zone
    events = [from_dict(to_trace(ev)) for ev in run.simulate(branch, zone, days=args.days, seed=args.seed,
                                                              scenario=args.scenario) if in_trace(ev)]
    setting = Setting.of(branch)
    boundary: list[tuple[float, float, int, str]] = []      # wall ms, CPU ms, numbers, when
    issue: list[float] = []
    for t, est, tickets in points(events, lambda b: Estimator(b, setting)):
        on_boundary = t.second == 0 and t.minute % 5 == 0 and len(tickets) == len(est.observed.waiting())
        wall, cpu = time.perf_counter(), time.process_time()
        est.publish(t, tickets)
        wall, cpu = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
        if on_boundary:
            boundary.append((wall, cpu, len(tickets), t.isoformat(timespec="minutes")))
        else:
            issue.append(wall)

    print(f"{args.scenario} branch {args.branch} ({len(branch.counters)} counters), {args.days} days, seed {args.seed}: "
          f"{len(events)} events, {len(boundary)} boundaries with numbers waiting, {len(issue)} issue points")
    service_hours = [b for b in boundary if "08" <= b[3][11:13] < "17"]
    for name, rows in (("every boundary", boundary), ("boundaries 08:00-17:00", service_hours)):
        walls = [r[0] for r in rows]
        print(f"{name}: wall ms median {quantile(walls, 0.5):.1f}, p90 {quantile(walls, 0.9):.1f}, "
              f"p99 {quantile(walls, 0.99):.1f}, max {max(walls):.1f}; "
              f"numbers waiting median {quantile([r[2] for r in rows], 0.5):.0f}, max {max(r[2] for r in rows)}")
    worst = max(boundary)
    print(f"slowest boundary: {worst[3]}, {worst[2]} numbers waiting, {worst[0]:.1f} ms wall, {worst[1]:.1f} ms CPU")
    print(f"issue points: wall ms median {quantile(issue, 0.5):.1f}, max {max(issue):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
