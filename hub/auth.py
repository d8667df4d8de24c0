"""Tokens, all signed with the deployment's secret (HMAC-SHA256, one derived key per purpose).

- staff token: a branch (and optionally one counter), with an expiry;
- citizen token: a CCCD verified by an identity provider (VNeID in production), optional phone;
- ticket token: names one ticket; 128-bit MAC, so it cannot be guessed, and nothing to store.
Expiry is judged by the real wall clock, never the hub's (possibly shifted) queue clock.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from hub.domain.errors import DomainError, not_found

STAFF_TTL = 14 * 3600            # one working day and its overtime
CITIZEN_TTL = 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    kind: str                    # "staff" | "citizen"
    branch: str | None = None
    counter: str | None = None
    cccd: str | None = None
    phone: str | None = None
    exp: float = 0.0

    @property
    def subject(self) -> str:
        return f"staff:{self.branch}:{self.counter or '*'}" if self.kind == "staff" else f"citizen:{self.cccd}"


def _bad_token(why: str) -> DomainError:
    return DomainError("unauthorized", "invalid_token", f"Invalid or expired token: {why}.",
                       "Mã xác thực không hợp lệ hoặc đã hết hạn.")


class Tokens:
    def __init__(self, secret: str):
        root = secret.encode()
        self._keys = {p: hmac.new(root, p.encode(), hashlib.sha256).digest()
                      for p in ("bearer", "ticket", "citizen-pseudonym")}

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
                            cccd=data.get("cccd"), phone=data.get("phone"), exp=float(data["exp"]))
        except (ValueError, KeyError, TypeError):
            raise _bad_token("malformed") from None
        if claims.exp < time.time():
            raise _bad_token("expired")
        return claims

    # -- ticket tokens -----------------------------------------------------------------------------

    def ticket(self, branch: str, ticket: str) -> str:
        ref = _b64(f"{branch}/{ticket}".encode())
        return f"{ref}.{_b64(self._mac('ticket', ref.encode(), 16))}"

    def read_ticket(self, token: str) -> tuple[str, str]:
        """(branch, ticket id) named by a ticket token; any forgery is simply 'not found'."""
        missing = not_found("ticket_not_found", "No ticket for this link.", "Không tìm thấy số thứ tự.")
        if not token.isascii():                     # as in verify: no token of ours, and no TypeError
            raise missing
        ref, _, mac = token.partition(".")
        if not mac or not hmac.compare_digest(_b64(self._mac("ticket", ref.encode(), 16)), mac):
            raise missing
        try:
            branch, _, tid = _unb64(ref).decode().partition("/")
        except (ValueError, UnicodeDecodeError):
            raise missing from None
        return branch, tid

    def pseudonym(self, cccd: str) -> str:
        """What the log keeps of a citizen: enough to apply the per-citizen rules, not the CCCD."""
        return _b64(self._mac("citizen-pseudonym", cccd.encode(), 12))
