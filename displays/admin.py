"""The branch manager's page, `/admin/{branch}`: live counters and queues, today's figures and
charts, the satisfaction ratings (with the citizens' comments: staff only), and the notifier's outbox.

Staff only. The staff token of the branch comes as `Authorization: Bearer …` (the page's script
sends it), as `?token=…` once (kept in an HttpOnly cookie scoped to this page's path and in the
browser's localStorage, and dropped from the address bar), or from that cookie. Without a valid
token the page is the "cần mã cán bộ" screen (401, or 403 for another branch's token) and the
JSON twin (`?format=json`) is the usual error shape.

The view model (the JSON twin) is `{"branch", "day", "live", "stats", "outbox", "kiosks"}`: `live` is the
branch's live status (`hub.views.branch_view` plus how long each counter has had its citizen),
`stats` is `displays.stats.day_stats` of the day's events, `outbox` the branch's notification
outbox (`displays.outbox_panel.outbox_view`; its dead letters are redriven through POST /api/outbox/redrive),
`kiosks` the branch's kiosk devices (`displays.kiosk_panel`; enrolled and revoked through /api/branches/{b}/kiosks).
`?day=YYYY-MM-DD` shows an earlier day.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from displays import charts, i18n
from displays.kiosk_panel import WORDS as KIOSK_WORDS
from displays.outbox_panel import WORDS as OUTBOX_WORDS
from displays.outbox_panel import outbox_view
from displays.render import page, wants_json
from displays.stats import day_stats
from hub import views
from hub.auth import Claims
from hub.domain.errors import DomainError, forbidden, invalid, unauthorized
from hub.domain.events import Event
from hub.domain.state import BranchState

COOKIE = "qc_staff"
_CACHE_DAYS = 24            # (branch, day) event lists kept in memory per process
_CACHE_ATTR = "admin_day_events"
# (branch, day) → (the log's epoch, the seq read up to, that day's events up to it)
DayCache = dict[tuple[str, date], tuple[str | None, int, list[Event]]]

WORDS: dict[str, tuple[str, str]] = {
    "title": ("Quản lý chi nhánh", "Branch management"),
    "token_needed": ("Cần mã cán bộ", "Staff code needed"),
    "token_explain": ("Trang này dành cho cán bộ quản lý của chi nhánh. Hãy nhập mã cán bộ (mã xác thực do "
                      "quản trị hệ thống cấp) để xem.",
                      "This page is for the branch's management staff. Enter a staff code (the token "
                      "issued by the system administrator) to see it."),
    "token_invalid": ("Mã cán bộ không hợp lệ hoặc đã hết hạn.", "The staff code is invalid or has expired."),
    "token_other_branch": ("Mã cán bộ này dành cho chi nhánh khác.", "This staff code is for another branch."),
    "token_not_staff": ("Mã này không phải mã cán bộ.", "This is not a staff code."),
    "token_label": ("Mã cán bộ", "Staff code"),
    "open_page": ("Mở trang", "Open"),
    "day": ("Ngày", "Day"),
    "live_status": ("Trực tuyến", "Live"),
    "offline": ("Mất kết nối — đang thử lại", "Disconnected — retrying"),
    "updated": ("Cập nhật", "Updated"),
    "issued": ("Đã cấp số", "Issued"),
    "served": ("Đã phục vụ", "Served"),
    "waiting_now": ("Đang chờ", "Waiting"),
    "at_counter": ("Tại quầy", "At counters"),
    "noshows": ("Vắng mặt", "No-shows"),
    "held": ("Giữ chỗ", "Held"),
    "cancelled": ("Đã hủy", "Cancelled"),
    "expired": ("Hết hiệu lực", "Expired"),
    "mean_wait": ("Chờ trung bình", "Mean wait"),
    "satisfaction": ("Hài lòng", "Satisfaction"),
    "counters": ("Quầy", "Counters"),
    "counters_open": ("quầy đang mở", "counters open"),
    "status": ("Trạng thái", "Status"),
    "open": ("Mở", "Open"),
    "closed": ("Đóng", "Closed"),
    "fields": ("Lĩnh vực", "Fields"),
    "current": ("Số đang phục vụ", "Current number"),
    "since": ("Từ", "Since"),
    "queues": ("Hàng chờ theo lĩnh vực", "Queues by field"),
    "expected": ("Chờ dự kiến", "Expected wait"),
    "longest": ("Chờ lâu nhất", "Longest waiting"),
    "left_today": ("Còn số", "Numbers left"),
    "charts": ("Biểu đồ trong ngày", "Today's charts"),
    "chart_wait_title": ("Thời gian chờ theo lĩnh vực (phút)", "Wait by field (minutes)"),
    "chart_channel_title": ("Thời gian chờ trung bình: ki-ốt và trực tuyến (phút)",
                            "Mean wait: kiosk and online (minutes)"),
    "chart_hours_title": ("Lượt gọi mỗi giờ và số quầy làm việc", "Calls per hour and staffed counters"),
    "chart_ratings_title": ("Phân bố điểm đánh giá", "Ratings distribution"),
    "mean": ("Trung bình", "Mean"),
    "median": ("Trung vị", "Median"),
    "kiosk": ("Ki-ốt", "Kiosk"),
    "online": ("Trực tuyến", "Online"),
    "all_fields": ("Tất cả lĩnh vực", "All fields"),
    "calls": ("Lượt gọi", "Calls"),
    "staffed_counters": ("Quầy làm việc", "Staffed counters"),
    "axis_minutes": ("phút", "minutes"),
    "axis_mean_minutes": ("phút (trung bình)", "minutes (mean)"),
    "axis_hour": ("giờ trong ngày", "hour of day"),
    "no_data": ("Chưa có số nào được gọi hôm nay", "No number called yet today"),
    "no_ratings": ("Chưa có đánh giá", "No ratings yet"),
    "ratings_n": ("lượt đánh giá", "ratings"),
    "by_field": ("Số liệu theo lĩnh vực", "Figures by field"),
    "wait_note": ("Thời gian chờ: từ lúc lấy số (số lấy trước giờ mở cửa: từ giờ mở cửa) đến lần gọi đầu tiên; "
                  "chỉ tính các số đã được gọi. p90: 90 % số chờ không quá mức này.",
                  "Wait: from taking the number (numbers taken before opening: from opening time) to the first "
                  "call; numbers called so far. p90: 90 % of numbers waited no longer."),
    "by_hour": ("Theo giờ", "By hour"),
    "hour": ("Giờ", "Hour"),
    "recalls": ("Gọi lại", "Recalls"),
    "calls_per_counter": ("Lượt gọi / quầy-giờ", "Calls per counter-hour"),
    "counter_hours": ("Quầy-giờ", "Counter-hours"),
    "hours_note": ("Quầy làm việc: số quầy mở trung bình trong giờ đó (giờ đang diễn ra, đánh dấu *: tính đến hiện tại). "
                   "Quầy-giờ: tổng thời gian các quầy mở trong giờ đó.",
                   "Staffed counters: the mean number of counters open in that hour (the hour under way, marked *: "
                   "so far). Counter-hours: the time counters were open in that hour, added up."),
    "counter_work": ("Năng suất quầy", "Counter work"),
    "open_hours": ("Giờ mở", "Hours open"),
    "skips": ("Bỏ qua", "Skips"),
    "calls_per_hour": ("Lượt gọi / giờ", "Calls per hour"),
    "ratings": ("Đánh giá mức độ hài lòng", "Satisfaction ratings"),
    "ratings_count": ("Số lượt đánh giá", "Ratings"),
    "mean_score": ("Điểm trung bình", "Mean score"),
    "comments": ("Góp ý gần đây (chỉ cán bộ xem được)", "Recent comments (staff only)"),
    "no_comments": ("Chưa có góp ý.", "No comments yet."),
    "channel": ("Kênh", "Channel"),
    "total": ("Tổng", "Total"),
    "transfers": ("Chuyển lĩnh vực", "Transfers"),
    "json": ("Dữ liệu JSON", "JSON data"),
    "prev_day": ("Ngày trước", "Previous day"),
    "today": ("Hôm nay", "Today"),
    "not_working_day": ("Không phải ngày làm việc", "Not a working day"),
    **OUTBOX_WORDS,
    **KIOSK_WORDS,
}


# -- who may look --------------------------------------------------------------------------------

def staff_claims(request: Request, branch: str) -> tuple[Claims, str]:
    """The staff claims for `branch` and where the token came from ("header", "query", "cookie").

    Raises the DomainError decode.staff would: 401 without a token or with a bad one, 403 for a
    citizen's token or another branch's."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("invalid_token", "Authorization must be 'Bearer <token>'.", "Mã xác thực không hợp lệ.")
        source = "header"
    elif request.query_params.get("token"):
        token, source = request.query_params["token"], "query"
    elif request.cookies.get(COOKIE):
        token, source = request.cookies[COOKIE], "cookie"
    else:
        raise unauthorized("token_required", "This page needs a staff token of the branch.",
                           "Trang này cần mã cán bộ của chi nhánh.")
    claims = request.app.state.tokens.verify(token.strip())
    if claims.kind != "staff":
        raise forbidden("staff_only", "This page needs a staff token.", "Trang này dành cho cán bộ.")
    if claims.branch != branch:
        raise forbidden("wrong_branch", f"This token is for branch {claims.branch}, not {branch}.",
                        f"Mã xác thực dành cho chi nhánh {claims.branch}, không phải {branch}.")
    return claims, source


# -- the view model ------------------------------------------------------------------------------

async def day_events(app: Starlette, branch: str, day: date, upto_seq: int) -> list[Event]:
    """The events of `day` with seq ≤ upto_seq. Kept per process and topped up with the events
    since the last read, so a page refreshed on every call reads only what is new."""
    service = app.state.service
    cache: DayCache = getattr(app.state, _CACHE_ATTR, None) or {}
    setattr(app.state, _CACHE_ATTR, cache)
    key, iso = (branch, day), day.isoformat()
    epoch = service.epochs.get(branch)
    kept = cache.get(key)
    if kept is not None and kept[0] == epoch:
        _, seq, evs = kept
        if seq < upto_seq:          # the log is contiguous: what follows seq completes the day so far
            new = await service.events_since(branch, seq)
            evs = evs + [ev for ev in new if ev.get("day") == iso]
            seq = max([seq, *(ev["seq"] for ev in new)])
    else:
        # The head first: the day's events read after it hold everything up to it.
        seq = (await service.head(branch)).seq
        evs = [ev for ev in await service.events_of_day(branch, day) if ev.get("seq", 0) <= seq]
    cache.pop(key, None)
    cache[key] = (epoch, seq, evs)
    while len(cache) > _CACHE_DAYS:
        cache.pop(next(iter(cache)))
    return [ev for ev in evs if ev.get("seq", 0) <= upto_seq]


def live_view(st: BranchState, now: datetime) -> dict[str, Any]:
    """The branch's live status as the board API gives it, plus when each counter called its citizen."""
    live = views.branch_view(st, now)
    for c in live["counters"]:
        ctr = st.counters.get(c["id"])
        t = st.tickets.get(ctr.current) if ctr and ctr.current else None
        if c["current"] is not None and t is not None and t.called_at is not None:
            c["current"]["called_at"] = t.called_at.isoformat(timespec="seconds")
            c["current"]["minutes"] = round((now - t.called_at).total_seconds() / 60, 1)
    live["counters_open"] = sum(1 for c in live["counters"] if c["open"])
    return live


async def admin_view(app: Starlette, branch: str, day: date | None = None) -> dict[str, Any]:
    service = app.state.service
    st = await service.hold(branch)
    now = service.now()
    day = day or now.date()
    live = live_view(st, now)                 # read at one seq, without awaiting in between
    seq = st.seq
    kiosks = service.kiosks.listing(branch, now)      # now: the branch may be let go during the awaits below
    today_counters = set()
    evs = await day_events(app, branch, day, seq)
    for ev in evs:
        if ev["type"].startswith("counter."):
            today_counters.add(ev["counter"])
    # A counter open now that did nothing today was open all day (left open since an earlier day).
    open_at_start = ([c["id"] for c in live["counters"] if c["open"] and c["id"] not in today_counters]
                     if day == now.date() else [])
    stats = day_stats(st.config, evs, now, day=day, open_at_start=open_at_start)
    b = st.config
    return {
        "branch": {"id": b.id, "name": b.name, "name_en": b.name_en, "address": b.address},
        "day": day.isoformat(), "today": day == now.date(),
        "working_day": b.calendar.is_working_day(day),
        "now": now.isoformat(timespec="seconds"), "seq": seq,
        "live": live,
        "stats": stats,
        "outbox": await outbox_view(app.state.outbox, branch, now),
        "kiosks": kiosks,
    }


# -- the page ------------------------------------------------------------------------------------

def _day_param(request: Request) -> date | None:
    raw = request.query_params.get("day")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid("invalid_day", "day must be a date, YYYY-MM-DD.", "Ngày phải có dạng YYYY-MM-DD.",
                      field="day") from None


def _num(lang: str) -> Callable[..., str]:
    def fmt(value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        text = f"{value}" if isinstance(value, int) else f"{value:.{digits}f}"
        return text.replace(".", ",") if lang == "vi" else text
    return fmt


async def admin_page(request: Request) -> Response:
    branch = request.path_params["branch"]
    service = request.app.state.service
    await service.hold(branch)                   # 404 for an unknown branch
    try:
        claims, source = staff_claims(request, branch)
    except DomainError as e:
        if wants_json(request):
            raise
        return _token_screen(request, branch, e)
    day = _day_param(request)
    view = await admin_view(request.app, branch, day)
    language = i18n.lang(request)
    w = i18n.words(language, WORDS)
    response = page(request, "admin.html", view, words=WORDS, charts=charts.all_charts(view["stats"], w, language),
                    num=_num(language), name=lambda item: _name(item, language), svc_names=_svc_names(view, language),
                    admin_path=f"/admin/{branch}")
    if source == "query":
        response.set_cookie(COOKIE, request.query_params["token"].strip(),
                            max_age=max(int(claims.exp - time.time()), 0), path=f"/admin/{branch}",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _name(item: dict[str, Any], language: str) -> str:
    return str(item.get("name_en") if language == "en" and item.get("name_en") else item.get("name", item.get("id")))


def _svc_names(view: dict[str, Any], language: str) -> dict[str, str]:
    return {s["id"]: _name(s, language) for s in view["live"]["services"]}


def _token_screen(request: Request, branch: str, error: DomainError) -> Response:
    if error.kind == "unauthorized":
        reason = "missing" if error.code == "token_required" else "invalid"
    else:
        reason = "other_branch" if error.code == "wrong_branch" else "not_staff"
    config = request.app.state.centre.branches[branch]
    status = 401 if error.kind == "unauthorized" else 403
    html = page(request, "admin.html", {}, status=status, words=WORDS, token_screen=True, reason=reason,
                branch={"id": branch, "name": config.name, "name_en": config.name_en},
                admin_path=f"/admin/{branch}")
    html.headers["Cache-Control"] = "no-store"
    html.headers["Referrer-Policy"] = "no-referrer"
    if status == 401:
        html.headers["WWW-Authenticate"] = "Bearer"
    if request.cookies.get(COOKIE) and reason != "missing":
        html.delete_cookie(COOKIE, path=f"/admin/{branch}")
    return html


routes = [Route("/admin/{branch}", admin_page, methods=["GET"])]
