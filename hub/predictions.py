"""The live hub publishes its ETA predictions on the schedule of `queuecast eta replay`, and records them.

Publishing (`Estimator.publish`) is what makes the calibration remember a prediction and learn
from its outcome, so the live estimator must publish at the replay's points for its figures to be
the replay's: a prediction for a number when it is issued, and at every 5-minute boundary of the
clock for every number waiting (docs/trace.md#recorded-predictions). Each published line is recorded in the store under
its number's service day, so that real days can be scored later (`export-trace --predictions`).

Only the branches this process holds are published (hub.service.holding: a process running with
QUEUECAST_HOLD_BRANCHES=busy holds every branch with numbers waiting, so each point is published by
at least one process); a branch held again starts at the next boundary.

When. Event times are whole seconds and the replay publishes at `t` after folding every event
of `t`, so a point is published once its second is over, on a state that has folded nothing
later: by `step` (the loop runs it every second) or, if a later event comes first, just before it
is folded (`Branches.before_fold` in hub/service/branches.py: a command about to be decided, an
event of another hub process). A point the state has already moved past (events caught up from the log in a batch, a
state rebuilt from it) is passed over: its prediction would have known the future. Every hub
process publishes the same points, so each one's calibration learns the same lessons; the store
keeps each point once.

Who simulates. On a log several processes append to (Redis), a point's forecast is simulated once:
by the process that appended the branch's last event (it made the forecast of that state, sent
with the event: hub.service.pipeline), which also sends the boundary points it simulates. The
others adopt what comes (hub.service.follow) and publish it without simulating; a point they are
due before its forecast came waits for it, and is made by them only `grace` after its time.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from hub.domain.eta.estimator import Estimator, Quantiles
from hub.domain.eta.replay import STEP, boundary_after, line
from hub.domain.events import Event
from hub.domain.state import BranchState
from hub.service.queue import QueueService
from hub.store.predictions import Predictions

log = logging.getLogger("queuecast.predictions")

STEP_SECONDS = 1.0              # the loop's period: a point is published within about a second
MAX_CATCH_UP = 2 * 24 * 12      # boundaries published at most after a jump of the clock (two days)
MAX_UNWRITTEN = 100_000         # lines kept per branch while the store refuses them; the oldest go
NOTHING = Quantiles(0.0, 0.0, 0.0)     # as the replay: a number called within the second it was issued
GRACE = timedelta(seconds=10)   # a point not sent by the process that should make it is made after this
GRACE_SPREAD = 10.0             # ... and up to this many seconds more, drawn per process: the first to
#                                 make it sends it, and the others, still waiting, take it from there


@dataclass
class _Branch:
    next_boundary: datetime                                          # the first one not due yet
    boundaries: set[datetime] = field(default_factory=set)           # due, not published yet
    issued: dict[datetime, list[str]] = field(default_factory=dict)  # issue time → numbers, in order
    lines: list[tuple[date, dict[str, Any]]] = field(default_factory=list)  # published, not yet written


class Publisher:
    """One per hub process: `create_app` makes it after the service has loaded its branches."""

    def __init__(self, service: QueueService, store: Predictions):
        self.service, self.store = service, store
        first = boundary_after(service.now())        # a hub that was not running published nothing
        self._branches = {b: _Branch(first) for b in service.states}
        service.branches.on_hold.append(self._held)
        service.branches.on_let_go.append(self._let_go)
        self.published = 0                           # lines published by this process
        self.passed_over = 0                         # points the state had moved past (see above)
        self.slowest_ms = 0.0                        # the longest one branch's point has held the loop
        self.grace = GRACE + timedelta(seconds=random.uniform(0, GRACE_SPREAD))
        self._stepping = asyncio.Lock()
        service.on_event.append(self._on_event)
        service.before_fold.append(self._before_fold)

    async def step(self) -> int:
        """Publish every point now due, branch by branch, then record them; how many lines. One
        step at a time: a step that finds nothing new returns only once what an earlier one
        published is recorded (the loop's and a caller's)."""
        async with self._stepping:
            return await self._step()

    async def _step(self) -> int:
        n = 0
        for branch in list(self.service.states):
            try:
                async with self.service.lock(branch):
                    st = self.service.states.get(branch)
                    if st is not None:                  # not let go meanwhile
                        n += self._publish_due(st, self.service.now())
                        await self.service.pipeline.send_forecasts(branch)
            except Exception:           # one branch's fault keeps no other branch from its points
                log.exception("predictions not published", extra={"fields": {"branch": branch}})
            await asyncio.sleep(0)      # one branch's forecasts at a time: requests are served between
        await self.write()
        return n

    async def write(self) -> None:
        """Record what was published: one write per branch and service day. Best effort: a failed
        write is logged and tried again at the next step (the store keeps a point once)."""
        for branch, b in list(self._branches.items()):
            if not b.lines:
                if branch not in self.service.states:
                    self._branches.pop(branch, None)    # let go, and everything it published recorded
                continue
            lines, b.lines = b.lines, []
            by_day: dict[date, list[dict[str, Any]]] = {}
            for day, ln in lines:
                by_day.setdefault(day, []).append(ln)
            try:
                for day, group in by_day.items():
                    await self.store.add(branch, day, group)
            except asyncio.CancelledError:
                self._unwritten(branch, b, lines)
                raise
            except Exception:
                now = self._unwritten(branch, b, lines)
                log.warning("predictions not recorded yet", exc_info=True,
                            extra={"fields": {"branch": branch, "lines": len(now.lines)}})

    def _unwritten(self, branch: str, b: _Branch, lines: list[tuple[date, dict[str, Any]]]) -> _Branch:
        """Put back lines a write did not record, where the branch is kept now: while the write
        waited, the branch may have been let go (its entry dropped) or held again (a new entry)."""
        now = self._branches.setdefault(branch, b)
        now.lines = (lines + now.lines)[-MAX_UNWRITTEN:]
        return now

    # -- hooks of the service: under the branch lock, never failing a command --------------------

    def _held(self, branch: str, st: BranchState) -> None:
        kept = self._branches.get(branch)              # lines of an earlier hold not written yet stay
        self._branches[branch] = _Branch(boundary_after(self.service.now()), lines=kept.lines if kept else [])

    def _let_go(self, branch: str, st: BranchState) -> None:
        b = self._branches.get(branch)
        if b is not None and not b.lines:
            del self._branches[branch]                  # else `write` forgets it once they are recorded

    def _on_event(self, branch: str, ev: Event, data: bytes) -> None:
        if ev["type"] == "ticket.issued":
            b = self._branches[branch]
            b.issued.setdefault(datetime.fromisoformat(ev["t"]), []).append(ev["ticket"])

    def _before_fold(self, st: BranchState, now: datetime) -> None:
        try:
            self._publish_due(st, now, folding=True)
        except Exception:
            log.exception("predictions not published", extra={"fields": {"branch": st.id}})

    # -- the schedule --------------------------------------------------------------------------

    def _publish_due(self, st: BranchState, now: datetime, *, folding: bool = False) -> int:
        """Publish the points of seconds that are over, in time order (call under the branch lock).
        A point whose forecast is another process's to make (see `_may_simulate`) waits for it, and
        so do the points after it; `folding` (a later event is about to be folded): it is passed over."""
        b = self._branches[st.id]
        over = now.replace(microsecond=0)            # every event of an earlier second is folded
        if b.next_boundary < over - MAX_CATCH_UP * STEP:
            log.warning("clock jumped: boundaries passed over", extra={"fields": {
                "branch": st.id, "from": b.next_boundary.isoformat(), "to": over.isoformat()}})
            b.next_boundary = boundary_after(over - MAX_CATCH_UP * STEP)
        while b.next_boundary < over:
            b.boundaries.add(b.next_boundary)
            b.next_boundary += STEP
        due = sorted({*b.boundaries, *(t for t in b.issued if t < over)})
        est, n = st.eta, 0
        for t in due:
            if t in b.boundaries:               # everyone waiting, the new ones included
                waiting = [tk.id for tk in est.observed.waiting()]
                known = set(waiting)
                tickets = waiting + [tid for tid in b.issued.get(t, []) if tid not in known]
            else:
                tickets = b.issued.get(t, [])
            if tickets and est.observed.now is not None and est.observed.now > t:
                self._pass_over(st.id, t, tickets)
                tickets = []
            got: dict[str, Quantiles] | None = {}
            if tickets:
                made, started = est.simulations, time.perf_counter()
                got = est.publish_made(t, tickets, simulate=self._may_simulate(est, t, now))
                self.slowest_ms = max(self.slowest_ms, (time.perf_counter() - started) * 1000)
                if got is None and not folding:
                    break                       # its forecast is on its way from another process
                if got is None:
                    self._pass_over(st.id, t, tickets)
                    tickets = []
                elif est.simulations != made and self.service.pipeline.shared:
                    made_here = est.current()
                    if made_here is not None:   # the others take it rather than make it
                        self.service.branches.relay(st.id, made_here)
            b.boundaries.discard(t)
            b.issued.pop(t, None)
            for tid in tickets:
                ticket = st.tickets.get(tid)
                if ticket is not None and got is not None:      # the state keeps every number that can still wait
                    b.lines.append((ticket.day, line(t, tid, got.get(tid, NOTHING))))
                    n += 1
        self.published += n
        return n

    def _may_simulate(self, est: Estimator, t: datetime, now: datetime) -> bool:
        """On a log other processes append to, a point is simulated by the process that made the
        forecast of the state as it is (it appended the last event); the others take it from the
        broker. Unless none has come GRACE after the point (that process stopped, or it started
        after the last event): then whoever is due the point makes it."""
        if not self.service.pipeline.shared:
            return True
        return est.made_here() or now - t > self.grace

    def _pass_over(self, branch: str, t: datetime, tickets: list[str]) -> None:
        self.passed_over += len(tickets)
        log.info("prediction point passed over", extra={"fields": {
            "branch": branch, "t": t.isoformat(), "numbers": len(tickets)}})
