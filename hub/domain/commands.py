"""Commands: decide, from a branch's state and `now`, which events happen — or refuse.

A command never changes the state; the service appends its events to the log and folds them in.
So a refused command changes nothing, and the state is always a fold of the log.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hub.domain import calendar, events, holder, limits, push
from hub.domain.config import Service
from hub.domain.errors import conflict, excerpt, invalid, not_found, unauthorized
from hub.domain.events import Event
from hub.domain.limits import Citizen, History
from hub.domain.push import PushDestinations
from hub.domain.state import BranchState, Counter
from hub.domain.ticket import ALLOWED, State, Ticket, ticket_id

CHANNELS = ("kiosk", "online")


# -- issuing -----------------------------------------------------------------------------------

def issue(st: BranchState, now: datetime, *, service: str, channel: str, priority: bool = False,
          phone: str | None = None, citizen: Citizen | None = None,
          history: History | None = None, lang: str | None = None, device: str | None = None,
          pace: tuple[int, float] | None = None, nonce: str | None = None) -> list[Event]:
    """A new number under the centre's rules (docs/rules.md).

    `nonce`: random, chosen by the caller (the domain does no I/O), kept in the event; the
    holder's token carries it, so that a number issued again after a lost history is not theirs.

    `history` is the citizen's record across all branches (hub.domain.limits.history); it is
    required with a citizen. A kiosk number without identity is counted against no one.
    `device`: the enrolled kiosk device issuing it (hub.domain.kiosks), which must still be enrolled
    and keep to `pace` (at most COUNT numbers in SECONDS); the number is attributed to it in the log.
    """
    b, p = st.config, st.config.policy
    if device is not None:
        st.kiosks.require(device)
    svc = _service(st, service)
    if channel not in CHANNELS:
        raise invalid("invalid_channel", f"Channel must be one of {', '.join(CHANNELS)}.",
                      "Kênh lấy số phải là kiosk hoặc online.")
    if device is not None and channel != "kiosk":
        raise invalid("invalid_channel", "A kiosk device issues kiosk numbers only.",
                      "Ki-ốt chỉ cấp số tại chỗ (kênh kiosk).")
    if channel == "online" and citizen is None:
        raise unauthorized("citizen_token_required",
                           "An online number needs a citizen token (identity verified through VNeID).",
                           "Lấy số trực tuyến cần đăng nhập bằng tài khoản định danh (VNeID).")
    _lang(lang)
    day = calendar.issuing_day(b, now, channel)

    if citizen is not None:
        limits.check(history or History(), p, svc, channel, day, now)

    taken = st.issued_count(day, service)
    if taken >= svc.daily_cap:
        nxt = calendar.next_working_day(b.calendar, day)
        raise conflict("daily_cap_reached",
                       f"All {svc.daily_cap} numbers for {svc.name_en} on {day:%d/%m/%Y} are taken; "
                       f"please come back on the next working day, {nxt:%d/%m/%Y}.",
                       f"Đã hết {svc.daily_cap} số thứ tự lĩnh vực {svc.name} ngày {day:%d/%m/%Y}; "
                       f"mời quay lại vào ngày làm việc tiếp theo, {nxt:%d/%m/%Y}.",
                       next_working_day=nxt.isoformat())

    if device is not None:
        st.kiosks.check_pace(device, now, pace)
    number = str(svc.first_number + taken)
    if citizen is not None and citizen.birth_year is not None:
        priority = priority or now.year - citizen.birth_year >= p.priority_age
    return [events.make("ticket.issued", now, b.id, day, ticket=ticket_id(day, number), number=number,
                        service=service, channel=channel, priority=bool(priority), order=st.next_order,
                        citizen=citizen.pseudonym if citizen else None, phone=phone, lang=lang, device=device,
                        nonce=nonce)]


# -- counters ----------------------------------------------------------------------------------

def open_counter(st: BranchState, now: datetime, counter: str, services: list[str] | None) -> list[Event]:
    c = _counter(st, counter)
    if not isinstance(services, (list, tuple, type(None))):
        services = ()
    chosen = tuple(services) if services is not None else c.services
    if not chosen:
        raise invalid("invalid_services", "A counter opens with a non-empty list of fields.",
                      "Quầy cần phục vụ ít nhất một lĩnh vực.")
    for s in chosen:
        _service(st, s)
    if len(set(chosen)) != len(chosen):
        raise invalid("invalid_services", "A field is listed twice.", "Một lĩnh vực bị lặp lại.")
    if c.open and c.services == chosen:
        return []                                   # already so: nothing happens
    return [events.make("counter.opened", now, st.id, now.date(), counter=counter, services=list(chosen))]


def close_counter(st: BranchState, now: datetime, counter: str) -> list[Event]:
    c = _counter(st, counter)
    if not c.open:
        return []
    t = st.tickets.get(c.current) if c.current else None
    if t is not None:
        raise conflict("counter_busy",
                       f"Counter {counter} is serving {t.number}: complete, skip or transfer it first.",
                       f"Quầy {counter} đang phục vụ số {t.number}: hãy hoàn thành, bỏ qua hoặc chuyển trước.")
    return [events.make("counter.closed", now, st.id, now.date(), counter=counter)]


def call_next(st: BranchState, now: datetime, counter: str) -> list[Event]:
    """The earliest-registered waiting number among the counter's fields, priority first.

    A counter still holding a called ticket completes it first, as the 'next' button of every
    counter console does; with an empty queue nothing changes (409 queue_empty).
    """
    c = _counter(st, counter)
    if not c.open:
        raise conflict("counter_closed", f"Counter {counter} is closed; open it first.",
                       f"Quầy {counter} đang đóng; hãy mở quầy trước.")
    queue = st.waiting(now.date(), frozenset(c.services))
    if not queue:
        raise conflict("queue_empty", f"No one is waiting for counter {counter}'s fields.",
                       f"Không còn ai chờ ở các lĩnh vực của quầy {counter}.")
    out: list[Event] = []
    current = st.tickets.get(c.current) if c.current else None
    if current is not None:
        out += _ticket_event("ticket.completed", st, now, current, counter=counter)
    nxt = queue[0]
    out += _ticket_event("ticket.called", st, now, nxt, counter=counter)
    return out


# -- acting on one ticket ----------------------------------------------------------------------

def recall(st: BranchState, now: datetime, t: Ticket, counter: str | None = None) -> list[Event]:
    """Re-announce a called number, or bring back a no-show within `recall_minutes` of it
    becoming one (the skip, or the end of a hold) to a free, open counter."""
    state = _require(t, "recall", now)
    if state is State.CALLED:
        return _ticket_event("ticket.recalled", st, now, t, counter=t.counter)
    p = st.config.policy
    became_noshow = t.held_until if t.held_until and t.held_until <= now else t.skipped_at
    if state is State.SKIPPED and became_noshow and now - became_noshow > timedelta(minutes=p.recall_minutes):
        raise conflict("recall_too_late",
                       f"{t.number} was skipped more than {p.recall_minutes} minutes ago; "
                       "the citizen needs a new number.",
                       f"Số {t.number} đã bị bỏ qua quá {p.recall_minutes} phút; công dân cần lấy số mới.")
    counter = counter or t.counter
    c = _counter(st, counter)
    if not c.open:
        raise conflict("counter_closed", f"Counter {counter} is closed; open it first.",
                       f"Quầy {counter} đang đóng; hãy mở quầy trước.")
    if c.current and c.current != t.id:
        raise conflict("counter_busy", f"Counter {counter} is serving another number.",
                       f"Quầy {counter} đang phục vụ số khác.")
    return _ticket_event("ticket.recalled", st, now, t, counter=counter)


def complete(st: BranchState, now: datetime, t: Ticket) -> list[Event]:
    _require(t, "complete", now)
    return _ticket_event("ticket.completed", st, now, t, counter=t.counter)


def skip(st: BranchState, now: datetime, t: Ticket) -> list[Event]:
    """A no-show. Under `absent: hold` an online number not checked in is held instead."""
    _require(t, "skip", now)
    p = st.config.policy
    held_until = None
    if p.absent == "hold" and t.channel == "online" and not t.checked_in:
        held_until = (now + timedelta(minutes=p.hold_minutes)).isoformat(timespec="seconds")
    return _ticket_event("ticket.skipped", st, now, t, counter=t.counter, held_until=held_until)


def transfer(st: BranchState, now: datetime, t: Ticket, service: str) -> list[Event]:
    _require(t, "transfer", now)
    _service(st, service)
    if service == t.service:
        raise invalid("same_service", "The number is already in that field.",
                      "Số thứ tự đã ở lĩnh vực này.")
    return _ticket_event("ticket.transferred", st, now, t, service=service, from_service=t.service,
                         counter=t.counter if t.state is State.CALLED else None)


def cancel(st: BranchState, now: datetime, t: Ticket, by: str = "staff") -> list[Event]:
    _require(t, "give_back" if by == "citizen" else "cancel", now)
    return _ticket_event("ticket.cancelled", st, now, t, by=by)


def check_in(st: BranchState, now: datetime, t: Ticket, device: str | None = None) -> list[Event]:
    """An online holder arrived; `device`: the kiosk that scanned their QR (still enrolled)."""
    if device is not None:
        st.kiosks.require(device)
    state = _require(t, "check_in", now)
    if t.checked_in and state is State.WAITING:
        raise conflict("already_checked_in", f"{t.number} is already checked in.",
                       f"Số {t.number} đã xác nhận có mặt.")
    if t.day != now.date():
        raise conflict("wrong_day", f"{t.number} is for {t.day:%d/%m/%Y}.",
                       f"Số {t.number} dành cho ngày {t.day:%d/%m/%Y}.")
    return _ticket_event("ticket.checked_in", st, now, t, device=device)


NOTIFY_CHANNELS = ("sms", "push", "zalo")
LANGS = ("vi", "en")            # the languages notifications are written in (notifier/templates.py)


def _lang(lang: str | None) -> None:
    if lang is not None and lang not in LANGS:
        raise invalid("invalid_lang", "lang must be 'vi' or 'en'.", "Ngôn ngữ phải là 'vi' hoặc 'en'.")


def opt_in(st: BranchState, now: datetime, t: Ticket, *, channel: str, phone: str | None = None,
           subscription: Any = None, ahead: int | None = None,
           travel_minutes: float | None = None, lang: str | None = None,
           push_to: PushDestinations = PushDestinations()) -> list[Event]:
    """The holder asks to be told, on a channel, when the turn approaches (the notifier sends).
    `lang` is the language of the page they asked on: every later message is written in it.
    A push subscription is kept only as hub.domain.push allows (`push_to`: QUEUECAST_PUSH_HOSTS).
    Asking again for exactly what is kept changes nothing, and appends nothing."""
    _require(t, "notify", now)
    _lang(lang)
    if channel not in NOTIFY_CHANNELS:
        raise invalid("invalid_channel", f"Notifications go by {', '.join(NOTIFY_CHANNELS)}.",
                      "Kênh thông báo phải là sms, push hoặc zalo.")
    if channel in ("sms", "zalo"):
        phone = phone or t.phone
        if not phone:
            raise invalid("phone_required", "A phone number is needed for SMS or Zalo.",
                          "Cần số điện thoại để nhận SMS hoặc Zalo.")
    kept = push.subscription(subscription, push_to) if channel == "push" else None
    if ahead is not None and not (isinstance(ahead, int) and 1 <= ahead <= 50):
        raise invalid("invalid_ahead", "ahead must be a whole number from 1 to 50.", "Số người phía trước phải từ 1 đến 50.")
    if travel_minutes is not None and not (0 <= travel_minutes <= 600):
        raise invalid("invalid_travel_minutes", "travel_minutes must be from 0 to 600.",
                      "Thời gian di chuyển phải từ 0 đến 600 phút.")
    opt = {"phone": phone if channel != "push" else None, "subscription": kept, "ahead": ahead}
    if (t.notify.get(channel) == {k: v for k, v in opt.items() if v is not None}
            and travel_minutes in (None, t.travel_minutes) and lang in (None, t.lang)):
        return []                                   # what the fold would make of it is what it is already
    holder.check_pace(t, now)
    return _ticket_event("ticket.notify", st, now, t, channel=channel, **opt, travel_minutes=travel_minutes, lang=lang)


def unsubscribe(st: BranchState, now: datetime, t: Ticket, *, channel: str, by: str = "citizen",
                endpoint: str | None = None) -> list[Event]:
    """Stop telling the holder on `channel`: the holder turned it off, or the notifier learned the
    channel is gone (a push subscription the browser dropped: 404/410).

    Allowed in any state: a subscription found gone after the number was served must still go. Nothing
    to remove is no event, so a repeat changes nothing. With `endpoint`, only the push subscription
    with that endpoint goes: the holder may have subscribed again (another browser) since the message
    that found the old one gone was queued.
    """
    if channel not in NOTIFY_CHANNELS:
        raise invalid("invalid_channel", f"Notifications go by {', '.join(NOTIFY_CHANNELS)}.",
                      "Kênh thông báo phải là sms, push hoặc zalo.")
    opt = t.notify.get(channel)
    if opt is None:
        return []
    if endpoint is not None and (opt.get("subscription") or {}).get("endpoint") != endpoint:
        return []
    if by == "citizen":
        holder.check_pace(t, now)
    return _ticket_event("ticket.unsubscribed", st, now, t, channel=channel, by=by)


def rate(st: BranchState, now: datetime, t: Ticket, score: int, comment: str = "") -> list[Event]:
    """One satisfaction rating per served number."""
    _require(t, "rate", now)
    if t.rating is not None:
        raise conflict("already_rated", "This number has been rated already.", "Số thứ tự này đã được đánh giá.")
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise invalid("invalid_score", "score is a whole number from 1 to 5.", "Điểm đánh giá từ 1 đến 5.")
    if not isinstance(comment, str) or len(comment) > 500:
        raise invalid("invalid_comment", "comment is text of at most 500 characters.", "Góp ý tối đa 500 ký tự.")
    holder.check_pace(t, now)
    return _ticket_event("ticket.rated", st, now, t, score=score, comment=comment.strip() or None)


def tick(st: BranchState, now: datetime) -> list[Event]:
    """What time alone makes happen: numbers not called by closing time expire."""
    today, close = now.date(), st.config.policy.closes
    out: list[Event] = []
    for t in sorted(st.tickets.values(), key=Ticket.queue_key):
        if t.state in ALLOWED["expire"] and (t.day < today or (t.day == today and now.time() >= close)):
            out += _ticket_event("ticket.expired", st, now, t)
    return out


# -- helpers -----------------------------------------------------------------------------------

def find_ticket(st: BranchState, now: datetime, number: str) -> Ticket:
    """A number of today (or, after 20:00, of the next working day's online issue)."""
    candidates = [t for t in st.tickets.values() if t.number == number]
    if not candidates:
        raise not_found("ticket_not_found", f"No number {number} at this branch.",
                        f"Không có số {number} tại chi nhánh này.")
    today = [t for t in candidates if t.day == now.date()]
    return (today or sorted(candidates, key=lambda t: t.day))[-1]


def _ticket_event(type_: str, st: BranchState, now: datetime, t: Ticket, **fields: Any) -> list[Event]:
    return [events.make(type_, now, st.id, t.day, ticket=t.id, number=t.number,
                        service=fields.pop("service", t.service), **fields)]


def _require(t: Ticket, action: str, now: datetime) -> State:
    state = t.effective_state(now)
    if state not in ALLOWED[action]:
        raise conflict("invalid_state", f"Number {t.number} is {state.value}; cannot {action.replace('_', ' ')}.",
                       f"Số {t.number} đang ở trạng thái {VI_STATES[state]}; không thể thực hiện.",
                       state=state.value)
    return state


def _service(st: BranchState, service: object) -> Service:
    svc = st.config.services.get(service) if isinstance(service, str) else None
    if svc is None:
        raise invalid("unknown_service", f"This branch has no field {excerpt(service)}.",
                      f"Chi nhánh không có lĩnh vực {excerpt(service)}.")
    return svc


def _counter(st: BranchState, counter: object) -> Counter:
    c = st.counters.get(counter) if isinstance(counter, str) else None
    if c is None:
        raise not_found("counter_not_found", f"This branch has no counter {excerpt(counter)}.",
                        f"Chi nhánh không có quầy {excerpt(counter)}.")
    return c


VI_STATES = {State.WAITING: "đang chờ", State.CALLED: "đã gọi", State.HELD: "đang giữ chỗ",
             State.COMPLETED: "đã hoàn thành", State.SKIPPED: "vắng mặt", State.CANCELLED: "đã hủy",
             State.EXPIRED: "hết hiệu lực"}
