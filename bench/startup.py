"""Start-up of a hub process: every branch loaded from its snapshot and the events after it, beside
the full fold of every branch's log (issue 16, point 3). A benchmark, not a test.

In one run it:
1. starts a real `redis-server` on a free 127.0.0.1 port in a temporary directory (or uses
   `--database`, a Redis or SQLite URL of a fresh store), and `populate`s it: N branches, each with
   `--days` working days of the branch simulator's events (hub.sim, a busy branch: some 1,700
   events a day), appended through the store's own `append`, and a snapshot `--tail` events
   before each log's head, as the Snapshotter would have left it (what is not measured);
2. loads every branch as hub.service.branches.Branches.load does, twice: with no snapshots (the
   full fold: every event read and folded) and with them (snapshot + tail), timing each, and the
   per-branch parts (read, decode, fold) of one branch;
3. prints the figures and the events, bytes and snapshot sizes behind them; stops Redis by its pid.

Usage: .venv/bin/python bench/startup.py [--branches 1000] [--days 3] [--tail 100] [--database URL]
`populate(storage, branches, days, tail)` is importable (bench/scale.py fills a store with it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.config import load_config  # noqa: E402
from hub.domain.config import Branch, Centre  # noqa: E402
from hub.domain.events import Event  # noqa: E402
from hub.domain.snapshot import to_json  # noqa: E402
from hub.domain.state import fold  # noqa: E402
from hub.service.branches import Branches  # noqa: E402
from hub.service.snapshots import spelling  # noqa: E402
from hub.sim.run import simulate  # noqa: E402
from hub.store import open_store  # noqa: E402
from hub.store.snapshots import Snapshot  # noqa: E402
from hub.store.storage import Storage  # noqa: E402

BATCH = 500                 # events per append
CONCURRENT = 8              # branches appended at once


def centre_of(n: int, base: Centre | None = None) -> Centre:
    """A centre of `n` branches, copies of the bundled ones (ids b0001...): `populate`'s config."""
    base = base or load_config()
    templates = list(base.branches.values())
    branches = {f"b{i:04d}": replace(templates[i % len(templates)], id=f"b{i:04d}") for i in range(1, n + 1)}
    return replace(base, branches=branches)


async def populate(storage: Storage, branches: list[Branch], days: int = 3, tail: int | None = None,
                   zone: str = "Asia/Ho_Chi_Minh", seed: int = 0) -> dict[str, int]:
    """Fill a fresh store: each branch's log with `days` simulated working days (one simulation per
    template branch, relabelled for its copies), and, unless `tail` is None, its snapshot `tail`
    events before the head. Returns events per branch."""
    by_template: dict[str, tuple[list[Event], dict[str, object] | None]] = {}
    counts: dict[str, int] = {}
    sem = asyncio.Semaphore(CONCURRENT)

    async def one(b: Branch) -> None:
        key = f"{b.name}|{len(b.counters)}"          # copies of one template simulate alike
        if key not in by_template:
            evs = [{**ev, "seq": i} for i, ev in enumerate(simulate(b, ZoneInfo(zone), days=days, seed=seed), 1)]
            snap = to_json(fold(b, evs[:len(evs) - tail])) if tail is not None and len(evs) > tail else None
            by_template[key] = (evs, snap)
        evs, snap = by_template[key]
        mine = [{**ev, "branch": b.id} for ev in evs]
        async with sem:
            for i in range(0, len(mine), BATCH):
                await storage.log.append(b.id, i, [{k: v for k, v in ev.items() if k != "seq"}
                                                   for ev in mine[i:i + BATCH]])
            if snap is not None:
                k = snap["seq"]
                assert isinstance(k, int)
                head = await storage.log.head(b.id)
                await storage.snapshots.put(b.id, Snapshot(k, head.epoch, spelling(mine[k - 1]),
                                                           json.dumps({**snap, "branch": b.id}, ensure_ascii=False,
                                                                      separators=(",", ":"))))
        counts[b.id] = len(mine)

    await asyncio.gather(*(one(b) for b in branches))
    return counts


async def load_all(centre: Centre, storage: Storage, with_snapshots: bool) -> tuple[float, float, Branches]:
    """Wall-clock and this process's CPU seconds of loading every branch (the machine may be
    shared: the CPU time is what the load costs; Redis's own is not in it)."""
    branches = Branches(centre, storage.log, storage.snapshots if with_snapshots else None)
    t0, c0 = time.perf_counter(), time.process_time()
    await branches.hold_all()
    return time.perf_counter() - t0, time.process_time() - c0, branches


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(url: str, n: int, days: int, tail: int) -> None:
    centre = centre_of(n)
    async with open_store(url) as storage:
        t0 = time.perf_counter()
        counts = await populate(storage, list(centre.branches.values()), days, tail)
        print(f"populated {n} branches x {days} days: {sum(counts.values()):,} events "
              f"({sum(counts.values()) / n:,.0f} a branch) in {time.perf_counter() - t0:.1f} s (not measured)")
        snap = await storage.snapshots.get(next(iter(centre.branches)))
        assert snap is not None
        print(f"snapshot of a branch: {len(snap.data.encode()) / 1024:,.0f} KiB of JSON, {tail} events before the head")
        full, full_cpu, a = await load_all(centre, storage, with_snapshots=False)
        fast, fast_cpu, b = await load_all(centre, storage, with_snapshots=True)
        assert all(b.started_from[x] > 0 for x in centre.branches), "a branch did not start from its snapshot"
        assert all(a.states[x].seq == b.states[x].seq for x in centre.branches)
        print(f"full fold of every log:  {full:7.2f} s  ({full / n * 1000:6.1f} ms a branch), "
              f"CPU {full_cpu:7.2f} s ({full_cpu / n * 1000:6.1f} ms a branch)")
        print(f"snapshot + tail:         {fast:7.2f} s  ({fast / n * 1000:6.1f} ms a branch), "
              f"CPU {fast_cpu:7.2f} s ({fast_cpu / n * 1000:6.1f} ms a branch); {full / fast:.1f}x faster")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--branches", type=int, default=1000)
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--tail", type=int, default=100, help="events after each snapshot (default 100: half "
                                                         "of hub.service.snapshotter.EVERY)")
    p.add_argument("--database", help="a fresh store's URL (default: a redis-server of this run's own)")
    args = p.parse_args()
    if args.database:
        asyncio.run(measure(args.database, args.branches, args.days, args.tail))
        return
    workdir = Path(tempfile.mkdtemp(prefix="qc-startup-"))
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):                    # up to 10 s for it to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        asyncio.run(measure(f"redis://127.0.0.1:{port}/0", args.branches, args.days, args.tail))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
