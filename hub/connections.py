"""Guards on the connections uvicorn accepts, against clients that are slow on purpose or gone.

uvicorn bounds the size of a request's headers (h11's incomplete-event limit) but not the time they
take: a connection that sends half a request line, or one header byte now and then, is held for
as long as the client likes (uvicorn's keep-alive timer runs only between requests, and is reset
by every byte). And nothing bounds how long the hub keeps bytes for a peer that has stopped
taking them. So, on every connection:

- its request headers must be complete within QUEUECAST_REQUEST_TIMEOUT seconds of the connection
  (or of the previous answer on it): else 408 in the contract's shape, and the connection closes
  (a connection that sent nothing at all is just closed). The body's deadline is the app's
  (hub.web.body_deadline), which can answer through the handler.
- a peer that takes none of the bytes waiting for it for STALL_SECONDS is dropped (the transport
  aborted, its buffer freed): the feeds' "too slow" cut then ends the connection for real instead
  of leaving it, and the task writing to it, waiting for a reader that never comes.
- a feed can bound the kernel's send buffer of its connection (SEND_BUFFER, a scope extension):
  Linux grows an idle loopback or LAN socket's buffer to megabytes, which would hide a client that
  never reads from the feeds' own bounds.

`http_protocol(timeout)` is uvicorn's h11 protocol with these guards; hub.feeds.direct adds the
stall guard to the WebSocket protocol.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
from functools import cache, partial
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("queuecast.server")

STALL_SECONDS = 30.0            # a peer that takes nothing for this long is gone (or never reading)
SEND_BUFFER = "queuecast.send_buffer"      # scope extension: call it with a byte count


def bound_send_buffer(transport: Any, size: int) -> None:
    """Fix the kernel's send buffer of the transport's socket at `size` bytes (Linux doubles it
    for bookkeeping), which also stops the kernel from growing it."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:          # not a TCP socket (a test's pipe): nothing to bound
            pass


class StallGuard:
    """Mixin for an asyncio protocol: while the transport's writing is paused (its buffer is over
    the high-water mark), look every STALL_SECONDS whether the buffer has shrunk; if not, abort.
    (A feed may still be adding to it meanwhile: a peer that cannot keep even that pace is behind
    for good, and the feed would cut it anyway.)"""

    transport: Any
    _stall: asyncio.TimerHandle | None = None
    _stall_left = 0

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self._stall is None:
            self._watch()

    def resume_writing(self) -> None:
        self._unwatch()
        super().resume_writing()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._unwatch()
        super().connection_lost(exc)  # type: ignore[misc]

    def _watch(self) -> None:
        self._stall_left = self.transport.get_write_buffer_size()
        self._stall = asyncio.get_running_loop().call_later(STALL_SECONDS, self._stalled)

    def _unwatch(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        left = self.transport.get_write_buffer_size()
        if left and left >= self._stall_left:
            peer = self.transport.get_extra_info("peername")
            log.info("peer took nothing for a while: connection dropped",
                     extra={"fields": {"peer": peer[0] if peer else None, "pending_bytes": left,
                                       "seconds": STALL_SECONDS}})
            self.transport.abort()          # connection_lost follows: writers waiting on it are freed
        elif left:
            self._watch()                   # it is reading, slowly: look again later


def _timeout_answer(seconds: float) -> bytes:
    body = json.dumps({"error": {"code": "request_timeout",
                                 "message": f"The request headers did not arrive within {seconds:g} s.",
                                 "message_vi": "Yêu cầu được gửi quá chậm; vui lòng thử lại."}},
                      ensure_ascii=False).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@cache          # one class per timeout: uvicorn.Config takes it as the protocol of every connection
def http_protocol(timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline of `timeout` seconds for request headers, the stall
    guard, and the SEND_BUFFER extension in every request's scope."""

    class GuardedH11Protocol(StallGuard, H11Protocol):
        _headers_due: asyncio.TimerHandle | None = None
        _partial = False             # bytes of the next request arrived, but not all of its headers

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            app = self.app

            async def with_extension(scope: Any, receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})[SEND_BUFFER] = partial(bound_send_buffer, self.transport)
                await app(scope, receive, send)

            self.app = with_extension

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._expect_headers()

        def data_received(self, data: bytes) -> None:
            waiting = self.conn.their_state is h11.IDLE
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._headers_in()
            elif waiting and data:
                self._partial = True

        def on_response_complete(self) -> None:
            super().on_response_complete()        # may start a pipelined request at once
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._expect_headers()

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            self._headers_in()                    # this protocol hands the connection over
            super().handle_websocket_upgrade(event)

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_in()
            super().connection_lost(exc)

        def _expect_headers(self) -> None:
            self._headers_in()
            self._partial = False
            self._headers_due = asyncio.get_running_loop().call_later(timeout, self._headers_late)

        def _headers_in(self) -> None:
            if self._headers_due is not None:
                self._headers_due.cancel()
                self._headers_due = None

        def _headers_late(self) -> None:
            self._headers_due = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self._partial:     # a request begun and never finished: say why it ends
                log.info("request headers too slow: connection closed",
                         extra={"fields": {"peer": self.client[0] if self.client else None, "seconds": timeout}})
                self.transport.write(_timeout_answer(timeout))
            self.transport.close()

    return GuardedH11Protocol
