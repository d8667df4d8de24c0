"""The lobby TV board: /display/{branch}[?fields=dat-dai,ho-tich][&lang=en].

The view model (and JSON twin, `?format=json`) is `hub.views.branch_view` narrowed to the board's
fields, plus the feed's `epoch` and the branch's recent calls. The page starts its feed from the
view's `seq` and `epoch`, so that nothing called between the page and the socket is missed; after
that the feed drives the board and the twin refreshes the waiting counts and expected waits.

Recent calls come from the tail of the branch's event log (exact: a recall moves a number back to
the top, as the board does live); if the store cannot be read they come from the state (first
calls only, in the order they were made).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from displays import speech
from displays.render import page
from hub import views
from hub.domain.errors import DomainError
from hub.domain.events import Event
from hub.domain.state import BranchState

log = logging.getLogger("queuecast.displays")

RECENT = 10                 # calls the board lists (the latest first)
LOG_WINDOW = 2000           # events of the log's tail searched for them
CALL_TYPES = ("ticket.called", "ticket.recalled")

WORDS: dict[str, tuple[str, str]] = {
    "board": ("Bảng gọi số", "Call board"),
    "now_calling": ("Mời số", "Now calling"),
    "to_counter": ("Quầy", "Counter"),
    "recent": ("Số vừa gọi", "Recent calls"),
    "no_calls": ("Chưa gọi số nào hôm nay", "No number called yet today"),
    "wait_short": ("Chờ dự kiến", "Expected wait"),
    "unlock": ("Bấm để bật âm thanh", "Click to turn the sound on"),
    "not_found": ("Không có chi nhánh này", "No such branch"),
    "bad_fields": ("Lĩnh vực không hợp lệ", "Unknown field"),
    "weekdays": ("Thứ Hai|Thứ Ba|Thứ Tư|Thứ Năm|Thứ Sáu|Thứ Bảy|Chủ Nhật",
                 "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"),
}


# -- the view model ---------------------------------------------------------------------------------

def recent_calls(events: list[Event], *, day: str, services: frozenset[str] | None = None,
                 limit: int = RECENT) -> list[dict[str, Any]]:
    """The latest calls of `day` from board events in seq order, latest first, one entry per
    number (a recall moves the number back to the top, with the counter that recalled it)."""
    latest: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.get("type") not in CALL_TYPES or ev.get("day") != day:
            continue
        if services is not None and ev.get("service") not in services:
            continue
        latest.pop(ev["number"], None)             # re-insert: dicts keep insertion order
        latest[ev["number"]] = {"number": ev["number"], "counter": ev["counter"], "service": ev.get("service"),
                                "t": ev["t"], "seq": ev.get("seq"), "recall": ev["type"] == "ticket.recalled"}
    return list(reversed(latest.values()))[:limit]


def recent_calls_from_state(st: BranchState, *, day: str, services: frozenset[str] | None = None,
                            limit: int = RECENT) -> list[dict[str, Any]]:
    """The same from the state alone: the numbers of `day` that were called, by their first call."""
    called = [(t.called_at, t) for t in st.tickets.values()
              if t.called_at is not None and t.counter and t.day.isoformat() == day
              and (services is None or t.service in services)]
    called.sort(key=lambda c: c[0], reverse=True)
    return [{"number": t.number, "counter": t.counter, "service": t.service,
             "t": at.isoformat(timespec="seconds"), "seq": None, "recall": t.calls > 1}
            for at, t in called[:limit]]


def narrow(view: dict[str, Any], services: frozenset[str] | None) -> dict[str, Any]:
    """`branch_view` with only the board's fields (its floor or zone) and the counters serving them."""
    if services is None:
        return view
    shown = [s for s in view["services"] if s["id"] in services]
    return {**view,
            "services": shown,
            "waiting": sum(s["waiting"] for s in shown),
            "now_serving": [s for s in view["now_serving"] if s["service"] in services],
            "counters": [c for c in view["counters"] if services.intersection(c["services"])]}


def board_view(branch: dict[str, Any], *, epoch: str, calls: list[dict[str, Any]],
               services: frozenset[str] | None = None) -> dict[str, Any]:
    """The board's view model: `branch_view` of its fields, the feed's epoch, the recent calls."""
    view = narrow(branch, services)
    for call in calls:
        call["subtitle"] = _subtitle(call)
    return {**view, "epoch": epoch, "fields": sorted(services) if services is not None else None,
            "recent_calls": calls, "latest_call": calls[0] if calls else None}


def _subtitle(call: dict[str, Any]) -> str:
    try:
        return speech.subtitle(call["number"], call["counter"])
    except ValueError:                              # a counter named other than by a number
        return f"{speech.INVITE} {call['number']} {speech.TO_COUNTER} {call['counter']}"


def parse_fields(value: str | None, st: BranchState) -> frozenset[str] | None:
    if value is None or not value.strip():
        return None
    wanted = frozenset(f.strip() for f in value.split(",") if f.strip())
    unknown = sorted(wanted - set(st.config.services))
    if unknown:
        raise ValueError(", ".join(unknown))
    return wanted


# -- the page ---------------------------------------------------------------------------------------

def _error(request: Request, status: int, code: str, message: str, message_vi: str, title: str) -> Response:
    body = {"error": {"code": code, "message": message, "message_vi": message_vi}}
    return page(request, "board.html", body, status=status, words=WORDS, error=body["error"], title=title)


async def board_page(request: Request) -> Response:
    branch = request.path_params["branch"]
    service = request.app.state.service
    try:
        st = await service.hold(branch)
    except DomainError as e:
        return _error(request, 404, e.code, e.message, e.message_vi, "not_found")
    try:
        services = parse_fields(request.query_params.get("fields"), st)
    except ValueError as e:
        known = ", ".join(st.config.services)
        return _error(request, 422, "unknown_field", f"Unknown field(s) {e} at branch {branch}; fields: {known}.",
                      f"Chi nhánh {branch} không có lĩnh vực {e}; các lĩnh vực: {known}.", "bad_fields")
    # The state is read at once (no await): the view, its seq and the calls up to that seq agree.
    now = service.now()
    seq, epoch, day = st.seq, service.epochs[branch], now.date().isoformat()
    branch_view = views.branch_view(st, now)
    try:
        start = max(0, seq - LOG_WINDOW)
        events = await service.events_since(branch, start, limit=seq - start) if seq else []
        calls = recent_calls(events, day=day, services=services)
    except Exception:
        log.warning("board: recent calls from the state, the log could not be read", exc_info=True)
        calls = recent_calls_from_state(st, day=day, services=services)
    view = board_view(branch_view, epoch=epoch, calls=calls, services=services)
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("lang", "format")]
    return page(request, "board.html", view, words=WORDS, clock=clock_text(now),
                switch_query=urlencode(params))


def clock_text(now: datetime) -> dict[str, str]:
    """What the board's clock shows before its script runs: "09:14", "19/05/2026", weekday 0–6 (Monday 0)."""
    return {"time": f"{now:%H:%M}", "date": f"{now:%d/%m/%Y}", "weekday": str(now.weekday())}


routes = [Route("/display/{branch}", board_page, methods=["GET"])]
