"""What "acknowledged means replicated" costs: call-next latency over HTTP on a Redis master with one
replica, without WAIT (QUEUECAST_REDIS_MIN_REPLICAS=0) and with it (=1), in the same run.

A benchmark, not a test. In one run it:

1. starts a Redis master and one replica (`redis-server --replicaof`, both appendonly no, on free
   127.0.0.1 ports, in a temporary directory) and waits until the replica is in sync;
2. baseline first: a real hub (`python -m hub serve`) on `redis://master?prefix=nowait:` with
   QUEUECAST_REDIS_MIN_REPLICAS=0; opens counters and issues the numbers (not measured, as
   bench/call_next.py does), then open-loop call-next requests at --rate for --seconds (request i
   scheduled at t0 + i/rate; latency = answer - scheduled time), the first --warmup seconds left out;
3. the same with a second hub on `?prefix=wait:` and QUEUECAST_REDIS_MIN_REPLICAS=1 (every append
   then runs WAIT 1 on its connection: one more round trip to the replica and back);
4. prints p50/p90/p99/max of both and the difference of the p99s, then stops every process it
   started (by its pid) and removes the temporary directory.

Usage: .venv/bin/python bench/wait_cost.py [--rate 40] [--seconds 15] [--warmup 2] [--wait-ms 500]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import redis  # noqa: E402
from call_next import (  # noqa: E402
    CLOCK,
    REQUEST_TIMEOUT,
    SECRET,
    Hub,
    Sample,
    free_port,
    machine,
    make_plan,
    open_loop,
    prepare,
    summary,
    wait_ready,
)
from faults_procs import wait_for  # noqa: E402

from hub.auth import Tokens  # noqa: E402

START_TIMEOUT = 30.0


def start_redis(workdir: Path, port: int, *extra: str) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                             "--logfile", str(workdir / "redis.log"), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait(lambda: _answers(port), f"redis-server on {port}")
    return proc


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def wait(cond, what: str, timeout: float = START_TIMEOUT) -> None:
    wait_for(cond, what, timeout, interval=0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()                     # only the processes we started, by their pid
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_hub(workdir: Path, database: str, replicas: int, wait_ms: int) -> Hub:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env.update({"QUEUECAST_DATABASE": database, "QUEUECAST_SECRET": SECRET, "QUEUECAST_CLOCK": CLOCK,
                "QUEUECAST_ISSUE_RATE": "100000/60", "QUEUECAST_REDIS_MIN_REPLICAS": str(replicas),
                "QUEUECAST_REDIS_WAIT_MS": str(wait_ms)})
    log = workdir / f"hub-{replicas}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Hub(proc, f"http://127.0.0.1:{port}", log)


async def measure(hub: Hub, count: int, rate: float, warmup_n: int) -> tuple[dict, dict]:
    tokens = Tokens(SECRET)
    plan = make_plan(count, 4)
    async with aiohttp.ClientSession() as session:
        await wait_ready(hub, session)
        await prepare(hub, session, plan, tokens)
        targets = [(f"{hub.url}/api/branches/{b}/counters/{c}/call-next",
                    {"Authorization": f"Bearer {tokens.staff(b)}"}) for (b, c, _s) in plan.counters]
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        loop = asyncio.get_running_loop()

        async def fire(i: int, s: Sample) -> None:
            url, headers = targets[i % len(targets)]
            s.sent = loop.time()
            try:
                async with session.post(url, headers=headers, timeout=timeout) as r:
                    await r.read()
                    s.status = r.status
            except Exception as e:       # counted, never hidden
                s.status, s.code = 0, type(e).__name__
            s.answered = loop.time()

        samples = (await open_loop(count, rate, fire))[warmup_n:]
    ok = [s for s in samples if s.status == 200]
    statuses: dict = {}
    for s in samples:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    return summary([(s.answered - s.scheduled) * 1000 for s in ok]), statuses


def line(name: str, s: dict, statuses: dict) -> str:
    return (f"{name:<22} n={s['n']:<5} p50={s['p50']:7.2f} ms  p90={s['p90']:7.2f} ms  p99={s['p99']:7.2f} ms  "
            f"max={s['max']:7.2f} ms  answers={statuses}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=40.0, help="call-next requests a second")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds at the start left out of the figures")
    ap.add_argument("--wait-ms", type=int, default=500, help="QUEUECAST_REDIS_WAIT_MS")
    args = ap.parse_args()
    count, warmup_n = int(args.rate * args.seconds), int(args.rate * args.warmup)
    workdir = Path(tempfile.mkdtemp(prefix="qc-wait-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        master_port, replica_port = free_port(), free_port()
        procs.append(start_redis(workdir / "master", master_port))
        procs.append(start_redis(workdir / "replica", replica_port, "--replicaof", "127.0.0.1", str(master_port)))
        wait(lambda: redis.Redis(port=replica_port, decode_responses=True).info("replication")
             .get("master_link_status") == "up", "the replica in sync")
        print(f"machine: {machine()}")
        print(f"call-next at {args.rate:g}/s for {args.seconds:g} s ({args.warmup:g} s warm-up left out), "
              f"Redis master + 1 replica on 127.0.0.1, WAIT timeout {args.wait_ms} ms")
        results = {}
        for name, prefix, replicas in (("no WAIT (replicas=0)", "nowait:", 0), ("WAIT 1 (replicas=1)", "wait:", 1)):
            hub = start_hub(workdir, f"redis://127.0.0.1:{master_port}/0?prefix={prefix}", replicas, args.wait_ms)
            procs.append(hub.proc)
            try:
                results[name] = asyncio.run(measure(hub, count, args.rate, warmup_n))
            finally:
                hub.stop()
            print(line(name, *results[name]), flush=True)
        (base, _), (waited, _) = results.values()
        print(f"WAIT costs {waited['p50'] - base['p50']:+.2f} ms at p50, {waited['p99'] - base['p99']:+.2f} ms at p99 "
              f"(p99 x{waited['p99'] / base['p99']:.2f})")
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
