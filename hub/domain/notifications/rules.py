"""When a holder is told what: the triggers of a number's life, turned into the messages they make owed.

Pure: everything comes from a branch's state, the events just folded into it and the time, so the
same rules run in the hub (event-driven messages, written with their events in one transaction) and
in the notifier (the time-driven "leave home now", and the last look before sending).

A trigger fires at most once per number and channel (the outbox key), on every channel the holder
opted in to (`Ticket.notify`; a phone given at issue is an SMS opt-in):

- issued: the number, its field and branch, and the tracking link;
- ahead: at most N people before it in its field's queue (the holder's N, else the branch default),
  checked after every change of a queue, on the number's day only: at 20:00 the eve before, "3
  people ahead" says nothing about when to come;
- leave: now is past "leave by" (the ETA's p10 less the trip and a margin, as the page shows it),
  for a holder who is not at the branch (kiosk numbers are, by construction);
- called: with the counter; a recall of the same number is not a second message;
- skipped: called and absent: come within the minutes left to be recalled (or of the hold);
- expired: not called before closing time.

`still_true` is the look the notifier takes just before it sends: "3 people ahead" for a number that
has since been called is dropped, not sent.

The rules return `Message`s; the hub files them in the outbox (hub.store.outbox.OutboxItem.owed).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from hub.domain.eta.estimator import Forecast
from hub.domain.eta.leave_home import leave_by
from hub.domain.events import Event
from hub.domain.notifications.message import Message, Recipient
from hub.domain.state import BranchState
from hub.domain.ticket import FINAL, State, Ticket

# The event that makes a trigger true for the number it names.
BY_EVENT = {"ticket.issued": "issued", "ticket.called": "called", "ticket.recalled": "called",
            "ticket.skipped": "skipped", "ticket.expired": "expired"}
# Events after which no queue can be shorter and no opt-in newer: no "ahead" to look for.
_NO_AHEAD_CHANGE = frozenset({"ticket.rated", "ticket.unsubscribed", "ticket.completed",
                              "kiosk.enrolled", "kiosk.claimed", "kiosk.revoked"})
PHONE_CHANNELS = ("sms", "zalo")

Link = Callable[[str, str], str]        # (branch, ticket id) → the holder's tracking URL


@dataclass(frozen=True)
class Rules:
    link: Link
    ahead: int = 5                      # QUEUECAST_NOTIFY_AHEAD: N when the holder chose none

    # -- event-driven: computed by the hub from the state after the events --------------------------

    def owed(self, st: BranchState, evs: list[Event], now: datetime) -> list[Message]:
        items: dict[str, Message] = {}
        for ev in evs:
            trigger = BY_EVENT.get(ev["type"])
            t = st.tickets.get(ev.get("ticket", ""))
            if trigger is None or t is None:
                continue
            extra = {"counter": ev["counter"]} if trigger == "called" else {}
            if trigger == "skipped":
                extra["minutes"] = self._minutes_left(st, ev, now)
            for item in self._items(st, t, trigger, now, extra):
                items.setdefault(item.key, item)
        if any(ev["type"] not in _NO_AHEAD_CHANGE for ev in evs):
            for item in self.ahead_due(st, now):
                items.setdefault(item.key, item)
        return list(items.values())

    def ahead_due(self, st: BranchState, now: datetime) -> list[Message]:
        """"N ahead" for every waiting number of today that has at most N people before it."""
        queues: dict[tuple[date, str], list[Ticket]] = {}           # (day, field) → its waiting numbers
        for t in st.tickets.values():
            if t.state is State.WAITING and t.day <= now.date():
                queues.setdefault((t.day, t.service), []).append(t)
        out: list[Message] = []
        for queue in queues.values():
            if not any(t.notify for t in queue):
                continue
            queue.sort(key=Ticket.queue_key)
            for ahead, t in enumerate(queue):
                for channel, opt in t.notify.items():
                    if ahead <= (opt.get("ahead") or self.ahead):
                        out.extend(self._items(st, t, "ahead", now, {"ahead": ahead}, only=channel))
        return out

    @staticmethod
    def _minutes_left(st: BranchState, ev: Event, now: datetime) -> int:
        if "held_until" in ev:
            return max(1, math.ceil((datetime.fromisoformat(ev["held_until"]) - now).total_seconds() / 60))
        return st.config.policy.recall_minutes

    # -- time-driven: computed by the notifier's loop ------------------------------------------------

    def leave_due(self, st: BranchState, forecast: Forecast, now: datetime) -> list[Message]:
        """"Leave home now" for every waiting holder of today, away from the branch, with a trip
        time, whose "leave by" has come."""
        out: list[Message] = []
        for t in st.tickets.values():
            if (t.state is not State.WAITING or t.checked_in or t.travel_minutes is None or not t.notify
                    or t.day != now.date()):
                continue
            est = forecast.ticket(t.id, now)
            if est is None or leave_by(now, est, t.travel_minutes) > now:
                continue
            call = now.timestamp() + est.p50 * 60
            out.extend(self._items(st, t, "leave", now, {
                "leave_at": f"{now:%H:%M}",
                "call_at": f"{datetime.fromtimestamp(call, now.tzinfo):%H:%M}"}))
        return out

    # -- the last look before sending --------------------------------------------------------------

    @staticmethod
    def still_true(st: BranchState, item: Message, now: datetime) -> str | None:
        """None if `item` may go now; else why not (kept as the dropped item's detail)."""
        t = st.tickets.get(item.ticket)
        if t is None:
            return "the number is no longer kept (an earlier day)"
        if not _opted_in(t, item):
            return f"the holder turned {item.channel} off"
        # An SMS standing in for Zalo goes to the Zalo opt-in's phone.
        if recipient(t, item.channel if item.channel in t.notify else "zalo") != item.recipient:
            return "the holder gave another phone or subscription since"
        state = t.effective_state(now)
        if item.trigger == "issued" and state in FINAL:
            return f"the number is already {state.value}"
        if item.trigger in ("ahead", "leave") and state is not State.WAITING:
            return f"the number is already {state.value}"
        if item.trigger == "leave" and t.checked_in:
            return "the holder is already at the branch"
        if item.trigger == "called" and state is not State.CALLED:
            return f"the number is already {state.value}"
        if item.trigger == "skipped" and state not in (State.SKIPPED, State.HELD):
            return f"the number is already {state.value}"
        if item.trigger == "skipped" and state is State.SKIPPED and t.skipped_at is not None and \
                (now - t.skipped_at).total_seconds() > st.config.policy.recall_minutes * 60:
            return "the time to be recalled is over"
        return None

    # -- building items ----------------------------------------------------------------------------

    def _items(self, st: BranchState, t: Ticket, trigger: str, now: datetime, extra: Mapping[str, object],
               only: str | None = None) -> Iterable[Message]:
        svc, en = st.config.services[t.service], t.lang == "en"
        params = {"number": t.number, "service": svc.name_en if en else svc.name,
                  "branch": st.config.name_en if en else st.config.name, "url": self.link(st.id, t.id), **extra}
        for channel in t.notify:
            if only is not None and channel != only:
                continue
            to = recipient(t, channel)
            if not to:
                continue
            yield Message(st.id, t.id, trigger, channel, to, params, t.lang)


def sms_fallback(item: Message) -> Message | None:
    """The SMS that stands in for a Zalo message Zalo refused for good (no Zalo account, ...): same
    words, same phone. Its key is the SMS one, so a holder who also opted in to SMS gets one SMS."""
    if item.channel != "zalo" or not isinstance(item.recipient, str):
        return None
    return Message(item.branch, item.ticket, item.trigger, "sms", item.recipient, item.params, item.lang)


def recipient(t: Ticket, channel: str) -> Recipient | None:
    """Where the holder's messages on `channel` go now: the opt-in's phone (else the phone given at
    issue) or push subscription; None when not opted in."""
    opt = t.notify.get(channel)
    if opt is None:
        return None
    return opt.get("subscription") if channel == "push" else opt.get("phone") or t.phone


def _opted_in(t: Ticket, item: Message) -> bool:
    if item.channel in t.notify:
        return True
    # An SMS standing in for Zalo (sms_fallback) goes as long as the Zalo opt-in stands.
    return item.channel == "sms" and "zalo" in t.notify
