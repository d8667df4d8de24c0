"""The citizen's phone page behind the QR code on the printed ticket and the tracking link: /t/{token}.

Its view model is the holder's ticket view (hub.views.ticket_view), the very dict that
GET /api/tickets/{token} answers, so `/t/{token}?format=json` is the page's JSON twin. The page is
rendered once on the server (readable without JavaScript) and then kept live by static/citizen.js
from the ticket feed (/ws/tickets/{token}, resumed with since/epoch), falling back to polling the
JSON twin when WebSockets fail. Web push: the page registers the service worker /sw.js (static/sw.js,
scope /t/) and subscribes with the hub's VAPID key (notifier.push_key); the worker shows what the notifier
pushes.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from displays.render import STATIC, page, wants_json
from hub.domain.errors import DomainError
from notifier import push_key

# The page's own words, Vietnamese first. "{counter}", "{time}", "{n}", "{number}" are filled in by
# the template and by citizen.js alike.
WORDS: dict[str, tuple[str, str]] = {
    "your_number": ("Số thứ tự của bạn", "Your number"),
    "day": ("Ngày", "Day"),
    "kiosk": ("Lấy tại ki-ốt", "Taken at the kiosk"),
    "online": ("Lấy trực tuyến", "Taken online"),
    "priority": ("Ưu tiên", "Priority"),
    "ahead": ("Số người trước bạn", "People ahead of you"),
    "serving_none": ("Chưa có", "Nobody yet"),
    "expected_call": ("Dự kiến được gọi", "Expected call"),
    "leave_by": ("Rời nhà lúc", "Leave home by"),
    "leave_now": ("nên đi ngay", "leave now"),
    "soon": ("sắp đến lượt", "very soon"),
    "travel_title": ("Thời gian đi đến chi nhánh", "Travel time to the branch"),
    "travel_help": ("Nhập số phút đi đường để biết nên rời nhà lúc nào.",
                    "Enter your travel time to know when to leave home."),
    "save": ("Lưu", "Save"),
    "travel_bad": ("Thời gian di chuyển phải từ 0 đến 600 phút.", "Travel time must be 0 to 600 minutes."),
    "notify_title": ("Nhắc tôi khi sắp đến lượt", "Remind me when my turn is near"),
    "sms_phone": ("Số điện thoại di động", "Mobile number"),
    "sms_ahead": ("Nhắc tôi khi còn", "Remind me when"),
    "people_left": ("người phía trước", "people are ahead"),
    "sms_button": ("Nhận tin nhắn SMS", "Get an SMS"),
    "sms_ok": ("Đã đăng ký: chúng tôi sẽ nhắn tin SMS khi sắp đến lượt bạn.",
               "Done: we will text you when your turn is near."),
    "sms_on": ("Đã bật nhắc qua SMS", "SMS reminder on"),
    "push_button": ("Nhận thông báo trên điện thoại", "Get phone notifications"),
    "push_ok": ("Đã bật thông báo trên điện thoại này.", "Notifications are on for this phone."),
    "push_denied": ("Bạn chưa cho phép trình duyệt gửi thông báo. Hãy cho phép trong phần cài đặt của trang, "
                    "hoặc nhận tin nhắn SMS.",
                    "Notifications are blocked in this browser. Allow them in the site settings, or get an SMS."),
    "push_failed": ("Trình duyệt không bật được thông báo đẩy lúc này; hãy thử lại hoặc nhận tin nhắn SMS.",
                    "This browser could not turn push notifications on; try again or get an SMS."),
    "push_unsupported": ("Trình duyệt này không hỗ trợ thông báo đẩy; hãy nhận tin nhắn SMS.",
                         "This browser has no push notifications; get an SMS instead."),
    "push_on": ("Đã bật thông báo đẩy", "Push notifications on"),
    "zalo_on": ("Đã bật nhắc qua Zalo", "Zalo reminder on"),
    "turn_off": ("Tắt", "Turn off"),
    "off_ok": ("Đã tắt nhắc qua kênh này.", "That reminder is off."),
    "sound_button": ("Bật âm thanh báo gọi", "Turn on the call sound"),
    "sound_on": ("Âm thanh báo gọi đã bật", "Call sound is on"),
    "give_back": ("Trả lại số", "Give the number back"),
    "give_back_confirm": ("Bạn chắc chắn muốn trả lại số {number}? Số đã trả không dùng lại được.",
                          "Give number {number} back? A returned number cannot be used again."),
    "rate_title": ("Bạn hài lòng với dịch vụ chứ?", "How satisfied are you with the service?"),
    "rate_help": ("Chạm vào một ngôi sao để gửi đánh giá (5 sao là rất hài lòng).", "Tap a star to send your rating (5 stars: very satisfied)."),
    "rate_comment": ("Góp ý (không bắt buộc)", "Comment (optional)"),
    "rate_1": ("Rất không hài lòng", "Very dissatisfied"),
    "rate_2": ("Không hài lòng", "Dissatisfied"),
    "rate_3": ("Bình thường", "Neutral"),
    "rate_4": ("Hài lòng", "Satisfied"),
    "rate_5": ("Rất hài lòng", "Very satisfied"),
    "rated": ("Cảm ơn bạn đã đánh giá! Ý kiến của bạn giúp chúng tôi phục vụ tốt hơn.",
              "Thank you for your rating! It helps us serve you better."),
    "live": ("Đang cập nhật trực tiếp", "Live"),
    "polling": ("Đang cập nhật định kỳ", "Updating periodically"),
    "gone": ("Không còn tìm thấy số thứ tự này.", "This number can no longer be found."),
    "error": ("Không gửi được, vui lòng thử lại.", "Could not send; please try again."),
    "new_number": ("Lấy số mới", "Take a new number"),
    # States: a title and a plain explanation each.
    "st_waiting": ("Đang chờ đến lượt", "Waiting for your turn"),
    "tx_waiting": ("Trang này tự cập nhật khi có số được gọi; bạn không cần tải lại.",
                   "This page updates itself as numbers are called; no need to reload."),
    "st_called": ("Số của bạn đang được gọi — mời đến quầy {counter}",
                  "Your number is being called — please go to counter {counter}"),
    "tx_called": ("Vui lòng đến ngay quầy {counter} và mang theo giấy tờ của bạn.",
                  "Please go to counter {counter} now with your documents."),
    "st_held": ("Số của bạn đang được giữ chỗ", "Your number is being held"),
    "tx_held": ("Số của bạn đã được gọi nhưng bạn chưa xác nhận có mặt. Số được giữ đến {time}: "
                "hãy đến quầy tiếp đón để xác nhận, bạn sẽ được gọi lại ngay.",
                "Your number was called but you had not checked in. It is held until {time}: "
                "check in at reception and you will be called again right away."),
    "st_skipped": ("Bạn đã vắng mặt khi được gọi", "You missed your call"),
    "tx_skipped": ("Số của bạn đã được gọi nhưng bạn không có mặt. Hãy đến ngay quầy tiếp đón: cán bộ "
                   "có thể gọi lại số này trong ít phút; sau đó bạn cần lấy số mới.",
                   "Your number was called but you were not there. Go to reception now: staff can call "
                   "it again for a short while; after that you need a new number."),
    "st_completed": ("Đã phục vụ xong", "Served"),
    "tx_completed": ("Hồ sơ của bạn đã được tiếp nhận tại quầy. Cảm ơn bạn đã sử dụng dịch vụ.",
                     "Your visit at the counter is done. Thank you for using the service."),
    "st_cancelled": ("Số đã được trả lại hoặc đã hủy", "Number given back or cancelled"),
    "tx_cancelled": ("Số này sẽ không được gọi nữa. Nếu vẫn cần làm thủ tục, hãy lấy số mới.",
                     "This number will not be called. If you still need the service, take a new number."),
    "st_expired": ("Số đã hết hiệu lực", "Number expired"),
    "tx_expired": ("Số này chưa được gọi trước giờ đóng cửa nên không còn hiệu lực. "
                   "Vui lòng lấy số mới vào ngày làm việc tiếp theo.",
                   "This number was not called before closing time and is no longer valid. "
                   "Please take a new number on the next working day."),
}


def _travel(request: Request) -> float | None:
    """An optional ?travel_minutes= (0–600) for a page without JavaScript; anything else is ignored."""
    travel = request.query_params.get("travel_minutes")
    try:
        minutes = float(travel) if travel else None
    except ValueError:
        return None
    return minutes if minutes is not None and 0 <= minutes <= 600 else None


async def ticket_page(request: Request) -> Response:
    token = request.path_params["token"]
    try:
        await request.app.state.service.hold_ticket(token)
        view = request.app.state.service.ticket_view(token, _travel(request))
    except DomainError as e:
        if e.kind != "not_found" or wants_json(request):
            raise                                  # the API's error shape (404 ticket_not_found, 503, …)
        response = page(request, "ticket.html", {}, status=404, words=WORDS, missing=True)
    else:
        response = page(request, "ticket.html", view, words=WORDS, token=token, vapid=push_key.public_key(request.app))
    # The token in the address is the holder's key: keep the page out of caches and referrers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def service_worker(request: Request) -> Response:
    """static/sw.js from the root, so that it may control /t/ (a worker's scope is at most its own
    directory). no-cache: a fixed worker reaches phones on their next visit, not a day later."""
    return FileResponse(STATIC / "sw.js", media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


routes = [Route("/t/{token}", ticket_page, methods=["GET"]),
          Route("/sw.js", service_worker, methods=["GET"])]
