"""Server-rendered pages. Each renders a view model that the API returns as JSON too."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from hub.domain.errors import DomainError

from displays.render import env

STATES = {"waiting": ("Đang chờ", "Waiting"), "called": ("Đã gọi", "Called"),
          "held": ("Đang giữ chỗ — hãy đến quầy tiếp đón", "Held — check in at reception"),
          "completed": ("Đã phục vụ", "Served"), "skipped": ("Vắng mặt khi gọi", "Missed the call"),
          "cancelled": ("Đã hủy", "Cancelled"), "expired": ("Hết hiệu lực", "Expired")}


async def ticket_page(request: Request) -> HTMLResponse:
    """The citizen's page behind the QR code and the tracking link (JSON twin: /api/tickets/{token})."""
    token = request.path_params["token"]
    travel = request.query_params.get("travel_minutes")
    try:
        minutes = float(travel) if travel else None
        if minutes is not None and not 0 <= minutes <= 600:
            minutes = None
    except ValueError:
        minutes = None
    try:
        view = request.app.state.service.ticket_view(token, minutes)
    except DomainError as e:
        return HTMLResponse(f"<!doctype html><meta charset=utf-8><p>{e.message_vi}</p><p>{e.message}</p>",
                            status_code=404)
    return HTMLResponse(env.get_template("ticket.html").render(t=view, token=token, states=STATES))


routes = [Route("/t/{token}", ticket_page, methods=["GET"])]
