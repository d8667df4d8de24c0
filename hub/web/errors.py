"""Every error leaves the hub in one shape: {"error": {"code", "message", ...}} with a 4xx status."""
from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from hub.domain.errors import DomainError
from hub.logs import redact
from hub.store.errors import StoreUnavailable

STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403, "unauthorized": 401,
          "rate_limited": 429, "too_large": 413, "unsupported_media": 415, "bad_request": 400,
          "unavailable": 503}

log = logging.getLogger("queuecast.web")


def error_response(status: int, code: str, message: str, message_vi: str = "", **details: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if message_vi:
        body["message_vi"] = message_vi
    body.update(details)
    headers = {"Retry-After": str(details["retry_after"])} if "retry_after" in details else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
    return error_response(STATUS[exc.kind], exc.code, exc.message, exc.message_vi, **exc.details)


_HTTP = {404: ("not_found", "Không tìm thấy địa chỉ này."),
         405: ("method_not_allowed", "Phương thức không được hỗ trợ cho địa chỉ này."),
         400: ("bad_request", "Yêu cầu không hợp lệ."),
         408: ("request_timeout", "Yêu cầu được gửi quá chậm; vui lòng thử lại."),
         413: ("body_too_large", "Nội dung yêu cầu quá lớn.")}


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code, vi = _HTTP.get(exc.status_code, ("http_error", "Yêu cầu không hợp lệ."))
    response = error_response(exc.status_code, code, str(exc.detail), vi)
    response.headers.update(exc.headers or {})          # 405 carries Allow
    return response


async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
    """A client that hung up mid-body (a phone losing its signal) is no fault of the hub: one
    info line, no traceback. The answer goes nowhere; uvicorn drops it."""
    log.info("client went away mid-request", extra={"fields": {"method": request.method,
                                                               "path": redact(request.url.path)}})
    return error_response(400, "client_disconnected", "The client closed the connection mid-request.")


async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
    """A store that cannot write now, met outside a command (the redrive API, delivery reports,
    kiosk enrolment, ...): 503 with Retry-After, as a command answers it, never a 500."""
    log.warning("store unavailable", extra={"fields": {"path": redact(request.url.path), "error": str(exc)}})
    return error_response(503, "store_unavailable", *exc.public, retry_after=2)


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"fields": {"path": redact(request.url.path)}})
    return error_response(500, "internal_error", "The hub failed to answer; the error is logged.",
                          "Hệ thống gặp lỗi; lỗi đã được ghi lại.")
