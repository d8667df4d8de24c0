"""The scenarios of bench/faults.py that put a fault under load: none (standalone), kill -9 of a hub,
kill -9 of Redis, Redis Cluster, Sentinel failover. Each returns its figures and a one-line row."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from faults_check import check, read_logs
from faults_load import Load, Watcher, run_load
from faults_procs import Hub, Procs, kill9, readyz

RESTART_AFTER = 2.0             # s from the kill -9 of the Sentinel master to its restart
SENTINEL_SECONDS = 30.0         # the least load the sentinel scenario runs (see there)

@dataclass
class Size:
    hubs: int
    clients: int
    seconds: float
    rate: float                 # staff commands per second, all branches together
    branches: list[str]


def watchers(size: Size, n: int | None = None) -> list[Watcher]:
    """`clients` board watchers spread over the branches and the hubs."""
    return [Watcher(size.branches[i % len(size.branches)], start=i % size.hubs)
            for i in range(size.clients if n is None else n)]


def redis_url(port: int, prefix: str = "qc:") -> str:
    return f"redis://127.0.0.1:{port}/0?prefix={prefix}"


def start_hubs(procs: Procs, database: str, n: int) -> list[Hub]:
    return [procs.hub(database) for _ in range(n)]


async def measured(procs: Procs, size: Size, database: str, hubs: list[Hub], during: Any = None,
                   ws: list[Watcher] | None = None) -> tuple[dict[str, Any], Load, list[Watcher]]:
    """The load on `hubs` with `during` beside it, then the check against the Redis log."""
    load = Load([h.url for h in hubs])
    ws = watchers(size) if ws is None else ws
    await run_load(load, size.seconds, ws, size.rate, size.branches, during)
    figures = check(load, ws, await read_logs(database, size.branches))
    return figures, load, ws


def basics(f: dict[str, Any]) -> str:
    return (f"{f['lost']} of {f['acknowledged']} acknowledged lost, {f['called_twice']} called twice, "
            f"{f['gaps']} gaps, {f['duplicates']} duplicates, {f['frames_contradicting_log']} frames "
            f"contradicting the log ({f['frames']} frames to {f['clients']} clients)")


def must_be_zero(f: dict[str, Any], **more: int) -> None:
    """The figures of the scenario that the issue's "done" wants at zero, kept under one key."""
    f["must_be_zero"] = {k: f[k] for k in ("lost", "called_twice", "gaps", "duplicates", "frames_contradicting_log")
                         if k in f} | more


def not_503(f: dict[str, Any]) -> int:
    """5xx answers other than 503 (a store that cannot write answers 503 with Retry-After, never 500)."""
    return sum(v for k, v in f["faults"].items() if k.startswith("5") and not k.startswith("503"))


def five_xx(f: dict[str, Any]) -> str:
    bad = {k: v for k, v in f["faults"].items() if k.startswith("5")}
    return ", ".join(f"{v}x {k}" for k, v in sorted(bad.items())) or "no 5xx"


async def standalone(procs: Procs, size: Size) -> tuple[dict[str, Any], str]:
    db = redis_url(procs.redis("redis"))
    hubs = start_hubs(procs, db, size.hubs)
    f, _, _ = await measured(procs, size, db, hubs)
    must_be_zero(f)
    return f, basics(f)


async def kill_hub(procs: Procs, size: Size) -> tuple[dict[str, Any], str]:
    db = redis_url(procs.redis("redis"))
    hubs = start_hubs(procs, db, size.hubs)
    killed: dict[str, Any] = {}

    async def during(session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(size.seconds / 3)
        await asyncio.to_thread(kill9, hubs[0].proc)
        killed["at"] = time.monotonic()

    f, _, ws = await measured(procs, size, db, hubs, during)
    moved = [w for w in ws if w.start == 0]
    f["killed_hub_clients"] = len(moved)
    f["killed_hub_clients_resumed"] = sum(1 for w in moved if w.resumes > 0)
    refused = sum(f["reconnects_refused"].values())
    must_be_zero(f, reconnects_refused=refused, answers_5xx=sum(v for k, v in f["faults"].items() if k[0] == "5"))
    return f, (f"{basics(f)}; {f['killed_hub_clients_resumed']} of {len(moved)} clients of the killed hub "
               f"resumed elsewhere; {refused} reconnects refused {f['reconnects_refused'] or ''}; {five_xx(f)}")


def sample_ready(hubs: list[Hub], into: list[tuple[float, int, int]]) -> None:
    """(time, hub index, /readyz status) of every live hub, appended to `into`."""
    for i, h in enumerate(hubs):
        if h.alive():
            into.append((time.monotonic(), i, readyz(h, timeout=2)))


async def kill_redis(procs: Procs, size: Size) -> tuple[dict[str, Any], str]:
    port = procs.redis("redis")
    db = redis_url(port)
    hubs = start_hubs(procs, db, size.hubs)
    seen: list[tuple[float, int, int]] = []
    times: dict[str, float] = {}

    async def during(session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(size.seconds / 3)
        await asyncio.to_thread(kill9, procs.pid_on(port))
        times["killed"] = time.monotonic()
        for _ in range(4):                      # the outage, as a load balancer sees it
            await asyncio.to_thread(sample_ready, hubs, seen)
            await asyncio.sleep(0.25)
        await asyncio.to_thread(procs.redis, "redis", port)     # the same dir, so the same AOF
        times["restarted"] = time.monotonic()
        for _ in range(200):
            await asyncio.to_thread(sample_ready, hubs, seen)
            if all(s == 200 for t, _, s in seen[-len(hubs):]) and seen[-1][0] > times["restarted"]:
                times["ready"] = time.monotonic()
                break
            await asyncio.sleep(0.2)

    f, _, _ = await measured(procs, size, db, hubs, during)
    down = [s for t, _, s in seen if t < times.get("restarted", 0)]
    f["readyz_while_down"] = {str(s): down.count(s) for s in sorted(set(down))}
    f["ready_again_s"] = round(times["ready"] - times["restarted"], 2) if "ready" in times else None
    must_be_zero(f, answers_5xx_not_503=not_503(f), readyz_200_while_down=f["readyz_while_down"].get("200", 0),
                 not_ready_again=int(f["ready_again_s"] is None))
    return f, (f"{basics(f)}; /readyz while Redis was down {f['readyz_while_down']}, all 200 again "
               f"{f['ready_again_s']} s after the restart; {five_xx(f)}")


async def cluster(procs: Procs, size: Size) -> tuple[dict[str, Any], str]:
    ports = await asyncio.to_thread(procs.cluster, 3, 1)
    db = f"redis+cluster://{','.join(f'127.0.0.1:{p}' for p in ports)}?prefix=qc:"
    try:
        hubs = start_hubs(procs, db, size.hubs)
    except RuntimeError as e:
        return {"started": False, "error": str(e), "must_be_zero": {"serve_did_not_start": 1}}, \
            f"serve does not start: {e}"
    f, _, _ = await measured(procs, size, db, hubs)
    f["started"] = True
    must_be_zero(f, answers_5xx=sum(v for k, v in f["faults"].items() if k[0] == "5"))
    return f, f"{basics(f)}; {five_xx(f)}"


async def sentinel(procs: Procs, size: Size) -> tuple[dict[str, Any], str]:
    # Long enough after the kill for the sentinels to promote a replica and to turn the restarted
    # master into a replica (~10 s later here): what clients still connected to it then meet.
    size = replace(size, seconds=max(size.seconds, SENTINEL_SECONDS))
    mport, _, sentinels = await asyncio.to_thread(procs.sentinel_set)
    db = f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in sentinels)}/qc/0?prefix=qc:"
    try:
        hubs = start_hubs(procs, db, size.hubs)
    except RuntimeError as e:
        return {"started": False, "error": str(e), "must_be_zero": {"serve_did_not_start": 1}}, \
            f"serve does not start: {e}"
    seen: list[tuple[float, int, int]] = []
    times: dict[str, float] = {}

    async def during(session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(size.seconds / 3)
        await asyncio.to_thread(kill9, procs.pid_on(mport))
        times["killed"] = time.monotonic()
        await asyncio.sleep(RESTART_AFTER)
        # A supervisor (systemd, Kubernetes) starts it again on its port, on its own AOF: a master
        # until the sentinels turn it into a replica of the one they promoted.
        await asyncio.to_thread(procs.redis, "sentinel-master", mport)
        times["restarted"] = time.monotonic()
        while time.monotonic() < times["killed"] + size.seconds * 2 / 3 - 0.5:
            await asyncio.to_thread(sample_ready, hubs, seen)
            await asyncio.sleep(0.5)

    f, load, _ = await measured(procs, size, db, hubs, during)
    killed = times.get("killed", 0.0)
    failing = sorted(t for k, ts in load.fault_times.items() for t in ts if t >= killed)
    writes_ok = sorted(a.at for a in load.acks if a.at >= killed)
    f["writes_failing_s"] = round(failing[-1] - failing[0], 1) if failing else 0.0
    f["first_write_ok_after_kill_s"] = round(writes_ok[0] - killed, 1) if writes_ok else None
    # A /readyz 200 from a hub whose own writes were failing then (the 130 s of 500s under a
    # ready /readyz); other hubs writing meanwhile may well be ready.
    ready_while_failing = [s for t, i, s in seen if s == 200 and load.failing_at(hubs[i].url, t)]
    f["readyz_200_while_writes_failed"] = len(ready_while_failing)
    f["readyz_samples_after_kill"] = len(seen)
    f["load_seconds"] = size.seconds
    f["still_failing_at_end"] = bool(failing) and failing[-1] > load.stop_at - 1.0
    must_be_zero(f, answers_5xx_not_503=not_503(f), readyz_200_while_writes_failed=len(ready_while_failing))
    until = " (still failing at the end of the load)" if f["still_failing_at_end"] else ""
    return f, (f"{basics(f)}; writes failed for {f['writes_failing_s']} s after the kill{until} ({five_xx(f)}), "
               f"first acknowledged write {f['first_write_ok_after_kill_s']} s after it; /readyz said ready "
               f"{len(ready_while_failing)} times while its own writes failed")
