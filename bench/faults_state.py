"""The scenarios of bench/faults.py about what the log and the hubs agree on: resume at the head,
per-citizen limits across hubs, a wiped Redis, Redis restored from an older AOF, and SIGTERM."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections import Counter
from typing import Any

import aiohttp
from faults_check import read_logs
from faults_load import TOKENS, Load, Watcher, run_load
from faults_procs import Procs, copy_aof, kill9, redis_cli, stop
from faults_scenarios import Size, basics, measured, redis_url, start_hubs, watchers

from hub.config import load_config


async def _first_ws(session: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any] | None, int | None]:
    """The first frame of a feed, or None and the close code."""
    async with session.ws_connect(url, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data), None
        return None, ws.close_code


async def _first_sse(session: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any] | None, int]:
    """The first event of an SSE feed, or None and the status."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
        if r.status != 200:
            return None, r.status
        for _ in range(20):
            line = (await r.content.readline()).decode()
            if line.startswith("data: "):
                return json.loads(line[6:]), 200
        return None, 200


async def resume_head(procs: Procs, size: Size) -> tuple[dict[str, Any], str]:
    db = redis_url(procs.redis("redis"))
    hubs = start_hubs(procs, db, size.hubs)
    load = Load([h.url for h in hubs])
    await run_load(load, min(4.0, size.seconds), [], size.rate, size.branches)      # some history first
    ws, sse = Counter(), Counter()
    async with aiohttp.ClientSession() as s:
        for b in size.branches:
            for h in hubs:
                snap, code = await _first_ws(s, f"{h.ws}/ws/branches/{b}")
                if snap is None:
                    ws[f"no snapshot ({code})"] += 1
                    continue
                query = f"since={snap['seq']}&epoch={snap['epoch']}"
                first, code = await _first_ws(s, f"{h.ws}/ws/branches/{b}?{query}")
                ws[first["type"] if first else f"close {code}"] += 1
                first, status = await _first_sse(s, f"{h.url}/sse/branches/{b}?{query}")
                sse[first["type"] if first else f"status {status}"] += 1
    tries = sum(ws.values())
    f = {"tries": tries, "websocket": dict(ws), "sse": dict(sse),
         "must_be_zero": {"websocket_not_resumed": tries - ws["resume"], "sse_not_resumed": sum(sse.values()) - sse["resume"]}}
    return f, (f"WebSocket at the head: {ws['resume']} of {tries} resumed {dict(ws)}; "
               f"SSE: {sse['resume']} of {sum(sse.values())} resumed {dict(sse)}")


def cccd(i: int) -> str:
    """A well-formed CCCD: Hanoi (001), male born in the 1900s (0), 1985, serial i."""
    return f"001085{i:06d}"


async def limits(procs: Procs, size: Size, citizens: int = 40) -> tuple[dict[str, Any], str]:
    db = redis_url(procs.redis("redis"))
    hubs = start_hubs(procs, db, size.hubs)
    load = Load([h.url for h in hubs])
    load.stop_at = time.monotonic() + 60
    policy = load_config().branches[size.branches[0]].policy
    fields = ["dat-dai", "ho-tich", "cu-tru", "tu-phap-chung-thuc"]

    async def at_once(session: aiohttp.ClientSession, i: int, services: list[str]) -> None:
        # Request k to hub k at branch i+k: the limits hold across branches, whose logs are apart.
        token, b = TOKENS.citizen(cccd(i)), size.branches
        await asyncio.gather(*(load.command(session, b[(i + k) % len(b)], "issue",
                                            f"/api/branches/{b[(i + k) % len(b)]}/tickets",
                                            {"service": svc, "channel": "online"}, token, k)
                               for k, svc in enumerate(services)))

    n = max(size.hubs, policy.per_day + 1)       # one request per hub, at least one past the day's limit
    async with aiohttp.ClientSession() as s:
        # Part 1: n requests at once in different fields (the day's limit); part 2: in one field.
        await asyncio.gather(*(at_once(s, i, [fields[k % len(fields)] for k in range(n)]) for i in range(citizens)))
        await asyncio.gather(*(at_once(s, 1000 + i, ["ho-tich"] * n) for i in range(citizens)))
    logs = await read_logs(db, size.branches)
    logged: Counter = Counter()             # (citizen pseudonym, field) → numbers in the log
    for log in logs.values():
        for ev in log.events.values():
            if ev["type"] == "ticket.issued" and ev.get("citizen"):
                logged[(ev["citizen"], ev["service"])] += 1
    told = load.acked("issue")
    per_citizen: Counter = Counter()
    for (who, _svc), k in logged.items():
        per_citizen[who] += k
    day_over = sum(1 for i in range(citizens) if per_citizen[TOKENS.pseudonym(cccd(i))] > policy.per_day)
    field_over = sum(1 for i in range(citizens) if logged[(TOKENS.pseudonym(cccd(1000 + i)), "ho-tich")] > policy.per_field)
    f = {"citizens": citizens, "requests_per_citizen": n, "per_day": policy.per_day, "per_field": policy.per_field,
         "over_day_limit": day_over, "over_field_limit": field_over, "acknowledged": len(told),
         "refusals": dict(load.refusals), "faults": dict(load.faults),
         "must_be_zero": {"over_day_limit": day_over, "over_field_limit": field_over}}
    return f, (f"{day_over} of {citizens} citizens got more than {policy.per_day} numbers (limit {policy.per_day}) "
               f"from {n} requests at once to {size.hubs} hubs; {field_over} of {citizens} got more than "
               f"{policy.per_field} in one field (limit {policy.per_field}); refusals {dict(load.refusals)}")


async def wipe(procs: Procs, size: Size) -> tuple[dict[str, Any], str]:
    port = procs.redis("redis")
    db = redis_url(port)
    hubs = start_hubs(procs, db, size.hubs)
    t: dict[str, float] = {}

    async def during(session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(size.seconds / 2)
        await asyncio.to_thread(redis_cli, port, "FLUSHALL")
        t["wiped"] = time.monotonic()

    f, load, _ = await measured(procs, size, db, hubs, during)
    wiped = t.get("wiped", float("inf"))
    before = [a for a in load.acked("issue") if a.at < wiped]
    after = {(a.branch, a.body["ticket"]) for a in load.acked("issue") if a.at > wiped}
    reissued = sum(1 for a in before if (a.branch, a.body["ticket"]) in after)
    links: Counter = Counter()
    async with aiohttp.ClientSession() as s:
        for i, a in enumerate(before[:100]):
            async with s.get(f"{hubs[i % len(hubs)].url}/api/tickets/{a.body['token']}",
                             timeout=aiohttp.ClientTimeout(total=10)) as r:
                try:
                    body = await r.json(content_type=None)
                except ValueError:
                    body = {}
            if r.status != 200:
                links[f"{r.status}"] += 1
            elif body.get("issued_at") != a.body["issued_at"] or body.get("service") != a.body["service"]:
                links["a stranger's ticket"] += 1
            else:
                links["their own ticket"] += 1
    f.update({"issued_before_wipe": len(before), "reissued": reissued, "old_links": dict(links),
              "counters_came_back_closed": len(load.closed_branches)})
    # Numbering starts again in the new epoch, so ids come round again (counted above); what must
    # never happen is an old link naming the new holder's ticket (issue 15: tokens carry a nonce).
    f["must_be_zero"] = {"old_links_showing_a_stranger": links["a stranger's ticket"],
                         "counters_came_back_closed": len(load.closed_branches)}
    return f, (f"{reissued} of {len(before)} ticket ids re-issued; old tracking links: {dict(links)}; "
               f"counters came back closed on {len(load.closed_branches)} of {len(size.branches)} branches; "
               f"{f['lost']} of {f['acknowledged']} acknowledged lost, {f['called_twice']} called twice")


async def old_aof(procs: Procs, size: Size, returning: int = 12) -> tuple[dict[str, Any], str]:
    port = procs.redis("redis")
    db = redis_url(port)
    hubs = start_hubs(procs, db, size.hubs)
    ws = watchers(size, max(size.clients, returning))
    back = ws[:returning]
    resumes_before: dict[int, int] = {}
    s = size.seconds
    t: dict[str, float] = {}

    async def during(session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(s * 0.2)
        await asyncio.to_thread(copy_aof, procs.workdir / "redis", procs.workdir / "older")
        await asyncio.sleep(s * 0.1)
        for w in back:                      # they leave having seen what the copy does not hold
            w.away = True
        await asyncio.sleep(s * 0.1)
        await asyncio.to_thread(stop, procs.pid_on(port))
        await asyncio.to_thread(shutil.rmtree, procs.workdir / "redis" / "appendonlydir")
        await asyncio.to_thread(copy_aof, procs.workdir / "older", procs.workdir / "redis")
        await asyncio.to_thread(procs.redis, "redis", port)
        t["restored"] = time.monotonic()
        await asyncio.sleep(s * 0.3)
        for i, w in enumerate(back):
            resumes_before[i] = w.resumes
            w.away = False

    f, _, _ = await measured(procs, size, db, hubs, during, ws)
    over = sum(1 for i, w in enumerate(back) if w.resumes > resumes_before.get(i, w.resumes) and w.contradicted)
    f["returning"], f["returning_resumed_over_changed_history"] = len(back), over
    # Numbers called in the lost part are called again after it (what restoring an older AOF loses;
    # counted and reported, as are the lost commands). What must be zero is a client shown a
    # history that changed under it: a resume over it, a gap, a duplicate.
    f["must_be_zero"] = {"returning_resumed_over_changed_history": over,
                         "gaps": f["gaps"], "duplicates": f["duplicates"]}
    return f, (f"{over} of {len(back)} returning clients resumed over a changed history; "
               f"{f['called_twice']} numbers called twice; {basics(f)}")


async def sigterm(procs: Procs, size: Size, rounds: int = 8) -> tuple[dict[str, Any], str]:
    """A hub under load is sent SIGTERM, `rounds` times; one that has not exited in 15 s is hanging."""
    db = redis_url(procs.redis("redis"))
    hung, exits = 0, []
    for _ in range(rounds):
        hub = await asyncio.to_thread(procs.hub, db)
        load = Load([hub.url])
        load.grace = 0.0

        async def during(session: aiohttp.ClientSession, hub=hub) -> None:
            nonlocal hung
            await asyncio.sleep(1.5)
            started = time.monotonic()
            hub.proc.terminate()                 # SIGTERM to the pid we started
            try:
                await asyncio.to_thread(hub.proc.wait, 15)
                exits.append(round(time.monotonic() - started, 2))
            except subprocess.TimeoutExpired:
                hung += 1
                await asyncio.to_thread(kill9, hub.proc)

        ws = [Watcher(size.branches[i % len(size.branches)], 0) for i in range(min(size.clients, 48))]
        await run_load(load, 3.0, ws, size.rate, size.branches, during)
    f = {"rounds": rounds, "hung": hung, "exit_seconds_max": max(exits, default=None), "must_be_zero": {"hung": hung}}
    return f, f"{hung} of {rounds} left `serve` hanging (> 15 s after SIGTERM); slowest exit {f['exit_seconds_max']} s"
