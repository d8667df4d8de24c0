"""Prepared frames written straight to WebSocket connections, as `websockets.broadcast` does.

Going through ASGI costs a task wake-up, several awaits and a frame serialisation per connection
per event. Under uvicorn's sans-I/O WebSocket protocol, a subclass hands the app its connection
(a scope extension); the fan-out then writes the one prepared frame of each event to every
connection's transport. Server frames are not masked, so the bytes are the same for everyone.
The transport's write buffer is the connection's queue: past MAX_BUFFER the client is too slow.
Under any other server the extension is absent and feeds use the queued ASGI path.
"""
from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

EXTENSION = "queuecast.direct"
MAX_BUFFER = 256 * 1024         # bytes not yet accepted by the client's TCP window


def wire(text: str) -> bytes:
    """One unmasked, uncompressed text frame (valid with or without permessage-deflate)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class DirectProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:          # None when the handshake was refused
            scope["extensions"][EXTENSION] = DirectLink(self)


class DirectLink:
    __slots__ = ("protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol):
        self.protocol = protocol

    def write(self, data: bytes) -> str | None:
        """Write a prepared frame; or say why not: 'gone' or 'slow'."""
        p = self.protocol
        transport = p.transport
        if p.disconnected or transport.is_closing():
            return "gone"
        if transport.get_write_buffer_size() > MAX_BUFFER:
            return "slow"
        transport.write(data)
        return None
