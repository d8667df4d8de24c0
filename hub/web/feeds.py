"""Feed endpoints: WebSocket and SSE for a branch's board and for one ticket (docs/feeds.md).

WebSocket close codes (a client reconnects with `since` = the last seq it saw, and `epoch`):
  4008  too slow: the connection's queue filled up; resume
  4029  too many feeds open from the client's address (QUEUECAST_MAX_FEEDS_PER_ADDRESS); sent before any data
  4009  resync: the branch's history was replaced; reconnect (you will get a snapshot)
  4404  unknown branch or ticket
  4400  bad `since`
  1009  a client message over MAX_CLIENT_MESSAGE bytes
  1012  the hub is restarting: reconnect and resume with since
  1013  try again later (the store could not be read)
The protocol-level ping (every ~25 s) is uvicorn's (hub.server); SSE sends a comment instead.

SSE answers 429 `too_many_feeds` over the same cap, and a stream cut for being too slow ends with
an `event: close` (the browser reconnects with Last-Event-ID). Every feed connection bounds its
kernel send buffer (hub.feeds.direct.FEED_SEND_BUFFER), so a client that never reads reaches the
cut after a bounded number of bytes; hub.connections drops it for good once it takes nothing.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.connections import SEND_BUFFER
from hub.domain.errors import DomainError, excerpt
from hub.feeds.direct import EXTENSION, FEED_SEND_BUFFER, DirectLink
from hub.feeds.fanout import FeedHub
from hub.feeds.frames import PING, Frame
from hub.feeds.subscriber import CLOSE_CODES, GONE, TOO_BIG, Subscriber
from hub.web.errors import STATUS, error_response

log = logging.getLogger("queuecast.feeds")

MAX_CLIENT_MESSAGE = 4096     # bytes; clients have nothing to say on these feeds but small pings
SSE_PING_SECONDS = 25.0
TOO_MANY = (4029, "too many connections from your address")


# Opens one feed on the process's hub, from `since` of `epoch` if given: the frames to send first, and the live rest.
OpenFeed = Callable[[FeedHub, int | None, str | None], Awaitable[tuple[list[Frame], Subscriber]]]


class BadSince(ValueError):
    pass


_SEQ = re.compile(r"-?[0-9]+")


def _since(value: str | None, what: str = "since") -> int | None:
    """A seq as a client sends it: ASCII digits (int() alone would take " 1", "+1", "1_0" and "١")."""
    if value is None or value == "":
        return None
    if not _SEQ.fullmatch(value):
        raise BadSince(f"{what} must be a whole number, got {excerpt(value)}")
    return int(value)


# -- WebSocket ------------------------------------------------------------------------------------------

async def board_socket(ws: WebSocket) -> None:
    await _socket(ws, lambda hub, since, epoch: hub.open_board(ws.path_params["branch"], since, epoch))


async def ticket_socket(ws: WebSocket) -> None:
    await _socket(ws, lambda hub, since, epoch: hub.open_ticket(ws.path_params["token"], since, epoch))


def _address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


async def _socket(ws: WebSocket, open_feed: OpenFeed) -> None:
    """One feed connection, within its address's cap: refused over it with 4029 before any data
    (accepted first, so that the client sees the code and not a bare handshake failure)."""
    slots, address = ws.app.state.feeds.addresses, _address(ws)
    if not slots.take(address):
        await ws.accept()
        await ws.close(*TOO_MANY)
        return
    detached = False
    try:
        detached = await _feed_socket(ws, open_feed, lambda: slots.give_back(address))
    finally:
        if not detached:                       # else given back when the connection ends
            slots.give_back(address)


async def _feed_socket(ws: WebSocket, open_feed: OpenFeed, release: Callable[[], None]) -> bool:
    """The feed on an accepted connection; whether it was detached (hub.feeds.direct): the
    connection then outlives this call, and `release` is called when it ends."""
    await ws.accept()
    try:
        since = _since(ws.query_params.get("since"))
        frames, sub = await open_feed(ws.app.state.feeds, since, ws.query_params.get("epoch") or None)
    except BadSince as e:
        await ws.close(4400, str(e)[:120])
        return False
    except DomainError as e:
        await ws.close(4404 if e.kind == "not_found" else 1013 if e.kind == "unavailable" else 4400, e.message[:120])
        return False
    except Exception:                          # the store failed while reading history: try again later
        log.warning("feed could not start", exc_info=True)
        await ws.close(1013, "try again later")
        return False
    link = ws.scope.get("extensions", {}).get(EXTENSION)
    if link is not None:
        return await _direct(ws, sub, frames, link, release)
    reader = asyncio.create_task(_read_client(ws, sub))
    frame: Frame | None = None
    try:
        for frame in frames:
            await ws.send_text(frame.text)
        del frames                             # a snapshot is kilobytes: not kept for the connection's life
        frame = None
        while (frame := await sub.next()) is not None:
            await ws.send_text(frame.text)
        if sub.closed in CLOSE_CODES:
            await ws.close(*CLOSE_CODES[sub.closed])
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass                                   # the client went away mid-send
    finally:
        sub.close(GONE)
        reader.cancel()
    return False


async def _direct(ws: WebSocket, sub: Subscriber, frames: list[Frame], link: DirectLink,
                  release: Callable[[], None]) -> bool:
    """A connection the fan-out writes to itself (hub.feeds.direct), and its close frame when the
    hub ends it (Subscriber.close). Once its first frames are sent, the connection is detached: no
    task of its own is left, uvicorn reads it and tells us what the client sent and when it ended.
    Whether it was detached."""
    try:
        while frames:                          # popped: a snapshot is kilobytes, not kept for the connection's life
            await ws.send_text(frames.pop(0).text)
        if sub.closed is not None:             # ended while its start was being sent (too slow, a reset)
            if sub.closed in CLOSE_CODES:
                await ws.close(*CLOSE_CODES[sub.closed])
        else:
            sub.go_direct(link)
            ws.app.state.feeds.stats.direct += 1

            def said(size: int) -> None:       # clients only listen: anything they send is size-checked
                if size > MAX_CLIENT_MESSAGE:
                    sub.close(TOO_BIG)

            def gone() -> None:
                sub.close(GONE)
                release()
            link.detach(said, gone)
            return True
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass                                   # the client went away mid-send
    sub.close(GONE)
    return False


async def _read_client(ws: WebSocket, sub: Subscriber) -> None:
    """Clients only listen; anything they send is read (so pings flow) and size-checked."""
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            size = len(message.get("text") or "") + len(message.get("bytes") or b"")
            if size > MAX_CLIENT_MESSAGE:
                sub.close(TOO_BIG)
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    sub.close(GONE)


# -- Server-Sent Events ---------------------------------------------------------------------------------

async def board_events(request: Request) -> Response:
    return await _events(request, lambda hub, since, epoch: hub.open_board(request.path_params["branch"], since, epoch))


async def ticket_events(request: Request) -> Response:
    return await _events(request, lambda hub, since, epoch: hub.open_ticket(request.path_params["token"], since, epoch))


class _FeedStream(StreamingResponse):
    """An SSE stream that gives its address slot back however it ends: a generator that never
    started (the client left at once) runs no `finally` of its own."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def _events(request: Request, open_feed: OpenFeed) -> Response:
    slots, address = request.app.state.feeds.addresses, _address(request)
    if not slots.take(address):
        return error_response(429, "too_many_feeds",
                              f"Too many live feeds are open from your address (at most {slots.limit}); "
                              "close some and retry.",
                              "Có quá nhiều kết nối trực tiếp từ địa chỉ của bạn; vui lòng đóng bớt rồi thử lại.",
                              retry_after=10)
    given_back = False

    def release() -> None:             # once, whichever way the feed ends
        nonlocal given_back
        if not given_back:
            given_back = True
            slots.give_back(address)

    try:
        return await _feed_events(request, open_feed, release)
    except BaseException:
        release()
        raise


async def _feed_events(request: Request, open_feed: OpenFeed, release: Callable[[], None]) -> Response:
    """The stream, or an error answer; `release` is called once the feed is over, whichever."""
    try:
        # A reconnecting EventSource sends the last id it saw; a ?since= in its URL wins, but both must be seqs.
        since = _since(request.query_params.get("since"))
        last_seen = _since(request.headers.get("last-event-id"), "Last-Event-ID")
        since = last_seen if since is None else since
    except BadSince as e:
        release()
        return error_response(400, "invalid_since", str(e))
    try:
        frames, sub = await open_feed(request.app.state.feeds, since, request.query_params.get("epoch") or None)
    except DomainError as e:
        release()
        return error_response(STATUS[e.kind], e.code, e.message, e.message_vi, **e.details)
    except Exception:
        release()
        log.warning("feed could not start", exc_info=True)
        return error_response(503, "unavailable", "The feed cannot start now; retry shortly.",
                              "Chưa thể kết nối luồng dữ liệu; vui lòng thử lại.", retry_after=2)
    bound = request.scope.get("extensions", {}).get(SEND_BUFFER)
    if bound is not None:          # under hub.server; absent in-process (tests through ASGI)
        bound(FEED_SEND_BUFFER)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n\n"
            while frames:                      # popped: the snapshot is not kept for the stream's life
                yield frames.pop(0).sse
            while True:
                try:
                    frame = await sub.next(timeout=SSE_PING_SECONDS)
                except TimeoutError:
                    yield PING
                    continue
                if frame is None:          # cut (too slow, or resync): the browser reconnects with Last-Event-ID
                    yield f"event: close\ndata: {sub.closed}\n\n".encode()
                    return
                yield frame.sse
        finally:
            sub.close(GONE)

    def end() -> None:
        sub.close(GONE)                # idempotent: the stream's own `finally` may have done it
        release()

    return _FeedStream(stream(), end)


async def upgrade_required(request: Request) -> Response:
    """A plain HTTP request to a WebSocket feed: 426 and how to ask (RFC 9110 15.5.22), rather than
    the 404 a path with no HTTP route would get (the path exists; the protocol was wrong)."""
    response = error_response(426, "upgrade_required", "This is a WebSocket feed: connect with Upgrade: websocket, "
                              "or read the same feed as Server-Sent Events under /sse/.",
                              "Đây là luồng WebSocket: hãy kết nối bằng WebSocket, hoặc dùng luồng SSE dưới /sse/.")
    response.headers["Upgrade"] = "websocket"
    return response


routes = [
    WebSocketRoute("/ws/branches/{branch}", board_socket),
    WebSocketRoute("/ws/tickets/{token}", ticket_socket),
    Route("/ws/branches/{branch}", upgrade_required, methods=["GET"]),
    Route("/ws/tickets/{token}", upgrade_required, methods=["GET"]),
    Route("/sse/branches/{branch}", board_events, methods=["GET"]),
    Route("/sse/tickets/{token}", ticket_events, methods=["GET"]),
]
