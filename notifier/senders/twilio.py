"""Twilio Programmable Messaging: a form POST to the 2010-04-01 Messages resource, basic auth KEY:SECRET.

Twilio has no idempotency key for creating a message (its I-Twilio-Idempotency-Token header is only on
the webhooks it sends us), so this sender is not idempotent: when a request timed out, the connection
broke, or Twilio answered 5xx, the message may exist all the same, and a retry may be a second SMS.
Connection refused and 429 are safe to retry (nothing was created). The outbox decides, knowing that.
"""
from __future__ import annotations

import base64

import aiohttp

from hub.domain.notifications.message import Message
from notifier import templates
from notifier.senders.protocol import (
    AUTH_FAILED,
    INVALID_NUMBER,
    NETWORK_ERRORS,
    OPTED_OUT,
    REJECTED,
    Result,
    http_failure,
    network_failure,
    parse_json,
)

PATH = "/2010-04-01/Accounts/{account}/Messages.json"

# Twilio error codes of the create-message call (twilio.com/docs/api/errors) that no retry can change.
# 429 (20429) and 5xx (20500) are retried by their HTTP status before these are looked at.
PERMANENT = {
    20003: AUTH_FAILED,       # authentication failed: wrong account SID or auth token
    20404: AUTH_FAILED,       # no such account under this SID
    21211: INVALID_NUMBER,    # invalid 'To' phone number
    21214: INVALID_NUMBER,    # 'To' phone number cannot be reached
    21614: INVALID_NUMBER,    # 'To' is not a valid mobile number
    21610: OPTED_OUT,         # the recipient replied STOP to this sender
    21408: REJECTED,          # sending to this region is not enabled on the account
    21606: REJECTED,          # 'From' is not a message-capable number of the account
    21612: REJECTED,          # no route from this 'From' to this 'To'
    21602: REJECTED,          # body is required
    21617: REJECTED,          # body over 1600 characters
}


class TwilioSender:
    idempotent = False

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, account_sid: str, auth_token: str,
                 sender: str, unicode: bool = True, status_callback: str | None = None, timeout: float = 10.0):
        self.session = session
        self.url = base_url.rstrip("/") + PATH.format(account=account_sid)
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {credentials}"}
        self.sender = sender
        self.unicode = unicode
        self.status_callback = status_callback
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def form(self, msg: Message) -> dict[str, str]:
        form = {"To": msg.phone, "From": self.sender,
                "Body": templates.render(msg.trigger, msg.params, msg.lang, ascii=not self.unicode)}
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        return form

    async def send(self, msg: Message) -> Result:
        try:
            async with self.session.post(self.url, data=self.form(msg), headers=self.headers,
                                         timeout=self.timeout) as resp:
                raw = await resp.read()
        except NETWORK_ERRORS as exc:
            return network_failure(exc)
        answer = parse_json(raw) or {}
        detail = answer.get("message") or raw[:300].decode("utf-8", "replace")
        failure = http_failure(resp.status, resp.headers, detail)
        if failure is not None:
            return failure
        if resp.status < 300:
            return Result.sent(answer.get("sid"))       # created, even if the answer could not be read
        code = answer.get("code")
        if resp.status == 401 and code is None:
            return Result.permanent(AUTH_FAILED, detail)
        error = REJECTED if code is None else PERMANENT.get(code, REJECTED)
        return Result.permanent(error, f"{code} {detail}" if code else detail)
