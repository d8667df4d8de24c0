"""Every branch's state in this process, folded from its log, and the ways it keeps up with the log.

A state moves only under its branch's lock, in seq order; whoever moves it tells the watchers
(`on_event`: the feeds, the prediction publisher) of each event, encoded once. The log stays the
truth: a state that may hold what the log does not (an append that failed half-way) is marked
stale and rebuilt from the log before anything else uses it, and a log that is not the one we
folded (another epoch, a head behind our seq) resets the watchers (`on_reset`) instead.

A head behind what this process has seen in the same epoch (an older AOF, a failover that lost
writes) is a history that went back without anyone saying so: this process mints a new epoch in
the store (EventLog.new_epoch, a compare-and-set, so every process ends in the same one), and
every process then treats it like a wipe: reload from the log, resync every watcher.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from hub.domain.config import Centre
from hub.domain.errors import excerpt, not_found
from hub.domain.eta.estimator import Forecast
from hub.domain.events import Event, for_board
from hub.domain.state import BranchState, apply, fold
from hub.store.eventlog import EventLog, LogHead

log = logging.getLogger("queuecast.command")


def dumps(ev: Event) -> bytes:
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode()


def spelling(ev: Event) -> str:
    """One spelling of an event, to tell whether the log holds the very event a state folded."""
    return json.dumps(ev, sort_keys=True)


class Branches:
    def __init__(self, centre: Centre, events: EventLog):
        self.centre, self.eventlog = centre, events
        self.states: dict[str, BranchState] = {}
        self.epochs: dict[str, str] = {}
        self._locks = {b: asyncio.Lock() for b in centre.branches}
        self.stale: set[str] = set()           # branches whose state may hold events not in the log
        # Called, in seq order and under the branch lock, with every event folded into a branch's
        # state (made here or learned from another process) and its board JSON, encoded once.
        self.on_event: list[Callable[[str, Event, bytes], None]] = []
        # Called under the branch lock before events of time `now` are folded into a branch's state
        # (a command about to be decided, an event of another process): what was due before `now`
        # (hub.predictions) is done on the state as it was then.
        self.before_fold: list[Callable[[BranchState, datetime], None]] = []
        # Called when a branch's history may have been lost (epoch changed): clients must resync.
        self.on_reset: list[Callable[[str], None]] = []
        # Called under the branch lock after a reset found a new epoch with nothing written in it
        # yet, with the state this process had folded before: what it knew that the new log lost
        # may be recorded again (hub.service.pipeline: the counters' open state).
        self.after_reset: Callable[[str, BranchState], Awaitable[None]] | None = None
        # The last event folded into each state, in one spelling: a catch-up reads it again from
        # the log, and another event there means the log was replaced at the same length or longer.
        self._tips: dict[str, str] = {}
        # Forecasts this process simulated at a prediction point, to be sent to the other processes
        # (hub.service.pipeline: before the branch's next events), and this process's name on them.
        self.outgoing: dict[str, list[tuple[int, Forecast]]] = {}      # (the state's seq, its forecast)
        self.process = secrets.token_hex(6)

    async def load(self) -> None:
        """Rebuild every branch's state from its log."""
        for b in self.centre.branches.values():
            self.epochs[b.id] = (await self.eventlog.head(b.id)).epoch
            evs = await self.eventlog.events_since(b.id, 0)
            self.states[b.id] = fold(b, evs)
            self._tip(b.id, evs)

    def state(self, branch: str) -> BranchState:
        st = self.states.get(branch)
        if st is None:
            raise not_found("branch_not_found", f"No branch {excerpt(branch)}.",
                            f"Không có chi nhánh {excerpt(branch)}.")
        return st

    def lock(self, branch: str) -> asyncio.Lock:
        """Held while a branch's state moves: hold it to read a state consistent with its seq."""
        self.state(branch)
        return self._locks[branch]

    # -- reading the log (resumes, day statistics) ----------------------------------------------------

    async def head(self, branch: str) -> LogHead:
        return await self.eventlog.head(branch)

    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        return await self.eventlog.events_since(branch, after_seq, limit)

    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        return await self.eventlog.events_of_day(branch, day)

    # -- moving a state -----------------------------------------------------------------------------

    def _tip(self, branch: str, evs: list[Event]) -> None:
        if evs:
            self._tips[branch] = spelling(evs[-1])

    def _follows(self, branch: str, ev: Event) -> bool:
        """Whether `ev`, read from the log at our seq, is the event we folded there."""
        tip = self._tips.get(branch)
        return tip is None or tip == spelling(ev)

    def tip(self, branch: str) -> str | None:
        """The spelling of the last event folded into the branch's state (read it under the lock)."""
        return self._tips.get(branch)

    def deliver(self, branch: str, evs: list[Event]) -> None:
        self._tip(branch, evs)
        for ev in evs:
            data = dumps(for_board(ev))
            for fn in self.on_event:
                fn(branch, ev, data)

    def fold_published(self, branch: str, ev: Event, forecast: Forecast | None = None,
                       follows: bool = False) -> bool:
        """Fold an event another process published, if it is the next one (call under the lock),
        with the forecast that process made of the state after it (`follows`: one comes with a
        later event of the same command): adopted before the watchers are told, so that none of
        them makes this process simulate it again."""
        st = self.states[branch]
        if ev.get("seq") != st.seq + 1:
            return False
        for fn in self.before_fold:
            fn(st, datetime.fromisoformat(ev["t"]))
        apply(st, ev)
        if forecast is not None:
            st.eta.adopt(forecast)
        elif follows:
            st.eta.hold()
        self.deliver(branch, [ev])
        return True

    def relay(self, branch: str, forecast: Forecast) -> None:
        """Have a forecast this process simulated sent to the others (call under the lock)."""
        self.outgoing.setdefault(branch, []).append((self.states[branch].seq, forecast))

    def adopt(self, branch: str, seq: int, data: dict[str, Any]) -> None:
        """Take a forecast another process sent of the state at `seq`, if ours is that state
        (call under the lock); one of a state we have moved past is of no use any more."""
        st = self.states[branch]
        if seq == st.seq and branch not in self.stale:
            st.eta.adopt(Forecast.from_dict(data))

    def forecasts(self, branch: str) -> int:
        """Forecasts simulated in this process for the branch (its current state's estimator)."""
        return self.states[branch].eta.simulations

    async def reload(self, branch: str, *, replaced: bool = False) -> BranchState:
        """Rebuild the state from the log. Unless the history was replaced, the watchers are then
        given the events they have not had yet (another process appended them while our append
        conflicted, or while the store could not be read): a reload must not leave a gap in a feed."""
        seen = self.states[branch].seq
        evs = await self.eventlog.events_since(branch, 0)
        st = fold(self.centre.branches[branch], evs)
        st.eta.simulations = self.states[branch].eta.simulations     # a count for as long as the process runs
        self.states[branch] = st
        self._tips.pop(branch, None)
        self._tip(branch, evs)
        self.stale.discard(branch)
        if not replaced:
            self.deliver(branch, [ev for ev in evs if ev["seq"] > seen])
        return st

    async def catch_up_locked(self, branch: str, *, verify: bool = False) -> None:
        """Fold in what other processes appended since our seq, or rebuild a stale state (call
        with the branch lock held). The epoch is checked first, so that the events of a replaced
        history are never passed on as if they followed the ones the watchers have. `verify`: our
        last event is compared with the log's even when the heads are equal (a resume found the
        log other than we folded it: it may have gone back and grown again to the same length)."""
        st = self.states[branch]
        head = await self.eventlog.head(branch)
        went_back, evs = head.seq < st.seq, []
        ahead = head.seq > st.seq or (verify and head.seq == st.seq)
        if head.epoch == self.epochs[branch] and ahead and st.seq and branch not in self.stale:
            # Read from our own last event on: another event there means the log went back and
            # grew again (other processes wrote over a lost part before we looked).
            evs = await self.eventlog.events_since(branch, st.seq - 1)
            went_back = not evs or not self._follows(branch, evs[0])
            evs = evs[1:]
        if head.epoch == self.epochs[branch] and went_back:
            # Behind what we folded, in the same epoch: the history went back (an older AOF, a
            # lost failover). Whatever is appended next would reuse seqs clients have seen with
            # other events, so it must be another epoch; ours or one another process minted.
            head = await self.eventlog.new_epoch(branch, head.epoch)
        if head.epoch != self.epochs[branch]:
            # The log is not the one we folded (a wiped or replaced Redis): start again from it.
            log.warning("branch history replaced", extra={"fields": {
                "branch": branch, "seq": st.seq, "head": head.seq, "epoch": head.epoch}})
            self.epochs[branch] = head.epoch
            new = await self.reload(branch, replaced=True)
            for fn in self.on_reset:
                fn(branch)
            if self.after_reset is not None and new.seq == head.base:
                await self.after_reset(branch, st)
            return
        if branch in self.stale:
            await self.reload(branch)
            return
        if head.seq == st.seq:
            return
        if not evs:
            evs = await self.eventlog.events_since(branch, st.seq)
        for ev in evs:
            apply(st, ev)
        self.deliver(branch, evs)

    async def catch_up(self, branch: str | None = None, *, verify: bool = False) -> None:
        """Fold in what other processes appended, to one branch or every branch (a process with no
        broker to tell it, like the notifier on SQLite, polls this); `verify`: see catch_up_locked."""
        for b in self.states if branch is None else (branch,):
            async with self._locks[b]:
                await self.catch_up_locked(b, verify=verify)
