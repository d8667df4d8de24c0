"""Following other hub processes: the events they publish on the broker, folded in as they come.

A gap in what arrives, or a broker reconnect (the broker then says RESYNC), is filled from the log,
so a state never skips an event; events of our own process come back too and are passed over.
The forecasts another process made (with its events, or at a prediction point) are adopted, not
simulated again here (hub.service.pipeline, hub.predictions).
An event of another epoch than ours (another process noticed a wipe or an older log first) sends
us to the log too, where Branches.catch_up_locked resets this process's branch and its watchers.

Only the branches this process holds are followed: a branch's subscription starts when it is held
(Branches.on_hold) and ends when it is let go (Branches.on_let_go), so a process subscribes to the
channels of the branches it serves, not to every branch of the country.
"""
from __future__ import annotations

import asyncio
import json
from functools import partial

from hub import loops
from hub.broker.base import Broker
from hub.domain.eta.estimator import Forecast
from hub.domain.events import TYPES
from hub.domain.state import BranchState
from hub.service.branches import Branches
from hub.service.relayed import RelayedForecast

FORECAST = "forecast"       # a message that is not an event: a forecast point (hub.service.pipeline)


class Following:
    def __init__(self, branches: Branches, broker: Broker):
        self.branches, self.broker = branches, broker
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ending: set[asyncio.Task[None]] = set()      # cancelled, still unsubscribing
        self._running = False
        self._waiting: set[str] = set()
        self._following: asyncio.Event | None = None
        branches.on_hold.append(self._start)
        branches.on_let_go.append(self._stop)

    def following(self) -> list[str]:
        return sorted(self._tasks)

    async def run(self, following: asyncio.Event | None = None) -> None:
        """Follow every branch held, now and from now on, for the process's lifetime. `following`
        is set once every branch held at the start is subscribed to and caught up: from then on
        each event another process appends comes here with its forecast, which a state caught up
        from the log has not (hub.app waits for it before serving)."""
        self._running, self._following = True, following
        self._waiting = set(self.branches.states)
        self._followed(None)
        for branch, st in list(self.branches.states.items()):
            self._start(branch, st)
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            tasks, self._tasks = [*self._tasks.values(), *self._ending], {}
            await loops.stop(tasks)

    def _followed(self, branch: str | None) -> None:
        self._waiting.discard(branch or "")
        if not self._waiting and self._following is not None:
            self._following.set()

    def _start(self, branch: str, st: BranchState) -> None:
        if self._running and branch not in self._tasks:
            self._tasks[branch] = asyncio.create_task(
                loops.every(1.0, partial(self._one, branch), f"follow:{branch}"), name=f"follow:{branch}")

    def _stop(self, branch: str, st: BranchState) -> None:
        task = self._tasks.pop(branch, None)
        self._followed(branch)          # a branch let go is not waited for
        if task is not None:
            task.cancel()           # its subscription ends (the broker unsubscribes) as it unwinds
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _one(self, branch: str) -> None:
        branches = self.branches
        async with self.broker.subscribe(branch) as messages:
            await branches.catch_up(branch)            # what happened before we subscribed
            self._followed(branch)
            async for raw in messages:
                line, _, body = raw.partition(b"\n")   # an event's forecast follows its line (hub.service.relayed)
                ev = json.loads(line)
                epoch = ev.pop("epoch", None)          # the publisher's (hub.service.pipeline), not the event's
                if epoch is not None and epoch != branches.epochs[branch]:
                    await branches.catch_up(branch)    # another history (a wipe we missed): the log decides
                    continue
                seq = ev.get("seq")
                if ev.get("type") == FORECAST:         # a point another process simulated
                    if ev.get("by") != branches.process and isinstance(seq, int):
                        async with branches.lock(branch):
                            branches.adopt(branch, seq, ev["forecast"])
                    continue
                follows = "forecast" in ev             # the forecast of the state after it (or after a later one)
                head = ev.pop("forecast", None)
                forecast: Forecast | None = None
                if head:                               # whole in the line: sent by a process of before
                    forecast = Forecast.from_dict(head) if "raw" in head else RelayedForecast(head, body)
                if seq is not None and seq <= branches.states[branch].seq:
                    continue                           # ours, or already caught up
                if seq == branches.states[branch].seq + 1 and ev.get("type") in TYPES:
                    async with branches.lock(branch):
                        if branches.fold_published(branch, ev, forecast, follows=follows):
                            continue
                await branches.catch_up(branch)        # a gap, or RESYNC
