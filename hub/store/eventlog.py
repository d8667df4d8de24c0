"""The `EventLog` protocol: an append-only event log per branch, with idempotency records.

The log is the truth (DESIGN §3): a branch's state is a fold of its events, `seq` rises by exactly
one per event and is never reused, and `epoch` changes whenever the branch's history may have been
lost, so that no client resumes over a history that changed. Every backend passes one contract
suite (tests/test_store_contract.py) on SQLite and on Redis.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from hub.domain.events import Event
from hub.store.outbox import OutboxItem


@dataclass(frozen=True)
class Idempotency:
    """The answer given to a request carrying an Idempotency-Key, kept to be given again."""

    key: str
    fingerprint: str        # hash of method, path and body: the same key with another request is an error
    status: int
    body: str               # the JSON response body, exactly as first sent


@dataclass(frozen=True)
class LogHead:
    seq: int                # seq of the last event, 0 for an empty log
    epoch: str              # changes whenever the branch's history may have been lost
    # The seq at which `epoch` began: 0 for a new (or wiped) log, the head's seq when a process
    # found the log behind what it had seen (new_epoch). head == base: nothing written since.
    base: int = 0


class EventLog(Protocol):
    # True when other processes append to the same log as a matter of course (Redis: any number of
    # hub processes), so the service catches up before deciding. False for SQLite: one hub process
    # appends, and the rare other writer (the notifier removing a push subscription) is found by
    # the seq check (SeqConflict) or the hub's polling.
    shared: bool

    async def head(self, branch: str) -> LogHead:
        """The log's head; creates the branch's epoch on first use."""

    async def new_epoch(self, branch: str, seen: str) -> LogHead:
        """A fresh epoch for the branch if its epoch is still `seen`, with `base` = the head's seq;
        the head either way. Called by a process that found the log behind what it had seen (a
        wipe, an older AOF, a failover that lost writes): the first such process mints it, every
        other one finds it minted, so all agree, and no client resumes over the changed history."""

    async def append(self, branch: str, expected_seq: int, events: list[Event],
                     idempotency: Idempotency | None = None,
                     outbox: Sequence[OutboxItem] = ()) -> list[Event]:
        """Append atomically with seq expected_seq+1, +2, ... and keep `idempotency` and the
        `outbox` items (as `Outbox.add` does: a key already owed keeps its row) in the same
        transaction: a message is owed exactly when the event that causes it is in the log.
        Returns the events with `seq` set. Raises SeqConflict if the head is not `expected_seq`,
        and ValueError if an outbox item is of another branch; then nothing is written."""

    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        """Events with seq > after_seq in order (at most `limit`; none for a limit of 0, as a feed
        resuming at the head asks: "nothing new" is an answer, not an error)."""

    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        """The events whose `day` is `day`, in seq order."""

    async def trim(self, branch: str, through_seq: int, days: Sequence[date]) -> None:
        """Forget the events with seq <= `through_seq`, and what indexes `days` (days whose events
        are all among them). Only hub/service/trim.py calls it, once they are archived and a snapshot of the
        branch is past them; idempotent. `events_since` then starts at the first event kept."""

    async def idempotency(self, branch: str, key: str) -> Idempotency | None:
        """The answer kept under `key` by an append, if any (a key is never overwritten)."""

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
