"""The notifier's one I/O concern: a Sender turns a Message into a Result.

A sender never raises for a failure of its gateway: a timeout, a refused connection, a 5xx or a 429
is a `retry` Result, a refusal that no retry can change (bad number, opted out, subscription gone) is
a `permanent` one. Exceptions are left for bugs. Every sender shares the error codes below, so the
outbox and the admin page read one vocabulary whatever the gateway.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Protocol

import aiohttp

from hub.domain.notifications.message import Message

# Retryable.
UNREACHABLE = "unreachable"          # no connection was made: nothing can have been sent
TIMEOUT = "timeout"                  # the request went out and no answer came in time: it may have been taken
CONNECTION_LOST = "connection_lost"  # the connection broke mid-exchange: it may have been taken
RATE_LIMITED = "rate_limited"        # 429, or the gateway's own "slow down"
BAD_ANSWER = "bad_answer"            # an answer that could not be read
GATEWAY_ERROR = "gateway_error"      # 5xx, or the gateway's own "try again later"
NO_BALANCE = "no_balance"            # the account ran dry: a top-up makes the same message go
# Permanent.
INVALID_NUMBER = "invalid_number"    # the gateway rejects the number itself
OPTED_OUT = "opted_out"              # the recipient refused this sender (STOP, blocked)
NO_ZALO = "no_zalo"                  # the phone has no Zalo account that can take ZNS: fall back to SMS
SUBSCRIPTION_GONE = "subscription_gone"   # web push 404/410: delete that subscription, and only it
AUTH_FAILED = "auth_failed"          # our credentials are wrong or expired: fix the settings, then redrive
FORBIDDEN_DESTINATION = "forbidden_destination"   # web push to where the hub may not connect (QUEUECAST_PUSH_HOSTS)
REJECTED = "rejected"                # any other refusal of this message (template, brandname, content)

# The errors after which the gateway may nevertheless have taken the message.
UNCLEAR = frozenset({TIMEOUT, CONNECTION_LOST, BAD_ANSWER, GATEWAY_ERROR})


class Outcome(str, Enum):
    SENT = "sent"              # the gateway took it (delivery reports may follow)
    RETRY = "retry"            # worth trying again later: the gateway was slow, down or busy
    PERMANENT = "permanent"    # trying again cannot help: bad number, opted out, gone, refused


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    provider_id: str | None = None       # the gateway's id of the message, to match delivery reports
    retry_after: float | None = None     # seconds, when the gateway said (429 Retry-After)
    error: str | None = None             # snake_case code, stable across gateways (above)
    detail: str = ""                     # the gateway's own words, for the admin's outbox view

    @classmethod
    def sent(cls, provider_id: str | None = None) -> Result:
        return cls(Outcome.SENT, provider_id=provider_id)

    @classmethod
    def retry(cls, error: str, detail: str = "", retry_after: float | None = None) -> Result:
        return cls(Outcome.RETRY, error=error, detail=detail, retry_after=retry_after)

    @classmethod
    def permanent(cls, error: str, detail: str = "") -> Result:
        return cls(Outcome.PERMANENT, error=error, detail=detail)


class Sender(Protocol):
    # True when a retry after an UNCLEAR failure cannot produce a second message (the gateway drops a
    # repeated request id); False when it can (Twilio), which is why a retry is then a choice.
    idempotent: bool

    async def send(self, msg: Message) -> Result: ...


NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def network_failure(exc: BaseException) -> Result:
    # ServerTimeoutError is both a ClientError and a TimeoutError: test for the timeout first.
    if isinstance(exc, asyncio.TimeoutError):
        return Result.retry(TIMEOUT, "no answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Result.retry(UNREACHABLE, str(exc))
    return Result.retry(CONNECTION_LOST, f"{type(exc).__name__}: {exc}")


def http_failure(status: int, headers: Mapping[str, str], detail: str = "") -> Result | None:
    """What every gateway's HTTP status means alike; None when the gateway's body has to say."""
    if status == 429:
        return Result.retry(RATE_LIMITED, detail, retry_after=retry_after(headers.get("Retry-After")))
    if status >= 500 or status == 408:
        return Result.retry(GATEWAY_ERROR, f"HTTP {status} {detail}".strip())
    return None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After in seconds: either a number of seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
