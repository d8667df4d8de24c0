"""A message encoded once, in the forms every transport writes: text, an SSE event, a WebSocket frame."""
from __future__ import annotations

import json
from dataclasses import dataclass

from hub.feeds.direct import wire


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    text: str          # the message, for transports that frame it themselves (ASGI send)
    sse: bytes         # the same message as an SSE event, `id:` = seq (Last-Event-ID resumes)
    wire: bytes        # the same message as a complete WebSocket frame (hub.feeds.direct)

    @classmethod
    def of(cls, seq: int, message: dict) -> "Frame":
        return cls.from_text(seq, json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def from_text(cls, seq: int, text: str) -> "Frame":
        return cls(seq, text, f"id: {seq}\ndata: {text}\n\n".encode(), wire(text))


PING = b": ping\n\n"   # an SSE comment: keeps proxies from closing an idle stream
