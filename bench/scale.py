"""Scale-out figures (issue 16): what more hub processes, more branches and more phones cost.

A benchmark, not a test: it prints figures and asserts nothing. In one run, each part on fresh
processes (every process started here is stopped by its pid at the end; every wait is bounded):

1. cpu: 1, 2 and 3 `queuecast serve` processes on one redis-server (free 127.0.0.1 ports, same
   prefix), the bundled 12-branch Hanoi configuration. At every branch --counters counters are
   opened and --depth numbers queued at each (not measured); every process then gets --boards
   board WebSockets and --phones ticket WebSockets (numbers that wait) of every branch. Open-loop
   commands at --rate a second for --seconds: command i is sent at t0 + i/rate whatever became of
   the others, alternately a kiosk number and a call-next of one (branch, counter) pair, branches
   and counters round-robin, to process i mod N. Hub CPU per command = utime+stime (/proc/PID/stat)
   summed over the hub processes, from before the first command until every board connection on
   every process has the last event, divided by the commands; Redis's CPU apart; also net of the
   hubs' idle CPU (--idle seconds with the feeds open and no command, measured first). Latency =
   answer - scheduled time (queueing counts). Each N is also given as a ratio to N=1.
2. startup: a configuration of --branches copies of a Hanoi branch, --days working days of
   simulated history of each written into Redis (bench/scale_history.py), then --starts times a
   fresh `queuecast serve`: seconds until /readyz is 200 and until a kiosk number at a random
   branch is answered, first with no history at all (what any start costs). Each started process
   is left running until it is quiet (--settle), so that a restart (the second start and later)
   finds whatever the first left for it (snapshots).
3. phone: one hub, branch 1 with every counter open, --phone-count phones on ticket feeds of
   waiting numbers, the branch driven at --phone-rate commands a second for --phone-seconds; the
   bytes each phone received after its first frame (payload, and with the WebSocket frame header),
   divided by the branch events of the stretch, times the events of the busiest hour of a simulated
   "busy" day of branch 1 (hub.sim): bytes per watching phone per hour at a busy branch. The stretch
   is compressed in time (the clock is real): what changes with the clock alone is not in it.
4. fanout: bench/fanout.py (hub and bare modes) in its own process, its figures read back from
   its --out file: CPU per delivered frame and per call-next, p99, memory per idle connection.
   Its hubs get QUEUECAST_MAX_FEEDS_PER_ADDRESS raised (fanout.py's own hub would take 50 feeds
   from 127.0.0.1 and refuse the rest).

--hub-env QUEUECAST_X=V gives every hub the bench starts a setting (e.g. QUEUECAST_HOLD_BRANCHES=asked).

Supersedes bench/forecast_cpu.py of branch `forecast` (hub CPU per command with 1 and 3 processes,
one branch, one command stream to the first process): part 1 measures the same with 12 branches,
commands spread over the processes and feeds on every process.

Usage: .venv/bin/python bench/scale.py [--only cpu,startup,phone,fanout] [--quick] [--out FILE]
       [--hubs 1,2,3] [--rate 12] [--seconds 20] [--branches 200] [--days 3] ... (--help)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import aiohttp  # noqa: E402
from call_next import ROOT, Sample, machine, open_loop, pct, proc_cpu  # noqa: E402  (puts ROOT on sys.path)
from faults_procs import SECRET, Hub  # noqa: E402
from scale_history import Processes, run_startup  # noqa: E402

from hub.auth import Tokens  # noqa: E402
from hub.config import BUNDLED, load_config  # noqa: E402

PARTS = ("cpu", "startup", "phone", "fanout")
PREFIX = "s:"
BUSY = "1"                  # the busy branch of part 3 (Hanoi's branch 1, 16 counters)
CALL_TIMEOUT = aiohttp.ClientTimeout(total=30)


def cpu_s(pid: int) -> float:
    user, system = proc_cpu(pid)
    return user + system


def header_bytes(n: int) -> int:
    """A server-to-client WebSocket frame's header (unmasked) for an n-byte payload."""
    return 2 if n < 126 else 4 if n < 65536 else 10


# -- feeds --------------------------------------------------------------------------------------------

@dataclass
class Feed:
    url: str
    branch: str
    kind: str                   # "board" or "phone"
    frames: int = 0             # after the first
    payload: int = 0            # payload bytes of those frames
    wire: int = 0               # the same with each frame's WebSocket header
    first: int = 0              # payload bytes of the first frame (snapshot)
    seq: int = -1
    closed: str = ""
    ws: Any = None


async def follow(http: aiohttp.ClientSession, feed: Feed, opened: asyncio.Event) -> None:
    """Read `feed` until it is closed, counting frames and bytes; `opened` once the first frame came."""
    try:
        async with http.ws_connect(feed.url, max_msg_size=0, autoping=True) as ws:
            feed.ws = ws
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                n = len(msg.data.encode())
                obj = json.loads(msg.data)
                if feed.first == 0:
                    feed.first = n
                    opened.set()
                else:
                    feed.frames += 1
                    feed.payload += n
                    feed.wire += n + header_bytes(n)
                feed.seq = max(feed.seq, int(obj.get("seq", -1)))
            feed.closed = f"closed {ws.close_code}"
    except Exception as e:          # reported with the figures, never hidden
        feed.closed = f"{type(e).__name__}: {e}"
    finally:
        opened.set()


async def open_feeds(http: aiohttp.ClientSession, feeds: list[Feed]) -> list[asyncio.Task[None]]:
    tasks, events = [], []
    for f in feeds:
        ev = asyncio.Event()
        events.append(ev)
        tasks.append(asyncio.create_task(follow(http, f, ev)))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 120)
    bad = [f for f in feeds if f.closed]
    if bad:
        raise RuntimeError(f"{len(bad)} feeds did not open: {bad[0].url}: {bad[0].closed}")
    return tasks


async def close_feeds(feeds: list[Feed], tasks: list[asyncio.Task[None]]) -> None:
    for f in feeds:
        if f.ws is not None and not f.ws.closed:
            await f.ws.close()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


async def boards_at(feeds: list[Feed], heads: dict[str, int], timeout: float) -> None:
    """Until every board feed has its branch's head seq (every process folded and sent it)."""
    end = time.monotonic() + timeout
    for _ in range(int(timeout / 0.02) + 3):
        if all(f.seq >= heads[f.branch] for f in feeds if f.kind == "board"):
            return
        if time.monotonic() > end:
            break
        await asyncio.sleep(0.02)
    behind = [f for f in feeds if f.kind == "board" and f.seq < heads[f.branch]]
    raise TimeoutError(f"{len(behind)} board feeds behind the head after {timeout:.0f} s, e.g. {behind[0].url} "
                       f"at {behind[0].seq} of {heads[behind[0].branch]} ({behind[0].closed or 'open'})")


# -- commands -----------------------------------------------------------------------------------------

class Desk:
    """Commands at the hubs: open counters, kiosk numbers, call-next. The measured ones (`timed`) go
    over kept-alive connections; the others each over a connection of its own, as the server may
    close a kept-alive one that waited (uvicorn: after 5 s) just as a request goes out on it."""

    def __init__(self, http: aiohttp.ClientSession, setup: aiohttp.ClientSession):
        self.http, self.setup = http, setup
        self.tokens = Tokens(SECRET)

    def staff(self, branch: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.staff(branch)}"}

    async def post(self, url: str, body: dict | None = None, headers: dict | None = None) -> dict:
        async with self.setup.post(url, json=body, headers=headers, timeout=CALL_TIMEOUT) as r:
            data = await r.json(content_type=None)
            if r.status >= 300:
                raise RuntimeError(f"POST {url}: {r.status} {str(data)[:200]}")
            return data

    async def open(self, hub: str, branch: str, counter: str, service: str) -> None:
        await self.post(f"{hub}/api/branches/{branch}/counters/{counter}/open", {"services": [service]},
                        self.staff(branch))

    async def issue(self, hub: str, branch: str, service: str) -> str:
        data = await self.post(f"{hub}/api/branches/{branch}/tickets", {"service": service, "channel": "kiosk"})
        return str(data["token"])

    async def heads(self, hub: str, branches: list[str]) -> dict[str, int]:
        out = {}
        for b in branches:
            async with self.setup.get(f"{hub}/api/branches/{b}", timeout=CALL_TIMEOUT) as r:
                out[b] = int((await r.json())["seq"])
        return out

    async def timed(self, s: Sample, hub: str, branch: str, counter: str, service: str, call: bool) -> None:
        """One measured command: a kiosk number for `service` or a call-next at `counter`."""
        s.sent = asyncio.get_running_loop().time()
        try:
            if call:
                url, body, headers = f"{hub}/api/branches/{branch}/counters/{counter}/call-next", None, self.staff(branch)
            else:
                url, body, headers = f"{hub}/api/branches/{branch}/tickets", {"service": service, "channel": "kiosk"}, None
            async with self.http.post(url, json=body, headers=headers, timeout=CALL_TIMEOUT) as r:
                raw = await r.read()
                s.status = r.status
                if r.status >= 300:
                    try:
                        s.code = json.loads(raw).get("error", {}).get("code", "") or str(r.status)
                    except (ValueError, AttributeError):
                        s.code = str(r.status)
        except Exception as e:      # a timeout or a broken connection: counted as an error
            s.status, s.code = 0, type(e).__name__
        s.answered = asyncio.get_running_loop().time()


def plan_of(branch_ids: list[str], per_branch: int | None) -> dict[str, list[tuple[str, str]]]:
    """Per branch, (counter, field) pairs: counters whose first field no earlier pick has, so that
    each pair has a queue of its own (all the counters with per_branch None)."""
    centre = load_config(BUNDLED)
    out = {}
    for b in branch_ids:
        picked: list[tuple[str, str]] = []
        for c in centre.branches[b].counters.values():
            if per_branch is None or c.services[0] not in {s for _, s in picked}:
                picked.append((c.id, c.services[0]))
            if per_branch is not None and len(picked) == per_branch:
                break
        out[b] = picked
    return out


def latency(samples: list[Sample]) -> dict[str, Any]:
    ok = [s for s in samples if 200 <= s.status < 300]
    lat = sorted((s.answered - s.scheduled) * 1000 for s in ok)
    span = max((s.answered for s in samples), default=0) - min((s.scheduled for s in samples), default=0)
    return {"ok": len(ok), "errors": dict(Counter(s.code for s in samples if not 200 <= s.status < 300)),
            "per_s": len(ok) / span if span > 0 else float("nan"),
            "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "max_ms": lat[-1] if lat else float("nan")}


@asynccontextmanager
async def sessions() -> AsyncIterator[tuple[aiohttp.ClientSession, Desk]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50, force_close=True)) as setup:
        yield http, Desk(http, setup)


# -- part 1: CPU per command with N processes ---------------------------------------------------------

async def cpu_run(n: int, args, workdir: Path) -> dict:
    procs = Processes(workdir / f"cpu-{n}", args.hub_env)
    try:
        rport = procs.redis("redis", appendonly=False)
        database = f"redis://127.0.0.1:{rport}/0?prefix={PREFIX}"
        hubs: list[Hub] = [procs.hub(database) for _ in range(n)]
        redis_pid = procs.pid_on(rport).pid
        plan = plan_of([str(b) for b in range(1, 13)], args.counters)
        branches = list(plan)
        async with sessions() as (http, desk):
            first = hubs[0].url
            for b, pairs in plan.items():
                for c, svc in pairs:
                    await desk.open(first, b, c, svc)
            await asyncio.gather(*(desk.issue(first, b, svc) for b, pairs in plan.items()
                                   for _ in range(args.depth) for _, svc in pairs))
            feeds = []
            for h in hubs:
                for b, pairs in plan.items():
                    feeds += [Feed(f"{h.ws}/ws/branches/{b}", b, "board") for _ in range(args.boards)]
                    for k in range(args.phones):
                        token = await desk.issue(h.url, b, pairs[k % len(pairs)][1])
                        feeds.append(Feed(f"{h.ws}/ws/tickets/{token}", b, "phone"))
            tasks = await open_feeds(http, feeds)
            await boards_at(feeds, await desk.heads(first, branches), 60)
            for f in feeds:                                 # count the measured phase only
                f.frames = f.payload = f.wire = 0
            pids = [h.proc.pid for h in hubs]
            # What the processes spend with the feeds open and no command (timers, clock-driven work)
            idle0, t_idle = sum(cpu_s(p) for p in pids), time.monotonic()
            await asyncio.sleep(args.idle)
            idle = (sum(cpu_s(p) for p in pids) - idle0) / (time.monotonic() - t_idle)
            before, redis_before = [cpu_s(p) for p in pids], cpu_s(redis_pid)
            t0 = time.monotonic()

            async def fire(i: int, s: Sample) -> None:
                j = i // 2
                b = branches[j % len(branches)]
                c, svc = plan[b][(j // len(branches)) % len(plan[b])]
                await desk.timed(s, hubs[i % n].url, b, c, svc, call=i % 2 == 1)

            count = max(2, int(args.rate * args.seconds) // 2 * 2)
            samples = await open_loop(count, args.rate, fire)
            await boards_at(feeds, await desk.heads(first, branches), 120)
            wall = time.monotonic() - t0
            used = [cpu_s(p) - b for p, b in zip(pids, before)]
            redis_used = cpu_s(redis_pid) - redis_before
            await close_feeds(feeds, tasks)
        lost = [f.closed for f in feeds if f.closed and not f.closed.startswith("closed")]
        return {"hubs": n, "commands": count, "wall_s": wall, **latency(samples),
                "cpu_ms_per_command": 1000 * sum(used) / count,
                "cpu_ms_by_hub": [round(1000 * u / count, 2) for u in used], "idle_cpu_ms_per_s": 1000 * idle,
                "cpu_ms_per_command_net_of_idle": 1000 * (sum(used) - idle * wall) / count,
                "redis_cpu_ms_per_command": 1000 * redis_used / count,
                "feeds": {"boards": sum(f.kind == "board" for f in feeds), "phones": sum(f.kind == "phone" for f in feeds)},
                "frames": sum(f.frames for f in feeds), "feed_errors": lost}
    finally:
        procs.stop_all()


# -- part 3: bytes per watching phone -----------------------------------------------------------------

def busiest_hour(branch: str = BUSY, scenario: str = "busy") -> int:
    """Events of the busiest clock hour of a simulated day of `branch` (hub.sim)."""
    from zoneinfo import ZoneInfo

    from hub.sim.run import simulate
    centre = load_config(BUNDLED)
    hours = Counter(datetime.fromisoformat(ev["t"]).strftime("%d %H")
                    for ev in simulate(centre.branches[branch], ZoneInfo(centre.timezone), days=1, scenario=scenario))
    return max(hours.values())


async def phone_run(args, workdir: Path) -> dict:
    procs = Processes(workdir / "phone", args.hub_env)
    try:
        rport = procs.redis("redis", appendonly=False)
        hub = procs.hub(f"redis://127.0.0.1:{rport}/0?prefix={PREFIX}")
        pairs = plan_of([BUSY], None)[BUSY]
        async with sessions() as (http, desk):
            for c, svc in pairs:
                await desk.open(hub.url, BUSY, c, svc)
            # the phones' numbers among others, so that they wait at different places in their queues
            feeds = [Feed(f"{hub.ws}/ws/branches/{BUSY}", BUSY, "board")]
            for k in range(max(args.phone_count, args.phone_depth * len(pairs))):
                svc = pairs[k % len(pairs)][1]
                token = await desk.issue(hub.url, BUSY, svc)
                if k % 2 == 1 and sum(f.kind == "phone" for f in feeds) < args.phone_count:
                    feeds.append(Feed(f"{hub.ws}/ws/tickets/{token}", BUSY, "phone"))
            while sum(f.kind == "phone" for f in feeds) < args.phone_count:
                token = await desk.issue(hub.url, BUSY, pairs[len(feeds) % len(pairs)][1])
                feeds.append(Feed(f"{hub.ws}/ws/tickets/{token}", BUSY, "phone"))
            tasks = await open_feeds(http, feeds)
            start = (await desk.heads(hub.url, [BUSY]))[BUSY]
            await boards_at(feeds, {BUSY: start}, 60)
            t0 = time.monotonic()

            async def fire(i: int, s: Sample) -> None:
                c, svc = pairs[(i // 2) % len(pairs)]
                await desk.timed(s, hub.url, BUSY, c, svc, call=i % 2 == 1)

            count = max(2, int(args.phone_rate * args.phone_seconds) // 2 * 2)
            samples = await open_loop(count, args.phone_rate, fire)
            end = (await desk.heads(hub.url, [BUSY]))[BUSY]
            await boards_at(feeds, {BUSY: end}, 60)
            await asyncio.sleep(0)
            wall = time.monotonic() - t0
            await close_feeds(feeds, tasks)
        phones = [f for f in feeds if f.kind == "phone"]
        events, per_hour = end - start, busiest_hour()
        payload = sum(f.payload for f in phones) / len(phones)
        wire = sum(f.wire for f in phones) / len(phones)
        frames = sum(f.frames for f in phones) / len(phones)
        return {"phones": len(phones), "commands": count, "events": events, "wall_s": wall, **latency(samples),
                "busy_events_per_hour": per_hour, "frames_per_phone": frames,
                "frames_per_event": frames / events if events else float("nan"),
                "bytes_per_frame": payload / frames if frames else float("nan"),
                "snapshot_bytes": sum(f.first for f in phones) / len(phones),
                "payload_per_phone_hour": payload / events * per_hour if events else float("nan"),
                "wire_per_phone_hour": wire / events * per_hour if events else float("nan"),
                "feed_errors": [f.closed for f in feeds if f.closed and not f.closed.startswith("closed")]}
    finally:
        procs.stop_all()


# -- part 4: the fan-out benchmark, per frame and per call --------------------------------------------

def fanout_main(argv: list[str]) -> int:
    """bench/fanout.py's main, its hub processes started with QUEUECAST_MAX_FEEDS_PER_ADDRESS raised:
    every subscriber of that bench comes from 127.0.0.1, and fanout.py (written before the cap per
    client address) passes no QUEUECAST_ variable of the caller on, so above 50 subscribers the hub
    would refuse all but the first 50."""
    class Popen(subprocess.Popen):
        def __init__(self, *a: Any, env: dict[str, str] | None = None, **k: Any):
            if env is not None and "QUEUECAST_DATABASE" in env:
                env = {"QUEUECAST_MAX_FEEDS_PER_ADDRESS": "100000", **env}
            super().__init__(*a, env=env, **k)
    subprocess.Popen = Popen            # type: ignore[misc]
    import fanout
    return int(fanout.main(argv))


def fanout_run(args, workdir: Path) -> dict:
    out = workdir / "fanout.json"
    cmd = [sys.executable, str(BENCH / "scale.py"), "_fanout", "--mode", "hub,bare", "--subscribers", str(args.fanout_subscribers),
           "--clients", "2", "--events", str(args.fanout_events), "--rate", str(args.fanout_rate), "--out", str(out),
           "--tmpdir", str(workdir)]
    log = workdir / "fanout.log"
    with open(log, "wb") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=args.fanout_timeout)
    if not out.exists():
        raise RuntimeError(f"bench/fanout.py exited {proc.returncode} without figures: "
                           f"{log.read_text(errors='replace')[-400:]}")
    runs = json.loads(out.read_text())["runs"]
    res: dict[str, Any] = {"exit": proc.returncode}
    for mode in ("hub", "bare"):
        r = runs.get(mode, {})
        if "error" in r:
            res[mode] = {"error": r["error"]}
            continue
        cpu = sum(r["server_cpu_s"].values())
        res[mode] = {"us_per_frame": r["cpu_us_per_frame"], "us_per_call": 1e6 * cpu / max(1, r["calls_ok"]),
                     "frames_per_call": r["frames"] / max(1, r["calls_ok"]) / max(1, r["connected"]),
                     "p50_ms": r["latency_ms"]["all"]["p50"], "p99_ms": r["latency_ms"]["all"]["p99"],
                     "kib_per_idle_conn": r["rss_per_conn_kib_all"], "gaps": r["gaps"], "dups": r["dups"],
                     "subscribers": r["connected"], "calls": r["calls_ok"]}
        if "cpu_us_per_frame_net" in r:     # the hub's CPU less its command's own (measured unwatched)
            res[mode]["us_per_frame_net"] = r["cpu_us_per_frame_net"]
            res[mode]["us_per_call_per_sub_net"] = r["cpu_us_per_frame_net"] * res[mode]["frames_per_call"]
        if "baseline" in r:
            res[mode]["ms_per_call_unwatched"] = sum(r["baseline"]["cpu_ms_per_call"].values())
    return res


# -- report -------------------------------------------------------------------------------------------

def f2(x: Any, spec: str = ".2f") -> str:
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def report(res: dict) -> None:
    m = res["machine"]
    print(f"queuecast scale-out bench ({res['started']}); machine: {m['nproc']} cores, {m['cpu']}, "
          f"load {' '.join(m['loadavg'])}, Python {m['python']}")
    if res["args"]["hub_env"]:
        print(f"hub settings: {' '.join(f'{k}={v}' for k, v in res['args']['hub_env'].items())}")
    if "cpu" in res:
        c = res["cpu"]
        print(f"\n1. hub processes on one Redis, 12 branches, open loop {c['rate']:g} commands/s for {c['seconds']:g} s "
              f"(kiosk number + call-next), feeds on every process")
        print(f"  {'N':>2} {'feeds b/p':>9} {'cmds':>5} {'ok/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'CPU ms/cmd':>10} {'x N=1':>6} {'by hub':<22} {'redis':>6} {'idle ms/s':>9} {'net':>6} errors")
        base = None
        for r in c["runs"]:
            if "error" in r:
                print(f"  {r['hubs']:>2} FAILED: {r['error']}")
                continue
            base = base or r["cpu_ms_per_command"]
            print(f"  {r['hubs']:>2} {r['feeds']['boards']:>4}/{r['feeds']['phones']:<4} {r['commands']:>5} "
                  f"{r['per_s']:>6.1f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['cpu_ms_per_command']:>10.2f} "
                  f"{r['cpu_ms_per_command'] / base:>6.2f} {str(r['cpu_ms_by_hub']):<22} "
                  f"{r['redis_cpu_ms_per_command']:>6.2f} {r['idle_cpu_ms_per_s']:>9.1f} "
                  f"{r['cpu_ms_per_command_net_of_idle']:>6.2f} {r['errors'] or '-'}{' feed errors: ' + str(r['feed_errors'][:2]) if r['feed_errors'] else ''}")
        print("  CPU ms/cmd: all hub processes' CPU over the commands (until every board has the last event) / "
              "commands; redis: the server's, apart; idle: all hubs' CPU per second with the feeds open and no "
              "command, measured first; net: CPU ms/cmd less that idle rate over the same time")
        print("  target: CPU per command with 3 processes <= 1.2x one process's")
    if "startup" in res:
        s = res["startup"]
        print(f"\n2. start-up with {s.get('branches')} branches x {s.get('days')} days ('{s.get('scenario')}' days, ", end="")
        if "error" in s:
            print(f"FAILED: {s['error']}")
        else:
            print(f"{s['numbers_per_branch_day']:.0f} numbers and {s['events_per_branch'] / s['days']:.0f} events "
                  f"per branch-day; {s['events']} events, Redis {s['redis_mib']:.0f} MiB, written in {s['write_s']:.1f} s)")
            e = s["empty"]
            print(f"  {'no history':<12} ready (/readyz 200) {e['ready_s']:.2f} s; first command answered at "
                  f"{e['first_command_s']:.2f} s; CPU {e['cpu_s']:.1f} s, RSS {e['rss_mib']:.0f} MiB")
            for i, st in enumerate(s["starts"]):
                what = "first start" if i == 0 else f"restart {i}"
                print(f"  {what:<12} ready (/readyz 200) {st['ready_s']:.2f} s; first command (branch {st['branch']}) "
                      f"answered at {st['first_command_s']:.2f} s; CPU {st['cpu_s']:.1f} s, RSS {st['rss_mib']:.0f} MiB; "
                      f"quiet {st['quiet_s']:.0f} s later (CPU {st['cpu_quiet_s']:.1f} s)")
            extra = (s["starts"][0]["ready_s"] - e["ready_s"]) / s["branches"]
            if s["branches"] != 1000 and extra > 0.001:     # a start that folds every branch's history
                print(f"  history's share per branch {1000 * extra:.1f} ms -> 1,000 branches x {s['days']} days: about "
                      f"{e['ready_s'] + 1000 * extra:.0f} s to ready, if it grows linearly (run --branches 1000 to see)")
            print("  target: 1,000 branches x 3 days ready in <= 5 s")
    if "phone" in res:
        p = res["phone"]
        if "error" in p:
            print(f"\n3. bytes per watching phone: FAILED: {p['error']}")
        else:
            print(f"\n3. {p['phones']} phones on ticket feeds at branch {BUSY}, {p['commands']} commands "
                  f"({p['events']} events) in {p['wall_s']:.0f} s, p99 {p['p99_ms']:.0f} ms, errors {p['errors'] or '-'}")
            print(f"  per phone: {p['frames_per_phone']:.1f} frames ({p['frames_per_event']:.2f} per branch event), "
                  f"{p['bytes_per_frame']:.0f} B per frame, first frame {p['snapshot_bytes']:.0f} B")
            print(f"  busiest hour of a simulated busy day at branch {BUSY}: {p['busy_events_per_hour']} events -> "
                  f"{p['payload_per_phone_hour'] / 1024:.1f} KiB payload ({p['wire_per_phone_hour'] / 1024:.1f} KiB with "
                  f"WebSocket headers) per phone per hour")
            print("  target: <= 1/5 of today's")
    if "fanout" in res:
        fo = res["fanout"]
        print("\n4. board fan-out (bench/fanout.py, hub and bare), per delivered frame and per call-next")
        if "error" in fo:
            print(f"  FAILED: {fo['error']}")
        else:
            h, b = fo.get("hub", {}), fo.get("bare", {})
            for name, r in (("hub", h), ("bare", b)):
                if "error" in r:
                    print(f"  {name}: FAILED: {r['error']}")
                    continue
                print(f"  {name:<5} {r['subscribers']} subscribers, {r['calls']} calls: {r['us_per_frame']:.2f} µs/frame, "
                      f"{r['us_per_call'] / 1000:.2f} ms/call ({r['frames_per_call']:.2f} frames per call per "
                      f"subscriber), p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['kib_per_idle_conn']:.1f} "
                      f"KiB/idle conn, gaps {r['gaps']} dups {r['dups']}"
                      + (f"; {r['ms_per_call_unwatched']:.2f} ms/call unwatched" if name == "hub" and "ms_per_call_unwatched" in r
                         else ""))
            if "error" not in h and "error" not in b and b:
                print(f"  hub/bare: CPU per frame {h['us_per_frame'] / b['us_per_frame']:.2f}x, per call-next "
                      f"{h['us_per_call'] / b['us_per_call']:.2f}x, p99 {h['p99_ms'] / b['p99_ms']:.2f}x, memory per idle "
                      f"connection {h['kib_per_idle_conn'] / b['kib_per_idle_conn']:.2f}x "
                      f"(targets 1.0x, 1.0x, 1.0x, 1.5x)")
                if "us_per_call_per_sub_net" in h:
                    print(f"  hub per call-next and subscriber, net of the command: {h['us_per_call_per_sub_net']:.2f} µs "
                          f"= {h['us_per_call_per_sub_net'] / b['us_per_frame']:.2f}x the bare server's per frame "
                          f"(issue 16's measure: a call-next's fan-out against one broadcast frame; target 1.0x)")


# -- main ---------------------------------------------------------------------------------------------

QUICK = {"hubs": "1,3", "rate": 6.0, "seconds": 10.0, "boards": 1, "phones": 1, "branches": 50, "days": 2,
         "starts": 1, "phone_count": 10, "phone_seconds": 15.0, "fanout_subscribers": 200, "fanout_events": 40}


async def amain(args, workdir: Path, parts: list[str]) -> dict:
    res: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "args": vars(args)}
    if "cpu" in parts:
        runs = []
        for n in (int(x) for x in args.hubs.split(",")):
            print(f"[cpu] {n} hub process(es)", file=sys.stderr, flush=True)
            try:
                runs.append(await cpu_run(n, args, workdir))
            except Exception as e:          # reported; the other parts still run
                traceback.print_exc()
                runs.append({"hubs": n, "error": f"{type(e).__name__}: {e}"})
        res["cpu"] = {"rate": args.rate, "seconds": args.seconds, "runs": runs}
    if "startup" in parts:
        print(f"[startup] {args.branches} branches x {args.days} days", file=sys.stderr, flush=True)
        try:
            res["startup"] = await asyncio.to_thread(run_startup, args, workdir)
        except Exception as e:
            traceback.print_exc()
            res["startup"] = {"branches": args.branches, "days": args.days, "error": f"{type(e).__name__}: {e}"}
    if "phone" in parts:
        print("[phone] one hub, phones at a busy branch", file=sys.stderr, flush=True)
        try:
            res["phone"] = await phone_run(args, workdir)
        except Exception as e:
            traceback.print_exc()
            res["phone"] = {"error": f"{type(e).__name__}: {e}"}
    if "fanout" in parts:
        print("[fanout] bench/fanout.py --mode hub,bare", file=sys.stderr, flush=True)
        try:
            res["fanout"] = await asyncio.to_thread(fanout_run, args, workdir)
        except Exception as e:
            traceback.print_exc()
            res["fanout"] = {"error": f"{type(e).__name__}: {e}"}
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_fanout"]:
        return fanout_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list of parts to run: {', '.join(PARTS)} (default all)")
    p.add_argument("--quick", action="store_true", help="small sizes of everything: a check that the bench runs "
                   f"({', '.join(f'{k}={v}' for k, v in QUICK.items())}), unless given explicitly")
    p.add_argument("--out", type=Path, help="also write every figure as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument("--hub-env", action="append", default=[], metavar="QUEUECAST_X=VALUE",
                   help="a setting for every hub process the bench starts (repeatable), e.g. "
                        "QUEUECAST_HOLD_BRANCHES=asked where hub processes load branches only when asked")
    g = p.add_argument_group("1. cpu")
    g.add_argument("--hubs", help="numbers of hub processes, comma list (default 1,2,3)")
    g.add_argument("--rate", type=float, help="commands per second, all branches (default 12)")
    g.add_argument("--seconds", type=float, help="measured seconds (default 20)")
    g.add_argument("--counters", type=int, default=3, help="counters opened per branch, each its own field (3)")
    g.add_argument("--depth", type=int, default=6, help="numbers queued per counter first (6)")
    g.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured before the commands (5)")
    g.add_argument("--boards", type=int, help="board WebSockets per branch per process (default 2)")
    g.add_argument("--phones", type=int, help="ticket WebSockets per branch per process (default 2)")
    g = p.add_argument_group("2. startup")
    g.add_argument("--branches", type=int, help="branches in the configuration (default 200, to keep the run short on an unchanged hub that folds every log at start; the target is about 1000)")
    g.add_argument("--days", type=int, help="working days of history per branch (default 3)")
    g.add_argument("--scenario", default="quiet", help="the simulator's scenario of those days (quiet: ~300 numbers "
                   "a branch-day; normal: ~500)")
    g.add_argument("--starts", type=int, help="timed starts of a fresh process on that Redis, one after another (default 2)")
    g.add_argument("--settle", type=float, default=180.0, help="after its first answer a started process is left "
                   "running until it is quiet (its CPU still for 3 s), at most this long (180; 0: stopped at once)")
    g.add_argument("--start-timeout", type=float, default=900.0, help="seconds a start may take (900)")
    g = p.add_argument_group("3. phone")
    g.add_argument("--phone-count", type=int, help="phones on ticket feeds (default 30)")
    g.add_argument("--phone-depth", type=int, default=3, help="numbers per counter issued around the phones' (3)")
    g.add_argument("--phone-rate", type=float, default=4.0, help="commands per second at the branch (4)")
    g.add_argument("--phone-seconds", type=float, help="seconds the branch is driven (default 45)")
    g = p.add_argument_group("4. fanout")
    g.add_argument("--fanout-subscribers", type=int, help="board subscribers (default 1000)")
    g.add_argument("--fanout-events", type=int, help="call-next commands (default 100)")
    g.add_argument("--fanout-rate", type=float, default=10.0, help="call-next per second (10)")
    g.add_argument("--fanout-timeout", type=float, default=900.0, help="seconds bench/fanout.py may take (900)")
    args = p.parse_args(argv)
    defaults = {"hubs": "1,2,3", "rate": 12.0, "seconds": 20.0, "boards": 2, "phones": 2, "branches": 200, "days": 3,
                "starts": 2, "phone_count": 30, "phone_seconds": 45.0, "fanout_subscribers": 1000, "fanout_events": 100}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, QUICK[k] if args.quick and k in QUICK else v)
    if any("=" not in x or not x.startswith("QUEUECAST_") for x in args.hub_env):
        p.error("--hub-env: QUEUECAST_NAME=VALUE")
    args.hub_env = dict(x.split("=", 1) for x in args.hub_env)
    parts = [x for x in args.only.split(",") if x]
    if any(x not in PARTS for x in parts):
        p.error(f"--only: a comma list of {', '.join(PARTS)}")
    if args.rate <= 0 or args.phone_rate <= 0 or args.branches < 1 or args.days < 1 or args.starts < 1:
        p.error("rates, --branches, --days and --starts must be positive")
    workdir = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        res = asyncio.run(amain(args, workdir, parts))
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(res)
    if args.out:
        args.out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
