"""The counter console: what the staff of one counter (quầy) see and press.

`GET /counter/{branch}/{counter}` is a shell that holds nothing private: its script takes the staff
token (from `?token=` once, then localStorage), reads the console's JSON twin with it, and acts
through the API (`/api/branches/{b}/counters/{c}/...`, `/api/branches/{b}/tickets/{n}/...`), one
fresh Idempotency-Key per press. The JSON twin (`?format=json` or `Accept: application/json`)
answers only to a staff token of the branch (and of this counter, if the token is bound to one),
given as `Authorization: Bearer` or `?token=`: 401 without it, 403 for someone else's.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from markupsafe import escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from displays.kiosk import switch_without_token
from displays.render import page, wants_json
from hub.auth import Claims
from hub.domain.errors import DomainError, excerpt, forbidden, not_found
from hub.domain.state import BranchState
from hub.domain.ticket import State
from hub.service.queue import QueueService

WORDS: dict[str, tuple[str, str]] = {
    "console": ("Bảng điều khiển quầy", "Counter console"),
    "needs_token": ("Cần mã cán bộ", "A staff token is needed"),
    "needs_token_help": ("Bảng điều khiển quầy chỉ dành cho cán bộ. Mở trang bằng đường dẫn có mã cán bộ do quản trị cấp "
                         "(…?token=…), hoặc dán mã vào ô dưới đây.",
                         "The counter console is for staff only. Open it with the link holding the staff token from "
                         "your administrator (…?token=…), or paste the token below."),
    "forbidden": ("Mã cán bộ không dùng được cho quầy này", "This staff token cannot be used for this counter"),
    "token_placeholder": ("Mã cán bộ (qc1.…)", "Staff token (qc1.…)"),
    "use_token": ("Dùng mã này", "Use this token"),
    "forget_token": ("Đăng xuất", "Sign out"),
    "loading": ("Đang tải…", "Loading…"),
    "open": ("Đang mở", "Open"),
    "closed": ("Đang đóng", "Closed"),
    "fields_of_counter": ("Lĩnh vực phục vụ", "Fields served"),
    "open_counter": ("Mở quầy", "Open counter"),
    "update_fields": ("Cập nhật lĩnh vực", "Update fields"),
    "close_counter": ("Đóng quầy", "Close counter"),
    "current": ("Số đang phục vụ", "Now serving"),
    "none_current": ("Chưa gọi số nào", "No number called"),
    "channel_kiosk": ("Ki-ốt", "Kiosk"),
    "channel_online": ("Trực tuyến", "Online"),
    "priority": ("Ưu tiên", "Priority"),
    "called_at": ("Gọi lúc", "Called at"),
    "calls": ("Số lần gọi", "Calls"),
    "noshows": ("Số lần vắng mặt (trực tuyến)", "Online no-shows"),
    "checked_in": ("Đã xác nhận có mặt", "Checked in"),
    "not_checked_in": ("Chưa xác nhận có mặt", "Not checked in"),
    "call_next": ("Gọi số tiếp theo", "Call next"),
    "recall": ("Gọi lại", "Recall"),
    "skip": ("Vắng mặt", "No-show"),
    "complete": ("Hoàn thành", "Complete"),
    "transfer": ("Chuyển", "Transfer"),
    "cancel": ("Hủy", "Cancel"),
    "waiting_here": ("Đang chờ ở quầy này", "Waiting for this counter"),
    "priority_waiting": ("ưu tiên", "priority"),
    "skipped_list": ("Số vắng mặt (có thể gọi lại)", "No-shows (can be recalled)"),
    "recall_until": ("gọi lại được đến", "recallable until"),
    "held_until": ("giữ chỗ đến", "held until"),
    "activity": ("Hoạt động tại chi nhánh", "Branch activity"),
    "transfer_to": ("Chuyển số {n} sang lĩnh vực", "Transfer number {n} to"),
    "cancel_confirm": ("Hủy số {n}? Công dân sẽ phải lấy số mới.", "Cancel number {n}? The citizen will need a new number."),
    "confirm_cancel": ("Hủy số", "Cancel the number"),
    "back": ("Quay lại", "Back"),
    "called_msg": ("Đã gọi số {n}", "Called {n}"),
    "completed_msg": ("Đã hoàn thành số {n}", "Completed {n}"),
    "recalled_msg": ("Đã gọi lại số {n}", "Recalled {n}"),
    "skipped_msg": ("Số {n} vắng mặt", "{n} marked as no-show"),
    "held_msg": ("Số {n} được giữ chỗ đến {t}", "{n} is held until {t}"),
    "transferred_msg": ("Đã chuyển số {n} sang {s}", "Transferred {n} to {s}"),
    "cancelled_msg": ("Đã hủy số {n}", "Cancelled {n}"),
    "opened_msg": ("Quầy đã mở", "Counter opened"),
    "closed_msg": ("Quầy đã đóng", "Counter closed"),
    "choose_field": ("Hãy chọn ít nhất một lĩnh vực.", "Choose at least one field."),
    "network": ("Không kết nối được hệ thống; chưa thực hiện. Vui lòng thử lại.",
                "The hub cannot be reached; nothing was done. Please try again."),
    "other_called": ("Quầy {c} gọi số {n}", "Counter {c} called {n}"),
    "other_recalled": ("Quầy {c} gọi lại số {n}", "Counter {c} recalled {n}"),
    "issued_event": ("Cấp số {n} ({s})", "Issued {n} ({s})"),
    "shortcuts": ("Phím tắt: N hoặc Space gọi số tiếp theo, R gọi lại, S vắng mặt, C hoàn thành, T chuyển, X hủy.",
                  "Shortcuts: N or Space call next, R recall, S no-show, C complete, T transfer, X cancel."),
    "token_for": ("Mã cán bộ", "Staff token"),
    "all_counters": ("mọi quầy", "all counters"),
    "expires": ("hết hạn", "expires"),
    "people": ("người", "people"),
    "live": ("Trực tiếp", "Live"),
}


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise DomainError("unauthorized", "invalid_token", "Authorization must be 'Bearer <token>'.",
                              "Mã xác thực không hợp lệ.")
        return token.strip()
    return request.query_params.get("token") or None


def staff_claims(request: Request, branch: str, counter: str) -> Claims:
    """The console's reader: a staff token of this branch, bound to this counter or to none."""
    token = _token(request)
    if not token:
        raise DomainError("unauthorized", "token_required", "The counter console needs a staff token.",
                          "Bảng điều khiển quầy cần mã cán bộ.")
    claims: Claims = request.app.state.tokens.verify(token)
    if claims.kind != "staff":
        raise forbidden("staff_only", "The counter console is for staff.", "Bảng điều khiển quầy dành cho cán bộ.")
    if claims.branch != branch:
        raise forbidden("wrong_branch", f"This token is for branch {claims.branch}, not {branch}.",
                        f"Mã xác thực dành cho chi nhánh {claims.branch}, không phải {branch}.")
    if claims.counter not in (None, counter):
        raise forbidden("wrong_counter", f"This token is for counter {claims.counter}, not {counter}.",
                        f"Mã xác thực dành cho quầy {claims.counter}, không phải {counter}.")
    return claims


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds") if dt else None


def _recallable(st: BranchState, counter: str, now: datetime) -> list[dict[str, Any]]:
    """No-shows this counter can still bring back (skipped within recall_minutes, or held)."""
    p = st.config.policy
    window = timedelta(minutes=p.recall_minutes)
    out = []
    for t in st.tickets.values():
        if t.counter != counter or t.day != now.date():
            continue
        state = t.effective_state(now)
        if state is State.HELD:
            until = (t.held_until or now) + window
        elif state is State.SKIPPED:
            became = t.held_until if t.held_until and t.held_until <= now else t.skipped_at
            if became is None or now - became > window:
                continue
            until = became + window
        else:
            continue
        svc = st.config.services[t.service]
        out.append({"number": t.number, "service": t.service, "service_name": svc.name, "service_name_en": svc.name_en,
                    "state": state.value, "channel": t.channel, "skipped_at": _iso(t.skipped_at),
                    "held_until": _iso(t.held_until) if state is State.HELD else None, "recall_until": _iso(until)})
    out.sort(key=lambda r: r["skipped_at"] or "", reverse=True)
    return out


def counter_view(service: QueueService, branch: str, counter: str, claims: Claims) -> dict[str, Any]:
    st = service.state(branch)
    now = service.now()
    c = st.counters[counter]
    plan = st.config.counters[counter].services if counter in st.config.counters else c.services
    today = now.date()
    serving = list(c.services) if c.open else list(plan)
    fields = []
    for svc in st.config.services.values():
        queue = st.waiting(today, (svc.id,))
        fields.append({"id": svc.id, "name": svc.name, "name_en": svc.name_en, "waiting": len(queue),
                       "priority_waiting": sum(1 for t in queue if t.priority),
                       "next": queue[0].number if queue else None, "here": svc.id in serving})
    current = None
    if c.current and c.current in st.tickets:
        t = st.tickets[c.current]
        current = {**service.staff_ticket(st, t, now), "calls": t.calls}
    return {
        "branch": {"id": st.id, "name": st.config.name, "name_en": st.config.name_en},
        "counter": {"id": c.id, "open": c.open, "services": list(c.services), "plan": list(plan)},
        "current": current,
        "waiting": sum(f["waiting"] for f in fields if f["here"]),
        "services": fields,
        "recallable": _recallable(st, counter, now),
        "counters": [{"id": o.id, "open": o.open, "services": list(o.services),
                      "current": st.tickets[o.current].number if o.current and o.current in st.tickets else None}
                     for o in st.counters.values()],
        "policy": {"absent": st.config.policy.absent, "recall_minutes": st.config.policy.recall_minutes},
        "staff": {"counter": claims.counter, "expires": datetime.fromtimestamp(claims.exp, now.tzinfo).isoformat(
            timespec="minutes")},
        "now": _iso(now), "day": today.isoformat(), "seq": st.seq, "epoch": service.epochs.get(branch),
    }


def _html_404(e: DomainError) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>404</title>"
                        f"<p>{escape(e.message_vi)}</p><p>{escape(e.message)}</p>", status_code=404)


async def console(request: Request) -> Response:
    branch, counter = request.path_params["branch"], request.path_params["counter"]
    service = request.app.state.service
    try:
        st = await service.hold(branch)
        if counter not in st.counters:
            raise not_found("counter_not_found", f"This branch has no counter {excerpt(counter)}.",
                            f"Chi nhánh không có quầy {excerpt(counter)}.")
    except DomainError as e:
        if wants_json(request):
            raise
        return _html_404(e)
    if wants_json(request):
        claims = staff_claims(request, branch, counter)          # 401 / 403 in the API's error shape
        response: Response = JSONResponse(counter_view(service, branch, counter, claims))
    else:
        # The shell: public facts only (which branch, which counter); the rest comes with the token.
        shell = {"branch": {"id": st.id, "name": st.config.name, "name_en": st.config.name_en},
                 "counter": {"id": counter}}
        response = page(request, "counter.html", shell, words=WORDS, switch_url=switch_without_token(request))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


routes = [Route("/counter/{branch}/{counter}", console, methods=["GET"])]
