"""The branch's kiosk devices as the branch manager sees them (a section of /admin/{branch}): each
device's name, state, when it was enrolled, its last number and how many it issued today, with a
button to revoke it, and a form to enrol a new one (its one-time link and QR code appear once).

The list comes from the branch's folded log (hub.service.kiosks); enrolling and revoking go through
the API (hub.web.kiosks), with the page's staff token; never a device's token.
"""
from __future__ import annotations

WORDS: dict[str, tuple[str, str]] = {
    "kiosks": ("Ki-ốt", "Kiosks"),
    "kiosks_help": ("Chỉ ki-ốt đã đăng ký mới cấp được số thứ tự tại chỗ. Đăng ký ki-ốt mới: nhập tên, bấm "
                    "“Đăng ký ki-ốt”, rồi mở đường dẫn (hoặc quét mã QR) trên ki-ốt trong vòng một giờ; đường dẫn "
                    "chỉ dùng được một lần. Ki-ốt bị thu hồi không cấp số được nữa, ở mọi máy chủ.",
                    "Only enrolled kiosks issue walk-in numbers. To enrol a new kiosk: type its name, press "
                    "“Enrol a kiosk”, then open the link (or scan the QR code) on the kiosk within the hour; the "
                    "link works once. A revoked kiosk issues no more numbers, on every hub server."),
    "kiosk_name": ("Tên ki-ốt", "Kiosk name"),
    "kiosk_enrol": ("Đăng ký ki-ốt", "Enrol a kiosk"),
    "kiosk_link": ("Đường dẫn đăng ký (dùng một lần)", "Enrolment link (works once)"),
    "kiosk_code": ("Mã đăng ký", "Enrolment code"),
    "kiosk_expires": ("Hết hạn lúc", "Expires at"),
    "kiosk_enrolled": ("Đã đăng ký ki-ốt {name}: mở đường dẫn dưới đây trên ki-ốt.",
                       "Kiosk {name} enrolled: open the link below on the kiosk."),
    "kiosk_failed": ("Không thực hiện được: ", "Could not do it: "),
    "kiosk_revoke": ("Thu hồi", "Revoke"),
    "kiosk_revoke_confirm": ("Thu hồi ki-ốt {name}? Ki-ốt sẽ không cấp số được nữa.",
                             "Revoke kiosk {name}? It will issue no more numbers."),
    "kiosk_revoked_msg": ("Đã thu hồi ki-ốt {name}.", "Kiosk {name} revoked."),
    "no_kiosks": ("Chưa có ki-ốt nào được đăng ký.", "No kiosk enrolled yet."),
    "col_device": ("Mã thiết bị", "Device"),
    "col_state": ("Trạng thái", "State"),
    "col_enrolled": ("Đăng ký lúc", "Enrolled"),
    "col_last_issue": ("Số cấp gần nhất", "Last number"),
    "col_issued_today": ("Cấp hôm nay", "Issued today"),
    "ks_pending": ("Chờ kích hoạt", "Awaiting its link"),
    "ks_active": ("Đang hoạt động", "Active"),
    "ks_revoked": ("Đã thu hồi", "Revoked"),
}
