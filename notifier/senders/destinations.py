"""The web push sender's own connection path, which connects only where web push may go.

A push endpoint is chosen by whoever holds a ticket, so the hub must not be made to connect to its
own networks (SSRF). The opt-in checks the endpoint (hub.domain.push), but that is not enough at
send time: a name may resolve to 127.0.0.1 or 169.254.169.254 by then (DNS rebinding), the push
service may redirect, and the allow-list may have narrowed since the subscription was stored. So the
same rule (`PushDestinations`) is applied where the connection is made, with nothing in between to
race: the resolver keeps only allowed addresses of allowed names, the socket factory refuses any
other address before `connect()` (IP literals never reach a resolver), and a middleware checks
the host of every request the session makes, redirects included.

It is a session of its own: SMS and Zalo gateways are the operator's choice, may well sit on a
private network, and share the process's other session (notifier/channels.py).
"""
from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hub.domain.push import PushDestinations

CONNECTIONS_PER_HOST = 20


class ForbiddenDestination(OSError):
    """Web push may not connect there. An OSError, so that aiohttp hands it on as a connection
    failure (its cause kept); WebPushSender tells it from a network fault by its type."""


class GuardedResolver(AbstractResolver):
    """DNS for web push: an allowed name's allowed addresses, or ForbiddenDestination."""

    def __init__(self, destinations: PushDestinations, inner: AbstractResolver | None = None):
        self.destinations = destinations
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if not self.destinations.host_allowed(host):
            raise ForbiddenDestination(f"{host[:80]} is not a known push service")
        found = await self.inner.resolve(host, port, family)
        kept = [a for a in found if self.destinations.address_allowed(a["host"])]
        if not kept:
            raise ForbiddenDestination(f"{host[:80]} resolves only to addresses web push may not reach")
        return kept

    async def close(self) -> None:
        await self.inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects only where `destinations` allows (see the module's docstring)."""

    def __init__(self, destinations: PushDestinations, **kw: Any):
        self.destinations = destinations

        def open_socket(addr_info: Any) -> socket.socket:
            family, type_, proto, _, address = addr_info
            if not destinations.address_allowed(address[0]):
                # One message for every refused address: happy eyeballs then raises this error as it
                # is, rather than a merged OSError that no longer says why.
                raise ForbiddenDestination("web push may not connect to this address")
            return socket.socket(family=family, type=type_, proto=proto)

        kw.setdefault("limit_per_host", CONNECTIONS_PER_HOST)
        super().__init__(resolver=GuardedResolver(destinations), socket_factory=open_socket, **kw)


def _hop_check(destinations: PushDestinations) -> Any:
    async def check(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        problem = destinations.endpoint_problem(str(request.url))
        if problem is not None:
            raise ForbiddenDestination(problem)
        response: aiohttp.ClientResponse = await handler(request)
        return response
    return check


@asynccontextmanager
async def push_session(destinations: PushDestinations, **connector: Any) -> AsyncIterator[aiohttp.ClientSession]:
    """The session WebPushSender posts through. `connector`: more TCPConnector arguments (a test's
    `ssl` context that trusts its own push service)."""
    async with aiohttp.ClientSession(connector=GuardedConnector(destinations, **connector),
                                     middlewares=(_hop_check(destinations),)) as session:
        yield session


def forbidden(exc: BaseException) -> ForbiddenDestination | None:
    """The ForbiddenDestination behind an aiohttp error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(8):                     # aiohttp wraps it once or twice; never a long chain
        if seen is None:
            return None
        if isinstance(seen, ForbiddenDestination):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None
