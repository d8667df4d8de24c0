"""HTTP API handlers (README "HTTP API", /openapi.json): decode, call the service, encode."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.domain.errors import DomainError, forbidden, invalid
from hub.web import decode, kiosks

CREATED = 201       # a new number; a replay of the same request (Idempotency-Key) is answered alike


def _answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def issue_ticket(request: Request) -> JSONResponse:
    app, branch = request.app.state, request.path_params["branch"]
    service = app.service
    await service.hold(branch)                               # 404 before anything else
    data = await decode.json_body(request)
    claims = decode.bearer(request, required=False)
    channel = decode.field(data, "channel", str)
    svc = decode.field(data, "service", str)
    priority = decode.field(data, "priority", bool, required=False, default=False)
    phone = decode.field(data, "phone", str, required=False)
    staff = claims is not None and claims.kind == "staff"
    if staff:
        decode.staff(request, branch)                        # this branch's staff (issuing for a citizen)
    if channel == "online" and (claims is None or claims.kind != "citizen"):
        raise DomainError("unauthorized", "citizen_token_required",
                          "An online number needs a citizen token (identity verified through VNeID).",
                          "Lấy số trực tuyến cần đăng nhập bằng tài khoản định danh (VNeID).")
    # The kiosk channel: an enrolled device of this branch, its staff, or its lobby network (hub.web.kiosks).
    device = kiosks.kiosk_channel(request, branch, claims) if channel == "kiosk" else None
    if priority and not staff and device is None:
        # Staff confirm a priority case, at the counter or at an enrolled kiosk (disability,
        # pregnancy: nothing the hub can check); a citizen's own claim, an anonymous one or one from
        # the lobby network would be a way to jump the queue. Age needs no claim: 75+ by the CCCD
        # is automatic (hub.domain.commands.issue).
        raise forbidden("priority_not_allowed",
                        "Only branch staff, or a kiosk they enrolled, can give a number priority.",
                        "Chỉ cán bộ chi nhánh, hoặc ki-ốt do chi nhánh đăng ký, mới được cấp số ưu tiên.")
    if not staff and device is None:                         # a device keeps to its own pace instead
        app.address_limit.take(request.client.host if request.client else "unknown")
    if claims is not None and claims.kind == "citizen":
        app.citizen_limit.take(claims.cccd)
    return _answer(await service.issue(branch, service=svc, channel=channel, priority=priority, phone=phone,
                                       claims=claims if claims and claims.kind == "citizen" else None,
                                       idem=decode.idempotency(request, claims, CREATED),
                                       lang=decode.field(data, "lang", str, required=False), device=device), CREATED)


async def open_counter(request: Request) -> JSONResponse:
    branch, counter = request.path_params["branch"], request.path_params["counter"]
    await request.app.state.service.hold(branch)
    claims = decode.staff(request, branch, counter)
    data = await decode.json_body(request, required=False)
    services = decode.field(data, "services", list, required=False)
    if services is not None and not all(isinstance(s, str) for s in services):
        raise invalid("invalid_field", "Field 'services' must be a list of field ids.",
                      "Trường 'services' phải là danh sách mã lĩnh vực.", field="services")
    return _answer(await request.app.state.service.open_counter(
        branch, counter, services, decode.idempotency(request, claims)))


async def close_counter(request: Request) -> JSONResponse:
    branch, counter = request.path_params["branch"], request.path_params["counter"]
    await request.app.state.service.hold(branch)
    claims = decode.staff(request, branch, counter)
    await decode.json_body(request, required=False)
    return _answer(await request.app.state.service.close_counter(branch, counter, decode.idempotency(request, claims)))


async def call_next(request: Request) -> JSONResponse:
    branch, counter = request.path_params["branch"], request.path_params["counter"]
    await request.app.state.service.hold(branch)
    claims = decode.staff(request, branch, counter)
    await decode.json_body(request, required=False)
    return _answer(await request.app.state.service.call_next(branch, counter, decode.idempotency(request, claims)))


async def ticket_action(request: Request) -> JSONResponse:
    p = request.path_params
    branch, number, action = p["branch"], p["number"], p["action"]
    service = request.app.state.service
    await service.hold(branch)
    claims = decode.staff(request, branch)
    data = await decode.json_body(request, required=False)
    target = decode.field(data, "service", str, required=action == "transfer")
    counter = decode.field(data, "counter", str, required=False)
    return _answer(await service.act(branch, number, action, staff=claims, service=target, counter=counter,
                                     idem=decode.idempotency(request, claims)))


async def check_in(request: Request) -> JSONResponse:
    branch = request.path_params["branch"]
    await request.app.state.service.hold(branch)
    claims = decode.bearer(request, required=True)
    device = kiosks.kiosk_device(claims, branch) if claims.kind == "kiosk" else None
    if device is None:
        decode.staff(request, branch)                        # staff, or an enrolled kiosk device of the branch
    data = await decode.json_body(request)
    return _answer(await request.app.state.service.check_in_token(branch, decode.field(data, "token", str), device))


async def branches(request: Request) -> JSONResponse:
    return JSONResponse({"branches": await request.app.state.service.branches_view()})


async def branch(request: Request) -> JSONResponse:
    service = request.app.state.service
    await service.hold(request.path_params["branch"])
    return JSONResponse(service.branch_view(request.path_params["branch"]))


async def ticket(request: Request) -> JSONResponse:
    travel = request.query_params.get("travel_minutes")
    minutes = None
    if travel is not None:
        try:
            minutes = float(travel)
            if not 0 <= minutes <= 600:
                raise ValueError
        except ValueError:
            raise invalid("invalid_field", "travel_minutes must be a number of minutes from 0 to 600.",
                          "Thời gian di chuyển phải từ 0 đến 600 phút.", field="travel_minutes") from None
    await request.app.state.service.hold_ticket(request.path_params["token"])
    return JSONResponse(request.app.state.service.ticket_view(request.path_params["token"], minutes))


async def give_back(request: Request) -> JSONResponse:
    return _answer(await request.app.state.service.give_back(request.path_params["token"]))


async def notifications(request: Request) -> JSONResponse:
    data = await decode.json_body(request)
    travel = decode.field(data, "travel_minutes", (int, float), required=False)
    return _answer(await request.app.state.service.opt_in(
        request.path_params["token"], channel=decode.field(data, "channel", str),
        phone=decode.field(data, "phone", str, required=False),
        subscription=decode.field(data, "subscription", dict, required=False),
        ahead=decode.field(data, "ahead", int, required=False),
        travel_minutes=float(travel) if travel is not None else None,
        lang=decode.field(data, "lang", str, required=False),
        push_to=request.app.state.settings.push_destinations))


async def notifications_off(request: Request) -> JSONResponse:
    p = request.path_params
    return _answer(await request.app.state.service.opt_out(p["token"], p["channel"]))


async def rating(request: Request) -> JSONResponse:
    data = await decode.json_body(request)
    return _answer(await request.app.state.service.rate(
        request.path_params["token"], decode.field(data, "score", int),
        decode.field(data, "comment", str, required=False, default="")))


routes = [
    Route("/api/branches", branches, methods=["GET"]),
    Route("/api/branches/{branch}", branch, methods=["GET"]),
    Route("/api/branches/{branch}/tickets", issue_ticket, methods=["POST"]),
    Route("/api/branches/{branch}/check-in", check_in, methods=["POST"]),
    Route("/api/branches/{branch}/counters/{counter}/open", open_counter, methods=["POST"]),
    Route("/api/branches/{branch}/counters/{counter}/close", close_counter, methods=["POST"]),
    Route("/api/branches/{branch}/counters/{counter}/call-next", call_next, methods=["POST"]),
    Route("/api/branches/{branch}/tickets/{number}/{action}", ticket_action, methods=["POST"]),
    Route("/api/tickets/{token}", ticket, methods=["GET"]),
    Route("/api/tickets/{token}", give_back, methods=["DELETE"]),
    Route("/api/tickets/{token}/notifications", notifications, methods=["POST"]),
    Route("/api/tickets/{token}/notifications/{channel}", notifications_off, methods=["DELETE"]),
    Route("/api/tickets/{token}/rating", rating, methods=["POST"]),
]
