"""Where a following hub's CPU goes: a deterministic profile of one hub that only follows (issue 16).

A benchmark, not a test. One redis-server and two real hub processes on it (as bench/forecast_cpu.py):
hub A takes every command, hub F only follows branch 1 (it folds what A publishes and relays A's
forecasts), with --watchers phones on ticket feeds at F (numbers that keep waiting, so their views
carry a forecast). F runs under this file's `--child` mode: cProfile is switched on by SIGUSR1 and
off (the profile written) by SIGUSR2, so only the measured commands are profiled, not start-up.

Printed: F's CPU per command (utime+stime from /proc, with the profiler on, so inflated by its
overhead, and F's idle CPU over the same time subtracted), then the functions with the most
cumulative and own time, per command. Run it before and after a change with the same arguments.

Usage: .venv/bin/python bench/follow_profile.py [--commands 300] [--rate 8] [--watchers 2] [--top 30] [--plain]
       [--profile-idle]  (the follower's profile with no command, over --idle seconds)
       [--source DIR]   (DIR: another checkout to run the hubs from, e.g. the commit before)
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(out: str) -> int:
    """`python -m hub serve` (of the checkout on PYTHONPATH), profiled between SIGUSR1 and SIGUSR2."""
    here = Path(__file__).resolve().parent     # bench/ has modules named as hub's (notifier)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from hub.cli import main
    prof = cProfile.Profile()

    def on(*_: object) -> None:
        prof.enable()

    def off(*_: object) -> None:
        prof.disable()
        prof.dump_stats(out)
    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    return main(["serve", *sys.argv[3:]])


def report(prof_out: Path, args: argparse.Namespace, per: float, unit: str) -> None:
    stats = pstats.Stats(str(prof_out))
    waited = sum(v[2] for k, v in stats.stats.items() if "epoll" in k[2])   # type: ignore[attr-defined]
    print(f"profiled time {unit}, the loop's wait in epoll left out: "
          f"{(stats.total_tt - waited) * per:.2f} ms")      # type: ignore[attr-defined]
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(str(prof_out), stream=buf).sort_stats(key).print_stats(args.top)
        print(f"\n== by {key} (seconds over the run; x {per:g} for ms {unit}) ==")
        print(buf.getvalue().split("\n", 6)[-1])


def run(args: argparse.Namespace, work: Path) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from forecast_cpu import CIVIL, LAND, SECRET, B, cpu, drive, hubs_on_redis, wait, watch

    from hub.auth import Tokens
    prof_out = work / "follower.prof"
    stop = threading.Event()
    hubs = [[sys.executable, "-m", "hub", "serve"], [sys.executable, __file__, "--child", str(prof_out)]]
    try:
        with hubs_on_redis(work, Path(args.source), hubs, "p") as (procs, clients):
            a, f = clients
            urls = [str(c.base_url).rstrip("/") for c in clients]
            staff = {"Authorization": f"Bearer {Tokens(SECRET).staff(B)}"}
            counters = ["1", "2", "3", "4", "5"]
            for k in counters:
                a.post(f"/api/branches/{B}/counters/{k}/open", json={"services": [LAND]}, headers=staff).raise_for_status()

            def issue(service: str = LAND) -> str:
                r = a.post(f"/api/branches/{B}/tickets", json={"service": service, "channel": "kiosk"})
                r.raise_for_status()
                return str(r.json()["token"])
            for _ in range(args.warm):
                issue()
            for _ in range(args.watchers):      # numbers no open counter serves: they wait, their forecast moves
                watch(urls[1], issue(CIVIL), stop)

            def settled() -> bool:
                return int(a.get(f"/api/branches/{B}").json()["seq"]) == int(f.get(f"/api/branches/{B}").json()["seq"])
            wait(settled, "the follower at the head")
            fpid = procs[1].pid
            if args.profile_idle:
                os.kill(fpid, signal.SIGUSR1)
            before = cpu(fpid)
            time.sleep(args.idle)
            idle_per_s = (cpu(fpid) - before) / args.idle
            if args.profile_idle:
                print(f"follower idle CPU: {idle_per_s * 1000:.2f} ms/s over {args.idle:.0f} s (profiled)", flush=True)
                os.kill(fpid, signal.SIGUSR2)
                wait(prof_out.exists, "the profile written")
                time.sleep(0.5)
                report(prof_out, args, 1000 / args.idle, "per second")
                return
            if not args.plain:
                os.kill(fpid, signal.SIGUSR1)
            before, started = cpu(fpid), time.monotonic()
            drive(a, staff, issue, counters, args.commands, args.rate)
            wait(settled, "the follower at the head after the commands")
            used, wall = cpu(fpid) - before, time.monotonic() - started
            per = 1000 / args.commands
            print(f"follower CPU per command ({'not ' if args.plain else ''}profiled): {used * per:.2f} ms; minus idle "
                  f"({idle_per_s * 1000:.1f} ms/s): {(used - idle_per_s * wall) * per:.2f} ms; {args.commands} commands "
                  f"in {wall:.1f} s, {args.watchers} watchers", flush=True)
            if args.plain:
                return
            os.kill(fpid, signal.SIGUSR2)
            wait(prof_out.exists, "the profile written")
            time.sleep(0.5)                     # dump_stats finishes writing
            report(prof_out, args, per, "per command")
    finally:
        stop.set()


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=300)
    ap.add_argument("--warm", type=int, default=40)
    ap.add_argument("--rate", type=float, default=8.0)
    ap.add_argument("--watchers", type=int, default=2)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--profile-idle", action="store_true", help="profile the follower with no command (--idle s)")
    ap.add_argument("--plain", action="store_true", help="no profiler: the follower's CPU per command as it runs")
    ap.add_argument("--source", type=Path, default=ROOT,
                    help="another checkout of queuecast to run the hubs from (e.g. the commit before)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="follow-profile-"))
    try:
        run(args, work)
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
