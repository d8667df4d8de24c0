"""The `Snapshots` protocol: per branch, the state at one `seq` (hub.domain.snapshot), kept beside
the log so that a process starts the branch from it and the events after it (hub.service.snapshots).

A snapshot names the log it was folded from: its `epoch`, and `tip`, the spelling of its last event
(hub.service.branches.spelling), which the start compares with the log's event at `seq` (the log
keeps that event: trimming stops before it, hub/service/trim.py). Only the newest of an epoch is kept: a
process that folded less (a slow one, a late write) cannot put an older snapshot over a newer one,
while a snapshot of another epoch replaces whatever was kept (the history changed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Snapshot:
    seq: int                # the state has folded every event up to this one
    epoch: str              # of the log it was folded from
    tip: str                # the spelling of the event at `seq` ("" for seq 0)
    data: str               # JSON of hub.domain.snapshot.to_json: data, never code


class Snapshots(Protocol):
    async def get(self, branch: str) -> Snapshot | None:
        """The branch's snapshot, if one was kept."""

    async def put(self, branch: str, snap: Snapshot) -> bool:
        """Keep `snap` unless the one kept is of the same epoch and a later seq; whether it was kept."""
