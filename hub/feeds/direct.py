"""Prepared frames written straight to WebSocket connections, as `websockets.broadcast` does.

Going through ASGI costs a task wake-up, several awaits and a frame serialisation per connection
per event. Under uvicorn's sans-I/O WebSocket protocol, a subclass hands the app its connection
(a scope extension); the fan-out then writes the one prepared frame of each event to every
connection's transport. Server frames are not masked, so the bytes are the same for everyone.
The transport's write buffer is the connection's queue: past MAX_BUFFER the client is too slow.
The kernel's send buffer behind it is fixed at FEED_SEND_BUFFER, and a peer that takes nothing for
a while is dropped (hub.connections.StallGuard), so a client that never reads is cut, then gone.

Once its first frames are sent, the app detaches the connection (DirectLink.detach) and its task
ends: uvicorn's protocol keeps reading it and answering pings, and tells the feed what the client
sent and when it went; the fan-out writes frames and the close frame itself. An idle connection
then holds its protocol and a subscriber, not an ASGI stack awaiting a message that never comes.

The subclassed protocol is private to uvicorn: it exists from 0.35, and sends server pings from
0.44 (pyproject.toml asks for that). `protocol()` builds the subclass when the installed uvicorn has
what it needs, and otherwise says why; the server then runs uvicorn's own WebSocket protocol, the
extension is absent, and feeds use the queued ASGI path (hub.server logs a warning).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from typing import Any

import uvicorn
from uvicorn.protocols.utils import ClientDisconnected
from websockets.frames import Frame, Opcode

from hub.connections import StallGuard, bound_send_buffer

EXTENSION = "queuecast.direct"
MAX_BUFFER = 256 * 1024         # bytes not yet accepted by the client's TCP window
# The kernel's send buffer of a feed connection. Left alone, Linux grows it to 4 MiB for a client
# that never reads (tcp_wmem), and MAX_BUFFER would be reached only after thousands of events:
# bounded, a feed connection holds at most ~2 x this in the kernel plus MAX_BUFFER here.
FEED_SEND_BUFFER = 64 * 1024
MIN_UVICORN = (0, 44)           # the sans-I/O protocol with server pings (ws_ping_interval)


def wire(text: str) -> bytes:
    """One unmasked, uncompressed text frame (valid with or without permessage-deflate)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def _sansio() -> type:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    return WebSocketsSansIOProtocol


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


@cache          # one class per process: uvicorn.Config takes it as the protocol of every connection
def protocol(version: str = uvicorn.__version__, load: Callable[[], type] = _sansio) -> tuple[type | None, str]:
    """uvicorn's sans-I/O WebSocket protocol with the direct link added, or None and why not."""
    if _version(version) < MIN_UVICORN:
        return None, f"uvicorn {version} is older than {'.'.join(map(str, MIN_UVICORN))}"
    try:
        base = load()
    except ImportError as e:
        return None, f"uvicorn {version} has no sans-I/O WebSocket protocol ({e})"
    for needed in ("handle_connect", "send_receive_event_to_app", "run_asgi"):
        if not callable(getattr(base, needed, None)):
            return None, f"uvicorn {version}'s sans-I/O WebSocket protocol has no {needed}"

    class DirectProtocol(StallGuard, base):  # type: ignore[valid-type,misc]
        queue: Any                  # uvicorn's asyncio.Queue of ASGI receive events, or a Listener once detached
        read_paused: bool

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None:          # None when the handshake was refused
                scope["extensions"][EXTENSION] = DirectLink(self)
                bound_send_buffer(self.transport, FEED_SEND_BUFFER)

        def detach(self, listener: Listener) -> None:
            """The app is done with the connection, which stays open without it (see DirectLink.detach)."""
            queued, self.queue = self.queue, listener
            while not queued.empty():           # what came before, in order
                listener.put_nowait(queued.get_nowait())
            self._read_on()
            # Kept by uvicorn for the connection's life, needed only for the handshake and by the app.
            self.request = self.response = self.scope = None

        def send_receive_event_to_app(self) -> None:
            super().send_receive_event_to_app()
            self._read_on()                     # uvicorn pauses reading till the app receives: nobody will

        def _read_on(self) -> None:
            if isinstance(self.queue, Listener) and self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()

        async def run_asgi(self) -> None:
            """uvicorn's own, but a connection the app detached is not closed when the app returns."""
            try:
                result = await self.app(self.scope, self.receive, self.send)
            except ClientDisconnected:
                pass
            except BaseException:
                self.logger.exception("Exception in ASGI application\n")
                self.send_500_response()
            else:
                if not self.handshake_complete:
                    self.logger.error("ASGI callable returned without completing handshake.")
                    self.send_500_response()
                elif result is not None:
                    self.logger.error("ASGI callable should return None, but returned '%s'.", result)
            if not isinstance(self.queue, Listener) and getattr(self, "close_timer", None) is None:
                self.transport.close()

    return DirectProtocol, ""


class Listener:
    """Stands in for uvicorn's receive queue once the app has detached a connection: a message from
    the client is told by its size, and the connection's end (however it came) once."""
    __slots__ = ("on_message", "on_gone")

    def __init__(self, on_message: Callable[[int], None], on_gone: Callable[[], None]):
        self.on_message = on_message
        self.on_gone: Callable[[], None] | None = on_gone

    def put_nowait(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.receive":
            self.on_message(len(message.get("text") or "") + len(message.get("bytes") or b""))
        elif message["type"] == "websocket.disconnect" and self.on_gone is not None:
            gone, self.on_gone = self.on_gone, None
            gone()

    def empty(self) -> bool:
        return True


_closing: set[asyncio.Task[None]] = set()      # close frames being sent (a task is kept till it ends)


class DirectLink:
    __slots__ = ("protocol",)

    def __init__(self, protocol: Any):
        self.protocol = protocol

    def write(self, data: bytes) -> str | None:
        """Write a prepared frame; or say why not: 'gone' or 'slow'."""
        p = self.protocol
        transport = p.transport
        # `disconnected` exists from uvicorn 0.45; a lost connection's transport is closing either way.
        if getattr(p, "disconnected", False) or transport.is_closing():
            return "gone"
        if transport.get_write_buffer_size() > MAX_BUFFER:
            return "slow"
        transport.write(data)
        return None

    def detach(self, on_message: Callable[[int], None], on_gone: Callable[[], None]) -> None:
        """From now on the connection lives without the app's task: uvicorn keeps reading it
        (answering pings), `on_message` is told the size of each message the client sends, and
        `on_gone` is called once when it ends. What the app was awaiting (its whole ASGI stack, a
        task, a receive queue) goes: an idle feed connection then holds little more than its
        protocol, as with a bare websockets server."""
        self.protocol.detach(Listener(on_message, on_gone))

    def close(self, code: int, reason: str) -> None:
        """Close the connection with `code`, as the app's own `websocket.close` does (through the
        protocol's `send`: the close frame follows what was written, and the app's `receive` gets
        the disconnect). So the fan-out ends a connection itself, and the connection's one task
        only reads."""
        task = asyncio.get_running_loop().create_task(self._close(code, reason))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.protocol.send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:          # the client is gone already (uvicorn's ClientDisconnected): nothing to say
            pass
