"""The notification outbox: what is owed to whom, kept beside the log it comes from.

A message is owed the moment the event that causes it is in the log, so event-driven messages are
written by `EventLog.append(..., outbox=...)` (hub.store.eventlog) in the same transaction as their events: a hub that
dies after the append still owes them, and one that dies before has neither. Time-driven ones
("leave home now") are added by the notifier with `add`. Either way the key is
`Message.key` (branch/ticket:trigger:channel), so a message is owed at most once, however often a
rule finds it due.

Status only moves forward:

    queued ──claim──▶ sending ──▶ sent ──report──▶ delivered
      ▲                 │  │
      └──── retry ◀─────┘  └──▶ failed (permanent refusal) · dead (retries used up) · dropped (no
                                longer true when its turn came: the number was served first)

A claim is a lease: a worker killed mid-send leaves the item `sending` with a lease that runs out,
and the next claim takes it again (attempts counts every claim). `failed` and `dead` are dead
letters, kept until `redrive` puts them back in the queue.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hub.domain.notifications.message import Message

QUEUED, SENDING, SENT, DELIVERED = "queued", "sending", "sent", "delivered"
FAILED, DEAD, DROPPED = "failed", "dead", "dropped"
STATUSES = (QUEUED, SENDING, SENT, DELIVERED, FAILED, DEAD, DROPPED)
DEAD_LETTERS = (FAILED, DEAD)
FAILURES = (FAILED, DEAD, DROPPED)               # where fail may move an item
FINAL = (DELIVERED, FAILED, DEAD, DROPPED)       # nothing moves them but a redrive (dead letters)
DONE = (SENT, DELIVERED, DROPPED)                # done with: what prune may forget


@dataclass(frozen=True)
class OutboxItem:
    key: str                                     # Message.key (hub.domain.notifications.message): "{branch}/{ticket}:{trigger}:{channel}"
    branch: str
    ticket: str
    trigger: str
    channel: str
    recipient: str | Mapping[str, object]        # E.164 phone or a PushSubscription JSON
    params: Mapping[str, object] = field(default_factory=dict)
    lang: str = "vi"
    created: float = 0.0                         # unix seconds, when it became owed
    status: str = QUEUED
    attempts: int = 0                            # claims so far (a claim is an attempt, even if the worker died)
    next_at: float = 0.0                         # unix seconds: not claimed before then
    lease_until: float = 0.0                     # while `sending`: another claim may take it after this
    provider_id: str | None = None               # the gateway's message id, for delivery reports
    error: str | None = None                     # notifier.senders.protocol error code of the last failure
    detail: str = ""                             # the gateway's words, or why it was dropped
    updated: float = 0.0                         # unix seconds of the last change

    def with_(self, **changes: Any) -> OutboxItem:
        return replace(self, **changes)

    @classmethod
    def owed(cls, msg: Message, at: float) -> OutboxItem:
        """A message the rules found owed at `at` (unix seconds), queued and due at once."""
        return cls(key=msg.key, branch=msg.branch, ticket=msg.ticket, trigger=msg.trigger, channel=msg.channel,
                   recipient=msg.recipient, params=msg.params, lang=msg.lang, created=at, next_at=at, updated=at)

    @property
    def message(self) -> Message:
        """What is owed, as the rules and the senders read it."""
        return Message(self.branch, self.ticket, self.trigger, self.channel, self.recipient, self.params, self.lang)


def branch_of(key: str) -> str:
    """The branch a key starts with: calls that name only the key (sent, get, ...)
    find the item's branch so, and a store may keep a branch's items together (Redis does)."""
    return key.partition("/")[0]


def check_keys(items: Iterable[OutboxItem], branch: str | None = None) -> None:
    """Every store refuses, before writing anything, an item whose key does not start with
    "{branch}/" as Message.key does (branch ids never hold a "/": they are URL path segments),
    and in an append, an item of another branch than the events' (Redis writes one branch's keys)."""
    for item in items:
        if "/" in item.branch or branch_of(item.key) != item.branch:
            raise ValueError(f"outbox key {item.key!r} does not start with its branch {item.branch!r}/")
        if branch is not None and item.branch != branch:
            raise ValueError(f"append to branch {branch!r}: outbox item {item.key!r} is of another branch")


class Outbox(Protocol):
    """Implemented by every backend (SQLite, Redis); one contract suite (tests/test_outbox_contract.py).

    Times are unix seconds passed in by the caller (the store never reads a clock), so tests and
    the worker agree on "now". Every transition method returns False, and changes nothing, when
    the item is unknown or not in a state the transition starts from."""

    async def add(self, items: list[OutboxItem]) -> int:
        """Add the items not already owed (same key: the old one is kept, whatever its status),
        each as it is given (status, times, attempts). Returns how many were new. Raises
        ValueError, adding nothing, if a key does not start with its branch (see check_keys)."""

    async def claim(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        """Atomically take up to `limit` items to send, oldest due time first (ties by key):
        `queued` ones due (next_at <= now, due at next_at) and `sending` ones whose lease ran out
        (lease_until <= now, due at lease_until). Each becomes `sending` with
        lease_until = now + lease, attempts + 1 and updated = now; two concurrent claims never get
        the same item. Returned in that order, as they are after the claim."""

    async def sent(self, key: str, now: float, provider_id: str | None) -> bool:
        """sending → sent, keeping the provider_id (None: the gateway gave none, no report will
        come). error and detail of an earlier failed attempt are kept."""

    async def retry(self, key: str, now: float, next_at: float, error: str, detail: str = "") -> bool:
        """sending → queued, not to be claimed before next_at; attempts stay as they are."""

    async def fail(self, key: str, now: float, status: str, error: str, detail: str = "") -> bool:
        """sending → failed | dead | dropped (status says which; any other raises ValueError)."""

    async def delivered(self, provider_id: str, now: float) -> bool:
        """sent → delivered, found by the gateway's id (delivery reports name only that)."""

    async def redrive(self, now: float, key: str | None = None) -> int:
        """failed | dead → queued, due now, attempts reset (error and detail kept, to show what
        went wrong last time): the one `key`, or every dead letter. Returns how many moved."""

    async def get(self, key: str) -> OutboxItem | None:
        """The item under `key`, None if none is owed under it."""

    async def recent(self, status: str | None = None, branch: str | None = None,
                     limit: int = 100) -> list[OutboxItem]:
        """Most recently updated first (ties: the greater key first); None means any."""

    async def counts(self) -> dict[str, int]:
        """Items per status (every status present, zeros included)."""

    async def prune(self, before: float, limit: int) -> int:
        """Forget up to `limit` items we are done with (DONE: sent, delivered, dropped) that last
        changed before `before`, least recently changed first; returns how many. They hold phone
        numbers, and a busy centre owes a few million messages a year. Dead letters stay until
        someone re-drives them; queued and sending ones are still owed. A forgotten key could be
        owed again (add), so prune only what is older than any number's life (days)."""
