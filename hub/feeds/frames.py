"""A message encoded once, in the forms every transport writes: WebSocket text and an SSE frame."""
from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    text: str          # one WebSocket text frame, the same str object for every subscriber
    sse: bytes         # the same message as an SSE event, `id:` = seq (Last-Event-ID resumes)

    @classmethod
    def of(cls, seq: int, message: dict) -> "Frame":
        return cls.from_text(seq, json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def from_text(cls, seq: int, text: str) -> "Frame":
        return cls(seq, text, f"id: {seq}\ndata: {text}\n\n".encode())


PING = b": ping\n\n"   # an SSE comment: keeps proxies from closing an idle stream
