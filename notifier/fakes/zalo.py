"""A fake Zalo ZNS: POST /message/template with the access_token header, answered HTTP 200 with an
`error` code as Zalo does. Phones can be marked as having no Zalo account."""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

from aiohttp import web

from notifier.fakes.gateway import COMMON_MODES, FakeGateway, Received
from notifier.senders.zalo import PATH

PHONE = re.compile(r"84[35789][0-9]{8}")


def answer(code: int, message: str, **data: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **({"data": data} if data else {})})


class FakeZalo(FakeGateway):
    modes = COMMON_MODES | {"invalid_number", "no_zalo"}

    def __init__(self, *, access_token: str = "zalo-token", template_id: str = "246810", **kw: Any) -> None:
        super().__init__(**kw)
        self.access_token, self.template_id = access_token, template_id
        self.without_zalo: set[str] = set()      # phones (84...) that have no Zalo account

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.send)]

    async def send(self, request: web.Request) -> web.Response:
        mode = self.take_failure()
        refused = self.refusal(mode)
        if refused is not None:
            return refused
        if request.headers.get("access_token") != self.access_token:
            return answer(-124, "Access token is invalid")
        try:
            body = await request.json()
        except ValueError:
            return answer(-112, "Template data invalid")
        if str(body.get("template_id")) != self.template_id:
            return answer(-109, "Template ID invalid")
        phone = str(body.get("phone", ""))
        if mode == "invalid_number" or not PHONE.fullmatch(phone):
            return answer(-108, "Phone number invalid")
        if mode == "no_zalo" or phone in self.without_zalo:
            return answer(-118, "Zalo account not existed")
        if not body.get("template_data"):
            return answer(-111, "Template data empty")
        received = Received(body.get("tracking_id"), uuid.uuid4().hex, body)
        self.received.append(received)
        await self.hold(mode)
        return answer(0, "Success", msg_id=received.provider_id, sent_time=str(int(time.time() * 1000)),
                      quota={"dailyQuota": "500", "remainingQuota": str(500 - len(self.received))})
