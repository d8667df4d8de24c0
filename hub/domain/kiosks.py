"""Kiosk devices: the touch screens of a branch's lobby that may issue kiosk numbers (docs/rules.md).

A device is enrolled (`kiosk.enrolled`), handed its token (at once by the CLI; through a one-time
enrolment code from the admin page, `kiosk.claimed`) and may be revoked (`kiosk.revoked`), for good:
a revoked device's id never issues again, and enrolling that kiosk again makes a new device. The
registry is a fold of those events and of the `ticket.issued` events that name a device, so every
hub process reading the same log agrees on which devices may issue and how fast they have been
issuing (the per-device pace is judged from the log, not from a process's memory).
"""
from __future__ import annotations

import ipaddress
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from hub.domain.errors import DomainError, invalid, unauthorized

PENDING, ACTIVE, REVOKED = "pending", "active", "revoked"
# Issue times kept per device for the pace: enough to judge a bucket of up to this many numbers
# (hub.settings refuses a larger COUNT).
RECENT = 120
NAME_MAX = 60


@dataclass
class KioskDevice:
    id: str
    name: str
    enrolled_at: datetime
    state: str = ACTIVE                 # pending (its enrolment code not used yet), active, revoked
    by: str = ""                        # who enrolled it: "cli" or a staff subject
    revoked_at: datetime | None = None
    last_issue: datetime | None = None
    issued: dict[date, int] = field(default_factory=dict)             # working day → numbers issued
    recent: deque[datetime] = field(default_factory=lambda: deque(maxlen=RECENT))

    def issued_on(self, day: date) -> int:
        return self.issued.get(day, 0)


@dataclass
class Kiosks:
    """A branch's kiosk devices, by id, in enrolment order."""

    devices: dict[str, KioskDevice] = field(default_factory=dict)

    # -- queries -------------------------------------------------------------------------------

    def get(self, device: str) -> KioskDevice | None:
        return self.devices.get(device)

    def require(self, device: str) -> KioskDevice:
        """The device, if it may issue now; else the refusal (401: the token no longer admits it)."""
        d = self.devices.get(device)
        if d is None or d.state == PENDING:
            raise unauthorized("device_not_enrolled",
                               "This kiosk device is not enrolled at this branch; ask the branch manager to enrol it.",
                               "Ki-ốt này chưa được đăng ký tại chi nhánh; mời liên hệ cán bộ quản lý chi nhánh để đăng ký.")
        if d.state == REVOKED:
            raise unauthorized("device_revoked",
                               "This kiosk device has been revoked; ask the branch manager to enrol it again.",
                               "Ki-ốt này đã bị thu hồi quyền cấp số; mời liên hệ cán bộ quản lý chi nhánh để đăng ký lại.")
        return d

    def pace_wait(self, device: str, now: datetime, pace: tuple[int, float] | None) -> float:
        """Seconds until `device` may issue again under `pace` = (COUNT, SECONDS); 0.0 if it may now.

        A token bucket of COUNT numbers refilled at COUNT per SECONDS, as GCRA over the device's issue
        times in the log: up to COUNT numbers in a row, then one every SECONDS/COUNT (6/60: a number
        every 10 s, about what one person takes at a kiosk). Over any SECONDS at most 2 x COUNT."""
        d = self.devices.get(device)
        if d is None or pace is None or not d.recent:
            return 0.0
        count, seconds = pace
        interval = seconds / count
        tat = d.recent[0]                   # the theoretical arrival time of the next number
        for t in d.recent:
            tat = max(tat, t) + timedelta(seconds=interval)
        allowed_at = tat - timedelta(seconds=seconds - interval)
        return max((allowed_at - now).total_seconds(), 0.0)

    def check_pace(self, device: str, now: datetime, pace: tuple[int, float] | None) -> None:
        wait = self.pace_wait(device, now, pace)
        if wait > 0:
            secs = max(1, math.ceil(wait))
            count, seconds = pace or (0, 0.0)
            raise DomainError("rate_limited", "kiosk_pace",
                              f"This kiosk issues at most {count} numbers in {seconds:g} s; try again in {secs} s.",
                              f"Ki-ốt cấp tối đa {count} số mỗi {seconds:g} giây; vui lòng thử lại sau {secs} giây.",
                              retry_after=secs)

    # -- folding -------------------------------------------------------------------------------

    def enrolled(self, ev: dict[str, object], now: datetime) -> None:
        device = str(ev["device"])
        self.devices[device] = KioskDevice(device, str(ev.get("name") or device), now,
                                           state=PENDING if ev.get("pending") else ACTIVE, by=str(ev.get("by") or ""))

    def claimed(self, device: str) -> None:
        d = self.devices.get(device)
        if d is not None and d.state == PENDING:
            d.state = ACTIVE

    def revoked(self, device: str, now: datetime) -> None:
        d = self.devices.get(device)
        if d is not None:
            d.state, d.revoked_at = REVOKED, now

    def issued_by(self, device: str, day: date, now: datetime) -> None:
        d = self.devices.get(device)
        if d is None:           # a log that names a device it never enrolled: nothing to count against
            return
        d.issued[day] = d.issued.get(day, 0) + 1
        d.last_issue = now
        d.recent.append(now)

    def forget_before(self, day: date) -> None:
        for d in self.devices.values():
            for old in [k for k in d.issued if k < day]:
                del d.issued[old]


def lobby_allows(networks: tuple[str, ...], address: str | None) -> bool:
    """Whether a client at `address` is on one of the lobby `networks` (policy kiosk_lobby_networks)."""
    if not networks or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:          # "testclient", a unix socket: not an address on any lobby network
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped     # ::ffff:10.1.2.3 on a dual-stack socket is 10.1.2.3
    return any(ip in ipaddress.ip_network(n) for n in networks)


def clean_name(name: object, default: str) -> str:
    """A device's display name: printable text of 1–NAME_MAX characters, or `default` when none is given."""
    if name is None or (isinstance(name, str) and not name.strip()):
        return default
    if not isinstance(name, str) or len(name.strip()) > NAME_MAX or not name.strip().isprintable():
        raise invalid("invalid_name", f"A kiosk's name is printable text of at most {NAME_MAX} characters.",
                      f"Tên ki-ốt tối đa {NAME_MAX} ký tự, không chứa ký tự điều khiển.", field="name")
    return name.strip()
