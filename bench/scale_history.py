"""Start-up part of bench/scale.py: a configuration of many branches, days of their events written
straight into Redis, and the time until a fresh `queuecast serve` on it is ready.

The history is the simulator's (hub.sim, the real domain deciding every event) for one branch of
the generated configuration, copied to every branch with its `branch` field changed: each branch
folds the same ~1,300 events a day (~380 numbers issued, called, completed, ...), which is what a
start-up pays for, and writing it stays quick (the JSON is made once per event, not per branch).
It is written as the Redis store keeps a log (hub/store/redis.py, hub/store/redis_eventlog.py):
per branch a stream `...:log` with entry `<seq>-1` and field `e` = the event's JSON, a list
`...:day:<YYYY-MM-DD>` of the day's seqs and the hash `...:head` (seq, epoch, base), through
`redis-cli --pipe` (raw RESP: a million commands in seconds). Only public surfaces are used after
that: the CLI (`queuecast serve`), /readyz, and a first command over HTTP.
"""
from __future__ import annotations

import json
import random
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import httpx
from call_next import proc_cpu  # bench/ is on sys.path (bench/scale.py)
from faults_procs import ROOT, Procs, free_port, readyz, stop, wait_for  # bench/ is on sys.path (bench/scale.py)


class Processes(Procs):
    """bench/faults_procs.py's Procs, with extra QUEUECAST_ settings for every hub (--hub-env)."""

    def __init__(self, workdir: Path, extra: dict[str, str] | None = None):
        super().__init__(workdir)
        self.extra = extra or {}
        workdir.mkdir(parents=True, exist_ok=True)

    def hub_env(self, database: str) -> dict[str, str]:
        return {**super().hub_env(database), **self.extra}


TEMPLATE_BRANCH = "3"           # hanoi.toml's branch 3: 13 fields, a dozen counters, no overrides
START = date(2026, 5, 18)       # a working Monday: the history's first day
PLACEHOLDER = "\x00branch\x00"


def config_text(branches: int) -> str:
    """hanoi.toml with kiosks on 127.0.0.1 allowed and `branches` copies of its branch 3."""
    text = (ROOT / "hub" / "hanoi.toml").read_text(encoding="utf-8")
    head, _, rest = text.partition("\n[[branches]]\n")
    head = head.replace("\n[policy]\n", '\n[policy]\nkiosk_lobby_networks = ["127.0.0.0/8", "::1/128"]\n', 1)
    blocks = ("[[branches]]\n" + rest).split("\n[[branches]]\n")
    block = next(b for b in blocks if re.search(rf'^id = "{TEMPLATE_BRANCH}"$', b, re.M))
    block = block.removeprefix("[[branches]]\n")
    out = [head]
    for i in range(1, branches + 1):
        b = re.sub(r'^id = "[^"]*"$', f'id = "{i}"', block, count=1, flags=re.M)
        b = re.sub(r'^name = "[^"]*"$', f'name = "Chi nhánh {i}"', b, count=1, flags=re.M)
        b = re.sub(r'^name_en = "[^"]*"$', f'name_en = "Branch {i}"', b, count=1, flags=re.M)
        out.append("\n[[branches]]\n" + b.rstrip("\n") + "\n")
    return "".join(out)


def template(config: Path, days: int, scenario: str) -> tuple[list[tuple[str, str]], date, Counter[str]]:
    """The simulated events of branch 1 as (day, JSON with the branch id left as PLACEHOLDER), the
    first working day after them (the hub's "today") and the events by type."""
    from hub.config import load_config
    from hub.domain import calendar
    from hub.sim.run import simulate
    centre = load_config(config)
    branch = centre.branches["1"]
    evs = list(simulate(branch, ZoneInfo(centre.timezone), days=days, start=START, scenario=scenario))
    out = []
    for seq, ev in enumerate(evs, start=1):
        stored = {**ev, "branch": PLACEHOLDER, "seq": seq}
        out.append((ev["day"], json.dumps(stored, ensure_ascii=False, separators=(",", ":"))))
    today = calendar.next_working_day(branch.calendar, date.fromisoformat(evs[-1]["day"]))
    return out, today, Counter(ev["type"] for ev in evs)


def resp(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def write_history(out: IO[bytes], prefix: str, branches: int, events: list[tuple[str, str]]) -> int:
    """RESP commands for every branch's log, day lists and head; returns the commands written."""
    quoted = json.dumps(PLACEHOLDER)
    n = 0
    for i in range(1, branches + 1):
        b = str(i)
        tag = f"{prefix}{{b:{b}}}"
        ident = json.dumps(b)
        days: dict[str, list[str]] = {}
        chunk = []
        for seq, (day, text) in enumerate(events, start=1):
            chunk.append(resp("XADD", f"{tag}:log", f"{seq}-1", "e", text.replace(quoted, ident, 1)))
            days.setdefault(day, []).append(str(seq))
        for day, seqs in days.items():
            chunk.append(resp("RPUSH", f"{tag}:day:{day}", *seqs))
        chunk.append(resp("HSET", f"{tag}:head", "seq", str(len(events)), "epoch", secrets.token_hex(8), "base", "0"))
        out.write(b"".join(chunk))
        n += len(chunk)
    return n


def populate(redis_port: int, prefix: str, branches: int, events: list[tuple[str, str]]) -> dict:
    started = time.monotonic()
    pipe = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(redis_port), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert pipe.stdin is not None
    try:
        commands = write_history(pipe.stdin, prefix, branches, events)
        said = pipe.communicate(timeout=600)[0].decode(errors="replace")
    finally:
        stop(pipe)
    m = re.search(r"errors: (\d+), replies: (\d+)", said)
    if not m or m.group(1) != "0" or int(m.group(2)) != commands:
        raise RuntimeError(f"redis-cli --pipe: {said.strip()[-300:]}")
    info = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(redis_port), "info", "memory"],
                          capture_output=True, text=True, timeout=30).stdout
    used = re.search(r"^used_memory:(\d+)", info, re.M)
    return {"commands": commands, "events": branches * len(events), "write_s": time.monotonic() - started,
            "redis_mib": int(used.group(1)) / 2**20 if used else float("nan")}


def time_start(procs: Procs, env: dict[str, str], branches: int, timeout: float, rng: random.Random,
               service: str, settle: float = 0.0) -> dict:
    """Start `queuecast serve`; seconds until /readyz is 200 and until a kiosk number at a random
    branch is answered; the process's CPU and RSS then. The process is stopped before returning."""
    port = free_port()
    log = procs.workdir / f"start-{port}.log"
    t0 = time.monotonic()
    proc = procs.popen([sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(port)], log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited {proc.returncode}: {log.read_text(errors='replace')[-300:]}")
            return readyz(_Url(url), 2) == 200
        wait_for(ready, f"a hub with {branches} branches ready", timeout, 0.05)
        t_ready = time.monotonic() - t0
        branch = str(rng.randint(1, branches))
        r = httpx.post(f"{url}/api/branches/{branch}/tickets", json={"service": service, "channel": "kiosk"},
                       timeout=max(30.0, timeout - t_ready))
        t_first = time.monotonic() - t0
        if not r.is_success:
            raise RuntimeError(f"the first command at branch {branch} answered {r.status_code}: {r.text[:200]}")
        user, sys_ = proc_cpu(proc.pid)
        rss = _rss_mib(proc.pid)
        out = {"ready_s": t_ready, "first_command_s": t_first, "branch": branch, "cpu_s": user + sys_, "rss_mib": rss}
        # Left running until it is quiet: what it does after answering (e.g. writing snapshots for
        # the next start) is done before it is stopped, and a restart finds it.
        out["quiet_s"], out["cpu_quiet_s"] = quiet(proc.pid, settle) if settle > 0 else (float("nan"), float("nan"))
        return out
    finally:
        stop(proc)


def quiet(pid: int, limit: float, window: float = 3.0, busy: float = 0.05) -> tuple[float, float]:
    """Seconds until process `pid` used less than `busy` CPU seconds in `window` s (at most `limit`
    s: NaN if never), and its CPU seconds then."""
    t0 = time.monotonic()
    last = sum(proc_cpu(pid))
    for _ in range(int(limit / window) + 1):
        time.sleep(window)
        now = sum(proc_cpu(pid))
        if now - last < busy:
            return time.monotonic() - t0, now
        last = now
        if time.monotonic() - t0 > limit:
            break
    return float("nan"), sum(proc_cpu(pid))


class _Url:                     # what faults_procs.readyz reads of a hub
    def __init__(self, url: str):
        self.url = url


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_startup(args, workdir: Path) -> dict:
    """Part 2 of bench/scale.py: one Redis, `args.branches` x `args.days` of history, `args.starts`
    timed starts of a fresh hub process on it (the second and later: a restart, after the first
    process left whatever it keeps, e.g. snapshots)."""
    procs = Processes(workdir / "startup", args.hub_env)
    try:
        config = procs.workdir / "branches.toml"
        config.write_text(config_text(args.branches), encoding="utf-8")
        t = time.monotonic()
        events, today, types = template(config, args.days, args.scenario)
        made_s = time.monotonic() - t
        rport = procs.redis("redis", appendonly=False)
        prefix = "s:"
        clock = datetime.combine(today, dtime(9, 0), ZoneInfo("Asia/Ho_Chi_Minh")).isoformat()
        env = {**procs.hub_env(f"redis://127.0.0.1:{rport}/0?prefix={prefix}"), "QUEUECAST_CONFIG": str(config),
               "QUEUECAST_CLOCK": clock, **args.hub_env}
        rng = random.Random(16)
        # The same start with no history first (under another prefix): what a start costs anyway.
        empty = time_start(procs, {**env, "QUEUECAST_DATABASE": f"redis://127.0.0.1:{rport}/0?prefix=empty:"},
                           args.branches, args.start_timeout, rng, "ho-tich")
        wrote = populate(rport, prefix, args.branches, events)
        starts = []
        for _ in range(args.starts):
            starts.append(time_start(procs, env, args.branches, args.start_timeout, rng, "ho-tich", args.settle))
        return {"branches": args.branches, "days": args.days, "scenario": args.scenario, "events_per_branch": len(events),
                "numbers_per_branch_day": types["ticket.issued"] / args.days, "template_s": made_s,
                "today": today.isoformat(), **wrote, "empty": empty, "starts": starts}
    finally:
        procs.stop_all()
