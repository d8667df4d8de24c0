"""GET /api/announcement?number=1023&counter=5: what the lobby says when a number is called.

{"text": "Mời công dân có số một nghìn không trăm hai mươi ba đến quầy số năm",   (spoken)
 "subtitle": "Mời công dân có số 1023 đến quầy số 5",                            (shown)
 "subtitle_en": "Number 1023, please go to counter 5",
 "clips": ["/static/audio/vi/moi-cong-dan-co-so.ogg", ...]}                      (no vi voice)
"""
from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from displays import speech
from hub.domain.errors import excerpt
from hub.web.errors import error_response

CLIP_URL = "/static/audio/vi/{}.ogg"
QUERY_NUMBER = re.compile(r"[0-9]{1,4}")
CHIME_URL = "/static/audio/chime.ogg"


def announcement(number: str, counter: str) -> dict[str, Any]:
    return {
        "number": number.strip(), "counter": str(speech.parse(counter, "counter")),
        "text": speech.announcement(number, counter),
        "subtitle": speech.subtitle(number, counter),
        "subtitle_en": speech.subtitle_en(number, counter),
        "chime": CHIME_URL,
        "clips": [CLIP_URL.format(name) for name in speech.clips(number, counter)],
    }


async def announcement_api(request: Request) -> JSONResponse:
    number = request.query_params.get("number", "")
    counter = request.query_params.get("counter", "")
    try:
        for what, value in (("number", number), ("counter", counter)):
            if not QUERY_NUMBER.fullmatch(value):          # as the document says: no spaces, no other digits
                raise ValueError(f"{what} must be a whole number from 0 to {speech.MAX}, got {excerpt(value)}")
        body = announcement(number, counter)
    except ValueError as e:
        return error_response(422, "invalid_announcement", f"{e}.",
                              f"Số thứ tự và số quầy phải là số nguyên từ 0 đến {speech.MAX}.")
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=86400"})


routes = [Route("/api/announcement", announcement_api, methods=["GET"])]
