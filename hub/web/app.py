"""`create_app(settings)` builds the whole hub; nothing connects before the lifespan starts."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

from hub import loops, retention
from hub.auth import Tokens
from hub.broker import open_broker
from hub.clock import Clock, RealClock, parse_start
from hub.config import load_config
from hub.domain.config import Centre
from hub.domain.errors import DomainError
from hub.metrics import Metrics
from hub.predictions import STEP_SECONDS as PREDICTION_SECONDS, Publisher
from hub.ratelimit import RateLimiter
from hub.service import QueueService
from hub.settings import Settings
from hub.store import open_store
from hub.feeds.fanout import FeedHub
import displays
from hub.web import api, docs, errors, feeds, health, hooks, outbox, push

TICK_SECONDS = 15      # how often time-driven events (expiry at closing) are checked
CATCH_UP_SECONDS = 1.0
CITIZEN_RATE = (20, 60.0)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               centre: Centre | None = None,
               tasks: Sequence[Callable[[QueueService], Awaitable[None]]] = (), demo: bool = False) -> Starlette:
    """The hub. `tasks` run beside it for its lifetime with the service (the demo's traffic)."""
    settings = settings or Settings.from_env()
    centre = centre or load_config(settings.config or None)
    clock = clock or RealClock(settings.zone, parse_start(settings.clock, settings.zone))
    tokens = Tokens(settings.resolve_secret())

    @asynccontextmanager
    async def lifespan(app: Starlette):
        async with open_store(settings.database) as store, open_broker(settings.broker_url) as broker:
            service = QueueService(centre, store, broker, clock, tokens, settings.public_url,
                                   settings.notify_ahead)
            await service.load()
            app.state.service = service
            app.state.feeds = FeedHub(service)
            service.on_command.append(app.state.metrics.observe_command)
            app.state.predictions = Publisher(service, store)
            # No broker between processes (memory://): what another process appends to the same
            # SQLite file (the notifier removing a push subscription) is found by looking.
            polling = [loops.every(CATCH_UP_SECONDS, service.catch_up, "catch-up")] \
                if settings.broker_url.startswith("memory:") else []

            async def prune() -> None:
                await retention.prune(store, list(service.states), service.now(),
                                      keep_outbox_days=settings.keep_outbox_days,
                                      keep_predictions_days=settings.keep_predictions_days)

            async with loops.running(loops.every(TICK_SECONDS, service.tick, "tick"), service.follow(), *polling,
                                     loops.every(retention.PRUNE_EVERY, prune, "retention"),
                                     loops.every(PREDICTION_SECONDS, app.state.predictions.step, "predictions"),
                                     *(task(service) for task in tasks)):
                yield
                app.state.feeds.close_all()          # clients reconnect (and resume) elsewhere
            await app.state.predictions.write()      # what the last step published, before the store closes

    app = Starlette(
        routes=[*api.routes, *push.routes, *outbox.routes, *hooks.routes, *feeds.routes, *health.routes, *docs.routes, *displays.routes()],
        lifespan=lifespan,
        exception_handlers={DomainError: errors.domain_error, HTTPException: errors.http_error,
                            Exception: errors.server_error},
        # Pages and their JSON twins shrink ~10x (a phone on 3G refreshing /branches); SSE streams
        # are left uncompressed by Starlette, WebSockets are not HTTP responses.
        middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
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
