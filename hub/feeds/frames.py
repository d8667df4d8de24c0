"""A message encoded once, in the forms every transport writes: text, an SSE event, a WebSocket frame."""
from __future__ import annotations

import json
from typing import Any

from hub.feeds.direct import wire


class Frame:
    """One feed message. Its SSE and WebSocket encodings are made on first use and kept: a live
    event's are made once and shared by every connection; a connection's own snapshot or replay
    never pays for the encodings its transport does not use."""

    __slots__ = ("seq", "text", "_sse", "_wire")

    def __init__(self, seq: int, text: str):
        self.seq = seq
        self.text = text            # the message, for transports that frame it themselves (ASGI send)
        self._sse: bytes | None = None
        self._wire: bytes | None = None

    @classmethod
    def of(cls, seq: int, message: dict[str, Any]) -> Frame:
        return cls(seq, json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def from_text(cls, seq: int, text: str) -> Frame:
        return cls(seq, text)

    @property
    def sse(self) -> bytes:
        """The message as an SSE event; `id:` = seq, so Last-Event-ID resumes."""
        if self._sse is None:
            self._sse = f"id: {self.seq}\ndata: {self.text}\n\n".encode()
        return self._sse

    @property
    def wire(self) -> bytes:
        """The message as a complete WebSocket frame (hub.feeds.direct)."""
        if self._wire is None:
            self._wire = wire(self.text)
        return self._wire


PING = b": ping\n\n"   # an SSE comment: keeps proxies from closing an idle stream
