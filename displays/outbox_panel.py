"""The notifier's outbox as the branch manager sees it (a section of /admin/{branch}): how many of the
branch's messages are in each status, the dead letters with what went wrong, and the latest messages.

Recipients are masked ("+8491*****78", a push service's host): the page is for staff, but a phone
number has no business on a manager's screen or in a screenshot, and a gateway's own words can
quote it ("The 'To' number +84912345678 is not valid"), so details are masked too.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from hub.domain import identity
from hub.store.outbox import DEAD_LETTERS, STATUSES, Outbox, OutboxItem

COUNT_CAP = 1000      # a status with more of the branch's messages than this shows "1000+"
DEAD_SHOWN = 50       # dead letters listed (the "redrive all" button takes every one)
RECENT_SHOWN = 12
WORDS: dict[str, tuple[str, str]] = {
    "outbox": ("Hộp thư thông báo (outbox)", "Notification outbox"),
    "outbox_help": ("Tin nhắn SMS, Zalo và thông báo đẩy gửi công dân của chi nhánh. Tin lỗi được giữ lại để "
                    "gửi lại sau khi khắc phục nguyên nhân.",
                    "SMS, Zalo and push messages to the branch's citizens. Failed ones are kept, to be sent "
                    "again once the cause is fixed."),
    "st_queued": ("Chờ gửi", "Queued"),
    "st_sending": ("Đang gửi", "Sending"),
    "st_sent": ("Đã gửi", "Sent"),
    "st_delivered": ("Đã đến máy", "Delivered"),
    "st_failed": ("Bị từ chối", "Failed"),
    "st_dead": ("Hết lượt thử", "Dead"),
    "st_dropped": ("Không gửi (hết hiệu lực)", "Dropped (no longer true)"),
    "dead_letters": ("Tin gửi lỗi", "Dead letters"),
    "no_dead": ("Không có tin gửi lỗi.", "No dead letters."),
    "recent_messages": ("Tin gần đây", "Recent messages"),
    "no_messages": ("Chưa có tin nhắn nào.", "No messages yet."),
    "redrive": ("Gửi lại", "Redrive"),
    "redrive_all": ("Gửi lại tất cả", "Redrive all"),
    "redriven": ("Đã đưa {n} tin trở lại hàng chờ gửi.", "{n} message(s) queued again."),
    "redrive_failed": ("Không gửi lại được: ", "Could not redrive: "),
    "col_time": ("Thời gian", "Time"),
    "col_number": ("Số", "Number"),
    "col_message": ("Tin", "Message"),
    "col_channel": ("Kênh", "Channel"),
    "col_recipient": ("Người nhận", "Recipient"),
    "col_attempts": ("Lần thử", "Attempts"),
    "col_error": ("Lỗi", "Error"),
    "col_status": ("Trạng thái", "Status"),
    "tr_issued": ("Đã cấp số", "Number issued"),
    "tr_ahead": ("Sắp đến lượt", "Turn near"),
    "tr_leave": ("Giờ rời nhà", "Time to leave"),
    "tr_called": ("Mời đến quầy", "Called"),
    "tr_skipped": ("Vắng mặt", "Missed call"),
    "tr_expired": ("Hết hiệu lực", "Expired"),
    "ch_sms": ("SMS", "SMS"),
    "ch_push": ("Thông báo đẩy", "Web push"),
    "ch_zalo": ("Zalo", "Zalo"),
    "ch_log": ("Nhật ký", "Log"),
    # notifier.senders.protocol's error codes, for people
    "er_invalid_number": ("Số điện thoại không hợp lệ", "Invalid number"),
    "er_opted_out": ("Người nhận đã chặn tin", "Recipient opted out"),
    "er_no_zalo": ("Không có Zalo", "No Zalo account"),
    "er_subscription_gone": ("Trình duyệt đã hủy đăng ký", "Subscription gone"),
    "er_auth_failed": ("Sai thông tin xác thực cổng gửi", "Gateway credentials refused"),
    "er_rejected": ("Cổng gửi từ chối", "Rejected by the gateway"),
    "er_unreachable": ("Không kết nối được cổng gửi", "Gateway unreachable"),
    "er_timeout": ("Cổng gửi không trả lời kịp", "Gateway timed out"),
    "er_connection_lost": ("Mất kết nối giữa chừng", "Connection lost"),
    "er_rate_limited": ("Bị giới hạn tốc độ", "Rate limited"),
    "er_bad_answer": ("Cổng gửi trả lời không đọc được", "Unreadable answer"),
    "er_gateway_error": ("Lỗi cổng gửi", "Gateway error"),
    "er_no_balance": ("Tài khoản gửi tin hết tiền", "Gateway account out of credit"),
}


def _when(ts: float, zone: tzinfo | None) -> str | None:
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds") if ts else None


def item_view(item: OutboxItem, zone: tzinfo | None) -> dict[str, Any]:
    number = item.params.get("number") if isinstance(item.params, Mapping) else None
    return {
        "key": item.key, "ticket": item.ticket, "number": str(number or item.ticket.rpartition("-")[2]),
        "trigger": item.trigger, "channel": item.channel, "recipient": identity.mask_recipient(item.recipient),
        "status": item.status, "attempts": item.attempts, "error": item.error,
        "detail": identity.mask_text(item.detail), "created": _when(item.created, zone), "updated": _when(item.updated, zone),
    }


async def outbox_view(store: Outbox, branch: str, now: datetime) -> dict[str, Any]:
    """{"available", "counts", "capped", "dead", "dead_total", "recent"} for one branch."""
    zone = now.tzinfo
    counts: dict[str, int] = {}
    capped: list[str] = []
    dead: list[OutboxItem] = []
    for status in STATUSES:
        items = await store.recent(status, branch, COUNT_CAP + 1)
        counts[status] = min(len(items), COUNT_CAP)
        if len(items) > COUNT_CAP:
            capped.append(status)
        if status in DEAD_LETTERS:
            dead += items
    dead.sort(key=lambda i: (i.updated, i.key), reverse=True)
    recent = await store.recent(None, branch, RECENT_SHOWN)
    return {
        "available": True, "counts": counts, "capped": capped,
        "dead_total": sum(counts[s] for s in DEAD_LETTERS),
        "dead": [item_view(i, zone) for i in dead[:DEAD_SHOWN]],
        "recent": [item_view(i, zone) for i in recent],
    }
