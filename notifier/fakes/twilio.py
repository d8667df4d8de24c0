"""A fake Twilio: the 2010-04-01 Messages resource behind basic auth, Twilio's error shape, and the
signed StatusCallback it POSTs. Like Twilio, it has no request id: every accepted POST is a message."""
from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any

from aiohttp import web

from notifier.fakes.gateway import COMMON_MODES, FakeGateway, Received
from notifier.reports import twilio_signature

E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message,
                              "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
                             status=status)


class FakeTwilio(FakeGateway):
    modes = COMMON_MODES | {"invalid_number", "opted_out"}

    def __init__(self, *, account_sid: str = "AC" + "0" * 32, auth_token: str = "twilio-token", **kw: Any) -> None:
        super().__init__(**kw)
        self.account_sid, self.auth_token = account_sid, auth_token

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/2010-04-01/Accounts/{account}/Messages.json", self.create)]

    def refusal(self, mode: str | None) -> web.Response | None:
        if mode == "429":
            response = error(429, 20429, "Too Many Requests")
            response.headers["Retry-After"] = str(self.retry_after)
            return response
        if mode == "500":
            return error(500, 20500, "Internal Server Error")
        return None

    def authorised(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (scheme == "Basic" and (login, password) == (self.account_sid, self.auth_token)
                and request.match_info["account"] == self.account_sid)

    async def create(self, request: web.Request) -> web.Response:
        mode = self.take_failure()
        if not self.authorised(request):
            return error(401, 20003, "Authenticate")
        refused = self.refusal(mode)
        if refused is not None:
            return refused
        form = dict(await request.post())
        to = str(form.get("To", ""))       # a url-encoded form: every field is text
        if not to:
            return error(400, 21604, "A 'To' phone number is required.")
        if not form.get("Body"):
            return error(400, 21602, "Message body is required.")
        if mode == "invalid_number" or not E164.fullmatch(to):
            return error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if mode == "opted_out":
            return error(400, 21610, "Attempt to send to unsubscribed recipient")
        received = Received(None, "SM" + uuid.uuid4().hex, form)
        self.received.append(received)
        await self.hold(mode)
        return web.json_response({"sid": received.provider_id, "account_sid": self.account_sid, "to": to,
                                  "from": form.get("From"), "body": form["Body"], "status": "queued",
                                  "api_version": "2010-04-01", "error_code": None, "error_message": None},
                                 status=201)

    async def report(self, received: Received, status: str = "delivered", error_code: str | None = None) -> int:
        """POST the message's StatusCallback, signed as Twilio signs it; the callee's status."""
        url = received.fields["StatusCallback"]
        form = {"MessageSid": received.provider_id, "SmsSid": received.provider_id, "MessageStatus": status,
                "SmsStatus": status, "AccountSid": self.account_sid, "From": received.fields.get("From", ""),
                "To": received.fields["To"], "ApiVersion": "2010-04-01"}
        if error_code:
            form["ErrorCode"] = error_code
        headers = {"X-Twilio-Signature": twilio_signature(url, form, self.auth_token)}
        async with self.client.post(url, data=form, headers=headers) as resp:
            return resp.status
