"""Fault benchmark of issue 15: real Redis deployments on this machine, faults under load, and every
acknowledged command and every frame checked against the Redis stream.

A benchmark, not a test. Each scenario starts its own processes (redis-server: one with
`appendonly yes` + `appendfsync always`, a 3-master Cluster, or 1 master + 2 replicas + 3 Sentinels;
`python -m hub serve` hubs on it), in a temporary directory, on free 127.0.0.1 ports, and stops
them by pid at the end, whatever happened. Under load means: staff on counter 1 of every branch
(issue, issue, call-next, each with an Idempotency-Key, retried with the same key on the next hub
after a 5xx or no answer) at --rate commands/s in all, and --clients WebSocket board watchers spread
over the branches and hubs (on a close they reconnect to the next hub with since+epoch).

At the end of a scenario the branch logs are read straight from Redis (`{prefix}{b:<branch>}:log`):
  lost          a 2xx issue or call-next whose event (same ticket, same time) is not in the log
  called twice  a ticket named by two acknowledged call-next answers (two keys), or called twice in the log
  gaps, dups    per watcher and epoch, seqs skipped or repeated
  contradicting frames a watcher was given that the log, in the same epoch, holds otherwise

Each row ends in a "must be zero" line: the figures issue 15 wants at zero (a wipe or an older AOF
loses what it loses; what counts there is that nothing re-issued, resumed or shown is wrong). With
the defaults a full run took 4.5 minutes on 2 shared cores (load average ~3), 150 clients included.

Scenarios (--scenario all, or a comma list): standalone, kill-hub, kill-redis, cluster, sentinel,
resume-head, limits, wipe, old-aof, sigterm. One scenario's failure is its row, never the run's.

Usage: .venv/bin/python bench/faults.py [--scenario all] [--hubs 3] [--clients 150] [--seconds 20]
       [--rate 24] [--citizens 40] [--returning 12] [--sigterm-rounds 8] [--json FILE] [--keep]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from faults_procs import Procs  # noqa: E402
from faults_scenarios import Size, cluster, kill_hub, kill_redis, sentinel, standalone  # noqa: E402
from faults_state import limits, old_aof, resume_head, sigterm, wipe  # noqa: E402

from hub.config import load_config  # noqa: E402

SCENARIOS = {
    "standalone": (standalone, "standalone Redis, no faults"),
    "kill-hub": (kill_hub, "kill -9 of one hub under load"),
    "kill-redis": (kill_redis, "kill -9 of Redis (AOF always), restarted on the same AOF"),
    "cluster": (cluster, "Redis Cluster (3 masters)"),
    "sentinel": (sentinel, "Sentinel failover (kill -9 master under load)"),
    "resume-head": (resume_head, "resume when `since` equals the head"),
    "limits": (limits, "per-citizen limits, requests at once to the hubs"),
    "wipe": (wipe, "Redis wiped (FLUSHALL), hubs running"),
    "old-aof": (old_aof, "Redis restored from an older AOF"),
    "sigterm": (sigterm, "SIGTERM under load"),
}


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="all", help="all, or a comma list of: " + ", ".join(SCENARIOS))
    p.add_argument("--hubs", type=int, default=3)
    p.add_argument("--clients", type=int, default=150, help="WebSocket board watchers")
    p.add_argument("--seconds", type=float, default=20.0, help="load per scenario")
    p.add_argument("--rate", type=float, default=24.0, help="staff commands per second, all branches")
    p.add_argument("--branches", type=int, default=12)
    p.add_argument("--citizens", type=int, default=40, help="limits: citizens per part")
    p.add_argument("--returning", type=int, default=12, help="old-aof: watchers that leave and come back")
    p.add_argument("--sigterm-rounds", type=int, default=8)
    p.add_argument("--json", metavar="FILE", help="write every scenario's figures here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    a = p.parse_args(argv)
    names = list(SCENARIOS) if a.scenario == "all" else [s.strip() for s in a.scenario.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {', '.join(unknown)}; one of all, {', '.join(SCENARIOS)}")
    if a.hubs < 1 or a.clients < 0 or a.seconds <= 0 or a.rate <= 0 or not 1 <= a.branches <= 12:
        p.error("--hubs >= 1, --clients >= 0, --seconds > 0, --rate > 0, 1 <= --branches <= 12")
    a.names = names
    return a


def machine() -> str:
    load = open("/proc/loadavg").read().split()[:3]
    return f"{os.cpu_count()} cores, load {' '.join(load)}, Python {platform.python_version()}, " \
           f"{shutil.which('redis-server')}"


async def one(name: str, args: argparse.Namespace, size: Size, root: Path) -> dict:
    fn, title = SCENARIOS[name]
    workdir = root / name
    workdir.mkdir()
    procs = Procs(workdir)
    started = time.monotonic()
    # Bounded: the load itself is bounded; this catches a scenario stuck in a start or a check.
    limit = 4 * args.seconds + 20 * args.sigterm_rounds + 240
    try:
        figures, row = await asyncio.wait_for(fn(procs, size, **extra(name, args)), timeout=limit)
    except Exception as e:
        figures, row = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}, \
            f"did not complete: {type(e).__name__}: {e}"
    finally:
        await asyncio.to_thread(procs.stop_all)
    return {"scenario": name, "title": title, "row": row, "seconds": round(time.monotonic() - started, 1),
            "figures": figures}


def extra(name: str, args: argparse.Namespace) -> dict:
    return {"limits": {"citizens": args.citizens}, "old-aof": {"returning": args.returning},
            "sigterm": {"rounds": args.sigterm_rounds}}.get(name, {})


async def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    branches = list(load_config().branches)[:args.branches]
    size = Size(args.hubs, args.clients, args.seconds, args.rate, branches)
    print(f"faults: {machine()}")
    print(f"faults: {args.hubs} hubs, {args.clients} WebSocket clients over {len(branches)} branches, "
          f"{args.rate:g} staff commands/s, {args.seconds:g} s of load per scenario")
    if (os.cpu_count() or 1) <= 2 and args.clients > 150:
        print("faults: note: more than 150 clients on 2 cores; the bench's own client may lag the hubs")
    root = Path(tempfile.mkdtemp(prefix="qc-faults-"))
    results = []
    try:
        for name in args.names:
            r = await one(name, args, size, root)
            results.append(r)
            print(f"{name:<12} {r['seconds']:>6.1f} s  {r['title']}: {r['row']}", flush=True)
    finally:
        if args.keep:
            print(f"faults: logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("\nmust be zero (issue 15, the bold lines):")
    bad = 0
    for r in results:
        figures = r["figures"].get("must_be_zero") or {"did_not_complete": 1}
        nonzero = {k: v for k, v in figures.items() if v}
        bad += bool(nonzero)
        print(f"  {r['scenario']:<12} {'0 everywhere' if not nonzero else nonzero}")
    print(f"faults: {len(results) - bad} of {len(results)} scenarios at zero")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "size": vars(size), "results": results},
                                              indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
