"""Call-next latency over HTTP on the embedded store, beside a bare aiosqlite write-and-commit.

A benchmark, not a test (docs/benchmarks.md has the figures and how to read them). In one run it:

1. starts a real hub (`python -m hub serve` on a free 127.0.0.1 port) on a fresh SQLite file in a
   temporary directory, waits for /readyz, opens one counter per (branch, field) it uses and
   issues enough kiosk numbers on those fields that no queue runs dry (none of this is measured);
2. baseline: on a second fresh file in the same directory, a bare aiosqlite connection with
   exactly `hub.store.sqlite_db.PRAGMAS` runs BEGIN IMMEDIATE; INSERT one ~300-byte JSON event row;
   UPDATE the seq row; COMMIT, at the same open-loop rate and count;
3. measured: open-loop call-next requests, request i scheduled at t0 + i/rate whatever became of
   the earlier ones (a stream of counter clicks), round-robin over the open counters, on one
   keep-alive aiohttp session. Latency = answer - scheduled time (queueing delay counts); the
   answer - send time and the hub's own per-command "ms" log field are reported beside it;
4. prints p50/p90/p99/max of both, the ratio of the p99s against the 3x target, and the hub
   process's CPU time per command (/proc/PID/stat utime+stime across the measured phase);
   then stops the hub (by its pid) and removes the temporary directory.

Usage: .venv/bin/python bench/call_next.py [--rate 50] [--seconds 30] [--warmup 2] [--out FILE]
Only the runtime dependencies are needed (aiohttp, aiosqlite), so `make bench` works without the
test extras. Everything is bounded: every request has a timeout and the hub is always stopped.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import aiosqlite  # noqa: E402

from hub.auth import Tokens  # noqa: E402
from hub.config import load_config  # noqa: E402
from hub.store.sqlite_db import PRAGMAS  # noqa: E402

SECRET = "bench-secret-not-for-production"
CLOCK = "2026-05-19T08:05:00+07:00"     # a Tuesday, issuing open, whatever the real date
TARGET = 3.0                            # hub p99 within 3x the bare write's p99
REQUEST_TIMEOUT = 10.0                  # seconds; a request slower than this counts as an error
START_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# `--profile`: the hub's own `main` under cProfile. uvicorn re-raises SIGTERM once it has shut down
# gracefully; a handler installed first turns that into SystemExit, which cProfile.run catches
# before writing the stats (with `python -m cProfile` the process would die without writing).
PROFILED = ("import cProfile, signal, sys\n"
            "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
            "from hub.cli import main\n"
            "cProfile.run('main(sys.argv[2:])', sys.argv[1])\n")


# -- small helpers --------------------------------------------------------------------------------

def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..1)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def summary(values_ms: list[float]) -> dict:
    v = sorted(values_ms)
    return {"n": len(v), "p50": pct(v, 0.50), "p90": pct(v, 0.90), "p99": pct(v, 0.99),
            "max": v[-1] if v else float("nan"), "mean": sum(v) / len(v) if v else float("nan")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        after_comm = f.read().rsplit(")", 1)[1].split()
    return int(after_comm[11]) / CLK_TCK, int(after_comm[12]) / CLK_TCK   # fields 14 and 15


def system_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat (steal counted as busy)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]          # idle + iowait
    return sum(values) - idle, sum(values)


def machine() -> dict:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "loadavg": open("/proc/loadavg").read().split()[:3]}


def filesystem_of(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, timeout=10).stdout
        line = out.strip().splitlines()[-1].split()
        return f"{line[1]} on {line[0]} (mounted at {line[-1]})"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# -- the open-loop driver -------------------------------------------------------------------------

@dataclass
class Sample:
    scheduled: float
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0               # HTTP status, 0 for an exception, -1 for "no HTTP" (bare writes)
    code: str = ""                # the error code of a refusal, or the exception's name


async def open_loop(count: int, rate: float, fire, on_index: dict | None = None) -> list[Sample]:
    """Starts fire(sample) for sample i at t0 + i/rate, regardless of earlier answers.

    on_index maps a request index to a callback run just before that request is started
    (used to read CPU counters at the warm-up boundary)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    samples = [Sample(scheduled=t0 + i / rate) for i in range(count)]
    tasks = []
    for i, s in enumerate(samples):
        delay = s.scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if on_index and i in on_index:
            on_index[i]()
        tasks.append(asyncio.create_task(fire(i, s)))
    await asyncio.gather(*tasks)
    if on_index and count in on_index:
        on_index[count]()
    return samples


# -- the bare baseline ----------------------------------------------------------------------------

BARE_SCHEMA = (   # the store's two write-path tables, as in hub/store/sqlite_db.py
    "CREATE TABLE IF NOT EXISTS branches(branch TEXT PRIMARY KEY, seq INTEGER NOT NULL, epoch TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events(branch TEXT, seq INTEGER, day TEXT, body TEXT,"
    " PRIMARY KEY(branch, seq)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS events_branch_day ON events(branch, day)",
)


def bare_event(seq: int, size: int) -> str:
    """A JSON event body shaped like the hub's, padded to about `size` bytes."""
    ev = {"type": "ticket.called", "at": f"2026-05-19T08:05:{seq % 60:02d}.{seq * 7919 % 10 ** 6:06d}+07:00",
          "branch": "1", "day": "2026-05-19", "ticket": f"t{seq * 2654435761 % 2 ** 32:08x}",
          "number": str(1001 + seq % 400), "service": "dat-dai", "counter": str(1 + seq % 5),
          "channel": "kiosk", "priority": False, "seq": seq, "pad": ""}
    body = json.dumps(ev, separators=(",", ":"))
    ev["pad"] = "x" * max(0, size - len(body))
    return json.dumps(ev, separators=(",", ":"))


async def bare_run(path: Path, count: int, rate: float,
                   event_bytes: int) -> tuple[list[Sample], tuple[str, int], int]:
    async with aiosqlite.connect(path, isolation_level=None) as db:
        for pragma in PRAGMAS:
            await db.execute_fetchall(pragma)
        for statement in BARE_SCHEMA:
            await db.execute(statement)
        await db.execute("INSERT INTO branches(branch, seq, epoch) VALUES ('1', 0, 'bench')")
        lock = asyncio.Lock()          # one connection, one transaction at a time (as the store)
        bodies = [bare_event(i + 1, event_bytes) for i in range(count)]

        async def fire(i: int, s: Sample) -> None:
            s.sent = asyncio.get_running_loop().time()
            try:
                async with lock:
                    await db.execute("BEGIN IMMEDIATE")
                    try:
                        await db.execute("INSERT INTO events(branch, seq, day, body) VALUES ('1', ?, ?, ?)",
                                         (i + 1, "2026-05-19", bodies[i]))
                        await db.execute("UPDATE branches SET seq = ? WHERE branch = '1'", (i + 1,))
                        await db.commit()
                    except BaseException:
                        await db.rollback()
                        raise
                s.status = -1
            except Exception as e:  # reported, never hidden
                s.status, s.code = 0, type(e).__name__
            s.answered = asyncio.get_running_loop().time()

        samples = await open_loop(count, rate, fire)
        [(mode,)] = await db.execute_fetchall("PRAGMA journal_mode")
        [(sync,)] = await db.execute_fetchall("PRAGMA synchronous")
    return samples, (mode, sync), len(bodies[0])


# -- the hub --------------------------------------------------------------------------------------

@dataclass
class Hub:
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()                  # only the process we started, by its pid
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_hub(workdir: Path, profile: Path | None) -> Hub:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env.update({"QUEUECAST_DATABASE": f"sqlite:///{workdir / 'hub.db'}", "QUEUECAST_SECRET": SECRET,
                "QUEUECAST_CLOCK": CLOCK, "QUEUECAST_ISSUE_RATE": "100000/60",
                # Every subscriber comes from 127.0.0.1: the per-address cap would refuse all but 50.
                "QUEUECAST_MAX_FEEDS_PER_ADDRESS": "1000000"})
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if profile is None:
        cmd = [sys.executable, "-m", "hub", *serve]
    else:
        cmd = [sys.executable, "-c", PROFILED, str(profile), *serve]
    log = workdir / "hub.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return Hub(proc, f"http://127.0.0.1:{port}", log)


async def wait_ready(hub: Hub, session: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise RuntimeError(f"hub exited with {hub.proc.returncode}:\n{hub.log.read_text()[-3000:]}")
        try:
            async with session.get(f"{hub.url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"hub not ready within {START_TIMEOUT} s:\n{hub.log.read_text()[-3000:]}")


@dataclass
class Plan:
    counters: list[tuple[str, str, str]]        # (branch, counter, field) opened on that one field
    per_counter: int                            # numbers issued on each of those fields
    caps: list[int] = field(default_factory=list)


def make_plan(needed: int, min_counters: int) -> Plan:
    """One counter per (branch, field), each branch's largest fields first, spread over branches.

    A field's daily cap bounds how many numbers it can have, so the calls are spread over enough
    (branch, field) queues that each one's share, plus a margin, stays within its cap."""
    centre = load_config()
    cands = []
    for b in centre.branches.values():
        fields = sorted(b.services.values(), key=lambda s: -s.daily_cap)
        for rank, (counter, svc) in enumerate(zip(b.counters, fields)):
            cands.append((-svc.daily_cap, rank, int(b.id) if b.id.isdigit() else 0, b.id, counter, svc.id,
                          svc.daily_cap))
    cands.sort()
    for k in range(max(1, min_counters), len(cands) + 1):
        per = math.ceil(needed / k) + 3                      # margin: never the last number
        if per <= cands[k - 1][-1]:
            chosen = cands[:k]
            return Plan([(c[3], c[4], c[5]) for c in chosen], per, [c[-1] for c in chosen])
    raise SystemExit(f"bench: {needed} calls need more numbers than the configured caps allow; "
                     "lower --rate or --seconds")


async def prepare(hub: Hub, session: aiohttp.ClientSession, plan: Plan, tokens: Tokens) -> float:
    """Opens the counters and issues the numbers (not measured). Returns the seconds it took."""
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    for branch, counter, svc in plan.counters:
        async with session.post(f"{hub.url}/api/branches/{branch}/counters/{counter}/open",
                                json={"services": [svc]}, timeout=timeout,
                                headers={"Authorization": f"Bearer {tokens.staff(branch)}"}) as r:
            if r.status != 200:
                raise RuntimeError(f"open {branch}/{counter}: {r.status} {await r.text()}")
    sem = asyncio.Semaphore(8)

    async def issue(branch: str, svc: str) -> None:
        async with sem:
            # As branch staff: exempt from a kiosk device's pace (not what is measured here).
            async with session.post(f"{hub.url}/api/branches/{branch}/tickets",
                                    json={"service": svc, "channel": "kiosk"}, timeout=timeout,
                                    headers={"Authorization": f"Bearer {tokens.staff(branch)}"}) as r:
                if r.status != 201:
                    raise RuntimeError(f"issue {branch}/{svc}: {r.status} {await r.text()}")
                await r.read()

    # interleaved over the queues, as numbers are taken through a morning
    jobs = [issue(b, s) for _ in range(plan.per_counter) for (b, _c, s) in plan.counters]
    for i in range(0, len(jobs), 200):
        await asyncio.gather(*jobs[i:i + 200])
    return time.monotonic() - started


async def hub_run(hub: Hub, session: aiohttp.ClientSession, plan: Plan, tokens: Tokens,
                  count: int, rate: float, warmup_n: int) -> tuple[list[Sample], dict]:
    targets = [(f"{hub.url}/api/branches/{b}/counters/{c}/call-next",
                {"Authorization": f"Bearer {tokens.staff(b)}"}) for (b, c, _s) in plan.counters]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    marks: dict = {}

    def mark(name: str):
        def read() -> None:
            marks[name] = {"hub": proc_cpu(hub.proc.pid), "self": os.times()[:2], "system": system_cpu(),
                           "wall": time.monotonic()}
        return read

    async def fire(i: int, s: Sample) -> None:
        url, headers = targets[i % len(targets)]
        s.sent = asyncio.get_running_loop().time()
        try:
            async with session.post(url, headers=headers, timeout=timeout) as r:
                body = await r.read()
                s.status = r.status
                if r.status != 200:
                    try:
                        s.code = json.loads(body).get("error", {}).get("code", "") or body[:80].decode()
                    except (ValueError, AttributeError):
                        s.code = body[:80].decode(errors="replace")
        except Exception as e:  # a timeout or a broken connection: an error, reported
            s.status, s.code = 0, type(e).__name__
        s.answered = asyncio.get_running_loop().time()

    samples = await open_loop(count, rate, fire, on_index={warmup_n: mark("start"), count: mark("end")})
    a, b = marks["start"], marks["end"]
    n = count - warmup_n
    hub_user, hub_sys = b["hub"][0] - a["hub"][0], b["hub"][1] - a["hub"][1]
    self_cpu = sum(b["self"]) - sum(a["self"])
    busy, total = b["system"][0] - a["system"][0], b["system"][1] - a["system"][1]
    cpu = {"hub_user_s": hub_user, "hub_sys_s": hub_sys,
           "hub_ms_per_command": (hub_user + hub_sys) * 1000 / n,
           "loadgen_ms_per_command": self_cpu * 1000 / n,
           "wall_s": b["wall"] - a["wall"],
           "machine_busy_cores": (busy / total) * (os.cpu_count() or 1) if total else float("nan")}
    return samples, cpu


async def deliberate_empty(hub: Hub, session: aiohttp.ClientSession, tokens: Tokens, plan: Plan) -> str:
    """One deliberate 409: a counter opened on a field with no numbers. Checks the error path."""
    centre = load_config()
    used = {(b, c) for b, c, _ in plan.counters}
    used_fields = {(b, s) for b, _, s in plan.counters}
    for b in centre.branches.values():
        for counter in b.counters:
            svc = next((s for s in b.services if (b.id, s) not in used_fields), None)
            if (b.id, counter) in used or svc is None:
                continue
            headers = {"Authorization": f"Bearer {tokens.staff(b.id)}"}
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            async with session.post(f"{hub.url}/api/branches/{b.id}/counters/{counter}/open",
                                    json={"services": [svc]}, headers=headers, timeout=timeout) as r:
                await r.read()
            async with session.post(f"{hub.url}/api/branches/{b.id}/counters/{counter}/call-next",
                                    headers=headers, timeout=timeout) as r:
                body = await r.json(content_type=None)
                return f"{r.status} {body.get('error', {}).get('code', '?')}"
    return "skipped (no free counter)"


def hub_log_ms(log: Path, warmup_n: int) -> tuple[list[float], Counter]:
    """The hub's own 'ms' per successful call-next (branch lock wait + decide + store append +
    publish, not HTTP), in log order, the first warmup_n dropped (about the warm-up)."""
    ms, outcomes = [], Counter()
    for line in log.read_text(errors="replace").splitlines():
        if '"call-next"' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("cmd") == "call-next":
            outcomes[rec.get("outcome")] += 1
            if rec.get("outcome") == "ok":
                ms.append(float(rec["ms"]))
    return ms[warmup_n:], outcomes


def store_facts(db: Path) -> dict:
    """Sizes of what call-next actually wrote, to check the baseline's row is comparable."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT json_extract(body, '$.type'), count(*), avg(length(body))"
                           " FROM events GROUP BY 1").fetchall()
    finally:
        con.close()
    return {t: {"count": n, "avg_bytes": round(avg, 1)} for t, n, avg in rows}


# -- main -----------------------------------------------------------------------------------------

def latencies(samples: list[Sample], ok_status: int, start: int) -> tuple[dict, dict, Counter]:
    measured = samples[start:]
    ok = [s for s in measured if s.status == ok_status]
    errors = Counter(f"{s.status} {s.code}".strip() for s in measured if s.status != ok_status)
    sched = summary([(s.answered - s.scheduled) * 1000 for s in ok])
    sent = summary([(s.answered - s.sent) * 1000 for s in ok])
    sched["ok"], sched["errors"] = len(ok), sum(errors.values())
    lag = sorted((s.sent - s.scheduled) * 1000 for s in measured)
    sched["send_lag_p50_ms"], sched["send_lag_max_ms"] = pct(lag, 0.5), (lag[-1] if lag else float("nan"))
    return sched, sent, errors


async def run(args) -> dict:
    warmup_n = round(args.warmup * args.rate)
    measured_n = round(args.seconds * args.rate)
    count = warmup_n + measured_n
    plan = make_plan(count, args.min_counters)
    workdir = Path(tempfile.mkdtemp(prefix="queuecast-bench-", dir=args.tmpdir))
    result: dict = {"rate": args.rate, "seconds": args.seconds, "warmup_s": args.warmup,
                    "measured": measured_n, "warmup": warmup_n, "machine": machine(),
                    "tmp_filesystem": filesystem_of(workdir), "pragmas": list(PRAGMAS),
                    "counters": len(plan.counters), "branches": len({b for b, _, _ in plan.counters}),
                    "numbers_per_counter": plan.per_counter, "profile": str(args.profile or "")}
    hub = None
    try:
        hub = start_hub(workdir, args.profile)
        tokens = Tokens(SECRET)
        connector = aiohttp.TCPConnector(limit=100, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(hub, session)
            result["prepare_s"] = round(await prepare(hub, session, plan, tokens), 1)
            print(f"prepared: {len(plan.counters)} counters in {result['branches']} branches, "
                  f"{plan.per_counter} numbers each, in {result['prepare_s']} s", file=sys.stderr)

            bare, (mode, sync), body_len = await bare_run(workdir / "bare.db", count, args.rate, args.event_bytes)
            result["bare_settings"] = {"journal_mode": mode, "synchronous": sync, "event_bytes": body_len}
            print("bare baseline done", file=sys.stderr)

            await asyncio.sleep(0.5)
            samples, cpu = await hub_run(hub, session, plan, tokens, count, args.rate, warmup_n)
            result["cpu"] = cpu
            result["deliberate_409"] = await deliberate_empty(hub, session, tokens, plan)
        result["hub"], result["hub_sent"], hub_errors = latencies(samples, 200, warmup_n)
        result["hub_errors"] = dict(hub_errors)
        result["bare"], result["bare_sent"], bare_errors = latencies(bare, -1, warmup_n)
        result["bare_errors"] = dict(bare_errors)
        hub.stop()
        ms, outcomes = hub_log_ms(hub.log, warmup_n)
        result["hub_command_ms"] = summary(ms)
        result["hub_log_outcomes"] = dict(outcomes)
        result["store_events"] = store_facts(workdir / "hub.db")
        result["ratio_p99"] = result["hub"]["p99"] / result["bare"]["p99"]
        result["target_met"] = result["ratio_p99"] <= TARGET and not hub_errors
        return result
    finally:
        if hub is not None:
            hub.stop()
            if args.keep_log:
                shutil.copy(hub.log, args.keep_log)
        shutil.rmtree(workdir, ignore_errors=True)


def report(r: dict) -> None:
    m = r["machine"]
    print(f"queuecast call-next benchmark: {r['rate']:g}/s open loop, {r['measured']} measured "
          f"(+{r['warmup']} warm-up), {r['counters']} counters in {r['branches']} branches")
    print(f"machine: {m['nproc']} cores, {m['cpu']}, kernel {m['kernel']}, Python {m['python']}, "
          f"SQLite {m['sqlite']}; /tmp: {r['tmp_filesystem']}; load avg {' '.join(m['loadavg'])}")
    print(f"durability: {'; '.join(r['pragmas'])} (bare connection: journal_mode={r['bare_settings']['journal_mode']},"
          f" synchronous={r['bare_settings']['synchronous']}, event row {r['bare_settings']['event_bytes']} B)")
    print()
    head = f"{'latency (ms)':<34}{'n':>6}{'err':>5}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}"
    print(head)
    print("-" * len(head))

    def row(name: str, s: dict, err) -> None:
        print(f"{name:<34}{s['n']:>6}{err:>5}{s['p50']:>8.2f}{s['p90']:>8.2f}{s['p99']:>8.2f}{s['max']:>8.2f}")

    row("hub call-next, scheduled->answer", r["hub"], r["hub"]["errors"])
    row("hub call-next, sent->answer", r["hub_sent"], "")
    row("hub command 'ms' (hub log)", r["hub_command_ms"], "")
    row("bare write+commit, sched->commit", r["bare"], r["bare"]["errors"])
    row("bare write+commit, sent->commit", r["bare_sent"], "")
    print()
    verdict = "MET" if r["target_met"] else "MISSED"
    print(f"p99 ratio hub/bare: {r['ratio_p99']:.2f}x  (target <= {TARGET:g}x: {verdict})")
    c = r["cpu"]
    print(f"hub CPU per call-next: {c['hub_ms_per_command']:.2f} ms (user {c['hub_user_s']:.2f} s, "
          f"sys {c['hub_sys_s']:.2f} s over {c['wall_s']:.1f} s); load generator "
          f"{c['loadgen_ms_per_command']:.2f} ms/command; whole machine busy {c['machine_busy_cores']:.2f} cores")
    if r["hub_errors"] or r["bare_errors"]:
        print(f"ERRORS: hub {r['hub_errors']}  bare {r['bare_errors']}")
    print(f"deliberate call-next on an empty queue: {r['deliberate_409']} (expected 409 queue_empty)")
    print(f"lag of a send behind its schedule (load generator), p50/max: hub {r['hub']['send_lag_p50_ms']:.2f}/"
          f"{r['hub']['send_lag_max_ms']:.2f} ms, bare {r['bare']['send_lag_p50_ms']:.2f}/{r['bare']['send_lag_max_ms']:.2f} ms")
    ev = ", ".join(f"{t}: {v['count']} x {v['avg_bytes']:.0f} B" for t, v in sorted(r["store_events"].items()))
    print(f"hub events written: {ev}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=50.0, help="call-next commands per second (default 50)")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds (default 30)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds sent first and not counted (default 2)")
    p.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    p.add_argument("--event-bytes", type=int, default=300, help="JSON size of the bare event row (default 300)")
    p.add_argument("--min-counters", type=int, default=12, help="open at least this many counters (default 12)")
    p.add_argument("--tmpdir", help="where the temporary database files go (default: the system's)")
    p.add_argument("--profile", type=Path, help="run the hub under cProfile, stats to this file "
                   "(slows the hub: for finding where time goes, not for the figures)")
    p.add_argument("--keep-log", type=Path, help="copy the hub's log here before the temp dir goes")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0:
        p.error("--rate and --seconds must be positive, --warmup not negative")
    if args.profile is not None:
        args.profile = args.profile.resolve()
    result = asyncio.run(run(args))
    report(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    # 0 whatever the verdict (a noisy machine may miss it); 1 only if requests failed
    return 1 if result["hub_errors"] or result["bare_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
