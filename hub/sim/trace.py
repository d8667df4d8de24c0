"""Writing simulated events as a trace: JSON Lines in the format of docs/trace.md, the same
encoding as `queuecast export-trace`, so a synthetic trace reads like an exported one."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from hub.domain.events import Event, in_trace, to_trace


def line(ev: Event) -> str:
    return json.dumps(to_trace(ev), ensure_ascii=False, separators=(",", ":"))


def write(events: Iterable[Event], out: TextIO) -> int:
    """Write the trace lines of `events` to `out`; returns how many."""
    n = 0
    for ev in events:
        if in_trace(ev):
            out.write(line(ev) + "\n")
            n += 1
    return n
