"""Reading the trace format (docs/trace.md): one JSON event a line, validated with its line number.

The same `TraceEvent` is what the ETA estimator folds, whether the events come from a file
(`queuecast eta replay`) or from the live log (`events.to_trace`), so both paths run the same code.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.domain.events import TRACE_FIELDS

CHANNELS = ("kiosk", "online")


class TraceError(ValueError):
    """A line that is not a valid trace event; the message names the line."""

    def __init__(self, line: int | None, message: str):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    t: datetime
    type: str
    branch: str
    ticket: str | None = None
    counter: str | None = None
    service: str | None = None
    services: tuple[str, ...] = ()
    channel: str | None = None
    priority: bool = False
    held_until: datetime | None = None      # on a skip under `absent: hold` (an optional extension)

    def required(self, name: str) -> str:
        """A text field the format requires of this event's type (`from_dict` checked it is
        there); raises for an event built by hand without it."""
        v = getattr(self, name)
        if not isinstance(v, str):
            raise TraceError(None, f"{self.type}: field {name!r} must be a string, got {v!r}")
        return v


def _text(d: dict[str, Any], name: str, line: int | None) -> str:
    v = d.get(name)
    if not isinstance(v, str) or not v:
        raise TraceError(line, f"{d['type']}: field {name!r} must be a non-empty string, got {v!r}")
    return v


def time_field(v: Any, name: str, line: int | None) -> datetime:
    if not isinstance(v, str):
        raise TraceError(line, f"field {name!r} must be an ISO-8601 time, got {v!r}")
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise TraceError(line, f"field {name!r} is not an ISO-8601 time: {v!r}") from None
    if t.tzinfo is None:
        raise TraceError(line, f"field {name!r} has no UTC offset: {v!r}")
    return t


def from_dict(d: Any, line: int | None = None) -> TraceEvent:
    """One event, checked against the format: known type, every field present with its type."""
    if not isinstance(d, dict):
        raise TraceError(line, "expected a JSON object")
    type_ = d.get("type")
    if type_ not in TRACE_FIELDS:
        raise TraceError(line, f"unknown event type {type_!r}")
    t = time_field(d.get("t"), "t", line)
    branch = d.get("branch")
    if not isinstance(branch, (str, int)) or isinstance(branch, bool) or str(branch) == "":
        raise TraceError(line, f"field 'branch' must be a non-empty string, got {branch!r}")
    fields: dict[str, Any] = {}
    for name in TRACE_FIELDS[type_]:
        if name == "priority":
            v = d.get("priority", False)
            if not isinstance(v, bool):
                raise TraceError(line, f"field 'priority' must be true or false, got {v!r}")
            fields[name] = v
        elif name == "services":
            v = d.get("services")
            if not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v):
                raise TraceError(line, f"field 'services' must be a non-empty list of service ids, got {v!r}")
            fields[name] = tuple(v)
        elif name == "channel":
            v = d.get("channel")
            if v not in CHANNELS:
                raise TraceError(line, f"field 'channel' must be 'kiosk' or 'online', got {v!r}")
            fields[name] = v
        else:
            fields[name] = _text(d, name, line)
    if type_ == "ticket.skipped" and d.get("held_until") is not None:
        fields["held_until"] = time_field(d["held_until"], "held_until", line)
    return TraceEvent(t=t, type=type_, branch=str(branch), **fields)


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines file; a line that is not JSON
    raises TraceError naming it."""
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield n, json.loads(text)
        except json.JSONDecodeError as e:
            raise TraceError(n, f"not JSON ({e.msg})") from None


def parse(lines: Iterable[str]) -> Iterator[TraceEvent]:
    """Events of a JSONL trace in file order; blank lines are skipped, anything else must be valid
    and no earlier than the line before it (a trace is in time order)."""
    last: datetime | None = None
    for n, d in json_lines(lines):
        ev = from_dict(d, n)
        if last is not None and ev.t < last:
            raise TraceError(n, f"time {d['t']} is earlier than the line before; a trace is in time order")
        last = ev.t
        yield ev
