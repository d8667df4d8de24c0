"""The load of bench/faults.py: counter staff (issue, issue, call-next on counter 1 of every branch,
each command with an Idempotency-Key, retried with the same key on the next hub while the answer is
a 5xx or no answer) and WebSocket board watchers (resume with since+epoch, as CONTRACTS section 4
says). Everything they were told is kept, to be checked against the Redis stream (faults_check)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from faults_procs import SECRET

from hub.auth import Tokens

SERVICE, COUNTER = "dat-dai", "1"
TOKENS = Tokens(SECRET)


@dataclass
class Ack:
    """A 2xx answer to a command: what the hub acknowledged."""
    branch: str
    kind: str                  # issue | call | open
    key: str
    body: dict[str, Any]
    at: float                  # time.monotonic() of the answer


@dataclass
class Load:
    hubs: list[str]                                 # base URLs the clients go round (a scenario may change it)
    acks: list[Ack] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)  # 4xx codes (queue_empty, counter_closed, ...)
    faults: Counter = field(default_factory=Counter)    # 5xx statuses and codes, and "no answer"
    fault_times: dict[str, list[float]] = field(default_factory=dict)
    # per hub URL, (time, wrote) of every command's answer: True a 2xx, False a 5xx or no answer
    outcomes: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    given_up: int = 0                                # commands never answered 2xx/4xx before the end
    stop_at: float = 0.0
    grace: float = 15.0                             # s past stop_at a command is still retried
    closed_branches: set[str] = field(default_factory=set)   # counters found closed they had not closed

    def fault(self, what: str) -> None:
        self.faults[what] += 1
        self.fault_times.setdefault(what, []).append(time.monotonic())

    async def command(self, session: aiohttp.ClientSession, branch: str, kind: str, path: str,
                      body: dict | None, token: str | None, start: int) -> Ack | None:
        """One command, retried with its key on the next hub until a 2xx or 4xx (or the end + grace)."""
        key = uuid.uuid4().hex
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body or {})
        for i in range(1000):
            if time.monotonic() > self.stop_at + self.grace:
                break
            hub = self.hubs[(start + i) % len(self.hubs)]
            url = hub + path
            try:
                async with session.post(url, data=data, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=10)) as r:
                    answer = await r.json(content_type=None)
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, ValueError) as e:
                self.fault(f"no answer ({type(e).__name__})")
                self.outcomes.setdefault(hub, []).append((time.monotonic(), False))
                await asyncio.sleep(0.2)
                continue
            if status < 400 or status >= 500:
                self.outcomes.setdefault(hub, []).append((time.monotonic(), status < 400))
            if 200 <= status < 300:
                ack = Ack(branch, kind, key, answer, time.monotonic())
                self.acks.append(ack)
                return ack
            code = (answer or {}).get("error", {}).get("code", "?") if isinstance(answer, dict) else "?"
            if status < 500:
                self.refusals[code] += 1
                return None
            self.fault(f"{status} {code}")
            await asyncio.sleep(0.2)
        self.given_up += 1
        return None

    async def staff(self, session: aiohttp.ClientSession, branch: str, interval: float, start: int) -> None:
        """Counter 1 of `branch`: open, then issue, issue, call-next, ... every `interval` s."""
        token = TOKENS.staff(branch, COUNTER)
        counter = f"/api/branches/{branch}/counters/{COUNTER}"
        await self.command(session, branch, "open", f"{counter}/open", {"services": [SERVICE]}, token, start)
        step = 0
        while time.monotonic() < self.stop_at:
            t0 = time.monotonic()
            if step % 3 < 2:
                await self.command(session, branch, "issue", f"/api/branches/{branch}/tickets",
                                   {"service": SERVICE, "channel": "kiosk"}, None, start + step)
            else:
                before = self.refusals["counter_closed"]
                await self.command(session, branch, "call", f"{counter}/call-next", None, token, start + step)
                if self.refusals["counter_closed"] > before:      # the counter came back closed: staff reopen it
                    self.closed_branches.add(branch)
                    await self.command(session, branch, "open", f"{counter}/open", {"services": [SERVICE]},
                                       token, start + step)
            step += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))

    def failing_at(self, hub: str, t: float, within: float = 1.0) -> bool:
        """Were `hub`'s writes failing at `t`: its last answer before `t` and its first after it
        (each at most `within` s away) both a 5xx or none? (A probe between a failure and a
        success saw the store come back: not a ready hub that cannot write.)"""
        near = self.outcomes.get(hub, ())
        before = [wrote for at, wrote in near if t - within <= at <= t]
        after = [wrote for at, wrote in near if t < at <= t + within]
        return bool(before) and bool(after) and not before[-1] and not after[0]

    def acked(self, *kinds: str) -> list[Ack]:
        return [a for a in self.acks if a.kind in kinds]


@dataclass
class Watcher:
    """One board watcher: every frame it was given, by epoch and seq, and how its connections went."""
    branch: str
    start: int
    epoch: str | None = None
    last: int | None = None
    seen: dict[tuple[str, int], tuple[str, str | None]] = field(default_factory=dict)   # (epoch, seq) → (type, ticket)
    gaps: int = 0
    duplicates: int = 0
    snapshots: int = 0
    resumes: int = 0
    closes: Counter = field(default_factory=Counter)        # close codes after data
    refused: Counter = field(default_factory=Counter)       # close codes before any frame: a reconnect refused
    connect_errors: int = 0
    contradicted: int = 0                                   # frames the log holds otherwise (set by the check)
    away: bool = False                                      # told to leave (and later to come back)

    def frame(self, msg: dict[str, Any]) -> None:
        kind, seq, epoch = msg.get("type"), msg.get("seq"), msg.get("epoch")
        if kind == "snapshot":
            self.snapshots += 1
            self.epoch, self.last = epoch, seq
            return
        if kind == "resume":
            self.resumes += 1
            if epoch != self.epoch or seq != self.last:
                self.gaps += 1                      # a resume from somewhere else than asked
            self.epoch, self.last = epoch, seq
            return
        if not isinstance(seq, int) or self.last is None or self.epoch is None:
            return
        if seq <= self.last:
            self.duplicates += 1
            return
        if seq > self.last + 1:
            self.gaps += seq - self.last - 1
        self.last = seq
        self.seen[(self.epoch, seq)] = (str(kind), msg.get("ticket"))

    async def run(self, session: aiohttp.ClientSession, load: Load) -> None:
        """Watch until the end, reconnecting (next hub, since+epoch) whenever a connection ends."""
        i = self.start
        for _ in range(100_000):
            if time.monotonic() >= load.stop_at:
                return
            if self.away:
                await asyncio.sleep(0.1)
                continue
            base = load.hubs[i % len(load.hubs)].replace("http://", "ws://")
            query = "" if self.last is None else f"?since={self.last}&epoch={self.epoch}"
            got = 0
            try:
                async with session.ws_connect(f"{base}/ws/branches/{self.branch}{query}", heartbeat=None,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
                    while time.monotonic() < load.stop_at and not self.away:
                        try:
                            msg = await ws.receive(timeout=0.5)
                        except TimeoutError:
                            continue
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        got += 1
                        self.frame(json.loads(msg.data))
                    code = ws.close_code
                if code is not None:
                    (self.closes if got else self.refused)[code] += 1
                    if code == 4009:                # resync: the history was replaced; start from a snapshot
                        self.last = self.epoch = None
            except (TimeoutError, aiohttp.ClientError, OSError):
                self.connect_errors += 1
            if time.monotonic() < load.stop_at and not self.away:
                i += 1                              # try another hub
                await asyncio.sleep(0.1)


async def run_load(load: Load, seconds: float, watchers: list[Watcher], rate: float, branches: list[str],
                   during: Any = None) -> None:
    """Staff on every branch at `rate` commands/s in all, the watchers, and `during` (a coroutine
    function, the scenario's fault) at the same time, for `seconds`."""
    load.stop_at = time.monotonic() + seconds
    interval = len(branches) / rate
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        tasks = [asyncio.create_task(w.run(session, load)) for w in watchers]
        tasks += [asyncio.create_task(load.staff(session, b, interval, n)) for n, b in enumerate(branches)]
        if during is not None:
            tasks.append(asyncio.create_task(during(session)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
