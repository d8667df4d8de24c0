"""The composition root: the one place that builds a hub process from its settings and wires its
parts (DESIGN §8). Everything below it is handed what it uses; nothing connects at import time.

- `open_hub(settings)`: store, broker, service (its branches loaded), live feeds, the prediction
  publisher, the background loops and, with QUEUECAST_NOTIFIER=inline, the notification worker,
  for as long as the context lasts; the hub's `Hub` inside it.
- `create_app(settings)`: the ASGI app, every route mounted (the API, the feeds, the pages of
  `displays`, the delivery-report hooks and push key of `notifier`), running `open_hub` in its lifespan.
- `run_notifier(settings)`: `queuecast notifier`, the worker in a process of its own.
- `enrol_kiosk(settings, branch, name)`: `queuecast token kiosk`, a device enrolled through the log.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect

from displays import routes as pages
from hub import loops, retention
from hub.archive import Archive
from hub.auth import Tokens
from hub.broker import Broker, open_broker
from hub.clock import Clock, RealClock, parse_start
from hub.config import load_config
from hub.domain.config import Centre
from hub.domain.errors import DomainError
from hub.feeds.fanout import FeedHub
from hub.metrics import Metrics
from hub.predictions import STEP_SECONDS as PREDICTION_SECONDS
from hub.predictions import Publisher
from hub.ratelimit import RateLimiter
from hub.service import snapshotter as snapshot_loop
from hub.service.queue import QueueService
from hub.service.snapshotter import Snapshotter
from hub.service.trim import trim_logs
from hub.settings import Settings
from hub.store import open_store
from hub.store.errors import StoreUnavailable
from hub.store.storage import Storage
from hub.web import api, docs, errors, feeds, health, kiosks, redrive
from hub.web.body_deadline import BodyDeadline
from hub.web.headers import SecurityHeaders
from hub.web.routing import one_per_path
from notifier import hooks, push_key

log = logging.getLogger("queuecast.hub")
notifier_log = logging.getLogger("queuecast.notifier")

TICK_SECONDS = 15      # how often time-driven events (expiry at closing) are checked
CATCH_UP_SECONDS = 1.0
FOLLOW_WAIT = 10.0     # seconds a starting hub waits to follow its branches before it serves anyway
CITIZEN_RATE = (20, 60.0)
NOTIFIER_SHUTDOWN = 10.0     # seconds the sends under way get to finish after SIGTERM

Task = Callable[[QueueService], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Hub:
    """The parts of one running hub process."""

    settings: Settings
    centre: Centre
    tokens: Tokens
    storage: Storage
    broker: Broker
    service: QueueService
    feeds: FeedHub
    predictions: Publisher
    snapshots: Snapshotter


def hub_clock(settings: Settings) -> Clock:
    return RealClock(settings.zone, parse_start(settings.clock, settings.zone))


@asynccontextmanager
async def open_service(settings: Settings, *, clock: Clock | None = None, centre: Centre | None = None,
                       tokens: Tokens | None = None) -> AsyncIterator[tuple[QueueService, Storage, Broker]]:
    """The service over the store and the broker of `settings`; with QUEUECAST_HOLD_BRANCHES=busy
    every branch loaded from its log first (asked: none, each is loaded when first asked about)."""
    centre = centre or load_config(settings.config or None)
    tokens = tokens or Tokens(settings.resolve_secret())
    async with open_store(settings.database, min_replicas=settings.redis_replicas(), wait_ms=settings.redis_wait_ms) \
            as storage, open_broker(settings.broker_url) as broker:
        service = QueueService(centre, storage.log, broker, clock or hub_clock(settings), tokens,
                               settings.public_url, settings.notify_ahead, settings.kiosk_rate(),
                               quotas=storage.quotas, idle_seconds=settings.branch_idle_seconds,
                               hold=settings.hold_branches)
        # Branches start from their snapshots; a trimmed log's older days are in the archive.
        service.branches.snapshots = storage.snapshots
        service.branches.archive = Archive(settings.log_archive) if settings.log_archive else None
        if settings.hold_branches == "busy":
            await service.load()
        yield service, storage, broker


@asynccontextmanager
async def open_hub(settings: Settings, *, clock: Clock | None = None, centre: Centre | None = None,
                   tokens: Tokens | None = None, tasks: Sequence[Task] = ()) -> AsyncIterator[Hub]:
    """A serving hub: its parts, and its loops running until the context ends. `tasks` run beside
    them with the service (the demo's traffic)."""
    centre = centre or load_config(settings.config or None)
    tokens = tokens or Tokens(settings.resolve_secret())
    async with open_service(settings, clock=clock, centre=centre, tokens=tokens) as (service, storage, broker):
        hub = Hub(settings, centre, tokens, storage, broker, service, FeedHub(service, settings.max_feeds_per_address),
                  Publisher(service, storage.predictions), Snapshotter(service.branches, storage.snapshots))
        # No broker between processes (memory://): what another process appends to the same
        # SQLite file (the notifier removing a push subscription) is found by looking.
        polling = [loops.every(CATCH_UP_SECONDS, service.catch_up, "catch-up")] \
            if settings.broker_url.startswith("memory:") else []

        async def prune() -> None:
            await retention.prune(storage.outbox, storage.predictions, list(centre.branches), service.now(),
                                  keep_outbox_days=settings.keep_outbox_days,
                                  keep_predictions_days=settings.keep_predictions_days)
            if service.branches.archive is not None:
                await trim_logs(storage.log, storage.snapshots, service.branches.archive, list(centre.branches),
                                service.now(), settings.log_keep_days)

        inline = [_inline_notifier(settings, service, storage)] if settings.notifier == "inline" else []
        following = asyncio.Event()
        async with loops.running(loops.every(TICK_SECONDS, service.tick, "tick"), service.follow(following),
                                 *polling, loops.every(retention.PRUNE_EVERY, prune, "retention"),
                                 loops.every(service.holding.round_seconds, service.holding.round, "branches"),
                                 loops.every(PREDICTION_SECONDS, hub.predictions.step, "predictions"),
                                 loops.every(snapshot_loop.STEP_SECONDS, hub.snapshots.step, "snapshots"),
                                 *inline, *(task(service) for task in tasks)):
            # Served once every branch is followed: what another process appends from then on comes
            # with its forecast, which this one shows without simulating it (one caught up from the
            # log has none). Bounded, like the broker's first connection: a slow start still serves.
            try:
                async with asyncio.timeout(FOLLOW_WAIT):
                    await following.wait()
            except TimeoutError:
                log.warning("not following every branch yet; serving and retrying")
            yield hub
            hub.feeds.close_all()             # clients reconnect (and resume) elsewhere
        await hub.predictions.write()         # what the last step published, before the store closes


async def _inline_notifier(settings: Settings, service: QueueService, storage: Storage) -> None:
    """The worker in the hub's process, on the hub's own service (QUEUECAST_NOTIFIER=inline)."""
    from notifier.channels import open_senders  # the gateways' libraries, only where they are used
    from notifier.worker import Worker

    async with open_senders(settings) as senders:
        await Worker(service, storage.outbox, senders, rate=settings.notify_rate,
                     sms_diacritics=settings.sms_diacritics).run(asyncio.Event())


def create_app(settings: Settings | None = None, *, clock: Clock | None = None, centre: Centre | None = None,
               tasks: Sequence[Task] = (), demo: bool = False) -> Starlette:
    """The hub as an ASGI app; nothing connects before its lifespan starts."""
    settings = settings or Settings.from_env()
    centre = centre or load_config(settings.config or None)
    clock = clock or hub_clock(settings)
    tokens = Tokens(settings.resolve_secret())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_hub(settings, clock=clock, centre=centre, tokens=tokens, tasks=tasks) as hub:
            hub.service.on_command.append(app.state.metrics.observe_command)
            app.state.service, app.state.feeds, app.state.predictions = hub.service, hub.feeds, hub.predictions
            app.state.snapshots = hub.snapshots
            app.state.outbox = hub.storage.outbox        # the redrive API, the hooks, the admin page
            app.state.storage = hub.storage              # for the tests, which read what was stored
            app.state.probes = {"store": hub.storage.ping, "broker": hub.broker.ping}
            yield

    app = Starlette(
        routes=one_per_path([*api.routes, *kiosks.routes, *push_key.routes, *redrive.routes, *hooks.routes,
                             *feeds.routes, *health.routes, *docs.routes, *pages.routes()]),
        lifespan=lifespan,
        # Starlette types a handler as taking any Exception, though it passes only the class it is
        # registered for (Kludex/starlette#2403 would make the type generic).
        exception_handlers={DomainError: errors.domain_error, HTTPException: errors.http_error,  # type: ignore[dict-item]
                            ClientDisconnect: errors.client_gone,  # type: ignore[dict-item]
                            StoreUnavailable: errors.store_unavailable,  # type: ignore[dict-item]
                            Exception: errors.server_error},
        middleware=[Middleware(SecurityHeaders),          # CSP, nosniff, ... on every HTTP answer
                    Middleware(BodyDeadline, seconds=settings.request_timeout),   # 408 for a trickled body
                    # Pages and their JSON twins shrink ~10x (a phone on 3G refreshing /branches); SSE
                    # streams are left uncompressed by Starlette, WebSockets are not HTTP responses.
                    Middleware(GZipMiddleware, minimum_size=1024)],
    )
    app.state.settings = settings
    app.state.demo = demo              # demo-only conveniences (a made-up citizen identity) answer only then
    app.state.metrics = Metrics()
    app.state.metrics.bind(app)
    app.state.centre = centre
    app.state.tokens = tokens
    app.state.address_limit = RateLimiter(*settings.rate_limit())
    app.state.citizen_limit = RateLimiter(*CITIZEN_RATE)
    return app


async def enrol_kiosk(settings: Settings, branch: str, name: str | None) -> dict[str, Any]:
    """`queuecast token kiosk`: a device enrolled through the service, so that it is an event in the
    branch's log (SQLite or Redis) like one enrolled on the admin page, honoured by every hub process
    (the ones running now read the log for a device they do not know) and revocable there. Its token
    is in the answer."""
    async with open_service(settings) as (service, _, _):
        body: dict[str, Any] = await service.kiosks.enrol(branch, name, by="cli")
        return body


async def run_notifier(settings: Settings, *, lease: float | None = None) -> None:
    """`queuecast notifier`: the worker as its own process, on its own service over the same store
    (the state the rules judge by, and the way a gone push subscription is removed: an event in the
    log, like any other). SIGTERM or SIGINT stops claiming; the sends under way finish (at most
    NOTIFIER_SHUTDOWN seconds), and anything cut short stays `sending` until its lease runs out,
    for the next worker to take. `lease`: seconds a claim holds a message (default notifier.worker.LEASE)."""
    from notifier.channels import open_senders
    from notifier.worker import LEASE, Worker

    lease = LEASE if lease is None else lease
    # The notifier judges every due message on its branch's state, and finds leave-home messages
    # in every branch with numbers waiting: it holds them all (and lets none go: it runs no round).
    settings = replace(settings, hold_branches="busy")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_service(settings) as (service, storage, _), open_senders(settings) as senders:
        worker = Worker(service, storage.outbox, senders, rate=settings.notify_rate, lease=lease,
                        sms_diacritics=settings.sms_diacritics)
        notifier_log.info("notifier started", extra={"fields": {"channels": sorted(senders), "lease_s": lease,
                                                       "rate_per_s": settings.notify_rate}})
        running = asyncio.create_task(worker.run(stop))
        await stop.wait()
        done, _ = await asyncio.wait({running}, timeout=NOTIFIER_SHUTDOWN)
        if not done:
            await loops.stop([running])       # cancelled, and again if a send swallowed it
        notifier_log.info("notifier stopped", extra={"fields": worker.counts})
