"""Board-feed fan-out: the hub's WebSocket fan-out beside a bare `websockets.broadcast` server.

A benchmark, not a test (docs/fanout.md has the figures and how to read them). Each mode runs on
fresh processes, in this order with --mode all: hub, bare, hub-redis2.

- hub: a real hub (`python -m hub serve`, fresh SQLite file); counters of branch 1 are opened and
  enough kiosk numbers issued (not measured). A few call-next commands with no subscriber give the
  hub's CPU per command without fan-out. Then N subscribers of /ws/branches/1 are opened by K
  client processes, left idle (VmRSS before/after = memory per idle connection), and the driver
  sends --events call-next commands open loop at --rate, round-robin over the counters, taking
  `time.monotonic()` just before each request. Every call gives one or two board events
  (ticket.completed of the number the counter held, ticket.called); the driver's own observer
  connection maps each event's seq to the call that made it (by type and number, from the
  call-next answer), so latency = client arrival - send time of that call.
- bare: `websockets.asyncio.server.serve(compression=None)` in its own process; connections go
  into a set; a control connection from the driver says "fire" and the server `broadcast`s the
  same frames (byte for byte the hub's shapes and sizes: a ticket.completed then a ticket.called,
  with seqs) to every connection. Same subscribers, clients, rate, figures.
- hub-redis2: one redis-server (fresh dir, free port) and two hub processes on it (same prefix);
  half the client processes on each hub; calls go to the first. CPU summed over both hubs, Redis
  CPU apart; latency reported per hub.

Subscribers live in K client processes (bench/fanout_client.py: a plain epoll loop, the upgrade
request written by hand, server frames parsed in place, pings answered), niced so that the driver
and the servers go first. Each socket asks for kernel receive timestamps (SO_TIMESTAMPNS), so the
arrival time of a frame is when its bytes reached the client's socket, not when a busy client got
round to reading it (that time is kept too). Latency = arrival - send time of the call (both
CLOCK_MONOTONIC, system-wide on Linux). At the end each client checks every connection against the
expected seqs (gaps, duplicates, disorder, closes) and builds latency histograms with the send
times the driver shares in a file.

With --pin (default) the server under test has CPU 0 to itself; the clients, the driver and, in
hub-redis2, the second hub and Redis run on the other CPU(s).

Server CPU = utime+stime (/proc/PID/stat) from the first measured call until every client has
seen the last seq; CPU per delivered frame = that / frames received by all clients, and CPU per
call-next = that / calls (a call makes two frames per connection). The hub's CPU per call-next with
nobody watching is measured first, to show the fan-out's own share ("net of the command").

Usage: .venv/bin/python bench/fanout.py [--subscribers 2000] [--clients 4] [--events 200]
       [--rate 10] [--mode hub|hub-redis2|bare|all|a,b,c] [--out FILE] [--wait-load 0.7]
       [--probe DIR] [--perf DIR]   (explaining runs: tracemalloc/cProfile/GC, perf record)
Every process started is stopped by its pid at the end; every wait is bounded.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

# The call-next benchmark's helpers: percentiles, ports, /proc CPU, the machine, the hub process
# handle, its readiness wait and its open-loop scheduler (it also puts the project root on sys.path).
from call_next import (  # noqa: E402
    CLK_TCK,
    CLOCK,
    REQUEST_TIMEOUT,
    ROOT,
    SECRET,
    START_TIMEOUT,
    Hub,
    Sample,
    free_port,
    machine,
    open_loop,
    pct,
    proc_cpu,
    system_cpu,
    wait_ready,
)
from fanout_client import hist_pcts  # noqa: E402

BRANCH = "1"
MODES = ("hub", "bare", "hub-redis2")
HELLO_BYTES = 4300          # the bare server's first message, padded to about the hub's snapshot
MAX_NOFILE = 20000
CALL_TIMEOUT = 60.0         # seconds for one call-next answer in the measured phase

# The benchmark's own targets (DESIGN section 6)
TARGET_CPU = 1.0            # hub CPU per delivered frame <= 1.0x the bare server's
TARGET_P99 = 1.0            # hub p99 call -> client <= the bare server's
TARGET_MEM = 1.5            # hub memory per idle connection <= 1.5x the bare server's


def raise_nofile(need: int = MAX_NOFILE) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, need), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_counters(pid: int) -> dict:
    """Page faults (minor, major) of a process, context switches (voluntary, involuntary) of its main
    thread and of all its threads, and its thread count."""
    with open(f"/proc/{pid}/stat") as f:
        after_comm = f.read().rsplit(")", 1)[1].split()
    out = {"minflt": int(after_comm[7]), "majflt": int(after_comm[9]), "vcsw": 0, "ivcsw": 0,
           "vcsw_main": 0, "ivcsw_main": 0, "threads": 0}
    for task in os.listdir(f"/proc/{pid}/task"):
        out["threads"] += 1
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    for key, name in (("voluntary_ctxt_switches:", "vcsw"), ("nonvoluntary_ctxt_switches:", "ivcsw")):
                        if line.startswith(key):
                            out[name] += int(line.split()[1])
                            if task == str(pid):
                                out[name + "_main"] += int(line.split()[1])
        except OSError:
            pass
    return out


def cpu_s(pid: int) -> float:
    u, s = proc_cpu(pid)
    return u + s


def summary_ms(values_s) -> dict:
    v = sorted(values_s)
    out = {"n": len(v)}
    for name, q in (("p50", .5), ("p90", .9), ("p99", .99), ("p999", .999)):
        out[name] = pct(v, q) * 1000 if v else float("nan")
    out["max"] = v[-1] * 1000 if v else float("nan")
    out["mean"] = sum(v) / len(v) * 1000 if v else float("nan")
    return out


# ==================================================================================================
# Bare server process
# ==================================================================================================

async def bare_main(args) -> int:
    from websockets.asyncio.server import broadcast, serve

    raise_nofile()
    # "set" (as a broadcast server is usually written) or "insertion": a dict, so broadcast() writes
    # to the connections in the order they were accepted (see docs/fanout.md, write order)
    subs: set | dict = set() if args.order == "set" else {}
    state = {"head": 0}

    def hello() -> str:
        msg = {"type": "snapshot", "seq": state["head"], "pad": ""}
        msg["pad"] = "x" * max(0, HELLO_BYTES - len(json.dumps(msg, separators=(",", ":"))))
        return json.dumps(msg, separators=(",", ":"))

    async def handler(ws) -> None:
        if ws.request.path == "/control":
            async for msg in ws:                 # "HEAD\nframe\nframe": broadcast each frame
                head, *frames = msg.split("\n")
                state["head"] = int(head)
                for text in frames:
                    broadcast(subs, text)
            return
        if isinstance(subs, set):                # registered first, then told the current seq
            subs.add(ws)
        else:
            subs[ws] = None
        try:
            await ws.send(hello())
            await ws.wait_closed()
        finally:
            if isinstance(subs, set):
                subs.discard(ws)
            else:
                subs.pop(ws, None)

    async with serve(handler, "127.0.0.1", args.port, compression=None, backlog=2048,
                     ping_interval=25.0, ping_timeout=20.0, max_size=64 * 1024) as server:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        print(f"bare server on {args.port}", flush=True)
        await stop
        server.close()
    return 0


# ==================================================================================================
# Driver
# ==================================================================================================

class Procs:
    """Every process this run starts, stopped by its pid at the end, whatever happens."""

    def __init__(self):
        self.popen: list[subprocess.Popen] = []
        self.aio: list = []

    def stop_all(self) -> None:
        for p in self.aio:                        # client processes: SIGTERM now, SIGKILL in reap()
            if p.returncode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.popen:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)

    async def reap(self) -> None:
        for p in self.aio:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await asyncio.wait_for(p.wait(), 10)


def _preexec(cpus: list[int] | None):
    def run() -> None:
        raise_nofile()
        if cpus:
            os.sched_setaffinity(0, cpus)
    return run


def probed(probe: Path | None, name: str, target: list[str]) -> list[str]:
    """The command line of a server, under bench/fanout_probe.py when --probe is given."""
    if probe is None:
        return [sys.executable, *target]
    kind = "hub" if target[:2] == ["-m", "hub"] else "bare"
    return [sys.executable, str(BENCH / "fanout_probe.py"), str(probe / name), kind, *target[2:]]


def start_hub_proc(workdir: Path, name: str, database: str, procs: Procs, cpus, probe: Path | None = None) -> Hub:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env.update({"QUEUECAST_DATABASE": database, "QUEUECAST_SECRET": SECRET, "QUEUECAST_CLOCK": CLOCK,
                "QUEUECAST_ISSUE_RATE": "100000/60", "QUEUECAST_MAX_FEEDS_PER_ADDRESS": "1000000"})
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(probed(probe, name, ["-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(port)]),
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_preexec(cpus))
    procs.popen.append(proc)
    return Hub(proc, f"http://127.0.0.1:{port}", log)


def start_bare_proc(workdir: Path, procs: Procs, cpus, probe: Path | None = None,
                    order: str = "set") -> tuple[subprocess.Popen, int]:
    port = free_port()
    with open(workdir / "bare.log", "ab") as out:
        proc = subprocess.Popen(probed(probe, "bare", [str(Path(__file__).resolve()), "_bare", "--port", str(port),
                                                       "--order", order]),
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_preexec(cpus))
    procs.popen.append(proc)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bare server exited: {(workdir / 'bare.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("bare server did not listen in time")


def start_redis_proc(workdir: Path, procs: Procs, cpus) -> tuple[subprocess.Popen, int]:
    """Like tests/conftest.start_redis (kept apart: the bench needs no test extras)."""
    port = free_port()
    rdir = workdir / "redis"
    rdir.mkdir()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(rdir),
                             "--save", "", "--appendonly", "no", "--daemonize", "no",
                             "--logfile", str(rdir / "redis.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=_preexec(cpus))
    procs.popen.append(proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING within 10 s")


# -- what the driver sends ----------------------------------------------------------------------------

def branch_plan(calls: int) -> list[tuple[str, str, int]]:
    """(counter, field, cap): one counter per field of branch 1, biggest caps first, enough of them
    that each field's share of the calls (plus a margin) stays within its daily cap."""
    from hub.config import load_config

    b = load_config().branches[BRANCH]
    cands, used = [], set()
    for cid, counter in b.counters.items():
        svc = counter.services[0]
        if svc in used:
            continue
        used.add(svc)
        cands.append((-b.services[svc].daily_cap, cid, svc, b.services[svc].daily_cap))
    cands.sort(key=lambda x: (x[0], int(x[1]) if x[1].isdigit() else 0))
    for k in range(4, len(cands) + 1):
        if math.ceil(calls / k) + 3 <= cands[k - 1][3]:
            return [(c[1], c[2], c[3]) for c in cands[:k]]
    raise SystemExit(f"fanout: {calls} calls need more numbers than branch {BRANCH}'s caps allow")


class HubFeeder:
    """Call-next on a real hub; the observer connection maps each event seq to the call that made it."""

    def __init__(self, hub: Hub, plan, total_calls: int):
        from hub.auth import Tokens

        self.hub, self.plan = hub, plan
        self.headers = {"Authorization": f"Bearer {Tokens(SECRET).staff(BRANCH)}"}
        self.total_calls = total_calls
        self.session = None
        self.called: dict[str, int] = {}         # number -> the call that called it
        self.completed: dict[str, int] = {}      # number -> the call that completed it
        self.observed: list[tuple[int, str, str]] = []
        self.obs_task = None
        self.calls_made = 0
        self.errors: Counter = Counter()

    async def prepare(self) -> None:
        import aiohttp
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50))
        await wait_ready(self.hub, self.session)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        for counter, svc, _ in self.plan:
            async with self.session.post(f"{self.hub.url}/api/branches/{BRANCH}/counters/{counter}/open",
                                         json={"services": [svc]}, headers=self.headers, timeout=timeout) as r:
                if r.status != 200:
                    raise RuntimeError(f"open {counter}: {r.status} {await r.text()}")
        per = math.ceil(self.total_calls / len(self.plan)) + 2
        sem = asyncio.Semaphore(8)

        async def issue(svc: str) -> None:
            async with sem:
                # As branch staff: exempt from a kiosk device's pace (not what is measured here).
                async with self.session.post(f"{self.hub.url}/api/branches/{BRANCH}/tickets", headers=self.headers,
                                             json={"service": svc, "channel": "kiosk"}, timeout=timeout) as r:
                    if r.status != 201:
                        raise RuntimeError(f"issue {svc}: {r.status} {await r.text()}")
                    await r.read()

        for _ in range(per):
            await asyncio.gather(*(issue(svc) for _c, svc, _cap in self.plan))

    async def head(self, url: str | None = None) -> int:
        import aiohttp
        async with self.session.get(f"{url or self.hub.url}/api/branches/{BRANCH}",
                                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as r:
            return (await r.json())["seq"]

    async def start_observer(self) -> None:
        from websockets.asyncio.client import connect
        ws = await connect(self.hub.url.replace("http", "ws") + f"/ws/branches/{BRANCH}", compression=None,
                           max_queue=None, open_timeout=30)
        self.obs_start = json.loads(await ws.recv())["seq"]

        async def watch() -> None:
            async for msg in ws:
                ev = json.loads(msg)
                self.observed.append((ev["seq"], ev.get("type", ""), ev.get("number", "")))
        self.obs_ws = ws
        self.obs_task = asyncio.create_task(watch())

    async def run_calls(self, count: int, rate: float) -> list[Sample]:
        import aiohttp
        # generous: an answer that comes late still maps its events to their call (and is reported)
        timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT)
        base = self.calls_made
        self.calls_made += count

        async def fire(i: int, s: Sample) -> None:
            k = base + i
            counter = self.plan[k % len(self.plan)][0]
            url = f"{self.hub.url}/api/branches/{BRANCH}/counters/{counter}/call-next"
            s.sent = time.monotonic()
            try:
                async with self.session.post(url, headers=self.headers, timeout=timeout) as r:
                    body = await r.json(content_type=None)
                    s.status = r.status
                    if r.status == 200:
                        self.called[body["ticket"]["number"]] = i
                        for n in body.get("completed", []):
                            self.completed[n] = i
                    else:
                        s.code = str(body.get("error", {}).get("code", ""))
                        self.errors[f"{r.status} {s.code}"] += 1
            except Exception as e:
                s.status, s.code = 0, type(e).__name__
                self.errors[s.code] += 1
            s.answered = time.monotonic()

        self.called.clear()
        self.completed.clear()
        return await open_loop(count, rate, fire)

    async def sendmap(self, samples: list[Sample], first: int) -> dict:
        """seq -> send time of the call that made it (from the observer), once it saw the head."""
        last = await self.head()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not self.observed or self.observed[-1][0] < last):
            await asyncio.sleep(0.01)
        send, unmatched = {}, []
        for seq, typ, number in self.observed:
            if seq < first:
                continue
            i = (self.called if typ == "ticket.called" else self.completed if typ == "ticket.completed"
                 else {}).get(number)
            if i is None:
                unmatched.append([seq, typ])
            else:
                send[seq] = samples[i].sent
        observed = [s for s, _, _ in self.observed if s >= first]
        return {"first": first, "last": last, "send": send, "unmatched": unmatched,
                "observer_ok": observed == list(range(first, last + 1))}

    async def close(self) -> None:
        if self.obs_task is not None:
            self.obs_task.cancel()
            await self.obs_ws.close()
        if self.session is not None:
            await self.session.close()


def hub_like_event(typ: str, number: str, counter: str, svc: str, seq: int) -> str:
    """A board frame shaped exactly like the hub's (hub.domain.events.public of a call)."""
    ev = {"type": typ, "t": "2026-05-19T08:05:03+07:00", "branch": BRANCH, "day": "2026-05-19",
          "ticket": f"20260519-{number}", "number": number, "service": svc, "counter": counter, "seq": seq}
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":"))


class BareFeeder:
    """The same calls for the bare server: each one broadcasts the frames a hub call would publish
    (ticket.completed of the number the counter held, then ticket.called), over a control connection."""

    def __init__(self, port: int, plan, total_calls: int):
        from hub.config import load_config
        self.port, self.plan = port, plan
        b = load_config().branches[BRANCH]
        self.next_number = {svc: b.services[svc].first_number for _c, svc, _ in plan}
        self.holding: dict[str, str] = {}
        self.seq = 0
        self.events: dict[int, int] = {}      # seq -> call index (of the current run_calls)
        self.calls_made = 0
        self.errors: Counter = Counter()
        self.ctl = None

    async def prepare(self) -> None:
        from websockets.asyncio.client import connect
        self.ctl = await connect(f"ws://127.0.0.1:{self.port}/control", compression=None, open_timeout=30)
        self.seq = 2 * len(self.plan) * 3      # roughly where a prepared hub's log would be; any value works

    async def start_observer(self) -> None:
        pass

    async def head(self) -> int:
        return self.seq

    def frames_of(self, k: int) -> list[tuple[int, str]]:
        counter, svc, _ = self.plan[k % len(self.plan)]
        out = []
        if counter in self.holding:
            self.seq += 1
            out.append((self.seq, hub_like_event("ticket.completed", self.holding[counter], counter, svc, self.seq)))
        number = str(self.next_number[svc])
        self.next_number[svc] += 1
        self.holding[counter] = number
        self.seq += 1
        out.append((self.seq, hub_like_event("ticket.called", number, counter, svc, self.seq)))
        return out

    async def run_calls(self, count: int, rate: float) -> list[Sample]:
        base = self.calls_made
        self.calls_made += count
        self.events.clear()
        messages = []
        for i in range(count):                # prepared ahead: the driver's own work stays off the clock
            frames = self.frames_of(base + i)
            for seq, _ in frames:
                self.events[seq] = i
            messages.append("\n".join([str(frames[-1][0]), *(t for _, t in frames)]))

        async def fire(i: int, s: Sample) -> None:
            s.sent = time.monotonic()
            try:
                await self.ctl.send(messages[i])
                s.status = 200
            except Exception as e:
                s.status, s.code = 0, type(e).__name__
                self.errors[s.code] += 1
            s.answered = time.monotonic()

        return await open_loop(count, rate, fire)

    async def sendmap(self, samples: list[Sample], first: int) -> dict:
        send = {seq: samples[i].sent for seq, i in self.events.items()}
        return {"first": first, "last": self.seq, "send": send, "unmatched": [], "observer_ok": True}

    async def close(self) -> None:
        if self.ctl is not None:
            await self.ctl.close()


# -- client processes ---------------------------------------------------------------------------------

@dataclass
class Client:
    proc: object
    target: str            # which server ("hub", "hub-a", ...)
    n: int
    lines: list = field(default_factory=list)

    async def read(self, event: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"client {self.proc.pid}: no {event!r} within {timeout:.0f} s")
            line = await asyncio.wait_for(self.proc.stdout.readline(), left)
            if not line:
                raise RuntimeError(f"client {self.proc.pid} exited before {event!r}")
            msg = json.loads(line)
            if msg.get("event") == event:
                return msg

    async def send(self, line: str) -> None:
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()


async def start_clients(procs: Procs, targets: list[tuple[str, int, str]], n: int, k: int, args,
                        workdir: Path, cpus) -> list[Client]:
    """k client processes, n connections between them; process j goes to targets[j * len // k]."""
    clients = []
    for j in range(k):
        share = n // k + (1 if j < n % k else 0)
        name, port, path = targets[j * len(targets) // k]
        err = open(workdir / f"client-{j}.log", "ab")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH / "fanout_client.py"), "--host", "127.0.0.1", "--port", str(port),
            "--path", path, "--n", str(share), "--concurrency", str(max(1, args.connect_concurrency // k)),
            "--impl", args.client_impl, "--drain", str(args.drain), "--connect-timeout", str(args.connect_timeout),
            "--nice", str(args.client_nice), *(["--deflate"] if args.deflate else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err, limit=256 * 1024 * 1024,
            preexec_fn=_preexec(cpus))
        err.close()
        procs.aio.append(proc)
        clients.append(Client(proc, name, share))
    return clients


# -- one mode -----------------------------------------------------------------------------------------

def wait_load(threshold: float, limit: float) -> dict:
    started = time.monotonic()
    if threshold > 0:
        while os.getloadavg()[0] >= threshold and time.monotonic() - started < limit:
            time.sleep(5)
    load = os.getloadavg()
    return {"load_at_start": [round(x, 2) for x in load], "waited_s": round(time.monotonic() - started, 1),
            "load_ok": threshold <= 0 or load[0] < threshold}


async def run_mode(mode: str, args) -> dict:
    res: dict = {"mode": mode, "subscribers": args.subscribers, "clients": args.clients, "calls": args.events,
                 "bare_order": args.bare_order,
                 "rate": args.rate, "client_impl": args.client_impl, **wait_load(args.wait_load, args.wait_load_max)}
    print(f"[{mode}] load {res['load_at_start']} (waited {res['waited_s']} s)", file=sys.stderr)
    procs = Procs()
    workdir = Path(tempfile.mkdtemp(prefix=f"queuecast-fanout-{mode}-", dir=args.tmpdir))
    plan = branch_plan(args.events + args.baseline_calls)
    res["counters"] = len(plan)
    ncpu = os.cpu_count() or 1
    pin = args.pin and ncpu > 1
    server_cpus = [0] if pin else None                 # the server under test: a core of its own
    other_cpus = list(range(1, ncpu)) if pin else None  # clients (niced), the driver; hub-b and Redis
    res["pinned"] = pin
    probe = args.probe.resolve() / f"{args.subscribers}-{mode}" if args.probe else None
    res["probed"] = str(probe or "")
    feeder = None
    clients: list[Client] = []
    servers: dict[str, int] = {}                   # name -> pid (the processes under test)
    extra: dict[str, int] = {}                     # name -> pid (Redis: measured apart)
    t_mode = time.monotonic()
    try:
        # -- servers
        if mode == "bare":
            proc, port = start_bare_proc(workdir, procs, server_cpus, probe, args.bare_order)
            servers["bare"] = proc.pid
            targets = [("bare", port, "/sub")]
            feeder = BareFeeder(port, plan, args.events + args.baseline_calls)
        elif mode == "hub":
            hub = start_hub_proc(workdir, "hub", f"sqlite:///{workdir / 'hub.db'}", procs, server_cpus, probe)
            servers["hub"] = hub.proc.pid
            targets = [("hub", int(hub.url.rsplit(":", 1)[1]), f"/ws/branches/{BRANCH}")]
            feeder = HubFeeder(hub, plan, args.events + args.baseline_calls)
        else:
            rproc, rport = start_redis_proc(workdir, procs, other_cpus)
            extra["redis"] = rproc.pid
            db = f"redis://127.0.0.1:{rport}/0?prefix=bench:"
            a = start_hub_proc(workdir, "hub-a", db, procs, server_cpus, probe)
            b = start_hub_proc(workdir, "hub-b", db, procs, other_cpus, probe)
            servers["hub-a"], servers["hub-b"] = a.proc.pid, b.proc.pid
            targets = [("hub-a", int(a.url.rsplit(":", 1)[1]), f"/ws/branches/{BRANCH}"),
                       ("hub-b", int(b.url.rsplit(":", 1)[1]), f"/ws/branches/{BRANCH}")]
            feeder = HubFeeder(a, plan, args.events + args.baseline_calls)
            feeder.other = b
        await feeder.prepare()
        if mode == "hub-redis2":
            import aiohttp
            async with aiohttp.ClientSession() as s:
                await wait_ready(feeder.other, s)
        print(f"[{mode}] prepared ({len(plan)} counters)", file=sys.stderr)

        # -- CPU per call with nobody watching (the command's own cost, not fan-out)
        if args.baseline_calls:
            await asyncio.sleep(0.5)
            c0 = {n: cpu_s(p) for n, p in {**servers, **extra}.items()}
            b0 = {n: proc_cpu(p) for n, p in servers.items()}
            w0 = time.monotonic()
            base = await feeder.run_calls(args.baseline_calls, args.rate)
            await asyncio.sleep(0.3)
            c1 = {n: cpu_s(p) for n, p in {**servers, **extra}.items()}
            b1 = {n: proc_cpu(p) for n, p in servers.items()}
            res["baseline"] = {"calls": args.baseline_calls, "wall_s": round(time.monotonic() - w0, 2),
                               "cpu_ms_per_call": {n: (c1[n] - c0[n]) * 1000 / args.baseline_calls for n in c0},
                               "user_sys_ms_per_call": {n: [(b1[n][i] - b0[n][i]) * 1000 / args.baseline_calls
                                                            for i in (0, 1)] for n in b0},
                               "errors": sum(1 for s in base if s.status != 200)}

        # -- idle connections
        gc.collect()
        await asyncio.sleep(1.0)
        res["rss_before_kib"] = {n: rss_kib(p) for n, p in servers.items()}
        if probe:
            await probe_signal(probe, servers, signal.SIGUSR1, "mem-0.pickle")
        await feeder.start_observer()
        t0 = time.monotonic()
        clients = await start_clients(procs, targets, args.subscribers, args.clients, args, workdir, other_cpus)
        readies = await asyncio.gather(*(c.read("ready", args.connect_timeout) for c in clients))
        res["connect_s"] = round(time.monotonic() - t0, 2)
        res["connected"] = sum(r["connected"] for r in readies)
        res["connect_failed"] = sum(r["failed"] for r in readies)
        res["connect_failures"] = dict(sum((Counter(r["failures"]) for r in readies), Counter()))
        print(f"[{mode}] {res['connected']} connected in {res['connect_s']} s "
              f"({res['connect_failed']} failed)", file=sys.stderr)
        await asyncio.sleep(args.settle)             # let the handshakes' garbage go; then idle
        i0 = {n: cpu_s(p) for n, p in servers.items()}
        w0 = time.monotonic()
        await asyncio.sleep(args.idle)
        i1 = {n: cpu_s(p) for n, p in servers.items()}
        res["idle_cpu_pct"] = {n: round((i1[n] - i0[n]) * 100 / (time.monotonic() - w0), 2) for n in servers}
        res["rss_idle_kib"] = {n: rss_kib(p) for n, p in servers.items()}
        if probe:
            await probe_signal(probe, servers, signal.SIGUSR1, "mem-1.pickle")
        conn_per_server = {t[0]: sum(r["connected"] for c, r in zip(clients, readies) if c.target == t[0])
                           for t in targets}
        res["connections_per_server"] = conn_per_server
        res["rss_per_conn_kib"] = {n: (res["rss_idle_kib"][n] - res["rss_before_kib"][n]) / max(1, conn_per_server[n])
                                   for n in servers}
        res["rss_per_conn_kib_all"] = (sum(res["rss_idle_kib"].values()) - sum(res["rss_before_kib"].values())) \
            / max(1, res["connected"])

        # -- the measured calls
        first = await feeder.head() + 1
        for c in clients:
            await c.send("go")
        await asyncio.gather(*(c.read("going", 30) for c in clients))
        if probe:
            await probe_signal(probe, servers, signal.SIGUSR2, None)
        perfs = start_perf(args.perf, mode, args.subscribers, servers, procs) if args.perf else {}
        cpu_a = {n: cpu_s(p) for n, p in {**servers, **extra}.items()}
        us_a = {n: proc_cpu(p) for n, p in servers.items()}
        pc_a = {n: proc_counters(p) for n, p in servers.items()}
        sys_a, self_a, wall_a = system_cpu(), sum(os.times()[:2]), time.monotonic()
        samples = await feeder.run_calls(args.events, args.rate)
        calls_done = time.monotonic()
        sendmap = await feeder.sendmap(samples, first)
        path = workdir / "sendmap.json"
        path.write_text(json.dumps(sendmap))
        for c in clients:
            await c.send(f"finish {path}")
        drained = await asyncio.gather(*(c.read("drained", args.drain + 60) for c in clients))
        cpu_b = {n: cpu_s(p) for n, p in {**servers, **extra}.items()}
        us_b = {n: proc_cpu(p) for n, p in servers.items()}
        pc_b = {n: proc_counters(p) for n, p in servers.items()}
        sys_b, self_b, wall_b = system_cpu(), sum(os.times()[:2]), time.monotonic()
        stop_perf(perfs)
        results = await asyncio.gather(*(c.read("result", 300) for c in clients))
        res["drain_timed_out"] = sum(d["timed_out"] for d in drained)
        res["measured_wall_s"] = round(wall_b - wall_a, 2)
        res["drain_after_last_call_s"] = round(max(d["t"] for d in drained) - calls_done, 3)
        res["call_errors"] = dict(feeder.errors)
        res["calls_ok"] = sum(1 for s in samples if s.status == 200)
        res["board_events"] = sendmap["last"] - sendmap["first"] + 1
        res["unmatched_events"] = sendmap["unmatched"][:10]
        res["observer_ok"] = sendmap["observer_ok"]
        lag = sorted(s.sent - s.scheduled for s in samples)
        res["send_lag_ms"] = {"p50": pct(lag, .5) * 1000, "max": lag[-1] * 1000}
        if isinstance(feeder, HubFeeder):
            res["call_answer_ms"] = summary_ms([s.answered - s.sent for s in samples if s.status == 200])

        # -- figures
        busy, total = sys_b[0] - sys_a[0], sys_b[1] - sys_a[1]
        res["machine_busy_cores"] = busy / total * (os.cpu_count() or 1) if total else float("nan")
        res["driver_cpu_s"] = self_b - self_a
        res["server_cpu_s"] = {n: cpu_b[n] - cpu_a[n] for n in servers}
        res["extra_cpu_s"] = {n: cpu_b[n] - cpu_a[n] for n in extra}
        res["server_user_sys_s"] = {n: [us_b[n][0] - us_a[n][0], us_b[n][1] - us_a[n][1]] for n in servers}
        res["server_counters"] = {n: {k: pc_b[n][k] - (pc_a[n][k] if k != "threads" else 0) for k in pc_a[n]}
                                  for n in servers}
        frames = sum(r["frames"] for r in results)
        res["frames"] = frames
        res["expected_frames"] = res["board_events"] * res["connected"]
        ours = sum(res["server_cpu_s"].values()) + sum(res["extra_cpu_s"].values()) + res["driver_cpu_s"] \
            + sum(r["cpu_s"] for r in results)
        res["foreign_busy_cores"] = (busy / CLK_TCK - ours) / (wall_b - wall_a)   # others (and softirq) meanwhile
        server_cpu = sum(res["server_cpu_s"].values())
        res["cpu_us_per_frame"] = server_cpu * 1e6 / frames if frames else float("nan")
        if "baseline" in res:
            per_call = sum(v for n, v in res["baseline"]["cpu_ms_per_call"].items() if n in servers) / 1000
            res["cpu_us_per_frame_net"] = (server_cpu - per_call * args.events) * 1e6 / frames if frames else float("nan")
        per_call_next(res, args.events)
        res["client_cpu_s"] = [round(r["cpu_s"], 2) for r in results]
        res["client_wall_s"] = [round(r["wall_s"], 2) for r in results]
        res["client_cpu_max_pct"] = max(r["cpu_s"] / r["wall_s"] * 100 for r in results if r["wall_s"] > 0)
        for key in ("gaps", "dups", "disorder", "out_of_range", "unmatched", "bad_frames", "conns_with_gaps",
                    "perfect", "connections"):
            res[key] = sum(r[key] for r in results)
        closed: Counter = Counter()
        for r in results:
            closed.update(r["closed"])
        res["closed"] = dict(closed)
        res["start_seqs"] = dict(sum((Counter(r["start_seqs"]) for r in results), Counter()))
        groups = {"all": results}
        if len(targets) > 1:
            for name, _, _ in targets:
                groups[name] = [r for c, r in zip(clients, results) if c.target == name]
        res["latency_ms"], res["latency_all_frames_ms"], res["latency_read_ms"] = {}, {}, {}
        res["all_reached_ms"], res["first_reached_ms"] = {}, {}
        nseq = sendmap["last"] - first + 1
        res["inexact_frames"] = sum(r["inexact"] for r in results)
        for name, rs in groups.items():
            for key, h in (("latency_ms", "exact_hist"), ("latency_all_frames_ms", "hist"),
                           ("latency_read_ms", "read_hist")):
                hist: Counter = Counter()
                for r in rs:
                    hist.update({int(k): v for k, v in r[h].items()})
                res[key][name] = hist_pcts(hist)
            # per event: until the last (and the first) subscriber of this group had it
            reach, first_reach = [], []
            for j in range(nseq):
                st = sendmap["send"].get(first + j)
                lat = [r["latest"][j] for r in rs if r["latest"][j] > 0]
                ear = [r["earliest"][j] for r in rs if r["earliest"][j] is not None]
                if st is not None and lat:
                    reach.append(max(lat) - st)
                    first_reach.append(min(ear) - st)
            res["all_reached_ms"][name] = summary_ms(reach)
            res["first_reached_ms"][name] = summary_ms(first_reach)
        res["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
        res["mode_s"] = round(time.monotonic() - t_mode, 1)
        return res
    finally:
        try:
            if feeder is not None:
                await feeder.close()
        except Exception:
            pass
        procs.stop_all()
        await procs.reap()
        if probe:
            from fanout_probe import report as probe_report
            for name in servers:
                per = res.get("connections_per_server", {}).get(name, 0)
                try:
                    probe_report(probe / name, per)
                    print(f"[{mode}] probe report: {probe / name / 'report.txt'}", file=sys.stderr)
                except Exception as e:
                    print(f"[{mode}] probe report failed: {e}", file=sys.stderr)
        if args.keep:
            print(f"[{mode}] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def start_perf(out: Path, mode: str, n: int, servers: dict[str, int], procs: Procs) -> dict:
    """`perf record` (kernel and native stacks, 499 Hz) of each server for the measured phase."""
    out.mkdir(parents=True, exist_ok=True)
    perfs = {}
    for name, pid in servers.items():
        data = out / f"{n}-{mode}-{name}.data"
        proc = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-p", str(pid), "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.popen.append(proc)
        perfs[name] = (proc, data)
    time.sleep(0.3)
    return perfs


def stop_perf(perfs: dict) -> None:
    for _name, (proc, data) in perfs.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)          # perf writes its file on SIGINT
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        report = data.with_suffix(".txt")
        try:
            with open(report, "w") as f:
                subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym", "--stdio",
                                "-g", "none", "--percent-limit", "0.4"], stdout=f, stderr=subprocess.DEVNULL,
                               timeout=300)
        except (OSError, subprocess.SubprocessError):
            pass


async def probe_signal(probe: Path, servers: dict[str, int], sig: int, wait_for: str | None) -> None:
    for pid in servers.values():
        os.kill(pid, sig)
    if wait_for:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all((probe / n / wait_for).exists() for n in servers):
            await asyncio.sleep(0.1)


# -- report -------------------------------------------------------------------------------------------

def per_call_next(r: dict, events: int) -> None:
    """Server CPU per call-next (issue 16: a call makes two frames per connection, completed and
    called), and net of the command's own cost (its CPU with no subscriber); also for saved runs."""
    if "error" in r or "cpu_ms_per_call" in r:
        return
    server_cpu, calls = sum(r["server_cpu_s"].values()), r["calls_ok"]
    r["cpu_ms_per_call"] = server_cpu * 1000 / calls if calls else float("nan")
    if "baseline" in r:
        own = sum(v for n, v in r["baseline"]["cpu_ms_per_call"].items() if n in r["server_cpu_s"]) / 1000
        r["cpu_ms_per_call_net"] = (server_cpu - own * events) * 1000 / calls if calls else float("nan")


def fmt(x, spec=".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def report(runs: dict, meta: dict) -> None:
    m = meta["machine"]
    print(f"queuecast fan-out: {meta['subscribers']} subscribers of branch {BRANCH} in {meta['clients']} client "
          f"processes, {meta['events']} call-next at {meta['rate']:g}/s open loop")
    print(f"machine: {m['nproc']} cores, {m['cpu']}, kernel {m['kernel']}, Python {m['python']}")
    print()
    for mode, r in runs.items():
        if "error" in r:
            print(f"== {mode}: FAILED: {r['error']}")
            continue
        print(f"== {mode}: {r['connected']} connected ({r['connect_failed']} failed) in {r['connect_s']} s; "
              f"{r['calls_ok']}/{r['calls']} calls ok; "
              f"{r['board_events']} board events; load {r['load_at_start'][0]} -> {r['load_at_end'][0]}"
              f"{'' if r['load_ok'] else ' (LOAD ABOVE THRESHOLD)'}")
        head = f"  {'latency from call-next (ms)':<36}{'n':>9}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>8}"
        print(head)

        def line(label: str, s: dict) -> None:
            print(f"  {label:<36}{s['n']:>9}{fmt(s['p50']):>8}{fmt(s['p90']):>8}{fmt(s['p99']):>8}"
                  f"{fmt(s['p999']):>8}{fmt(s['max']):>8}")
        for name in r["latency_ms"]:
            line(f"at client socket, {name}", r["latency_ms"][name])
            line(f"  + coalesced frames (bound), {name}", r["latency_all_frames_ms"][name])
            line(f"  read by client, {name}", r["latency_read_ms"][name])
            line(f"  last subscriber has it, {name}", r["all_reached_ms"][name])
        if "call_answer_ms" in r:
            line("call-next answered (driver)", r["call_answer_ms"])
        cpu = ", ".join(f"{n} {v:.2f} s" for n, v in {**r["server_cpu_s"], **r["extra_cpu_s"]}.items())
        us = ", ".join(f"{n} {u:.2f}/{k:.2f}" for n, (u, k) in r["server_user_sys_s"].items())
        print(f"  server CPU {cpu} (user/sys {us}) over {r['measured_wall_s']} s; {r['frames']} frames "
              f"(expected {r['expected_frames']}) -> {fmt(r['cpu_us_per_frame'])} µs/frame"
              + (f" ({fmt(r['cpu_us_per_frame_net'])} µs/frame without the command's own cost)"
                 if "cpu_us_per_frame_net" in r else ""))
        if "cpu_ms_per_call" in r:
            print(f"  CPU per call-next: {fmt(r['cpu_ms_per_call'])} ms"
                  + (f" ({fmt(r['cpu_ms_per_call_net'])} ms without the command's own cost)"
                     if "cpu_ms_per_call_net" in r else ""))
        if "baseline" in r:
            b = ", ".join(f"{n} {v:.2f}" for n, v in r["baseline"]["cpu_ms_per_call"].items())
            print(f"  CPU per call with no subscriber (ms): {b}")
        rss = ", ".join(f"{n} {r['rss_before_kib'][n] / 1024:.1f} -> {r['rss_idle_kib'][n] / 1024:.1f} MiB "
                        f"= {r['rss_per_conn_kib'][n]:.2f} KiB/conn" for n in r["rss_idle_kib"])
        print(f"  memory: {rss}; idle CPU {r['idle_cpu_pct']} %")
        print(f"  server faults/context switches in the phase: {r['server_counters']}")
        print(f"  delivery: gaps {r['gaps']}, duplicates {r['dups']}, disorder {r['disorder']}, "
              f"closed {r['closed'] or 0}, unmatched {r['unmatched']}, perfect connections "
              f"{r['perfect']}/{r['connections']}; drain timeouts {r['drain_timed_out']}")
        print(f"  clients CPU {r['client_cpu_s']} s (busiest {r['client_cpu_max_pct']:.0f} % of a core); "
              f"machine busy {r['machine_busy_cores']:.2f} cores (others {r['foreign_busy_cores']:.2f}); driver send lag p50/max "
              f"{r['send_lag_ms']['p50']:.2f}/{r['send_lag_ms']['max']:.2f} ms")
        print()
    ratios = meta.get("ratios")
    if ratios:
        print("hub / bare (targets: CPU/frame and per call net <= 1.0x, p99 <= 1.0x, memory/idle conn <= 1.5x; 0 gaps, 0 dups)")
        for name, q in ratios.items():
            print(f"  {name:<44}{fmt(q['ratio'], '.2f'):>7}x  {q['verdict']}")
        print(f"  lost/duplicated: {meta['integrity']}")


def markdown(out: dict, label: str = "") -> str:
    """The figures of one invocation as Markdown table rows (docs/fanout.md)."""
    meta, runs = out["meta"], out["runs"]
    rows = [f"{label}N={meta['subscribers']}, {meta['events']} calls at {meta['rate']:g}/s, started {meta['started']}",
            "",
            "| mode | load 1m at start | CPU s (user/sys) | frames | µs CPU/frame (net of call) | p50 ms | p90 ms | "
            "p99 ms | p99.9 ms | last sub. p99 ms | KiB/idle conn | gaps | dups |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, r in runs.items():
        if "error" in r:
            rows.append(f"| {mode} | failed: {r['error']} |")
            continue
        groups = list(r["latency_ms"])
        for g in groups:
            lat, last = r["latency_ms"][g], r["all_reached_ms"][g]
            name = mode if g == "all" else f"{mode} ({g})"
            if g == "all":
                user = sum(v[0] for v in r["server_user_sys_s"].values())
                syst = sum(v[1] for v in r["server_user_sys_s"].values())
                cpu = f"{user + syst:.2f} ({user:.2f}/{syst:.2f})"
                extra = f" + redis {r['extra_cpu_s']['redis']:.2f}" if r["extra_cpu_s"] else ""
                per = f"{r['cpu_us_per_frame']:.2f} ({r.get('cpu_us_per_frame_net', float('nan')):.2f})"
                rows.append(f"| {name} | {r['load_at_start'][0]:.2f} | {cpu}{extra} | {r['frames']} | {per} | "
                            f"{lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | {lat['p999']:.1f} | "
                            f"{last['p99']:.1f} | {r['rss_per_conn_kib_all']:.1f} | {r['gaps']} | {r['dups']} |")
            else:
                rows.append(f"| {name} | | | | | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | "
                            f"{lat['p999']:.1f} | {last['p99']:.1f} | {r['rss_per_conn_kib'][g]:.1f} | | |")
    if meta.get("ratios"):
        rows += ["", "| hub / bare | ratio | target | verdict |", "|---|---|---|---|"]
        for name, q in meta["ratios"].items():
            target = "-" if q["target"] is None else f"<= {q['target']:g}x"
            rows.append(f"| {name} | {q['ratio']:.2f}x | {target} | {q['verdict']} |")
    return "\n".join(rows)


def ratios(runs: dict) -> dict:
    out = {}
    bare = runs.get("bare")
    if not bare or "error" in bare:
        return out
    for mode in ("hub", "hub-redis2"):
        h = runs.get(mode)
        if not h or "error" in h:
            continue
        tag = "" if mode == "hub" else " (redis2)"

        def put(name, num, den, target, tag=tag):
            q = num / den if den else float("nan")
            verdict = "(not a target)" if target is None else \
                "met" if q <= target else f"MISSED by {(q / target - 1) * 100:.0f}%"
            out[name + tag] = {"hub": num, "bare": den, "ratio": q, "target": target, "verdict": verdict}
        put("CPU per delivered frame", h["cpu_us_per_frame"], bare["cpu_us_per_frame"], TARGET_CPU)
        if "cpu_ms_per_call" in h and "cpu_ms_per_call" in bare:
            put("CPU per call-next", h["cpu_ms_per_call"], bare["cpu_ms_per_call"], None)
            if "cpu_ms_per_call_net" in h:
                put("CPU per call-next, net of the command", h["cpu_ms_per_call_net"],
                    bare.get("cpu_ms_per_call_net", bare["cpu_ms_per_call"]), TARGET_CPU)
        put("p50 call -> client", h["latency_ms"]["all"]["p50"], bare["latency_ms"]["all"]["p50"], TARGET_P99)
        put("p99 call -> client", h["latency_ms"]["all"]["p99"], bare["latency_ms"]["all"]["p99"], TARGET_P99)
        put("memory per idle connection", h["rss_per_conn_kib_all"], bare["rss_per_conn_kib_all"], TARGET_MEM)
        put("p99 until the last subscriber has it", h["all_reached_ms"]["all"]["p99"],
            bare["all_reached_ms"]["all"]["p99"], None)
        put("p99 incl. coalesced frames (upper bound)", h["latency_all_frames_ms"]["all"]["p99"],
            bare["latency_all_frames_ms"]["all"]["p99"], None)
    return out


async def amain(args) -> dict:
    meta = {"subscribers": args.subscribers, "clients": args.clients, "events": args.events, "rate": args.rate,
            "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    modes = list(MODES) if args.mode == "all" else args.mode.split(",")
    runs = {}
    for mode in modes:
        try:
            runs[mode] = await run_mode(mode, args)
        except Exception as e:      # reported; the other modes still run
            import traceback
            traceback.print_exc()
            runs[mode] = {"error": f"{type(e).__name__}: {e}"}
    meta["ratios"] = ratios(runs)
    meta["integrity"] = {m: {"gaps": r.get("gaps"), "dups": r.get("dups"), "closed": r.get("closed"),
                             "connect_failed": r.get("connect_failed")} for m, r in runs.items()}
    meta["integrity_ok"] = all(not r.get("gaps") and not r.get("dups") and not r.get("closed")
                               and not r.get("connect_failed") and "error" not in r for r in runs.values())
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return {"meta": meta, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_bare":
        p = argparse.ArgumentParser()
        p.add_argument("--port", type=int)
        p.add_argument("--order", choices=("set", "insertion"), default="set")
        return asyncio.run(bare_main(p.parse_args(argv[1:])))

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=2000, help="WebSocket subscribers of branch 1 (default 2000)")
    p.add_argument("--clients", type=int, default=4, help="client processes sharing them (default 4)")
    p.add_argument("--events", type=int, default=200, help="measured call-next commands (default 200)")
    p.add_argument("--rate", type=float, default=10.0, help="call-next per second, open loop (default 10)")
    p.add_argument("--mode", default="all", help="hub|hub-redis2|bare|all, or a comma list in the order to run "
                   "(default all = hub,bare,hub-redis2)")
    p.add_argument("--out", type=Path, help="also write every figure as JSON to this file")
    p.add_argument("--baseline-calls", type=int, default=40,
                   help="call-next with no subscriber first: the command's own CPU (default 40)")
    p.add_argument("--client-impl", choices=("lean", "websockets"), default="lean")
    p.add_argument("--deflate", action="store_true", help="lean clients offer permessage-deflate, as browsers "
                   "do (the bare server, compression=None, declines it; the hub declines it since issue 16)")
    p.add_argument("--connect-concurrency", type=int, default=200, help="handshakes in flight, all clients (200)")
    p.add_argument("--connect-timeout", type=float, default=240.0)
    p.add_argument("--settle", type=float, default=2.0, help="seconds after the last connect before measuring idle")
    p.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measured before RSS")
    p.add_argument("--drain", type=float, default=120.0, help="max seconds clients wait for the last seq")
    p.add_argument("--client-nice", type=int, default=19,
                   help="niceness of the client processes: the driver and servers go first (default 19)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="servers on CPU 0, clients on the others (default on)")
    p.add_argument("--wait-load", type=float, default=0.0,
                   help="before each mode wait until the 1-min load average is below this (0: don't)")
    p.add_argument("--wait-load-max", type=float, default=600.0, help="at most this long (s) per wait")
    p.add_argument("--probe", type=Path, help="run the servers under bench/fanout_probe.py (tracemalloc of the "
                   "idle connections, cProfile and GC pauses of the measured phase) into this directory; "
                   "for explaining, not for the figures (it slows the servers)")
    p.add_argument("--perf", type=Path, help="`perf record` each server during the measured phase into this "
                   "directory (a .data and a .txt summary per server)")
    p.add_argument("--markdown", action="store_true", help="also print the figures as Markdown tables")
    p.add_argument("--show", type=Path, nargs="+", metavar="JSON",
                   help="run nothing: print the report (and --markdown tables) of saved --out files")
    p.add_argument("--bare-order", choices=("set", "insertion"), default="set",
                   help="the bare server's connection container: a set (default, like the hub's) or an "
                        "insertion-ordered dict (writes in accept order)")
    p.add_argument("--tmpdir")
    p.add_argument("--keep", action="store_true", help="keep each mode's temp dir (logs)")
    args = p.parse_args(argv)
    if args.show:
        for path in args.show:
            saved = json.loads(path.read_text())
            for r in saved["runs"].values():
                per_call_next(r, saved["meta"]["events"])
            saved["meta"]["ratios"] = ratios(saved["runs"])
            report(saved["runs"], saved["meta"])
            if args.markdown:
                print(markdown(saved, f"{path.name}: "))
            print()
        return 0
    if args.subscribers < args.clients or args.clients < 1 or args.events < 1 or args.rate <= 0:
        p.error("need --subscribers >= --clients >= 1, --events >= 1, --rate > 0")
    if any(m not in MODES for m in args.mode.split(",")) and args.mode != "all":
        p.error(f"--mode: one of {', '.join(MODES)}, all, or a comma list of them")
    if ("hub-redis2" in args.mode or args.mode == "all") and args.clients < 2:
        p.error("hub-redis2 needs at least 2 client processes (half on each hub)")
    raise_nofile()
    if args.pin and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, range(1, os.cpu_count()))     # the driver stays off the server's core
    out = asyncio.run(amain(args))
    report(out["runs"], out["meta"])
    if args.markdown:
        print()
        print(markdown(out))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
    return 0 if out["meta"]["integrity_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
