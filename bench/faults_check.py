"""The check of bench/faults.py: every acknowledged command and every frame a watcher was given,
against the branch logs in Redis (hub/store/redis.py: `{prefix}{b:<branch>}:head` seq and epoch,
`...:log` one stream entry `<seq>-1` per event, field `e` = its JSON)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from faults_load import Load, Watcher

from hub.redis_url import connect, parse
from hub.store.redis_keys import Keys


@dataclass
class BranchLog:
    epoch: str | None
    events: dict[int, dict[str, Any]]


async def read_logs(database: str, branches: list[str]) -> dict[str, BranchLog]:
    """Every branch's head epoch and log, read straight from Redis (not through a hub)."""
    target = parse(database)
    keys = Keys(target.prefix)
    client = connect(target, decode_responses=True, socket_timeout=10, socket_connect_timeout=5)
    logs = {}
    try:
        for b in branches:
            epoch = await client.hget(keys.branch(b, "head"), "epoch")
            entries = await client.xrange(keys.branch(b, "log"), "-", "+")
            logs[b] = BranchLog(epoch, {int(i.split("-")[0]): json.loads(f["e"]) for i, f in entries or ()})
    finally:
        await client.aclose()
    return logs


def _matches(ack_kind: str, body: dict[str, Any], ev: dict[str, Any]) -> bool:
    if ack_kind == "issue":
        return (ev["type"] == "ticket.issued" and ev.get("ticket") == body.get("ticket")
                and ev.get("t") == body.get("issued_at"))
    t = body.get("ticket") or {}
    return (ev["type"] == "ticket.called" and ev.get("ticket") == t.get("ticket")
            and ev.get("counter") == t.get("counter") and ev.get("t") == t.get("called_at"))


def check(load: Load, watchers: list[Watcher], logs: dict[str, BranchLog]) -> dict[str, Any]:
    """The figures of the table: lost, called twice, gaps, duplicates, frames the log contradicts."""
    by_branch: dict[str, list[dict[str, Any]]] = {b: list(log.events.values()) for b, log in logs.items()}
    acked = load.acked("issue", "call")
    lost = [a for a in acked if not any(_matches(a.kind, a.body, ev) for ev in by_branch.get(a.branch, ()))]
    # A number called twice: two acknowledged call-next answers (two keys) naming one ticket, or two
    # ticket.called of one ticket in the log (the bench never recalls).
    told = Counter((a.branch, (a.body.get("ticket") or {}).get("ticket")) for a in load.acked("call"))
    logged = Counter((b, ev.get("ticket")) for b, evs in by_branch.items() for ev in evs
                     if ev["type"] == "ticket.called")
    twice = {k for k, n in told.items() if n > 1} | {k for k, n in logged.items() if n > 1}
    contradicted = unverifiable = 0
    for w in watchers:
        log = logs.get(w.branch)
        w.contradicted = 0
        for (epoch, seq), (kind, ticket) in w.seen.items():
            if log is None or epoch != log.epoch:
                unverifiable += 1
                continue
            ev = log.events.get(seq)
            if ev is None or ev["type"] != kind and kind != "internal" or (ticket and ev.get("ticket") != ticket):
                w.contradicted += 1
        contradicted += w.contradicted
    refused, closes = Counter(), Counter()
    for w in watchers:
        refused.update(w.refused)
        closes.update(w.closes)
    return {
        "acknowledged": len(acked), "lost": len(lost),
        "lost_examples": [f"{a.branch}:{a.kind}:{a.body.get('ticket') if a.kind == 'issue' else a.body['ticket'].get('ticket')}"
                          for a in lost[:3]],
        "called_twice": len(twice),
        "gaps": sum(w.gaps for w in watchers), "duplicates": sum(w.duplicates for w in watchers),
        "clients": len(watchers), "frames": sum(len(w.seen) for w in watchers), "frames_contradicting_log": contradicted,
        "frames_unverifiable": unverifiable,
        "snapshots": sum(w.snapshots for w in watchers), "resumes": sum(w.resumes for w in watchers),
        "reconnects_refused": dict(refused), "closes": dict(closes),
        "connect_errors": sum(w.connect_errors for w in watchers),
        "refusals": dict(load.refusals), "faults": dict(load.faults), "given_up": load.given_up,
    }
