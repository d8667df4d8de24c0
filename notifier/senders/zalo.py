"""Zalo Notification Service (ZNS): a message from an approved template, to a phone number's Zalo account.

One generic template (QUEUECAST_ZALO_TEMPLATE) carries every trigger: its parameters are the ticket's
`number` and the rendered Vietnamese `content`, so only one template needs Zalo's approval. Zalo answers
HTTP 200 with an `error` code in the body. A phone without a usable Zalo account is a permanent `no_zalo`,
so the notifier falls back to SMS at once. The outbox key goes out as tracking_id, which Zalo echoes in
its callbacks but does not deduplicate on: like Twilio, this sender is not idempotent.
"""
from __future__ import annotations

from typing import Any

import aiohttp

from hub.domain.notifications.message import Message
from notifier import templates
from notifier.senders.protocol import (
    AUTH_FAILED,
    BAD_ANSWER,
    GATEWAY_ERROR,
    INVALID_NUMBER,
    NETWORK_ERRORS,
    NO_BALANCE,
    NO_ZALO,
    REJECTED,
    Result,
    http_failure,
    network_failure,
    parse_json,
)

PATH = "/message/template"

# ZNS error codes (zalo.cloud, ZNS guide "Cách xử lý mã lỗi"); an unlisted code refuses the message.
RETRYABLE = {
    -100: GATEWAY_ERROR,      # unknown error: "try again later"
    -115: NO_BALANCE,         # out of quota: the ZNS account needs a top-up
}
PERMANENT = {
    -101: AUTH_FAILED,        # application invalid
    -102: AUTH_FAILED,        # application does not exist
    -103: AUTH_FAILED,        # application not activated
    -104: AUTH_FAILED,        # application secret key invalid
    -105: AUTH_FAILED,        # application not linked to an Official Account
    -124: AUTH_FAILED,        # access token invalid (they expire: refresh it, then redrive)
    -108: INVALID_NUMBER,     # phone number invalid
    -110: NO_ZALO,            # the recipient's Zalo app is too old for ZNS
    -114: NO_ZALO,            # recipient inactive, refuses ZNS, or outdated app
    -118: NO_ZALO,            # no Zalo account for this phone number, or it is disabled
    -119: NO_ZALO,            # this account cannot receive ZNS
    -109: REJECTED,           # template id invalid
    -111: REJECTED,           # template data empty
    -112: REJECTED,           # template data invalid
    -117: REJECTED,           # the OA or app may not use this template
}


class ZaloSender:
    idempotent = False

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, access_token: str, template_id: str,
                 timeout: float = 10.0):
        self.session = session
        self.url = base_url.rstrip("/") + PATH
        self.headers = {"access_token": access_token}
        self.template_id = template_id
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def body(self, msg: Message) -> dict[str, Any]:
        return {
            "phone": msg.phone.removeprefix("+"),           # 84xxxxxxxxx, the form ZNS documents
            "template_id": self.template_id,
            "template_data": {"number": str(msg.params["number"]),
                              "content": templates.render(msg.trigger, msg.params, msg.lang)},
            "tracking_id": msg.key,
        }

    async def send(self, msg: Message) -> Result:
        try:
            async with self.session.post(self.url, json=self.body(msg), headers=self.headers,
                                         timeout=self.timeout) as resp:
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
        if answer is None or not isinstance(answer.get("error"), int):
            return Result.retry(BAD_ANSWER, text)
        return classify(answer)


def classify(answer: dict[str, Any]) -> Result:
    code = answer["error"]
    if code == 0:
        return Result.sent((answer.get("data") or {}).get("msg_id"))
    detail = f"{code} {answer.get('message', '')}".strip()
    if code in RETRYABLE:
        return Result.retry(RETRYABLE[code], detail)
    return Result.permanent(PERMANENT.get(code, REJECTED), detail)
