"""Commands on a branch's kiosk devices (hub.domain.kiosks): enrol, claim, revoke.

Like every command they decide events from the state or refuse, and change nothing themselves. The
device id is chosen by the caller (the service draws it at random): the domain does no I/O.
"""
from __future__ import annotations

from datetime import datetime

from hub.domain import events
from hub.domain.errors import conflict, not_found
from hub.domain.events import Event
from hub.domain.kiosks import PENDING, REVOKED, KioskDevice, clean_name
from hub.domain.state import BranchState


def enrol(st: BranchState, now: datetime, device: str, name: object = None, *, by: str,
          pending: bool = False) -> list[Event]:
    """A new kiosk device. `pending`: its token is handed out later, once, against its enrolment
    code (`claim`); otherwise the caller hands it out now (the CLI)."""
    if device in st.kiosks.devices:
        raise conflict("device_exists", "A device with this id is enrolled already.", "Mã thiết bị đã tồn tại.")
    label = clean_name(name, f"Ki-ốt {len(st.kiosks.devices) + 1}")
    return [events.make("kiosk.enrolled", now, st.id, now.date(), device=device, name=label, by=by,
                        pending=True if pending else None)]


def claim(st: BranchState, now: datetime, device: str) -> list[Event]:
    """The kiosk exchanges its one-time enrolment code for its token: once only."""
    d = _device(st, device)
    if d.state == REVOKED:
        raise conflict("device_revoked", "This kiosk device has been revoked; ask for a new enrolment link.",
                       "Ki-ốt này đã bị thu hồi; mời xin đường dẫn đăng ký mới.")
    if d.state != PENDING:
        raise conflict("enrolment_code_used", "This enrolment code has been used already; ask for a new one.",
                       "Mã đăng ký này đã được sử dụng; mời xin mã đăng ký mới.")
    return [events.make("kiosk.claimed", now, st.id, now.date(), device=device)]


def revoke(st: BranchState, now: datetime, device: str, *, by: str) -> list[Event]:
    """The device issues no more, in any process, for good; revoking it again changes nothing."""
    d = _device(st, device)
    if d.state == REVOKED:
        return []
    return [events.make("kiosk.revoked", now, st.id, now.date(), device=device, by=by)]


def _device(st: BranchState, device: str) -> KioskDevice:
    d = st.kiosks.get(device)
    if d is None:
        raise not_found("device_not_found", f"This branch has no kiosk device {device!r}.",
                        f"Chi nhánh không có ki-ốt {device!r}.")
    return d
