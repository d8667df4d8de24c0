"""The feed hub of one process: which connections watch which branch or ticket, how each starts
(snapshot, or exact resume), and the fan-out of every event to them.

Opening a feed follows Centrifugo: subscribe to live events first, then read the state or the
history under the branch lock (the lock the service holds while an event moves the state), and
drop live frames already covered by what was sent. So nothing is missed and nothing is repeated.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hub import views
from hub.domain.events import CITIZEN_TYPES, Event, for_board, on_board, public
from hub.feeds.addresses import AddressSlots
from hub.feeds.frames import Frame
from hub.feeds.subscriber import GONE, RESYNC, SHUTDOWN, SLOW, Subscriber
from hub.feeds.watch import TicketWatch
from hub.service.branches import spelling
from hub.service.queue import QueueService

log = logging.getLogger("queuecast.feeds")

MAX_REPLAY = 5000      # events; a client further behind than this gets a snapshot instead
MAX_PER_ADDRESS = 50   # open feeds per client address (QUEUECAST_MAX_FEEDS_PER_ADDRESS)


def _for_ticket(ev: Event, tid: str) -> Event:
    """What ticket `tid`'s feed is told of an event: what the board is told, and of its own
    holder's opt-ins and ratings all of it: what someone else asked for, or how they rated, is theirs."""
    if ev.get("ticket") == tid and not on_board(ev) and ev["type"] in CITIZEN_TYPES:
        return public(ev)
    return for_board(ev)


@dataclass
class Stats:
    """Read by /metrics."""
    deliveries: int = 0
    slow_cuts: int = 0
    resumes: int = 0
    snapshots: int = 0
    direct: int = 0                 # WebSocket connections written to directly (hub.feeds.direct)
    writes: int = 0                 # writes of live frames to those (a command's events in one)
    connections: dict[str, int] = field(default_factory=lambda: {"board": 0, "ticket": 0})


@contextmanager
def _unregister_on_failure(sub: Subscriber) -> Iterator[None]:
    """A feed that cannot start (say, the store is down while reading history) leaves nothing behind."""
    try:
        yield
    except BaseException:
        sub.close(GONE)
        raise


class FeedHub:
    def __init__(self, service: QueueService, max_per_address: int = MAX_PER_ADDRESS):
        self.service = service
        self.addresses = AddressSlots(max_per_address)       # taken and given back by the endpoints
        self.boards: dict[str, set[Subscriber]] = {}
        self.tickets: dict[str, dict[str, TicketWatch]] = {}         # branch → ticket id → its watchers
        self.stats = Stats()
        # Frames for direct connections, written at the end of the loop's turn (_send): by group.
        self._pending: dict[int, tuple[set[Subscriber], list[Frame]]] = {}
        service.on_event.append(self._on_event)
        service.branches.keep.append(self.watched)     # a branch with watchers here stays held
        service.on_reset.append(self._on_reset)

    # -- opening ------------------------------------------------------------------------------------

    async def open_board(self, branch: str, since: int | None, epoch: str | None) -> tuple[list[Frame], Subscriber]:
        await self.service.hold(branch)                             # 404 for an unknown branch
        sub = self._register(self.boards.setdefault(branch, set()), "board")
        with _unregister_on_failure(sub):
            async with self.service.lock(branch):
                st, now = self.service.state(branch), self.service.now()
                head, current = st.seq, self.service.epochs[branch]
                tip = self.service.branches.tip(branch)
                sub.starts_at(head)
                if since is None or not self._resumable(since, epoch, head, current):
                    self.stats.snapshots += 1
                    view = views.branch_view(st, now)
                    return [Frame.of(head, {**view, "type": "snapshot", "seq": head, "epoch": current,
                                            "resumed": False})], sub
            frames = await self._resume(branch, since, head, current, tip, for_board)
        if frames is None:
            await self._look_again(branch, sub)
            return await self.open_board(branch, None, None)
        return frames, sub

    async def open_ticket(self, token: str, since: int | None, epoch: str | None) -> tuple[list[Frame], Subscriber]:
        ref = await self.service.hold_ticket(token)
        branch, tid = ref.branch, ref.ticket
        self.service.held(self.service.state(branch), ref)        # 404 unless the token's very ticket
        per_ticket = self.tickets.setdefault(branch, {})
        watch = per_ticket.setdefault(tid, TicketWatch())

        def unwatched() -> None:        # its last watcher gone: the ticket's watch goes too
            if not watch.subs and per_ticket.get(tid) is watch:
                del per_ticket[tid]
        sub = self._register(watch.subs, "ticket", unwatched)
        with _unregister_on_failure(sub):
            async with self.service.lock(branch):
                st, now = self.service.state(branch), self.service.now()
                head, current = st.seq, self.service.epochs[branch]
                tip = self.service.branches.tip(branch)
                sub.starts_at(head)
                # Again under the lock: the branch may have been reset meanwhile.
                view = views.ticket_view(st, self.service.held(st, ref), now)
                watch.start(view, now, head)
                if since is None or not self._resumable(since, epoch, head, current):
                    self.stats.snapshots += 1
                    return [Frame.of(head, {"type": "snapshot", "seq": head, "epoch": current,
                                            "resumed": False, "ticket": view})], sub
            # Replayed events carry the ticket as it is now: what the phone must show.
            frames = await self._resume(branch, since, head, current, tip,
                                        lambda ev: {**_for_ticket(ev, tid), "ticket": view})
        if frames is None:
            await self._look_again(branch, sub)
            return await self.open_ticket(token, None, None)       # a 404 now, if the history lost it
        return frames, sub

    async def _look_again(self, branch: str, sub: Subscriber) -> None:
        """A resume found the log other than this process folded it: let the process catch up with
        the log (which gives the branch a new epoch and resets its watchers if the history changed),
        and start the client afresh with a snapshot instead."""
        sub.close(GONE)
        log.warning("a resume found the log changed", extra={"fields": {"branch": branch}})
        await self.service.catch_up(branch, verify=True)

    def watched(self, branch: str, st: object = None) -> bool:
        """Whether any connection of this process watches the branch (its board or a ticket)."""
        return bool(self.boards.get(branch)) or any(w.subs for w in self.tickets.get(branch, {}).values())

    def _register(self, group: set[Subscriber], kind: str, emptied: Callable[[], None] | None = None) -> Subscriber:
        sub = Subscriber()
        group.add(sub)
        self.stats.connections[kind] += 1

        def closed(s: Subscriber, reason: str) -> None:
            group.discard(s)
            self.stats.connections[kind] -= 1
            if emptied is not None:
                emptied()
            if reason == SLOW:
                self.stats.slow_cuts += 1

        sub.on_close = closed
        return sub

    @staticmethod
    def _resumable(since: int, epoch: str | None, head: int, current: str) -> bool:
        return (0 <= since <= head and head - since <= MAX_REPLAY
                and (epoch is None or epoch == current))

    async def _resume(self, branch: str, since: int, head: int, epoch: str, tip: str | None,
                      shape: Callable[[Event], dict[str, Any]]) -> list[Frame] | None:
        """The resume marker and exactly the events after `since` up to `head`; None if the log no
        longer holds the events this process folded up to `head` (it went back, and this process
        has not looked at it since): then no resume at all (_look_again)."""
        self.stats.resumes += 1
        # At the head (a phone back after a blip) there is nothing to read: no store round trip.
        missed = await self.service.events_since(branch, since, limit=head - since) if head > since else []
        if [ev["seq"] for ev in missed] != list(range(since + 1, head + 1)) or (
                missed and tip is not None and spelling(missed[-1]) != tip):
            return None
        frames = [Frame.of(since, {"type": "resume", "seq": since, "epoch": epoch, "resumed": True})]
        frames += [Frame.of(ev["seq"], shape(ev)) for ev in missed]
        return frames

    # -- fan-out (called by the service under the branch lock, in seq order) -------------------------

    def _on_event(self, branch: str, ev: Event, data: bytes) -> None:
        board = self.boards.get(branch)
        if board:
            self._send(board, Frame.from_text(ev["seq"], data.decode()))     # encoded once for all watchers
        watched = self.tickets.get(branch)
        if watched:
            st, now = self.service.state(branch), self.service.now()
            ahead = st.ahead_counter()                             # the state stays as it is meanwhile
            for tid, watch in list(watched.items()):
                t = st.tickets.get(tid)
                if t is None or not watch.subs:
                    watched.pop(tid, None)                         # nobody left, or a forgotten day
                    continue
                # Only what changes the phone's view (or is about the ticket) is sent: a lobby's
                # other numbers come and go without a frame to every phone (hub.feeds.watch).
                view = views.ticket_view(st, t, now, people_ahead=ahead)
                prev = watch.worth_sending(ev["seq"], view, now, ev.get("ticket") == tid)
                if prev is None:
                    continue
                self._send(watch.subs, Frame.of(ev["seq"], {**_for_ticket(ev, tid), "prev": prev, "ticket": view}))

    def _send(self, subs: set[Subscriber], frame: Frame) -> None:
        """A frame to every subscriber of a group. A queue takes it now; a direct connection at the
        end of the loop's turn, in one write with the group's other frames of that turn: a
        call-next's `ticket.completed` and `ticket.called` (delivered together by the service)
        reach each board in one pass over the connections, not two."""
        self.stats.deliveries += len(subs)
        direct = False
        for sub in list(subs):
            if sub.direct is None:
                sub.push(frame)
            else:
                direct = True
        if not direct:
            return
        pending = self._pending.get(id(subs))          # the entry holds the set: its id stays its own
        if pending is not None:
            pending[1].append(frame)
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending[id(subs)] = (subs, [frame])

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for subs, frames in pending.values():
            joined = frames[0].wire if len(frames) == 1 else b"".join(f.wire for f in frames)
            for sub in list(subs):
                if sub.direct is not None:     # a queued one had them at once
                    self.stats.writes += sub.push_all(frames, joined)

    def _on_reset(self, branch: str) -> None:
        """The branch's history was replaced: every watcher must start again from a snapshot."""
        # Frames of the old history still waiting for the end of the turn go nowhere.
        for subs in [self.boards.get(branch, set()), *(w.subs for w in self.tickets.get(branch, {}).values())]:
            self._pending.pop(id(subs), None)
        for sub in list(self.boards.get(branch, ())):
            sub.close(RESYNC)
        # What their phones were last sent is of the old history: the next watchers start afresh.
        for watch in list(self.tickets.pop(branch, {}).values()):
            for sub in list(watch.subs):
                sub.close(RESYNC)

    def close_all(self, reason: str = SHUTDOWN) -> None:
        """This process stops: every watcher reconnects (here or elsewhere) and resumes by seq."""
        for sub in [*(s for subs in self.boards.values() for s in subs),
                    *(s for per_ticket in self.tickets.values() for w in per_ticket.values() for s in w.subs)]:
            sub.close(reason)
