"""Tokens, all signed with the deployment's secret (HMAC-SHA256, one derived key per purpose).

- staff token: a branch (and optionally one counter), with an expiry;
- citizen token: a CCCD verified by an identity provider (VNeID in production), optional phone;
- ticket token: names one ticket; 128-bit MAC, so it cannot be guessed, and nothing to store. It
  also carries the ticket's nonce (random, kept in its `ticket.issued` event): ticket ids are
  `day-number` and come round again if a branch's history is lost (a wiped Redis issues 1001 once
  more), and a token must never name the stranger who got the number next (hub.service.queue
  compares the nonces). Tokens made before nonces (no third part) name only tickets without one;
- kiosk token: a kiosk device of a branch (its id), valid for years: the branch's event log says
  whether the device is still enrolled (hub.domain.kiosks), so revoking it needs no token list;
- enrolment code: a one-time, short-lived code the admin page hands a kiosk to fetch its kiosk token
  with (one-time through the log: the device is claimed once); signed with a key of its own, so it
  is never a bearer token.
Expiry is judged by the real wall clock, never the hub's (possibly shifted) queue clock.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import NamedTuple

from hub.domain.errors import DomainError, not_found

STAFF_TTL = 14 * 3600            # one working day and its overtime
CITIZEN_TTL = 24 * 3600
KIOSK_TTL = 10 * 365 * 86400      # a device's life; revocation (in the log) is what ends it sooner
ENROL_TTL = 3600                  # an enrolment link is used at the kiosk soon after it is made


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    kind: str                    # "staff" | "citizen" | "kiosk"
    branch: str | None = None
    counter: str | None = None
    device: str | None = None    # a kiosk token's device id
    cccd: str | None = None
    phone: str | None = None
    exp: float = 0.0

    @property
    def subject(self) -> str:
        if self.kind == "kiosk":
            return f"kiosk:{self.branch}:{self.device}"
        return f"staff:{self.branch}:{self.counter or '*'}" if self.kind == "staff" else f"citizen:{self.cccd}"


class TicketRef(NamedTuple):
    """What a ticket token names: the ticket `ticket` of `branch`, issued with `nonce` (None in a
    token made before nonces were kept)."""
    branch: str
    ticket: str
    nonce: str | None


def _bad_token(why: str) -> DomainError:
    return DomainError("unauthorized", "invalid_token", f"Invalid or expired token: {why}.",
                       "Mã xác thực không hợp lệ hoặc đã hết hạn.")


class Tokens:
    def __init__(self, secret: str):
        root = secret.encode()
        self._keys = {p: hmac.new(root, p.encode(), hashlib.sha256).digest()
                      for p in ("bearer", "ticket", "citizen-pseudonym", "kiosk-enrol")}

    def _mac(self, purpose: str, data: bytes, size: int = 32) -> bytes:
        return hmac.new(self._keys[purpose], data, hashlib.sha256).digest()[:size]

    # -- bearer tokens (staff, citizen) ------------------------------------------------------------

    def issue(self, claims: dict[str, str], ttl: float) -> str:
        payload = dict(claims, exp=int(time.time() + ttl))
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"qc1.{body}.{_b64(self._mac('bearer', body.encode()))}"

    def staff(self, branch: str, counter: str | None = None, ttl: float = STAFF_TTL) -> str:
        claims = {"kind": "staff", "branch": branch}
        if counter is not None:
            claims["counter"] = counter
        return self.issue(claims, ttl)

    def citizen(self, cccd: str, phone: str | None = None, ttl: float = CITIZEN_TTL) -> str:
        claims = {"kind": "citizen", "cccd": cccd}
        if phone:
            claims["phone"] = phone
        return self.issue(claims, ttl)

    def kiosk(self, branch: str, device: str, ttl: float = KIOSK_TTL) -> str:
        return self.issue({"kind": "kiosk", "branch": branch, "device": device}, ttl)

    def verify(self, token: str) -> Claims:
        # Tokens are ASCII; anything else (a header's latin-1, a URL's UTF-8) is no token of ours,
        # and must not reach compare_digest, which refuses non-ASCII str with a TypeError.
        if not token.isascii():
            raise _bad_token("malformed")
        try:
            version, body, mac = token.split(".")
        except ValueError:
            raise _bad_token("malformed") from None
        if version != "qc1" or not hmac.compare_digest(_b64(self._mac("bearer", body.encode())), mac):
            raise _bad_token("bad signature")
        try:
            data = json.loads(_unb64(body))
            claims = Claims(kind=data["kind"], branch=data.get("branch"), counter=data.get("counter"),
                            cccd=data.get("cccd"), phone=data.get("phone"), exp=float(data["exp"]),
                            device=data.get("device"))
        except (ValueError, KeyError, TypeError):
            raise _bad_token("malformed") from None
        if claims.exp < time.time():
            raise _bad_token("expired")
        return claims

    # -- ticket tokens -----------------------------------------------------------------------------

    def ticket(self, branch: str, ticket: str, nonce: str | None = None) -> str:
        ref = _b64((f"{branch}/{ticket}" if nonce is None else f"{branch}/{ticket}/{nonce}").encode())
        return f"{ref}.{_b64(self._mac('ticket', ref.encode(), 16))}"

    def read_ticket(self, token: str) -> TicketRef:
        """What a ticket token names; any forgery is simply 'not found'. Whether that ticket is
        still the one the token was made for is the caller's to check (the nonce)."""
        missing = not_found("ticket_not_found", "No ticket for this link.", "Không tìm thấy số thứ tự.")
        if not token.isascii():                     # as in verify: no token of ours, and no TypeError
            raise missing
        ref, _, mac = token.partition(".")
        if not mac or not hmac.compare_digest(_b64(self._mac("ticket", ref.encode(), 16)), mac):
            raise missing
        try:
            parts = _unb64(ref).decode().split("/")
        except (ValueError, UnicodeDecodeError):
            raise missing from None
        if len(parts) == 2:
            return TicketRef(parts[0], parts[1], None)
        if len(parts) == 3:
            return TicketRef(parts[0], parts[1], parts[2])
        raise missing

    # -- kiosk enrolment codes -----------------------------------------------------------------------

    def enrol_code(self, branch: str, device: str, ttl: float = ENROL_TTL) -> tuple[str, float]:
        """A one-time enrolment code for `device` and when it expires (epoch seconds)."""
        exp = int(time.time() + ttl)
        ref = _b64(f"{branch}/{device}/{exp}".encode())
        return f"ke1.{ref}.{_b64(self._mac('kiosk-enrol', ref.encode(), 16))}", exp

    def read_enrol_code(self, code: str) -> tuple[str, str]:
        """(branch, device) of a valid enrolment code; a forged or malformed one is 'not found', an
        expired one says so. Whether it was used is the log's business (hub.domain.kiosk_commands.claim)."""
        missing = not_found("enrolment_code_not_found", "This is not an enrolment code of this hub.",
                            "Mã đăng ký ki-ốt không hợp lệ.")
        version, _, rest = code.strip().partition(".")
        ref, _, mac = rest.partition(".")
        try:
            good = _b64(self._mac("kiosk-enrol", ref.encode(), 16)).encode()
            if version != "ke1" or not hmac.compare_digest(good, mac.encode()):
                raise missing
            branch, device, exp = _unb64(ref).decode().split("/")
            expired = int(exp) < time.time()
        except (ValueError, UnicodeError):
            raise missing from None
        if expired:
            raise DomainError("conflict", "enrolment_code_expired",
                              "This enrolment code has expired; ask the branch manager for a new one.",
                              "Mã đăng ký ki-ốt đã hết hạn; mời xin cán bộ quản lý mã mới.")
        return branch, device

    def pseudonym(self, cccd: str) -> str:
        """What the log keeps of a citizen: enough to apply the per-citizen rules, not the CCCD."""
        return _b64(self._mac("citizen-pseudonym", cccd.encode(), 12))
