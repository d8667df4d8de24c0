"""The `Store` protocol: an append-only event log per branch, with idempotency records, the
notification outbox (hub.store.outbox) and the recorded ETA predictions (hub.store.predictions).

Every backend passes the same contract suites (tests/test_store_contract.py,
tests/test_outbox_contract.py, tests/test_predictions_contract.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, Sequence

from hub.domain.events import Event
from hub.store.outbox import Outbox, OutboxItem
from hub.store.predictions import Predictions


class SeqConflict(Exception):
    """The branch log moved on since the caller read it (another process appended): re-read, retry."""

    def __init__(self, branch: str, expected: int, actual: int):
        super().__init__(f"branch {branch}: expected log head {expected}, found {actual}")
        self.branch, self.expected, self.actual = branch, expected, actual


class StoreUnavailable(Exception):
    """The backend cannot be reached or cannot write now (Redis down, SQLite locked past its
    timeout, a disk error). The command did not happen, or its outcome is unknown: retry it with
    the same Idempotency-Key."""


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


class Store(Outbox, Predictions, Protocol):
    # True when other processes append to the same log (the service then catches up before
    # deciding); a backend without the attribute serves one process.
    shared: bool

    async def head(self, branch: str) -> LogHead:
        """The log's head; creates the branch's epoch on first use."""

    async def append(self, branch: str, expected_seq: int, events: list[Event],
                     idempotency: Idempotency | None = None,
                     outbox: Sequence[OutboxItem] = ()) -> list[Event]:
        """Append atomically with seq expected_seq+1, +2, ... and keep `idempotency` and the
        `outbox` items (as `outbox_add` does: a key already owed keeps its row) in the same
        transaction. Returns the events with `seq` set. Raises SeqConflict if the head is not
        `expected_seq`; then nothing is written."""

    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        """Events with seq > after_seq in order (at most `limit`)."""

    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        """The events whose `day` is `day`, in seq order."""

    async def idempotency(self, branch: str, key: str) -> Idempotency | None: ...

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
