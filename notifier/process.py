"""Running the worker: as its own process (`queuecast notifier`, the Procfile's `worker:`), or inside
`serve` and `demo` when QUEUECAST_NOTIFIER=inline.

The process keeps its own QueueService over the same store: the state the rules judge by, folded
from the log, and the way a gone push subscription is removed (an event in the log, like any other).
SIGTERM or SIGINT stops claiming; the sends under way finish (at most SHUTDOWN seconds), and
anything cut short stays `sending` until its lease runs out, for the next worker to take.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from hub.auth import Tokens
from hub.broker import open_broker
from hub.clock import RealClock, parse_start
from hub.config import load_config
from hub.service import QueueService
from hub.settings import Settings
from hub.store import open_store
from notifier.senders import open_senders
from notifier.worker import LEASE, Worker

log = logging.getLogger("queuecast.notifier")

SHUTDOWN = 10.0          # seconds the sends under way get to finish after SIGTERM


def inline(settings: Settings):
    """A `create_app` task: the worker in the hub's process, on the hub's own service."""
    async def task(service: QueueService) -> None:
        async with open_senders(settings) as senders:
            await Worker(service, senders, rate=settings.notify_rate,
                         sms_diacritics=settings.sms_diacritics).run(asyncio.Event())
    return task


async def main(settings: Settings, *, lease: float = LEASE) -> None:
    centre = load_config(settings.config or None)
    clock = RealClock(settings.zone, parse_start(settings.clock, settings.zone))
    tokens = Tokens(settings.resolve_secret())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_store(settings.database) as store, open_broker(settings.broker_url) as broker:
        service = QueueService(centre, store, broker, clock, tokens, settings.public_url, settings.notify_ahead)
        await service.load()
        async with open_senders(settings) as senders:
            worker = Worker(service, senders, rate=settings.notify_rate, lease=lease,
                            sms_diacritics=settings.sms_diacritics)
            log.info("notifier started", extra={"fields": {"channels": sorted(senders), "lease_s": lease,
                                                           "rate_per_s": settings.notify_rate}})
            running = asyncio.create_task(worker.run(stop))
            await stop.wait()
            done, _ = await asyncio.wait({running}, timeout=SHUTDOWN)
            if not done:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            log.info("notifier stopped", extra={"fields": worker.counts})
