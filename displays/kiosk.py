"""The kiosk: a touch screen in the branch lobby that issues numbers and prints tickets.

- `GET /kiosk/{branch}`: one big button per field of the branch (waiting count, expected wait),
  a priority toggle, the online holders' check-in. JSON twin: `?format=json` (what the screen
  refreshes itself from). The page issues through the API (`POST /api/branches/{b}/tickets`) with
  its device token (kept in localStorage). A kiosk without one says so, in Vietnamese and English,
  and takes an enrolment code: `#enrol=CODE` (the admin page's one-time link, the code in the fragment
  so that no server or log sees it; the page removes it from the address bar and history at once), or a code or link scanned or pasted; a kiosk on the
  branch's lobby network (policy kiosk_lobby_networks) may issue without one.
- `GET /kiosk/{branch}/ticket?token=T`: the printable ticket of the ticket whose token is T (the
  token is the authority: a forged or foreign token is a 404), with a QR code of its tracking URL
  drawn here as SVG; 80 mm thermal print CSS; `?autoprint=1` prints on load.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from displays import i18n
from displays.render import page, wants_json
from hub import qr
from hub.domain.errors import DomainError
from hub.domain.kiosks import lobby_allows

WORDS: dict[str, tuple[str, str]] = {
    "kiosk_title": ("Lấy số thứ tự", "Take a number"),
    "choose": ("Chạm vào lĩnh vực cần giải quyết để lấy số", "Touch the field of your matter to take a number"),
    "priority": ("Người cao tuổi / ưu tiên", "Elderly / priority"),
    "priority_on": ("Đang chọn: ưu tiên", "Selected: priority"),
    "priority_hint": ("Người từ 75 tuổi, người khuyết tật, phụ nữ mang thai, người có công — cán bộ sẽ xác nhận tại quầy",
                      "Aged 75+, disabled, pregnant, persons with meritorious service — confirmed at the counter"),
    "waiting_people": ("người đang chờ", "waiting"),
    "wait_about": ("chờ khoảng", "wait about"),
    "no_wait": ("gần như không phải chờ", "almost no wait"),
    "sold_out": ("Đã hết số hôm nay", "No numbers left today"),
    "closed_banner": ("Hiện ngoài giờ cấp số. Ki-ốt cấp số", "Outside issuing hours. The kiosk issues numbers"),
    "working_days": ("các ngày làm việc", "on working days"),
    "issuing": ("Đang cấp số…", "Issuing your number…"),
    "your_number": ("Số thứ tự của bạn", "Your number"),
    "take_ticket": ("Mời nhận phiếu in bên dưới", "Please take your printed ticket below"),
    "people_ahead": ("Số người trước bạn", "People ahead of you"),
    "done": ("Xong", "Done"),
    "returning": ("Màn hình tự quay lại sau", "Back to the start in"),
    "seconds": ("giây", "s"),
    "checkin_button": ("Tôi đã đặt số trực tuyến", "I booked a number online"),
    "checkin_title": ("Xác nhận có mặt cho số đặt trực tuyến", "Check in a number booked online"),
    "checkin_help": ("Đưa mã QR trên điện thoại vào máy quét, hoặc nhập đường dẫn / mã của số thứ tự rồi chạm “Xác nhận có mặt”.",
                     "Hold the QR code on your phone to the scanner, or type the ticket link / code, then touch “Check in”."),
    "checkin_placeholder": ("Đường dẫn hoặc mã số thứ tự", "Ticket link or code"),
    "checkin_submit": ("Xác nhận có mặt", "Check in"),
    "checkin_ok": ("Đã xác nhận có mặt", "You are checked in"),
    "checkin_wait": ("Mời bạn ngồi chờ và chú ý màn hình gọi số.", "Please take a seat and watch the call screens."),
    "checkin_empty": ("Hãy quét mã QR hoặc nhập mã số thứ tự.", "Scan the QR code or type the ticket code."),
    "checkin_no_device": ("Ki-ốt này chưa được cài mã thiết bị nên chưa thể xác nhận có mặt. Mời bạn đến quầy tiếp đón để được hỗ trợ.",
                          "This kiosk has no device code yet, so it cannot check you in. Please go to the reception desk."),
    "back": ("Quay lại", "Back"),
    "ok": ("Đã hiểu", "OK"),
    "refused": ("Chưa cấp được số", "No number issued"),
    "refused_cap": ("Đã hết số hôm nay", "No numbers left today"),
    "come_back": ("Ngày làm việc tiếp theo", "Next working day"),
    "refused_hours": ("Ngoài giờ cấp số", "Outside issuing hours"),
    "reopens": ("Ki-ốt cấp số lại vào lúc", "The kiosk issues numbers again at"),
    "network": ("Không kết nối được với hệ thống. Vui lòng chạm lại sau giây lát hoặc hỏi cán bộ.",
                "The system cannot be reached. Please try again in a moment or ask the staff."),
    "device_bad": ("Mã thiết bị của ki-ốt không hợp lệ hoặc đã bị thu hồi", "The kiosk's device code is invalid or revoked"),
    "device_ok": ("Ki-ốt đã đăng ký", "Registered kiosk"),
    # an unenrolled kiosk: both languages at once (ENROL_WORDS), Vietnamese first
    "enrolling": ("Đang đăng ký ki-ốt…", "Enrolling the kiosk…"),
    "enrol_ok": ("Đã đăng ký ki-ốt", "Kiosk enrolled"),
    "enrol_failed": ("Chưa đăng ký được ki-ốt", "The kiosk was not enrolled"),
    # the printed ticket
    "date": ("Ngày", "Date"),
    "issued_time": ("Giờ lấy số", "Issued at"),
    "priority_ticket": ("ƯU TIÊN", "PRIORITY"),
    "track": ("Quét mã QR để theo dõi lượt của bạn trên điện thoại", "Scan the QR code to follow your turn on your phone"),
    "keep": ("Vui lòng giữ phiếu và chú ý màn hình, loa gọi số.", "Please keep this ticket and watch the call screens."),
    "print_again": ("In lại", "Print again"),
    "online": ("Đặt trực tuyến", "Booked online"),
}


# What an unenrolled kiosk says: whoever stands before it may read either language.
ENROL_WORDS: dict[str, tuple[str, str]] = {
    "enrol_title": ("Ki-ốt này chưa được đăng ký", "This kiosk is not enrolled"),
    "enrol_explain": ("Ki-ốt chưa được đăng ký với chi nhánh nên chưa thể cấp số thứ tự. Mời cán bộ quản lý chi nhánh "
                      "đăng ký ki-ốt trên trang quản lý chi nhánh (mục “Ki-ốt”), rồi mở đường dẫn đăng ký trên ki-ốt "
                      "này, hoặc quét hay dán mã đăng ký vào ô dưới đây.",
                      "This kiosk is not enrolled at the branch, so it cannot issue numbers. Please ask the branch "
                      "manager to enrol it on the branch's admin page (section “Kiosks”), then open the enrolment link "
                      "on this kiosk, or scan or paste the enrolment code below."),
    "enrol_citizen": ("Công dân cần lấy số: mời đến quầy hướng dẫn.", "Citizens who need a number: please go to the information desk."),
    "enrol_placeholder": ("Mã hoặc đường dẫn đăng ký", "Enrolment code or link"),
    "enrol_submit": ("Đăng ký ki-ốt", "Enrol this kiosk"),
}


def _minutes(m: float | None, lang: str) -> str:
    if m is None:
        return "—"
    n = max(1, round(m))
    unit, hours = ("phút", "giờ") if lang == "vi" else ("min", "h")
    if n < 60:
        return f"{n} {unit}"
    h, rest = divmod(n, 60)
    return f"{h} {hours} {rest} {unit}" if rest else f"{h} {hours}"


def _range(lo: float, hi: float, lang: str) -> str:
    """An expected wait as a range of minutes: "5–12 phút", "50 phút – 1 giờ 15 phút"."""
    a, b = _minutes(lo, lang), _minutes(hi, lang)
    if a == b:
        return a
    if max(round(lo), 1) < 60 and round(hi) < 60:
        return f"{max(1, round(lo))}–{b}"
    return f"{a} – {b}"


def kiosk_view(bv: dict[str, Any]) -> dict[str, Any]:
    """What the kiosk shows of a branch: its fields with waiting counts, expected waits, numbers left."""
    return {
        "branch": {"id": bv["id"], "name": bv["name"], "name_en": bv["name_en"], "address": bv["address"]},
        "day": bv["day"], "now": bv["now"], "seq": bv["seq"],
        "hours": bv["hours"], "issuing": bv["issuing"]["kiosk"], "working_day": bv["working_day"],
        "services": [{k: s[k] for k in ("id", "name", "name_en", "waiting", "expected_wait", "numbers_left",
                                       "daily_cap")} for s in bv["services"]],
    }


async def kiosk_page(request: Request) -> Response:
    branch = request.path_params["branch"]
    try:
        await request.app.state.service.hold(branch)
        bv = request.app.state.service.branch_view(branch)
    except DomainError as e:
        if wants_json(request):
            raise                                   # the API's error shape
        return _escape_404(e)
    autoprint = request.query_params.get("autoprint") == "1"
    try:
        hold = min(max(int(request.query_params.get("hold", "12")), 2), 120)
    except ValueError:
        hold = 12
    networks = request.app.state.service.centre.branches[branch].policy.kiosk_lobby_networks
    lobby = lobby_allows(networks, request.client.host if request.client else None)
    response = page(request, "kiosk.html", kiosk_view(bv), words=WORDS, mode="kiosk",
                    autoprint=autoprint, hold=hold, switch_url=switch_without_token(request), lobby=lobby,
                    enrol_words=ENROL_WORDS)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def switch_without_token(request: Request) -> str:
    """The language switch's link, keeping the page's settings but never a staff token."""
    other = "en" if i18n.lang(request) == "vi" else "vi"
    url = request.url.remove_query_params(["token", "enrol"]).include_query_params(lang=other)
    return f"{url.path}?{url.query}"


def qr_svg(url: str) -> Markup:
    """The tracking URL as an inline SVG QR code (black on white, quiet zone included)."""
    return Markup(qr.svg(url))


async def ticket_page(request: Request) -> Response:
    """The printable ticket; the ticket token in `?token=` is what authorises it."""
    branch = request.path_params["branch"]
    token = request.query_params.get("token", "")
    service = request.app.state.service
    try:
        await service.hold(branch)
        if not token or len(token) > 200:
            raise _missing()
        if service.tokens.read_ticket(token).branch != branch:
            raise _missing()
        view = service.ticket_view(token)
    except DomainError as e:
        if wants_json(request):
            raise
        return _escape_404(e)
    lang = i18n.lang(request)
    issued = datetime.fromisoformat(view["issued_at"])
    day = datetime.fromisoformat(view["day"]).date()
    eta = view.get("eta")
    expected = _range(eta["p10"], eta["p90"], lang) if eta else None
    response = page(request, "kiosk.html", view, words=WORDS, mode="ticket",
                    qr=qr_svg(view["tracking_url"]), issued_time=f"{issued:%H:%M}", issued_date=f"{issued:%d/%m/%Y}",
                    service_day=f"{day:%d/%m/%Y}", expected=expected,
                    autoprint=request.query_params.get("autoprint") == "1",
                    embed=request.query_params.get("embed") == "1")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _missing() -> DomainError:
    return DomainError("not_found", "ticket_not_found", "No ticket for this link.", "Không tìm thấy số thứ tự.")


def _escape_404(e: DomainError) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>404</title>"
                        f"<p>{escape(e.message_vi)}</p><p>{escape(e.message)}</p>", status_code=404)


routes = [
    Route("/kiosk/{branch}", kiosk_page, methods=["GET"]),
    Route("/kiosk/{branch}/ticket", ticket_page, methods=["GET"]),
]
