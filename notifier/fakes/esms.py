"""A fake eSMS: the SendMultipleMessage_V4_post_json call with its CodeResult answers, RequestId
deduplication (124), and the delivery report it GETs from the CallbackUrl."""
from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from notifier.fakes.gateway import COMMON_MODES, FakeGateway, Received
from notifier.senders.esms import PATH

PHONE = re.compile(r"(?:0|84)[35789][0-9]{8}")


def answer(code: str, **extra: Any) -> web.Response:
    return web.json_response({"CodeResult": code, "CountRegenerate": 0, **extra})


class FakeEsms(FakeGateway):
    modes = COMMON_MODES | {"invalid_number", "opted_out"}

    def __init__(self, *, api_key: str = "esms-key", secret_key: str = "esms-secret", **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key, self.secret_key = api_key, secret_key
        self.by_request_id: dict[str, Received] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.send)]

    async def send(self, request: web.Request) -> web.Response:
        mode = self.take_failure()
        refused = self.refusal(mode)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "Invalid request"})
        if (body.get("ApiKey"), body.get("SecretKey")) != (self.api_key, self.secret_key):
            return answer("101", ErrorMessage="Authorize Failed")
        request_id = body.get("RequestId") or None
        if request_id in self.by_request_id:
            return answer("124", ErrorMessage="Request exist 1", SendStatus="5")
        if mode == "invalid_number" or not PHONE.fullmatch(str(body.get("Phone", ""))):
            return answer("108", ErrorMessage="Phone not valid")
        if mode == "opted_out":
            return answer("99", ErrorMessage="Phone is blocked")
        received = Received(request_id, uuid.uuid4().hex, body)
        self.received.append(received)
        if request_id:
            self.by_request_id[request_id] = received
        await self.hold(mode)
        return answer("100", SMSID=received.provider_id)

    async def report(self, received: Received, *, delivered: bool = True) -> int:
        """GET the message's CallbackUrl as eSMS does once the message is final; the callee's status."""
        fields = received.fields
        query = {"SMSID": received.provider_id, "SendFailed": "0" if delivered else "1", "SendStatus": "5",
                 "SendSuccess": "1" if delivered else "0", "TotalPrice": "0", "TotalReceiver": "1",
                 "TotalSent": "1", "RequestId": received.request_id or "", "TypeId": fields.get("SmsType", "2"),
                 "telcoid": "1", "phonenumber": fields["Phone"]}
        async with self.client.get(fields["CallbackUrl"], params=query) as resp:
            return resp.status
