"""Delivery reports from the SMS gateways, read into one shape. Pure functions: the web layer hands over
the query or form fields, the outbox moves a message's status forward (never back) with the result.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DELIVERED, FAILED, PENDING = "delivered", "failed", "pending"   # PENDING: not final yet, nothing to record
PATHS = {"esms": "/hooks/esms", "twilio": "/hooks/twilio"}     # where the hub takes them (notifier.hooks)


def callback_url(public_url: str, provider: str) -> str:
    """The delivery-report URL a sender hands its gateway (eSMS CallbackUrl, Twilio StatusCallback).
    Twilio signs exactly this URL, which is why the Twilio hook checks against it first."""
    return public_url.rstrip("/") + PATHS[provider]


class BadReport(ValueError):
    """Not a delivery report we can use; the endpoint answers 400."""


class BadSignature(BadReport):
    """A Twilio callback whose signature does not match: forged or altered; the endpoint answers 403."""


@dataclass(frozen=True)
class DeliveryReport:
    provider_id: str             # eSMS SMSID, Twilio MessageSid
    request_id: str | None       # our outbox key, when the gateway echoes it (eSMS RequestId)
    status: str                  # DELIVERED, FAILED or PENDING
    error: str | None = None     # the gateway's reason for a failure


# -- eSMS: HTTP GET to CallbackUrl once the message is final ----------------------------------------

# SendStatus: 1 waiting for approval, 2 waiting to send, 4 refused, 5 done (then SendSuccess/SendFailed
# say how it went), 7 handed to the network, waiting for its report.
ESMS_REFUSED, ESMS_DONE = "4", "5"
_DIGITS = re.compile(r"[0-9]+")


def esms_report(query: Mapping[str, str]) -> DeliveryReport:
    sms_id = query.get("SMSID")
    if not sms_id:
        raise BadReport("an eSMS report names its SMSID")
    status, error = PENDING, None
    succeeded, _ = _count(query, "SendSuccess"), _count(query, "SendFailed")     # numbers, whatever the status
    if query.get("SendStatus") == ESMS_REFUSED:
        status, error = FAILED, "refused"
    elif query.get("SendStatus") == ESMS_DONE:
        status = DELIVERED if succeeded > 0 else FAILED
        error = None if succeeded > 0 else query.get("error_info") or "not delivered"
    return DeliveryReport(sms_id, query.get("RequestId") or None, status, error)


def _count(query: Mapping[str, str], name: str) -> int:
    """A count of messages: ASCII digits or nothing (int() alone would take " 1", "+1" and "١")."""
    value = query.get(name) or "0"
    if not _DIGITS.fullmatch(value):
        raise BadReport(f"eSMS report: {name} is not a number: {value[:40]!r}")
    return int(value)


# -- Twilio: form POST to StatusCallback, signed with the auth token ------------------------------

TWILIO_DELIVERED = {"delivered", "read"}
TWILIO_FAILED = {"undelivered", "failed", "canceled"}


def twilio_signature(url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], auth_token: str) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of the full URL Twilio called
    followed by every POST field's name and value, sorted by name, with no separators."""
    pairs = params.items() if isinstance(params, Mapping) else params
    signed = url + "".join(name + value for name, value in sorted(pairs))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_report(url: str, params: Mapping[str, str], signature: str | None, auth_token: str) -> DeliveryReport:
    if not signature or not hmac.compare_digest(twilio_signature(url, params, auth_token), signature):
        raise BadSignature("X-Twilio-Signature does not match this request")
    sid = params.get("MessageSid")
    if not sid:
        raise BadReport("a Twilio status callback names its MessageSid")
    state = params.get("MessageStatus", "")
    status = DELIVERED if state in TWILIO_DELIVERED else FAILED if state in TWILIO_FAILED else PENDING
    error = (params.get("ErrorCode") or state) if status == FAILED else None
    return DeliveryReport(sid, None, status, error)
