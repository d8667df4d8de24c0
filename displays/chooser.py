"""The branch chooser, /branches: every branch's waiting, expected wait for a new number, numbers left
today and whether issuing is open, per field; pick a field to rank the branches by wait; take a
number online with a citizen token (iHanoi provides it in production).

Its JSON twin, `/branches?format=json`, is `{"branches": [hub.views.branch_view(...) for every
branch]}`, the same as GET /api/branches; static/chooser.js refreshes the page from it.

`POST /demo/citizen-token` hands out a citizen token for a made-up, valid CCCD, and only under
`queuecast demo` (`app.state.demo`); on any other hub it does not exist (404).
"""
from __future__ import annotations

import random
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from displays.render import page
from hub.auth import CITIZEN_TTL
from hub.domain.errors import not_found

REFRESH_SECONDS = 15

WORDS: dict[str, tuple[str, str]] = {
    "title": ("Chọn chi nhánh và lấy số", "Choose a branch and take a number"),
    "intro": ("Xem số người đang chờ và thời gian chờ dự kiến ở 12 chi nhánh, rồi lấy số trực tuyến.",
              "See how many are waiting and the expected wait at the 12 branches, then take a number online."),
    "all_fields": ("Tất cả lĩnh vực", "All fields"),
    "pick_field": ("Chọn lĩnh vực để so sánh các chi nhánh", "Pick a field to compare the branches"),
    "ranked": ("Các chi nhánh phục vụ lĩnh vực này, chờ ít nhất trước", "Branches serving this field, shortest wait first"),
    "not_served": ("{n} chi nhánh không phục vụ lĩnh vực này.", "{n} branches do not serve this field."),
    "take": ("Lấy số trực tuyến", "Take a number online"),
    "take_short": ("Lấy số", "Take"),
    "waiting_n": ("đang chờ", "waiting"),
    "wait_about": ("chờ ~", "wait ~"),
    "wait_now": ("gần như không phải chờ", "almost no wait"),
    "left_pre": ("còn", ""),
    "left_suf": ("số", "left"),
    "sold_out": ("hết số hôm nay", "none left today"),
    "kiosk": ("Ki-ốt", "Kiosk"),
    "online": ("Trực tuyến", "Online"),
    "open": ("mở", "open"),
    "closed": ("ngoài giờ", "closed"),
    "issuing_now": ("đang cấp số", "issuing numbers"),
    "not_issuing": ("ngoài giờ cấp số", "not issuing numbers now"),
    "hours": ("Cấp số {opens}–{until} · Trực tuyến từ {online} hôm trước",
              "Numbers {opens}–{until} · online from {online} the evening before"),
    "for_day": ("Số cấp cho ngày {day}", "Numbers for {day}"),
    "login_title": ("Đăng nhập để lấy số trực tuyến", "Sign in to take a number online"),
    "login_help": ("Trong ứng dụng iHanoi, mã đăng nhập (định danh qua VNeID) được điền sẵn. "
                   "Bạn cũng có thể dán mã vào đây.",
                   "In the iHanoi app your sign-in code (identity through VNeID) is filled in for you. "
                   "You can also paste it here."),
    "login": ("Đăng nhập", "Sign in"),
    "logout": ("Đăng xuất", "Sign out"),
    "demo_login": ("Đăng nhập thử (VNeID mô phỏng)", "Try it (simulated VNeID)"),
    "signed_in": ("Đã đăng nhập", "Signed in"),
    "expires": ("hết hạn", "expires"),
    "token_bad": ("Mã đăng nhập không đúng. Hãy dán lại toàn bộ mã.", "This sign-in code is not valid. Paste the whole code again."),
    "token_expired": ("Mã đăng nhập đã hết hạn. Hãy đăng nhập lại.", "This sign-in code has expired. Please sign in again."),
    "token_kind": ("Đây không phải mã đăng nhập của công dân.", "This is not a citizen's sign-in code."),
    "login_first": ("Hãy đăng nhập trước khi lấy số trực tuyến.", "Please sign in before taking a number online."),
    "taken": ("Bạn đã lấy được số", "Your number"),
    "ahead_n": ("Số người trước bạn: {n}", "People ahead of you: {n}"),
    "track": ("Theo dõi số của bạn", "Track your number"),
    "refused": ("Không lấy được số", "No number issued"),
    "close": ("Đóng", "Close"),
    "my_numbers": ("Số bạn đã lấy", "Your numbers"),
    "error": ("Không kết nối được, vui lòng thử lại.", "Could not connect; please try again."),
}


def _fields(branches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every field any branch serves, in the catalogue's order."""
    seen: dict[str, dict[str, Any]] = {}
    for b in branches:
        for s in b["services"]:
            seen.setdefault(s["id"], {"id": s["id"], "name": s["name"], "name_en": s["name_en"]})
    return list(seen.values())


_BRANCH_KEYS = ("id", "name", "name_en", "address", "now", "hours", "issuing", "waiting")
_FIELD_KEYS = ("id", "name", "name_en", "waiting", "numbers_left", "daily_cap")


def _slim(branches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What chooser.js draws the list from, embedded in the page (its JSON twin has every field)."""
    return [{**{k: b[k] for k in _BRANCH_KEYS},
             "services": [{**{k: s[k] for k in _FIELD_KEYS}, "expected_wait": {"p50": s["expected_wait"]["p50"]}}
                          for s in b["services"]]}
            for b in branches]


async def branches_page(request: Request) -> Response:
    view = {"branches": await request.app.state.service.branches_view()}
    field = request.query_params.get("field") or ""
    response = page(request, "branches.html", view, words=WORDS, fields=_fields(view["branches"]),
                    slim=_slim(view["branches"]), field=field, demo=bool(request.app.state.demo),
                    refresh=REFRESH_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


async def demo_citizen_token(request: Request) -> JSONResponse:
    """A citizen token for a random valid CCCD, as VNeID would vouch for one; demo only."""
    if not request.app.state.demo:
        raise not_found("not_found", "Not found.", "Không tìm thấy địa chỉ này.")
    from hub.sim.people import fake_citizen  # the demo's own made-up citizens

    cccd, _ = fake_citizen(random.SystemRandom(), request.app.state.service.now().year)
    token = request.app.state.tokens.citizen(cccd)
    return JSONResponse({"token": token, "expires_in": CITIZEN_TTL}, status_code=201,
                        headers={"Cache-Control": "no-store"})


routes = [
    Route("/branches", branches_page, methods=["GET"]),
    Route("/demo/citizen-token", demo_citizen_token, methods=["POST"]),
]
