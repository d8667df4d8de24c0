"""eSMS (ViHAT) brandname SMS over its JSON API.

The outbox key goes out as RequestId, and eSMS refuses a RequestId it has already taken (code 124), so
a retry after a timeout can never become a second SMS: 124 means the first attempt went through.
Texts go without diacritics unless `unicode` is on (IsUnicode=1 bills a 70-character SMS).
"""
from __future__ import annotations

from typing import Any

import aiohttp

from hub.domain.notifications.message import Message
from notifier import templates
from notifier.senders.protocol import (
    AUTH_FAILED,
    BAD_ANSWER,
    INVALID_NUMBER,
    NETWORK_ERRORS,
    NO_BALANCE,
    OPTED_OUT,
    REJECTED,
    Result,
    http_failure,
    network_failure,
    parse_json,
)

PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
CUSTOMER_CARE = "2"          # SmsType: customer-care messages through a registered brandname

ACCEPTED = "100"
DUPLICATE_REQUEST = "124"    # this RequestId was taken before: the message is already on its way
RETRYABLE = {"103": NO_BALANCE}   # not enough balance: the same message goes after a top-up
# Every other documented CodeResult of the send call refuses this message for good.
PERMANENT = {
    "99": OPTED_OUT,         # the number is blocked on eSMS
    "101": AUTH_FAILED,      # wrong ApiKey or SecretKey
    "102": REJECTED,         # no price list on the account
    "104": REJECTED,         # brandname not registered
    "108": INVALID_NUMBER,   # phone number not in a valid format
    "140": AUTH_FAILED,      # this server's IP is not whitelisted
    "146": REJECTED,         # text does not match a registered customer-care template
    "177": REJECTED,         # the recipient's network is not registered for the brandname
    "300": REJECTED,         # SmsType missing
}


class EsmsSender:
    idempotent = True

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, api_key: str, secret_key: str,
                 brandname: str, unicode: bool = False, callback_url: str | None = None, timeout: float = 10.0):
        self.session = session
        self.url = base_url.rstrip("/") + PATH
        self.api_key, self.secret_key, self.brandname = api_key, secret_key, brandname
        self.unicode = unicode
        self.callback_url = callback_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def body(self, msg: Message) -> dict[str, str]:
        body = {
            "ApiKey": self.api_key, "SecretKey": self.secret_key,
            "Phone": "0" + msg.phone.removeprefix("+84"),     # the national form eSMS documents
            "Content": templates.render(msg.trigger, msg.params, msg.lang, ascii=not self.unicode),
            "Brandname": self.brandname, "SmsType": CUSTOMER_CARE, "IsUnicode": "1" if self.unicode else "0",
            "RequestId": msg.key,
        }
        if self.callback_url:
            body["CallbackUrl"] = self.callback_url
        return body

    async def send(self, msg: Message) -> Result:
        try:
            async with self.session.post(self.url, json=self.body(msg), timeout=self.timeout) as resp:
                raw = await resp.read()
        except NETWORK_ERRORS as exc:
            return network_failure(exc)
        text = raw[:300].decode("utf-8", "replace")
        failure = http_failure(resp.status, resp.headers, text)
        if failure is not None:
            return failure
        if resp.status >= 400:
            return Result.permanent(REJECTED, f"HTTP {resp.status} {text}")
        answer = parse_json(raw)
        if answer is None or "CodeResult" not in answer:
            return Result.retry(BAD_ANSWER, text)       # safe: a repeat of the RequestId is answered 124
        return classify(answer)


def classify(answer: dict[str, Any]) -> Result:
    code = str(answer["CodeResult"])
    detail = f"{code} {answer.get('ErrorMessage', '')}".strip()
    if code in (ACCEPTED, DUPLICATE_REQUEST):
        return Result.sent(answer.get("SMSID"))
    if code in RETRYABLE:
        return Result.retry(RETRYABLE[code], detail)
    return Result.permanent(PERMANENT.get(code, REJECTED), detail)
