"""`POST /api/outbox/redrive`: put dead letters of the notifier's outbox back in the queue (the
admin page's "Gửi lại / Redrive" buttons).

A branch's staff token; it reaches that branch's messages only. Body `{"key": K}` for one message
(404 if it is not this branch's, 409 if it is not a dead letter), or `{}` for every dead letter of
the branch (at most REDRIVE_MAX at a time; `more` says whether some are left). Answer
`{"redriven": N, "more": bool}`. A redriven message is due at once, attempts reset; the worker
sends it on its next claim, still under its dedup key, so a message that did reach the citizen
before it was declared dead goes to a gateway that drops the repeat (eSMS) or, for one that
cannot (Twilio, web push), may be shown twice: the price of asking for it again.
"""
from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.domain.errors import conflict, excerpt, forbidden, invalid, not_found
from hub.store.outbox import DEAD_LETTERS
from hub.web import decode

log = logging.getLogger("queuecast.outbox")

REDRIVE_MAX = 500       # dead letters moved per request: one click never holds the store for long


async def redrive(request: Request) -> JSONResponse:
    claims = decode.bearer(request, required=True)
    if claims.kind != "staff":
        raise forbidden("staff_only", "Redriving messages needs a staff token.", "Thao tác này dành cho cán bộ.")
    branch = claims.branch
    data = await decode.json_body(request, required=False)
    unknown = sorted(set(data) - {"key"})
    if unknown:     # a misspelt "key" must not re-drive every dead letter of the branch
        raise invalid("unknown_field", f"Unknown field {excerpt(unknown[0])}: the body is {{}} or {{\"key\": ...}}.",
                      f"Trường {excerpt(unknown[0])} không hợp lệ.", field=unknown[0][:40])
    key = decode.field(data, "key", str, required=False)
    outbox, now = request.app.state.outbox, request.app.state.service.now().timestamp()
    if key is not None:
        item = await outbox.get(key)
        if item is None or item.branch != branch:
            raise not_found("outbox_item_not_found", "This branch's outbox has no such message.",
                            "Không có tin nhắn này trong hộp thư của chi nhánh.")
        if item.status not in DEAD_LETTERS:
            raise conflict("not_a_dead_letter", f"The message is {item.status}, not failed or dead.",
                           "Tin nhắn này không ở trạng thái lỗi.", outbox_status=item.status)
        moved, more = await outbox.redrive(now, key), False
    else:
        moved = 0
        dead = [i for status in DEAD_LETTERS for i in await outbox.recent(status, branch, REDRIVE_MAX + 1)]
        for item in dead[:REDRIVE_MAX]:
            moved += await outbox.redrive(now, item.key)
        more = len(dead) > REDRIVE_MAX
    log.info("outbox redrive", extra={"fields": {"branch": branch, "key": key, "redriven": moved,
                                                 "by": claims.subject}})
    return JSONResponse({"redriven": moved, "more": more})


routes = [Route("/api/outbox/redrive", redrive, methods=["POST"])]
