"""Messages per second through the notification outbox, from the store to a fake eSMS gateway.

A benchmark, not a test: it prints figures and asserts nothing. For each backend (SQLite on a
temporary file; Redis on a `redis-server` of its own, on a free 127.0.0.1 port, stopped by its pid at
the end) it runs three cases, each on a fresh store and a fresh fake gateway:

- 1 worker, rate limit off (QUEUECAST_NOTIFY_RATE far above what the loop can do): the drain speed;
- 2 workers draining the same outbox at once: claims never overlap (received == attempts == messages);
- 1 worker at the default QUEUECAST_NOTIFY_RATE (20/s) on fewer messages: the limiter holds.

Setting up a case (not measured): a QueueService as `queuecast notifier` builds it (hub.app), on a ManualClock
at 09:00 of a working day (kiosk issuing open, and no lease or retry falls due mid-run), issues kiosk
numbers with a phone round-robin over the first fields of every branch (a field's daily cap bounds
each queue), until the outbox holds the wanted number of SMS: an "issued" for every number and an
"ahead" for the first few of each queue, written with their events as the hub writes them.

Measured: each worker, with its own store connection and QueueService loaded from the log (two
notifier processes would have no more in common), steps until the outbox has nothing queued or
sending (bounded in steps and wall time). Worker CPU is this process's CPU (time.process_time:
the event loop, the store's thread for SQLite, the JSON log lines each send writes) less the fake
gateway's, which runs on its own event loop in a thread so that it is counted apart. For Redis,
the server's own CPU is shown beside it.

Columns: messages = SMS the outbox owed (counted with Outbox.counts); msg/s = sent / wall; CPU s/1k
= worker CPU seconds per 1000 sent, gw and redis the same for the fake gateway and redis-server;
attempts = requests the gateway got, received = messages it took (equal: nothing sent twice); left
= still queued or sending; other = failed, dead or dropped; steps = Worker.step calls, all workers.

Usage: .venv/bin/python bench/notifier.py [--messages 2000] [--backends sqlite,redis] [--batch 50]
                                          [--limited 200]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hub import logs  # noqa: E402
from hub.app import open_service  # noqa: E402
from hub.clock import ManualClock  # noqa: E402
from hub.domain import commands  # noqa: E402
from hub.phones import normalize_phone  # noqa: E402
from hub.service.queue import QueueService  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.store.outbox import DEAD, DROPPED, FAILED, QUEUED, SENDING, SENT  # noqa: E402
from notifier.channels import open_senders  # noqa: E402
from notifier.fakes.esms import FakeEsms  # noqa: E402
from notifier.worker import Worker  # noqa: E402

SECRET = "bench-secret-not-for-production"
START = "2026-05-19T09:00:00"          # a Tuesday, kiosk issuing open
FIELDS_PER_BRANCH = 4                  # queues per branch the numbers are spread over
UNLIMITED = 1e6                        # messages a second: the limiter never waits
DEADLINE = 60.0                        # wall seconds a drain may take, at most
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- Redis of our own (as tests/conftest.py start_redis) ---------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(workdir / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
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
    proc.kill()
    raise RuntimeError("redis-server did not answer PING within 10 s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()               # only the process we started, by its pid
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/PID/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        after_comm = f.read().rsplit(")", 1)[1].split()
    return (int(after_comm[11]) + int(after_comm[12])) / CLK_TCK


# -- the fake gateway, on an event loop of its own -----------------------------------------------------

class FakeInThread:
    """FakeEsms served from its own thread and loop: its CPU (a gateway's work, elsewhere in real
    life) is read from the thread's clock and taken out of the worker's figure. `.fake.received`
    and `.fake.attempts` are read once the drain is over."""

    def __enter__(self) -> FakeInThread:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-esms", daemon=True)
        self.thread.start()
        self.fake = FakeEsms()
        asyncio.run_coroutine_threadsafe(self.fake.__aenter__(), self.loop).result(10)
        return self

    def cpu(self) -> float:
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.__aexit__(None, None, None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# -- one case -------------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def service_on(settings: Settings, clock: ManualClock):
    """A loaded QueueService and its outbox on their own store connection, as `queuecast notifier`
    builds them (hub.app.open_service)."""
    async with open_service(settings, clock=clock) as (service, storage, _):
        yield service, storage.outbox


async def fill(service: QueueService, outbox, messages: int) -> int:
    """Issues kiosk numbers with a phone until about `messages` SMS are owed; how many are."""
    queues = [(b.id, svc) for b in service.centre.branches.values() for svc in list(b.services)[:FIELDS_PER_BRANCH]]
    # Few messages: few queues, so that "ahead" (the first notify_ahead + 1 of a queue) stays a share.
    queues = queues[:max(1, min(len(queues), messages // 40))]
    sizes = dict.fromkeys(queues, 0)
    owed = i = 0
    while owed < messages:
        q = queues[i % len(queues)]
        phone = normalize_phone(f"09{i:08d}")
        decide = partial(commands.issue, service=q[1], channel="kiosk", phone=phone)
        # service.issue without its answer: the same events and outbox items in one transaction,
        # but the answer's ETA (a simulation of the branch's day) would take most of the run.
        await service.run("issue", q[0], decide, lambda st, evs, now: {})
        # what rules.owed makes of it: an "issued", and an "ahead" while the queue is short
        owed += 1 + (sizes[q] <= service.rules.ahead)
        sizes[q] += 1
        i += 1
    counts = await outbox.counts()
    return counts[QUEUED]


async def drain(worker: Worker, max_steps: int, deadline: float) -> tuple[int, str | None]:
    """Steps until nothing is queued or sending (another worker may hold claims): the steps taken,
    and the error a step failed with, if one did. A failed step stops this worker's drain: what it
    left `sending` would only be taken again when its lease runs out, which the clock never reaches."""
    for steps in range(1, max_steps + 1):
        try:
            done = await worker.step()
        except Exception as e:
            return steps, f"{type(e).__name__}: {e}"
        if done == 0:
            counts = await worker.outbox.counts()
            if counts[QUEUED] + counts[SENDING] == 0 or time.monotonic() > deadline:
                return steps, None
            await asyncio.sleep(0.01)           # the other worker's sends are still under way
    return max_steps, None


async def case(base: Settings, database: str, *, workers: int, rate: float, batch: int, messages: int,
               redis_pid: int | None) -> dict:
    clock = ManualClock(datetime.fromisoformat(START).replace(tzinfo=base.zone))
    with FakeInThread() as gw:
        settings = replace(base, database=database, sms_url=gw.fake.url)
        async with service_on(settings, clock) as (hub, outbox):
            owed = await fill(hub, outbox, messages)
        async with contextlib.AsyncExitStack() as stack:
            team = []
            for _ in range(workers):                  # each its own store, service and HTTP session
                service, outbox = await stack.enter_async_context(service_on(settings, clock))
                senders = await stack.enter_async_context(open_senders(settings))
                team.append(Worker(service, outbox, senders, rate=rate, batch=batch, sms_diacritics=settings.sms_diacritics))
            max_steps = 10 * (owed // batch + 1) + 100
            redis0 = proc_cpu(redis_pid) if redis_pid else 0.0
            cpu0, gw0, t0 = time.process_time(), gw.cpu(), time.perf_counter()
            steps = await asyncio.gather(*(drain(w, max_steps, time.monotonic() + DEADLINE) for w in team))
            wall = time.perf_counter() - t0
            cpu, gw_cpu = time.process_time() - cpu0, gw.cpu() - gw0
            redis_cpu = proc_cpu(redis_pid) - redis0 if redis_pid else None
            counts = await team[0].outbox.counts()
    return {"workers": workers, "rate": rate, "batch": batch, "owed": owed, "sent": counts[SENT],
            "left": counts[QUEUED] + counts[SENDING], "other": sum(counts[s] for s in (FAILED, DEAD, DROPPED)),
            "wall": wall, "cpu": cpu - gw_cpu, "gw_cpu": gw_cpu, "redis_cpu": redis_cpu,
            "attempts": gw.fake.attempts, "received": len(gw.fake.received), "steps": sum(n for n, _ in steps),
            "errors": [e for _, e in steps if e],
            "split": "+".join(str(w.counts["sent"]) for w in team)}


# -- the run --------------------------------------------------------------------------------------

HEADER = (f"{'backend':8} {'workers':>7} {'rate/s':>7} {'batch':>5} {'messages':>8} {'wall s':>7} {'msg/s':>7} "
          f"{'CPU s/1k':>8} {'gw CPU/1k':>9} {'redis/1k':>8} {'attempts':>8} {'received':>8} {'sent':>6} {'left':>4} "
          f"{'other':>5} {'steps':>5}  sent by each worker")


def row(backend: str, r: dict) -> str:
    per_k = 1000 / max(1, r["sent"])
    rate = "off" if r["rate"] >= UNLIMITED else f"{r['rate']:g}"
    redis = "-" if r["redis_cpu"] is None else f"{r['redis_cpu'] * per_k:.2f}"
    return (f"{backend:8} {r['workers']:>7} {rate:>7} {r['batch']:>5} {r['owed']:>8} {r['wall']:>7.2f} "
            f"{r['sent'] / r['wall']:>7.0f} {r['cpu'] * per_k:>8.2f} {r['gw_cpu'] * per_k:>9.2f} {redis:>8} "
            f"{r['attempts']:>8} {r['received']:>8} {r['sent']:>6} {r['left']:>4} {r['other']:>5} {r['steps']:>5}"
            f"  {r['split']}"
            + "".join(f"\n         a step failed: {e}" for e in r["errors"]))


async def run(args: argparse.Namespace, workdir: Path) -> None:
    base = Settings(sms_provider="esms", sms_key="esms-key", sms_secret="esms-secret", sms_sender="QUEUECAST",
                    secret=SECRET)
    cases = [(1, UNLIMITED, args.messages), (2, UNLIMITED, args.messages), (1, base.notify_rate, args.limited)]
    print(HEADER, flush=True)
    for backend in args.backends.split(","):
        redis = start_redis(workdir) if backend == "redis" else None
        try:
            for n, (workers, rate, messages) in enumerate(cases):
                database = (f"sqlite:///{workdir / f'case{n}.db'}" if redis is None
                            else f"redis://127.0.0.1:{redis[1]}/0?prefix=bench{n}:")
                r = await case(base, database, workers=workers, rate=rate, batch=args.batch, messages=messages,
                               redis_pid=redis and redis[0].pid)
                print(row(backend, r), flush=True)
        finally:
            if redis is not None:
                stop_process(redis[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000, help="SMS owed in the unlimited cases")
    ap.add_argument("--limited", type=int, default=200, help="SMS owed in the rate-limited case")
    ap.add_argument("--backends", default="sqlite,redis")
    ap.add_argument("--batch", type=int, default=50, help="items a worker claims at once")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="queuecast-bench-notifier-"))
    # The log lines a notifier writes are part of its cost: written as in production, to a file.
    logs.setup()
    handler = logging.FileHandler(workdir / "notifier.log")
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger("queuecast").handlers[:] = [handler]
    print(f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"loadavg {' '.join(open('/proc/loadavg').read().split()[:3])}; worker CPU excludes the fake gateway")
    try:
        asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
