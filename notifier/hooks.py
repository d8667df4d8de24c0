"""Delivery reports from the SMS gateways: `GET /hooks/esms` (eSMS calls the CallbackUrl once a
message is final) and `POST /hooks/twilio` (Twilio's StatusCallback, signed with the auth token).

`reports` reads and verifies a report; here it only moves the outbox item forward, sent →
delivered, found by the gateway's id (the store refuses any other move, so a late or repeated report
changes nothing). Answers:

- 200 as soon as the report is read, whether or not it matched a message: gateways retry anything
  else for hours, and a report about a message this hub does not know (another deployment on the
  same account, an item already delivered) is harmless;
- 400 when the request is not a report at all;
- 403 when a Twilio report's signature does not match, or cannot be checked (no auth token set).

eSMS signs nothing; what can be checked is that the report names a message we sent with that id:
it echoes our RequestId (the outbox key), and the item under that key must carry the SMSID.
A failed report ("undelivered") is logged and kept nowhere: the outbox has no move out of `sent`
but `delivered`, and the message did leave us; the admin page shows it as sent.
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.domain.errors import DomainError, forbidden
from notifier import reports

log = logging.getLogger("queuecast.hooks")

def _bad(message: str) -> DomainError:
    return DomainError("bad_request", "bad_report", message, "Báo cáo trạng thái tin nhắn không hợp lệ.")


async def _record(request: Request, provider: str, report: reports.DeliveryReport) -> bool:
    """Move the item forward if the report says delivered; True when something changed."""
    service, outbox = request.app.state.service, request.app.state.outbox
    recorded = False
    if report.status == reports.DELIVERED:
        if report.request_id is not None:
            item = await outbox.get(report.request_id)
            if item is None or item.provider_id != report.provider_id:
                log.warning("delivery report names a message we did not send with that id",
                            extra={"fields": {"provider": provider, "provider_id": report.provider_id}})
                return False
        recorded = await outbox.delivered(report.provider_id, service.now().timestamp())
    log.info("delivery report", extra={"fields": {"provider": provider, "provider_id": report.provider_id,
                                                  "status": report.status, "error": report.error,
                                                  "recorded": recorded}})
    return recorded


async def esms(request: Request) -> JSONResponse:
    try:
        report = reports.esms_report(request.query_params)
    except reports.BadReport as e:
        raise _bad(str(e)) from None
    return JSONResponse({"ok": True, "recorded": await _record(request, "esms", report)})


async def _form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as Twilio sent it, read at most `max_body` bytes far."""
    limit = request.app.state.settings.max_body
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DomainError("too_large", "body_too_large", f"The request body is larger than {limit} bytes.",
                              f"Nội dung yêu cầu vượt quá {limit} byte.")
        chunks.append(chunk)
    try:
        return parse_qsl(b"".join(chunks).decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise _bad("The body is not a form (application/x-www-form-urlencoded).") from None


async def twilio(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    token = settings.sms_secret if settings.sms_provider == "twilio" else ""
    pairs = await _form(request)
    params = dict(pairs)
    if not token:
        log.warning("Twilio report refused: no QUEUECAST_SMS_SECRET to check its signature with")
        raise forbidden("bad_signature", "This hub cannot check Twilio signatures (no auth token set).",
                        "Không kiểm tra được chữ ký của báo cáo.")
    # Twilio signs the URL it was given (our public one); behind no proxy that is also the one it reached.
    query = f"?{request.url.query}" if request.url.query else ""
    urls = dict.fromkeys([reports.callback_url(settings.public_url, "twilio") + query, str(request.url)])
    signature = request.headers.get("x-twilio-signature")
    for url in urls:
        try:
            report = reports.twilio_report(url, params, signature, token)
        except reports.BadSignature:
            continue
        except reports.BadReport as e:
            raise _bad(str(e)) from None
        return JSONResponse({"ok": True, "recorded": await _record(request, "twilio", report)})
    log.warning("Twilio report refused: bad signature")
    raise forbidden("bad_signature", "X-Twilio-Signature does not match this request.",
                    "Chữ ký của báo cáo không hợp lệ.")


routes = [Route(reports.PATHS["esms"], esms, methods=["GET"]),
          Route(reports.PATHS["twilio"], twilio, methods=["POST"])]
