"""Events: what happened, as plain JSON-ready dicts. The log of them is the truth.

Every event has `type`, `t` (ISO time with offset), `branch` and `day` (the working day it belongs
to); the store adds `seq`. Ticket events carry the opaque `ticket` id and the display `number`.
Some fields are private to the log (`citizen`, `phone`, the kiosk `device`) and never leave it:
`public()` removes them for feeds, `to_trace()` keeps exactly the trace format's fields. Some events
are private as a whole (the enrolment and revocation of kiosk devices): `public()` leaves of them
only a placeholder of type `internal` that keeps the feed's seq contiguous. A holder's own events
(opt-ins, ratings) are the holder's ticket feed's: `for_board()` shows every other feed the same
placeholder in their place.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

Event = dict[str, Any]

# `nonce`: part of the holder's token (hub.auth), so the holder's business only.
PRIVATE_FIELDS = frozenset({"citizen", "phone", "token", "subscription", "comment", "lang", "device", "nonce"})

# The trace format (docs/trace.md): the fields each type carries in a trace, besides t, type, branch.
TRACE_FIELDS: dict[str, tuple[str, ...]] = {
    "counter.opened": ("counter", "services"),
    "counter.closed": ("counter",),
    "ticket.issued": ("ticket", "service", "channel", "priority"),
    "ticket.checked_in": ("ticket",),
    "ticket.called": ("ticket", "counter"),
    "ticket.recalled": ("ticket", "counter"),
    "ticket.completed": ("ticket", "counter"),
    "ticket.skipped": ("ticket", "counter"),
    "ticket.cancelled": ("ticket",),
    "ticket.transferred": ("ticket", "service"),
    "ticket.expired": ("ticket",),
}
# Events of the log that traces leave out: what a holder asked for, not what the queue did.
CITIZEN_TYPES = frozenset({"ticket.notify", "ticket.unsubscribed", "ticket.rated"})
# The branch's kiosk devices (hub.domain.kiosks): the log's business only, never a feed's or a trace's.
KIOSK_TYPES = frozenset({"kiosk.enrolled", "kiosk.claimed", "kiosk.revoked"})
INTERNAL = "internal"           # what a feed shows of an event private as a whole
TYPES = frozenset(TRACE_FIELDS) | CITIZEN_TYPES | KIOSK_TYPES


def make(type_: str, now: datetime, branch: str, day: date, **fields: Any) -> Event:
    assert type_ in TYPES, type_
    ev: Event = {"type": type_, "t": now.isoformat(timespec="seconds"), "branch": branch,
                 "day": day.isoformat()}
    ev.update({k: v for k, v in fields.items() if v is not None})
    return ev


def public(ev: Event) -> Event:
    """The event as anyone may see it (board feeds): no phone, no identity, no token, no device; of
    an event private as a whole, only that something happened at its seq (feeds resume by seq)."""
    if ev["type"] in KIOSK_TYPES:
        return _placeholder(ev)
    return {k: v for k, v in ev.items() if k not in PRIVATE_FIELDS}


def on_board(ev: Event) -> bool:
    """Whether the board feed carries it: what the queue did, not what one holder asked for. A
    holder's opt-ins, opt-outs and ratings concern their own ticket's feed only; sent to every TV
    and console of the branch they told everyone who had asked what, and how they rated."""
    return ev["type"] not in CITIZEN_TYPES and ev["type"] not in KIOSK_TYPES


def _placeholder(ev: Event) -> Event:
    return {"type": INTERNAL, **{k: ev[k] for k in ("seq", "t", "branch", "day") if k in ev}}


def for_board(ev: Event) -> Event:
    """The event as the board feed (and any feed but the holder's own) shows it: `public()`, or for
    what is not the board's business only a placeholder at its seq, so that seq still rises by
    exactly one (CONTRACTS section 4) and a client never takes the missing event for a gap."""
    return public(ev) if on_board(ev) else _placeholder(ev)


def in_trace(ev: Event) -> bool:
    return ev["type"] in TRACE_FIELDS


def to_trace(ev: Event) -> Event:
    out: Event = {"t": ev["t"], "type": ev["type"], "branch": ev["branch"]}
    for name in TRACE_FIELDS[ev["type"]]:
        if name in ev:
            out[name] = ev[name]
    if ev["type"] == "ticket.issued":
        out.setdefault("priority", False)
    if ev["type"] == "ticket.skipped" and "held_until" in ev:
        out["held_until"] = ev["held_until"]       # an extension: the number is held, not gone
    return out
