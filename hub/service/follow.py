"""Following other hub processes: the events they publish on the broker, folded in as they come.

A gap in what arrives, or a broker reconnect (the broker then says RESYNC), is filled from the log,
so a state never skips an event; events of our own process come back too and are passed over.
The forecasts another process made (with its events, or at a prediction point) are adopted, not
simulated again here (hub.service.pipeline, hub.predictions).
An event of another epoch than ours (another process noticed a wipe or an older log first) sends
us to the log too, where Branches.catch_up_locked resets this process's branch and its watchers.
"""
from __future__ import annotations

import asyncio
import json
from functools import partial

from hub import loops
from hub.broker.base import Broker
from hub.domain.eta.estimator import Forecast
from hub.domain.events import TYPES
from hub.service.branches import Branches

FORECAST = "forecast"       # a message that is not an event: a forecast point (hub.service.pipeline)


async def follow(branches: Branches, broker: Broker, following: asyncio.Event | None = None) -> None:
    """Keep every branch's state current; runs for the process's lifetime. `following` is set once
    every branch is subscribed to and caught up: from then on each event another process appends
    comes here with its forecast, which a state caught up from the log has not (hub.app waits)."""
    waiting = set(branches.states)

    async def one(branch: str) -> None:
        async with broker.subscribe(branch) as messages:
            await branches.catch_up(branch)            # what happened before we subscribed
            waiting.discard(branch)
            if not waiting and following is not None:
                following.set()
            async for raw in messages:
                ev = json.loads(raw)
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
                forecast = ev.pop("forecast", None)
                if seq is not None and seq <= branches.states[branch].seq:
                    continue                           # ours, or already caught up
                if seq == branches.states[branch].seq + 1 and ev.get("type") in TYPES:
                    async with branches.lock(branch):
                        if branches.fold_published(branch, ev, Forecast.from_dict(forecast) if forecast else None,
                                                   follows=follows):
                            continue
                await branches.catch_up(branch)        # a gap, or RESYNC

    await asyncio.gather(*(loops.every(1.0, partial(one, b), f"follow:{b}") for b in branches.states))
