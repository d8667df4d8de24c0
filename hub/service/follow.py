"""Following other hub processes: the events they publish on the broker, folded in as they come.

A gap in what arrives, or a broker reconnect (the broker then says RESYNC), is filled from the log,
so a state never skips an event; events of our own process come back too and are passed over.
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
from hub.domain.events import TYPES
from hub.domain.state import BranchState
from hub.service.branches import Branches


class Following:
    def __init__(self, branches: Branches, broker: Broker):
        self.branches, self.broker = branches, broker
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ending: set[asyncio.Task[None]] = set()      # cancelled, still unsubscribing
        self._running = False
        branches.on_hold.append(self._start)
        branches.on_let_go.append(self._stop)

    def following(self) -> list[str]:
        return sorted(self._tasks)

    async def run(self) -> None:
        """Follow every branch held, now and from now on, for the process's lifetime."""
        self._running = True
        for branch, st in list(self.branches.states.items()):
            self._start(branch, st)
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            tasks, self._tasks = [*self._tasks.values(), *self._ending], {}
            await loops.stop(tasks)

    def _start(self, branch: str, st: BranchState) -> None:
        if self._running and branch not in self._tasks:
            self._tasks[branch] = asyncio.create_task(
                loops.every(1.0, partial(self._one, branch), f"follow:{branch}"), name=f"follow:{branch}")

    def _stop(self, branch: str, st: BranchState) -> None:
        task = self._tasks.pop(branch, None)
        if task is not None:
            task.cancel()           # its subscription ends (the broker unsubscribes) as it unwinds
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _one(self, branch: str) -> None:
        branches = self.branches
        async with self.broker.subscribe(branch) as messages:
            await branches.catch_up(branch)            # what happened before we subscribed
            async for raw in messages:
                ev = json.loads(raw)
                epoch = ev.pop("epoch", None)          # the publisher's (hub.service.pipeline), not the event's
                if epoch is not None and epoch != branches.epochs[branch]:
                    await branches.catch_up(branch)    # another history (a wipe we missed): the log decides
                    continue
                seq = ev.get("seq")
                if seq is not None and seq <= branches.states[branch].seq:
                    continue                           # ours, or already caught up
                if seq == branches.states[branch].seq + 1 and ev.get("type") in TYPES:
                    async with branches.lock(branch):
                        if branches.fold_published(branch, ev):
                            continue
                await branches.catch_up(branch)        # a gap, or RESYNC
