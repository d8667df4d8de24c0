"""The command pipeline: one command on one branch, from decision to answer.

A command is decided by the pure domain from the branch's state, folded into that state, appended
to the log (with its idempotency record and the messages it makes owed) in one transaction, and
only then published and answered. Commands on one branch run one at a time in this process;
another process writing the same log is detected by the log's seq check, and the command is
decided again on the fresh state. The answer is a domain result (a JSON-ready dict); the web layer
picks the HTTP status.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.broker.base import Broker
from hub.clock import Clock
from hub.domain import commands, identity
from hub.domain.errors import DomainError, conflict
from hub.domain.events import Event
from hub.domain.notifications.rules import Rules
from hub.domain.state import BranchState, apply
from hub.service import relayed
from hub.service.branches import Branches, dumps
from hub.store.errors import SeqConflict, StoreUnavailable
from hub.store.eventlog import EventLog, Idempotency
from hub.store.outbox import OutboxItem

log = logging.getLogger("queuecast.command")

ATTEMPTS = 5    # a seq conflict means another process wrote first; this many re-decisions at most

Decide = Callable[[BranchState, datetime], list[Event]]
Respond = Callable[[BranchState, list[Event], datetime], dict[str, Any]]


@dataclass(frozen=True)
class IdemRequest:
    """An Idempotency-Key as the web layer read it: the key, the fingerprint of the request it came
    with, and the status the answer is given with (kept beside the answer)."""

    key: str
    fingerprint: str
    status: int = 200


class Pipeline:
    def __init__(self, branches: Branches, events: EventLog, broker: Broker, clock: Clock, rules: Rules):
        self.branches, self.eventlog, self.broker, self.clock, self.rules = branches, events, broker, clock, rules
        # A log other processes append to (redis://): catch up before deciding, to avoid conflicts.
        self.shared = events.shared
        # Told of every command: (name, outcome, seconds). /metrics listens.
        self.on_command: list[Callable[[str, str, float], None]] = []
        branches.after_reset = self.re_record

    async def run(self, name: str, branch: str, decide: Decide, respond: Respond, *,
                  idem: IdemRequest | None = None, log_fields: dict[str, Any] | None = None) -> dict[str, Any]:
        branches = self.branches
        await branches.hold(branch)            # 404 for an unknown branch, before waiting; loaded if not held
        started = time.perf_counter()
        outcome = "error"
        try:
            async with branches.lock(branch):
                if self.shared or branch in branches.stale:
                    await branches.catch_up_locked(branch)
                # Read under the lock: a failed command before us may have replaced the state.
                st = branches.states[branch]
                for _ in range(ATTEMPTS):
                    if idem is not None:
                        # Again after a conflict: the process that appended first may have been
                        # answering this very key (a client retrying against another hub).
                        kept = await self._kept(branch, idem)
                        if kept is not None:
                            outcome = "replayed"
                            return kept
                    try:
                        answer = await self._attempt(st, decide, respond, idem)
                        outcome = "ok"
                        return answer
                    except SeqConflict:
                        st = branches.states[branch]       # _attempt has re-read the log
                raise conflict("busy", "The branch log is changing too fast; try again.",
                               "Hệ thống đang bận; vui lòng thử lại.")
        except DomainError as e:
            outcome = e.code
            raise
        except StoreUnavailable as e:
            outcome = "store_unavailable"
            raise DomainError("unavailable", "store_unavailable", *e.public, retry_after=2) from e
        finally:
            fields = {k: v for k, v in (log_fields or {}).items() if v is not None}
            if "phone" in fields:
                fields["phone"] = identity.mask_phone(fields["phone"])
            seconds = time.perf_counter() - started
            log.info("command", extra={"fields": {"cmd": name, "branch": branch, "outcome": outcome,
                                                  "ms": round(seconds * 1000, 2), **fields}})
            for fn in self.on_command:
                fn(name, outcome, seconds)

    async def _kept(self, branch: str, idem: IdemRequest) -> dict[str, Any] | None:
        """The answer kept under the request's key, if any; the key with another request is refused."""
        kept = await self.eventlog.idempotency(branch, idem.key)
        if kept is None:
            return None
        if kept.fingerprint != idem.fingerprint:
            raise conflict("idempotency_key_reused", "This Idempotency-Key was used for a different request.",
                           "Khóa Idempotency-Key đã được dùng cho một yêu cầu khác.")
        answer: dict[str, Any] = json.loads(kept.body)
        return answer

    async def _attempt(self, st: BranchState, decide: Decide, respond: Respond,
                       idem: IdemRequest | None) -> dict[str, Any]:
        now = self.clock.now()
        for fn in self.branches.before_fold:
            fn(st, now)
        evs = decide(st, now)                  # a refusal raises here: nothing has changed
        head = st.seq
        try:
            for ev in evs:                     # fold first: the answer (kept with the events) needs it
                apply(st, ev)
            forecast = self._forecast(st, evs)  # before the answer, which shows it
            body = respond(st, evs, now)
            record = None
            if idem is not None:
                record = Idempotency(idem.key, idem.fingerprint, idem.status,
                                     json.dumps(body, ensure_ascii=False, separators=(",", ":")))
            stored = await self.eventlog.append(st.id, head, evs, record, outbox=self._owed(st, evs, now))
        except BaseException:
            # Not in the log, so not in the state: rebuild it from the log (rare: a conflict or I/O
            # fault). If the log cannot be read either, the state is marked stale and rebuilt
            # before anything else uses it.
            self.branches.stale.add(st.id)
            try:
                await asyncio.shield(self.branches.catch_up_locked(st.id))
            except Exception:
                log.warning("state kept stale until the log can be read", extra={"fields": {"branch": st.id}})
            raise
        st.seq = head + len(stored)
        self.branches.deliver(st.id, stored)
        await self.send_forecasts(st.id)
        # Published with the epoch they were written in: a process still folding another epoch
        # (a wipe it has not noticed) takes them as the sign to reload (hub.service.follow).
        # With the forecast this process made of the state after them (on the last one; the ones
        # before say it follows), which the other processes adopt instead of simulating it again.
        epoch = self.branches.epochs[st.id]
        # The forecast's per-number part goes after the last event's line, for them to decode
        # only if they read it (hub.service.relayed).
        told, rest = relayed.split(forecast) if forecast is not None else (None, b"")
        for i, ev in enumerate(stored):
            message: dict[str, Any] = {**ev, "epoch": epoch}
            last = i == len(stored) - 1
            if forecast is not None:
                message["forecast"] = told if last else None
            try:
                await self.broker.publish(st.id, dumps(message) + (b"\n" + rest if last and rest else b""))
            except Exception:       # the event is in the log: other processes will catch up from it
                log.warning("publish failed", exc_info=True, extra={"fields": {"branch": st.id, "seq": ev["seq"]}})
        return body

    def _forecast(self, st: BranchState, stored: list[Event]) -> dict[str, Any] | None:
        """On a log other processes append to, the forecast of the state after our events: made
        here, once, at the time of the events (it is the point of that second, hub.predictions),
        for the others to adopt. None when the events changed nothing a forecast sees."""
        if not self.shared or not stored or st.eta.current() is not None:
            return None
        try:
            return st.eta.make(datetime.fromisoformat(stored[-1]["t"])).to_dict()
        except Exception:       # the others then make it themselves: a forecast never fails a command
            log.exception("forecast not made", extra={"fields": {"branch": st.id}})
            return None

    async def send_forecasts(self, branch: str) -> None:
        """Send the point forecasts this process simulated (hub.predictions) to the other processes,
        each with the seq of the state it was made on (call under the branch lock)."""
        pending = self.branches.outgoing.pop(branch, None)
        if not pending:
            return
        epoch = self.branches.epochs[branch]
        for seq, f in pending:
            try:
                await self.broker.publish(branch, dumps({"type": "forecast", "seq": seq, "epoch": epoch,
                                                         "by": self.branches.process, "forecast": f.to_dict()}))
            except Exception:       # the others make the point themselves, a little later
                log.warning("forecast not sent", exc_info=True, extra={"fields": {"branch": branch}})

    async def re_record(self, branch: str, known: BranchState) -> None:
        """After a reset (a wiped Redis, an older AOF), record again in the new epoch's log which
        counters were open, and with which fields, as this process knew them (call with the lock
        held, before anything is written in the new epoch: Branches.catch_up_locked checks).

        Why counters and only they: a counter's state is what its staff last said, and they have
        no reason to say it again; left out, every counter would come back closed and call-next
        would refuse while people wait. The events are ordinary counter.opened / counter.closed
        (marked `restored`), so the log stays the truth and every process folds them alike.
        Tickets are not re-recorded: a lost number is gone, and its holder's old link says so
        (hub.auth ticket tokens carry a nonce a re-issued number cannot have). Appended at the
        epoch's first seq: if any other process (or staff) wrote first, the seq check refuses this
        and what they wrote stands."""
        def decide(st: BranchState, now: datetime) -> list[Event]:
            evs: list[Event] = []
            for c in known.counters.values():
                now_there = st.counters.get(c.id)
                try:
                    if c.open:
                        made = commands.open_counter(st, now, c.id, list(c.services))
                    elif now_there is not None and now_there.open:
                        made = commands.close_counter(st, now, c.id)
                    else:
                        continue
                except DomainError:       # a counter the log shows serving someone stays as it is
                    continue
                evs += [{**ev, "restored": True} for ev in made]
            return evs

        st = self.branches.states[branch]
        if not decide(st, self.clock.now()):
            return                          # the log already says what we knew
        try:
            await self._attempt(st, decide, lambda st, evs, now: {}, None)
        except (SeqConflict, StoreUnavailable, DomainError) as e:
            log.warning("counters not re-recorded after a reset", extra={"fields": {
                "branch": branch, "why": type(e).__name__}})

    def _owed(self, st: BranchState, evs: list[Event], now: datetime) -> list[OutboxItem]:
        """The messages the events make owed, written with them (the outbox)."""
        try:
            at = now.timestamp()
            return [OutboxItem.owed(msg, at) for msg in self.rules.owed(st, evs, now)]
        except Exception:       # a fault in the rules must not stop the queue: the calls matter more
            log.exception("notifications not computed", extra={"fields": {"branch": st.id}})
            return []
