"""Web push to a browser's subscription: VAPID (RFC 8292), payload encrypted with aes128gcm (RFC 8291).

pywebpush does the encryption and signing and posts through our aiohttp session (webpush_async), so no
thread and no second HTTP client. A 404 or 410 means the browser dropped the subscription: the answer
is `subscription_gone`, and the caller deletes that subscription and nothing else. Push services have
no request id, so a retry after an unclear failure can deliver twice; the notification's tag (one per
ticket) makes the browser replace the earlier notification instead of showing a second one.

The session must be a guarded one (notifier.senders.destinations.push_session): it connects only to
the push services of QUEUECAST_PUSH_HOSTS, on public addresses after DNS. Anywhere else is
`forbidden_destination`, and no connection is made.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import aiohttp
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid
from pywebpush import WebPushException, webpush_async

from hub.domain.notifications.message import Message
from notifier import templates
from notifier.senders.destinations import ForbiddenDestination, GuardedConnector, forbidden
from notifier.senders.protocol import (
    AUTH_FAILED,
    FORBIDDEN_DESTINATION,
    NETWORK_ERRORS,
    REJECTED,
    SUBSCRIPTION_GONE,
    Result,
    http_failure,
    network_failure,
)

# How long the push service keeps a message for a phone that is offline (TTL, seconds) and how eagerly
# it wakes the phone (Urgency, RFC 8030 §5.3): "called" read an hour late is wrong, "issued" still useful.
DELIVERY = {
    "issued": (3600, "normal"), "ahead": (1800, "high"), "leave": (1800, "high"),
    "called": (600, "high"), "skipped": (900, "high"), "expired": (3600, "low"),
}


class WebPushSender:
    idempotent = False

    def __init__(self, session: aiohttp.ClientSession, *, vapid_private_key: str, subject: str,
                 timeout: float = 10.0):
        if not isinstance(session.connector, GuardedConnector):
            # Holders choose the endpoints: an unguarded session would connect wherever they say.
            raise TypeError("web push needs a session from notifier.senders.destinations.push_session")
        self.session = session
        self.vapid = Vapid.from_string(vapid_private_key)
        self.subject = subject
        self.timeout = timeout

    def payload(self, msg: Message) -> str:
        """What the page's service worker shows: one notification per ticket, replaced as news comes."""
        return json.dumps({
            "title": templates.title(msg.params, msg.lang),
            "body": templates.render(msg.trigger, msg.params, msg.lang),
            "url": msg.params.get("url"), "tag": f"{msg.branch}/{msg.ticket}", "lang": msg.lang,
        }, ensure_ascii=False, separators=(",", ":"))

    async def send(self, msg: Message) -> Result:
        ttl, urgency = DELIVERY[msg.trigger]
        subscription, payload = dict(msg.subscription), self.payload(msg)
        try:
            resp = await webpush_async(
                subscription, data=payload, vapid_private_key=self.vapid,
                vapid_claims={"sub": self.subject},      # pywebpush adds aud (the endpoint's origin) and exp
                ttl=ttl, headers={"Urgency": urgency}, timeout=self.timeout, aiohttp_session=self.session)
        except WebPushException as exc:
            if exc.response is None:                  # refused before sending: the keys are unusable
                return Result.permanent(SUBSCRIPTION_GONE, exc.message)
            return classify(exc.response.status, exc.response.headers, exc.message)
        except (ForbiddenDestination, *NETWORK_ERRORS) as exc:
            refused = forbidden(exc)
            if refused is not None:
                # Permanent, and the subscription is kept (the worker deletes it only when gone): the
                # refusal is about our settings or today's DNS, not the holder's browser. A list
                # narrowed by mistake, or a resolver that answers 0.0.0.0 for names it blocks, must
                # not silently unsubscribe everyone; the dead letters can be redriven once fixed, and
                # a subscription kept here still never gets a connection.
                return Result.permanent(FORBIDDEN_DESTINATION, str(refused))
            # Before ValueError: aiohttp's certificate errors are ssl.CertificateErrors, so ValueErrors
            # too, and a push service we cannot verify (yet) is no reason to delete the holder's subscription.
            return network_failure(exc)
        except ValueError as exc:                     # a p256dh that is not a P-256 point
            return Result.permanent(SUBSCRIPTION_GONE, f"unusable subscription keys: {exc}")
        return Result.sent(resp.headers.get("Location"))


def classify(status: int, headers: Mapping[str, str], detail: str) -> Result:
    if status in (404, 410):
        return Result.permanent(SUBSCRIPTION_GONE, detail)
    failure = http_failure(status, headers, detail)
    if failure is not None:
        return failure
    if status in (401, 403):
        return Result.permanent(AUTH_FAILED, detail)      # the push service refused our VAPID signature
    return Result.permanent(REJECTED, detail)             # 400, 413 (payload too large), ...


def vapid_public_key(private_key: str) -> str:
    """The applicationServerKey a page subscribes with: the uncompressed P-256 point, base64url."""
    point = Vapid.from_string(private_key).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(point).decode().rstrip("=")
