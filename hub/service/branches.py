"""The branches this process holds, each folded from its log, and the ways they keep up with the log.

A branch is held (loaded, followed) from the first time something needs it (`hold`: a command, a
feed, a view) and let go again (`let_go_idle`) when nobody has used it for `idle_seconds` and no
keeper (`keep`: a feed watching it, work still to do there) asks to keep it. Unknown branches are
refused from the configuration alone: a 404 loads nothing.

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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from hub.archive import Archive
from hub.domain.config import Centre
from hub.domain.errors import excerpt, not_found
from hub.domain.eta.estimator import Forecast
from hub.domain.events import Event, for_board
from hub.domain.state import BranchState, apply
from hub.service.snapshots import Loaded, load_state
from hub.service.snapshots import spelling as spelling  # one spelling; hub.feeds reads it here
from hub.store.eventlog import EventLog, LogHead
from hub.store.snapshots import Snapshots

log = logging.getLogger("queuecast.command")


def dumps(ev: Event) -> bytes:
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class LetGo:
    """What this process knew of a branch it let go: enough to tell, when it holds it again, that
    its history went back meanwhile (the same epoch, but not the events we had folded)."""

    epoch: str
    seq: int
    tip: str | None


class Branches:
    def __init__(self, centre: Centre, events: EventLog, snapshots: Snapshots | None = None,
                 archive: Archive | None = None, idle_seconds: float = 600.0):
        self.centre, self.eventlog = centre, events
        # Where states start from (hub.service.snapshots.load_state): a branch's snapshot and the
        # events after it; the archive holds what a trimmed log forgot.
        self.snapshots, self.archive = snapshots, archive
        # The seq of the snapshot each state was started from (0: the full fold), for the Snapshotter.
        self.started_from: dict[str, int] = {}
        self.idle_seconds = idle_seconds
        self.states: dict[str, BranchState] = {}      # the branches held, and only they
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
        # Holding and letting go: called with a branch just loaded, or just let go (under its lock).
        self.on_hold: list[Callable[[str, BranchState], None]] = []
        self.on_let_go: list[Callable[[str, BranchState], None]] = []
        # Asked before an idle branch is let go: any True keeps it (a feed watching it, work to do).
        self.keep: list[Callable[[str, BranchState], bool]] = []
        self.let_go: dict[str, LetGo] = {}
        self._used: dict[str, float] = {}              # branch → when last used (time.monotonic)
        self.loads = self.let_goes = 0                 # read by /metrics
        # Forecasts this process simulated at a prediction point, to be sent to the other processes
        # (hub.service.pipeline: before the branch's next events), and this process's name on them.
        self.outgoing: dict[str, list[tuple[int, Forecast]]] = {}      # (the state's seq, its forecast)
        self.process = secrets.token_hex(6)

    def _loaded(self, branch: str, got: Loaded) -> None:
        self.epochs[branch], self.states[branch] = got.epoch, got.state
        self._tips.pop(branch, None)
        if got.tip is not None:
            self._tips[branch] = got.tip
        self.started_from[branch] = got.started_from

    def known(self, branch: str) -> None:
        """404 for a branch the configuration does not have (nothing is loaded to tell)."""
        if branch not in self.centre.branches:
            raise not_found("branch_not_found", f"No branch {excerpt(branch)}.",
                            f"Không có chi nhánh {excerpt(branch)}.")

    async def hold(self, branch: str) -> BranchState:
        """The branch's state, loaded from its log and followed from now on if this process did
        not hold it; the branch counts as used now. Call it before `state`, outside the branch's
        lock (loading takes it, so that two callers load once)."""
        st = self.states.get(branch)
        if st is None:
            self.known(branch)
            async with self._locks[branch]:
                st = self.states.get(branch)
                if st is None:
                    st = await self._load(branch)
        self._used[branch] = time.monotonic()
        return st

    async def hold_all(self) -> None:
        for b in self.centre.branches:
            await self.hold(b)

    async def _load(self, branch: str) -> BranchState:
        """Start the branch from its snapshot and the log after it (call with its lock held)."""
        got = await load_state(self.centre.branches[branch], self.eventlog, self.snapshots, self.archive)
        before = self.let_go.get(branch)
        if before is not None and got.epoch == before.epoch and before.seq and await self._went_back(branch, before):
            # The history went back while nobody here held it: what clients saw of it was another
            # history, so it must be another epoch (as catch_up_locked does for a held branch).
            got = replace(got, epoch=(await self.eventlog.new_epoch(branch, got.epoch)).epoch)
        self.let_go.pop(branch, None)
        self._loaded(branch, got)
        self.loads += 1
        for fn in self.on_hold:
            fn(branch, got.state)
        return got.state

    async def _went_back(self, branch: str, before: LetGo) -> bool:
        at = await self.eventlog.events_since(branch, before.seq - 1, 1)
        if at and at[0].get("seq", 0) > before.seq:
            return False        # trimmed past what we had (days let go): the snapshot is the judge
        return not at or at[0].get("seq") != before.seq or (before.tip is not None and spelling(at[0]) != before.tip)

    async def let_go_idle(self) -> list[str]:
        """Let go every branch unused for `idle_seconds` that no keeper keeps: its state is
        dropped and the hooks (its following, its forecasts) stop. Returns the branches let go."""
        gone = []
        for branch in list(self.states):
            if not self._idle(branch) or self._locks[branch].locked():
                continue            # in use (a command, a catch-up): not idle, whatever the clock says
            async with self._locks[branch]:
                st = self.states.get(branch)
                if st is None or not self._idle(branch) or any(keep(branch, st) for keep in self.keep):
                    continue
                del self.states[branch]
                self.let_go[branch] = LetGo(self.epochs.pop(branch), st.seq, self._tips.pop(branch, None))
                self.stale.discard(branch)
                self._used.pop(branch, None)
                self.let_goes += 1
                for fn in self.on_let_go:
                    fn(branch, st)
                gone.append(branch)
        return gone

    def _idle(self, branch: str) -> bool:
        return time.monotonic() - self._used.get(branch, 0.0) >= self.idle_seconds

    async def moved(self) -> list[str]:
        """The branches let go whose log has moved since (another process wrote to them)."""
        out = []
        for branch, before in list(self.let_go.items()):
            head = await self.eventlog.head(branch)
            if (head.epoch, head.seq) != (before.epoch, before.seq):
                out.append(branch)
        return out

    def state(self, branch: str) -> BranchState:
        """A held branch's state (after `hold`); 404 for a branch the configuration does not have."""
        st = self.states.get(branch)
        if st is None:
            self.known(branch)
            raise RuntimeError(f"branch {branch} is not held here: await hold({branch!r}) first")
        return st

    def lock(self, branch: str) -> asyncio.Lock:
        """Held while a branch's state moves: hold it to read a state consistent with its seq."""
        self.known(branch)
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
        seen, epoch = self.states[branch].seq, self.epochs[branch]
        got = await load_state(self.centre.branches[branch], self.eventlog, self.snapshots, self.archive)
        missed = [] if replaced or got.state.seq <= seen else \
            await self.eventlog.events_since(branch, seen, got.state.seq - seen)
        got.state.eta.simulations = self.states[branch].eta.simulations     # a count for as long as the process runs
        self._loaded(branch, got)
        self.epochs[branch] = epoch         # the caller decides on another epoch (catch_up_locked)
        self.stale.discard(branch)
        self.deliver(branch, [ev for ev in missed if ev["seq"] <= got.state.seq])
        return got.state

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
            if not evs or evs[0]["seq"] <= st.seq:      # else trimmed past our own event (below)
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
        if evs and evs[0]["seq"] != st.seq + 1:
            # The log was trimmed past our state (hub.service.trim: this process fell days behind):
            # start again from the snapshot, and the watchers too, as after a reset.
            await self.reload(branch, replaced=True)
            for fn in self.on_reset:
                fn(branch)
            return
        for ev in evs:
            apply(st, ev)
        self.deliver(branch, evs)

    async def catch_up(self, branch: str | None = None, *, verify: bool = False) -> None:
        """Fold in what other processes appended, to one branch or every branch (a process with no
        broker to tell it, like the notifier on SQLite, polls this); `verify`: see catch_up_locked."""
        if branch is not None:
            self.known(branch)
        for b in list(self.states) if branch is None else (branch,):
            async with self._locks[b]:
                if b in self.states:            # one let go meanwhile, or never held: its log is read when it is
                    await self.catch_up_locked(b, verify=verify)
