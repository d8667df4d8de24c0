"""Hub CPU per command with 1 and with 3 hub processes on one Redis (issue 16).

A benchmark, not a test. One redis-server (fresh dir, free port) and N real hub processes
(`python -m hub serve`, same prefix). Branch 1's land counters are opened and --warm numbers
issued at the first hub (not measured); then --commands commands go to the first hub, one after
another, alternating a kiosk number and a call-next over the counters. CPU = utime+stime
(/proc/PID/stat) of every hub, from before the first measured command until every hub has folded
the last event (its /api/branches/1 shows the head seq); reported per command, in total and per hub.
Nobody watches a feed (what the other hubs spend is what following the branch costs them), or with
--watchers one phone per hub on the feed of a number that keeps waiting (its view has a forecast).

--rate paces the commands (default 4/s: a busy branch, most events in a second of their own; 0:
back to back, when the points of one second share one forecast and the figures say little).

Each hub's CPU with no command is measured first (--idle seconds, ms per second): its loops over
every configured branch, which a process spends whatever the commands.

Usage: .venv/bin/python bench/forecast_cpu.py [--hubs 1,3] [--commands 200] [--warm 40] [--rate 4] [--watchers] [--idle 10]
       [--source DIR]   (DIR: another checkout of queuecast to measure instead, e.g. the commit before)
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from faults_procs import answers_ping, free_port, wait_for  # noqa: E402

from hub.auth import Tokens  # noqa: E402

SECRET = "bench-secret"
B = "1"
LAND, CIVIL = "dat-dai", "ho-tich"
TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait(cond, what: str, seconds: float = 60.0) -> None:
    wait_for(cond, what, seconds, interval=0.05)


def watch(url: str, token: str, stop: threading.Event) -> threading.Thread:
    """A phone on its ticket's feed at `url`, reading every frame until `stop`."""
    def read() -> None:
        with connect(url.replace("http://", "ws://") + f"/ws/tickets/{token}") as ws:
            while not stop.is_set():
                try:
                    ws.recv(timeout=0.2)
                except TimeoutError:
                    pass
                except ConnectionClosed:        # the hub stopped at the end of the run
                    return
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def drive(a: httpx.Client, staff: dict[str, str], issue: Callable[[], object], counters: list[str],
          commands: int, rate: float) -> None:
    """`commands` commands at hub `a`, a kiosk number and a call-next in turn (over `counters`),
    open loop: command i is sent at i / rate seconds (rate 0: back to back)."""
    started = time.monotonic()
    for i in range(commands):
        if rate > 0:
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
        if i % 2 == 0:
            issue()
        else:
            a.post(f"/api/branches/{B}/counters/{counters[(i // 2) % len(counters)]}/call-next",
                   headers=staff).raise_for_status()


@contextmanager
def hubs_on_redis(work: Path, source: Path, commands: list[list[str]], name: str
                  ) -> Iterator[tuple[list[subprocess.Popen[bytes]], list[httpx.Client]]]:
    """A fresh redis-server and one hub process per command line (`--host`, `--port` appended), all
    on `source`'s code and lobby configuration, each ready; every one stopped by its pid on exit."""
    rport = free_port()
    rdir = work / f"redis-{name}"
    rdir.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", str(rdir),
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait(lambda: answers_ping(rport), "redis")
        config = work / "hanoi-lobby.toml"
        if not config.exists():
            text = (source / "hub" / "hanoi.toml").read_text(encoding="utf-8")
            config.write_text(text.replace("\n[policy]\n", '\n[policy]\nkiosk_lobby_networks = ["127.0.0.0/8"]\n', 1),
                              encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(source), "QUEUECAST_DATABASE": f"redis://127.0.0.1:{rport}/0?prefix={name}:",
               "QUEUECAST_SECRET": SECRET, "QUEUECAST_CLOCK": "2026-05-19T09:00:00+07:00",
               "QUEUECAST_ISSUE_RATE": "100000/60", "QUEUECAST_CONFIG": str(config), "QUEUECAST_NOTIFIER": "worker",
               "QUEUECAST_LOG_LEVEL": "WARNING"}
        for i, cmd in enumerate(commands):
            port = free_port()
            with open(work / f"hub-{name}-{i}.log", "wb") as log:
                procs.append(subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(port)],
                                              env=env, cwd=source, stdout=log, stderr=log))
            clients.append(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30))

        def ready(c: httpx.Client) -> bool:
            try:
                return c.get("/readyz").status_code == 200
            except httpx.HTTPError:
                return False
        for c in clients:
            wait(lambda c=c: ready(c), "hub ready")
        yield procs, clients
    finally:
        for c in clients:
            c.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        redis.terminate()
        redis.wait(10)


def run(n_hubs: int, commands: int, warm: int, source: Path, work: Path, rate: float,
        watchers: bool, idle: float) -> dict[str, float]:
    serve = [sys.executable, "-m", "hub", "serve"]
    with hubs_on_redis(work, source, [serve] * n_hubs, f"b{n_hubs}") as (procs, clients):
        urls = [str(c.base_url).rstrip("/") for c in clients]
        staff = {"Authorization": f"Bearer {Tokens(SECRET).staff(B)}"}
        a = clients[0]
        counters = ["1", "2", "3", "4", "5"]
        for k in counters:
            a.post(f"/api/branches/{B}/counters/{k}/open", json={"services": [LAND]}, headers=staff).raise_for_status()

        def issue() -> None:
            a.post(f"/api/branches/{B}/tickets", json={"service": LAND, "channel": "kiosk"}).raise_for_status()
        for _ in range(warm):
            issue()
        stop = threading.Event()
        if watchers:        # a number of a field no open counter serves: it waits, its forecast moves
            r = a.post(f"/api/branches/{B}/tickets", json={"service": CIVIL, "channel": "kiosk"})
            r.raise_for_status()
            for u in urls:
                watch(u, r.json()["token"], stop)

        def head() -> int:
            return int(a.get(f"/api/branches/{B}").json()["seq"])

        def settled() -> bool:
            h = head()
            return all(int(c.get(f"/api/branches/{B}").json()["seq"]) == h for c in clients)
        wait(settled, "hubs at the head")
        # What each hub spends with no command at all (its loops over every configured branch,
        # the feeds' pings), over --idle seconds: the part of the figures below no command causes.
        before = [cpu(p.pid) for p in procs]
        time.sleep(idle)
        idle_ms = [round(1000 * (cpu(p.pid) - b) / idle, 2) for p, b in zip(procs, before)] if idle > 0 else []
        before = [cpu(p.pid) for p in procs]
        started = time.monotonic()
        drive(a, staff, issue, counters, commands, rate)
        wait(settled, "hubs at the head after the commands")
        wall = time.monotonic() - started
        used = [cpu(p.pid) - b for p, b in zip(procs, before)]
        stop.set()
        made = []                           # forecasts simulated per hub, where /metrics says (after issue 16)
        for c in clients:
            m = re.search(r'^queuecast_forecasts_computed_total\{branch="1"\} (\S+)$', c.get("/metrics").text, re.M)
            made.append(int(float(m.group(1))) if m else None)
        return {"hubs": n_hubs, "ms_per_command": 1000 * sum(used) / commands,
                "ms_per_command_by_hub": [round(1000 * u / commands, 2) for u in used],  # type: ignore[dict-item]
                "wall_s": wall, "forecasts": made, "idle_ms_per_s": idle_ms}  # type: ignore[dict-item]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hubs", default="1,3")
    ap.add_argument("--commands", type=int, default=200)
    ap.add_argument("--warm", type=int, default=40)
    ap.add_argument("--rate", type=float, default=4.0,
                    help="commands per second (0: back to back); a branch's pace, each event in its own second or so")
    ap.add_argument("--watchers", action="store_true", help="one phone on a waiting number's feed at every hub")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds each hub's CPU is measured with no command first")
    ap.add_argument("--source", type=Path, default=Path(__file__).resolve().parent.parent)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="forecast-cpu-"))
    try:
        for n in (int(x) for x in args.hubs.split(",")):
            r = run(n, args.commands, args.warm, args.source.resolve(), work, args.rate, args.watchers, args.idle)
            print(f"hubs={r['hubs']} cpu/command={r['ms_per_command']:.2f} ms "
                  f"(by hub: {r['ms_per_command_by_hub']}) wall={r['wall_s']:.1f} s forecasts made by hub: {r['forecasts']}"
                  f" idle CPU by hub: {r['idle_ms_per_s']} ms/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
