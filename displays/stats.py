"""One working day of a branch in figures, for the branch manager: a pure function of the day's events.

`day_stats(branch, events, now)` reads the events of one working day (what
`store.events_of_day(branch, day)` returns, in `seq` order) and answers a JSON-ready dict: numbers
issued, served, waiting, no-shows, cancelled and expired per field; waits per field and per
channel; calls per hour against the counters staffed in that hour; per-counter work; and the
satisfaction ratings. No I/O, no clock: `now` says how far the day has gone.

How the figures read (the log is silent on some of these; each choice is stated where it is made):

- **Wait** = from the moment a number *joins the moving queue* to its **first call**
  (`ticket.called`; recalls do not restart or end it). A number joins the moving queue when it is
  issued, or at the branch's opening time if it was issued before (online numbers taken from 20:00
  on the eve). See `_wait_start` for why opening time and not the check-in.
- Waits are those of numbers called so far; numbers still waiting are not in the mean (their wait
  is not over), and the longest wait still running is given beside it (`longest_waiting`).
- **Median** is the usual middle value (mean of the two middle ones for an even count); **p90** is
  the nearest-rank 90th percentile: the smallest wait that at least 90 % of the waits do not exceed.
- A number counts as **issued** in the field it was issued in; its outcome (served, no-show, …)
  counts in the field it is in at the end (after a transfer, the field that took it over). Its wait
  counts in the field of its first call.
- **No-show** = a number that is a no-show now: skipped (or held past its grace period) and not
  recalled since. `skips` counts every skip, including those recalled and served afterwards.
- **Counter-hours**: the time counters were open (`counter.opened` … `counter.closed`). A counter
  whose first event of the day is `counter.closed` (or that the caller says was open at the start,
  `open_at_start`) was open since opening time; a counter still open counts up to `now` (or the end
  of the day). Staffed counters in an hour = counter-hours within that hour.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from hub.domain.config import Branch
from hub.domain.events import Event

CHANNELS = ("kiosk", "online")
RECENT_COMMENTS = 8
# Outcome of a number at the end of the events: its state then (held past its grace = no-show).
STATES = ("waiting", "called", "held", "completed", "skipped", "cancelled", "expired")


@dataclass
class _Ticket:
    id: str
    number: str
    service: str                  # the field it is in now (after transfers)
    issued_service: str
    channel: str
    priority: bool
    issued_at: datetime
    state: str = "waiting"
    first_call: datetime | None = None
    first_call_service: str | None = None
    checked_in_at: datetime | None = None
    held_until: datetime | None = None
    counter: str | None = None


@dataclass
class _Counter:
    id: str
    open_since: datetime | None = None
    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)
    seen: bool = False
    last_t: datetime | None = None
    calls: int = 0
    served: int = 0
    skips: int = 0


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a) / timedelta(minutes=1)


def summary(values: list[float]) -> dict[str, Any]:
    """count, mean, median, p90 (nearest rank) and max of a list of minutes, rounded to 0.1."""
    if not values:
        return {"count": 0, "mean": None, "median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]
    return {"count": len(ordered), "mean": round(statistics.fmean(ordered), 1),
            "median": round(statistics.median(ordered), 1), "p90": round(p90, 1), "max": round(ordered[-1], 1)}


def _opening(branch: Branch, day: date, tz: tzinfo | None) -> datetime:
    return datetime.combine(day, branch.policy.opens, tz)


def _wait_start(t: _Ticket, opening: datetime) -> datetime:
    """When a number's wait starts: its issue, or the opening time for a number taken before it.

    Chosen over the check-in for online numbers issued the evening before (or early morning):
    - the queue does not move before opening, so a wait counted from 20:05 the evening before
      would be twelve hours of sleep, not service, and swamp every mean;
    - from opening, an online number and a kiosk number taken at 08:00 wait on the same clock, so
      the kiosk-vs-online comparison is fair: both hold a place in one sequence from that moment;
    - the check-in is not there for every online number (it is optional under absent = "skip"),
      and counting from it would credit an online holder who arrives late with a short "wait"
      while the queue actually served them on time. The check-in time is kept for the hold rules,
      not the wait.
    """
    return max(t.issued_at, opening)


def _local(ev: Event, tz: tzinfo | None) -> datetime:
    t = datetime.fromisoformat(ev["t"])
    return t.astimezone(tz) if tz is not None and t.tzinfo is not None else t


def _day_of(events: list[Event], now: datetime) -> date:
    days = sorted({ev["day"] for ev in events if "day" in ev})
    return date.fromisoformat(days[-1]) if days else now.date()


def day_stats(branch: Branch, events: Iterable[Event], now: datetime, *, day: date | None = None,
              open_at_start: Iterable[str] = ()) -> dict[str, Any]:
    """The figures of one working day of `branch` from its events (in log order), as of `now`.

    `day`: the working day (default: the latest `day` in the events, else `now`'s date); events of
    other days are ignored. `open_at_start`: counters open when the day began (the log of the day
    alone cannot tell a counter left open since yesterday from one never opened).
    """
    tz = now.tzinfo
    evs = [ev for ev in events]
    day = day or _day_of(evs, now)
    evs = [ev for ev in evs if ev.get("day", day.isoformat()) == day.isoformat()]
    opening = _opening(branch, day, tz)
    closing = datetime.combine(day, branch.policy.closes, tz)
    # The end of the day for open intervals: `now`, but no later than closing or the day's last event.
    last_event = max((_local(ev, tz) for ev in evs), default=opening)
    end = min(now, max(closing, last_event))

    tickets: dict[str, _Ticket] = {}
    counters: dict[str, _Counter] = {c: _Counter(c) for c in branch.counters}
    hours_calls: Tally[int] = Tally()
    hours_recalls: Tally[int] = Tally()
    hours_issued: Tally[int] = Tally()
    hours_served: Tally[int] = Tally()
    skips = recalls = transfers = 0
    transferred_in: Tally[str] = Tally()
    transferred_out: Tally[str] = Tally()
    ratings: list[dict[str, Any]] = []
    seq = 0
    ctr: _Counter | None

    for name in open_at_start:
        ctr = counters.setdefault(name, _Counter(name))
        ctr.open_since, ctr.seen = opening, True

    for ev in evs:
        seq = max(seq, ev.get("seq", 0) or 0)
        kind, t = ev["type"], _local(ev, tz)
        if kind in ("counter.opened", "counter.closed"):
            ctr = counters.setdefault(ev["counter"], _Counter(ev["counter"]))
            if kind == "counter.opened":
                if ctr.open_since is None:
                    ctr.open_since = t
            else:
                if ctr.open_since is None and not ctr.seen:
                    ctr.open_since = min(opening, t)        # open since before the day began
                if ctr.open_since is not None and t > ctr.open_since:
                    ctr.intervals.append((ctr.open_since, t))
                ctr.open_since = None
            ctr.seen = True
            continue
        tid = ev.get("ticket")
        if tid is None:             # every event but a counter's is a ticket's
            continue
        if kind == "ticket.issued":
            tickets[tid] = _Ticket(tid, ev["number"], ev["service"], ev["service"], ev["channel"],
                                   bool(ev.get("priority")), t)
            hours_issued[max(t, opening).hour] += 1
            continue
        tk = tickets.get(tid)
        if tk is None:              # a ticket whose issue is not among these events: nothing to add to
            continue
        ctr = counters.setdefault(ev["counter"], _Counter(ev["counter"])) if ev.get("counter") else None
        if kind == "ticket.called":
            # A second `ticket.called` (after a transfer) is a new call but not a new wait.
            if tk.first_call is None:
                tk.first_call, tk.first_call_service = t, ev.get("service", tk.service)
            hours_calls[t.hour] += 1
            if ctr:
                ctr.calls += 1
            tk.state, tk.counter, tk.held_until = "called", ev.get("counter"), None
        elif kind == "ticket.recalled":
            recalls += 1
            hours_recalls[t.hour] += 1
            tk.state, tk.counter, tk.held_until = "called", ev.get("counter"), None
        elif kind == "ticket.completed":
            tk.state = "completed"
            hours_served[t.hour] += 1
            if ctr:
                ctr.served += 1
        elif kind == "ticket.skipped":
            skips += 1
            if ctr:
                ctr.skips += 1
            if ev.get("held_until"):
                tk.state, tk.held_until = "held", datetime.fromisoformat(ev["held_until"])
            else:
                tk.state = "skipped"
        elif kind == "ticket.checked_in":
            tk.checked_in_at = t
            if tk.state == "held":
                tk.state, tk.held_until = "waiting", None
        elif kind == "ticket.cancelled":
            tk.state = "cancelled"
        elif kind == "ticket.expired":
            tk.state = "expired"
        elif kind == "ticket.transferred":
            transfers += 1
            transferred_out[tk.service] += 1
            transferred_in[ev["service"]] += 1
            tk.service, tk.state = ev["service"], "waiting"
        elif kind == "ticket.rated":
            ratings.append({"t": t.isoformat(timespec="seconds"), "number": tk.number, "service": tk.service,
                            "score": int(ev["score"]), "comment": (ev.get("comment") or "").strip()})

    # A hold that ran out without a check-in is a no-show (as Ticket.effective_state says).
    for tk in tickets.values():
        if tk.state == "held" and tk.held_until is not None and now >= tk.held_until:
            tk.state = "skipped"

    for ctr in counters.values():
        if ctr.open_since is not None:
            if end > ctr.open_since:
                ctr.intervals.append((ctr.open_since, end))
            ctr.open_since = None

    waits: dict[str, list[float]] = {}
    waits_ch: dict[tuple[str, str], list[float]] = {}
    for tk in tickets.values():
        if tk.first_call is None:
            continue
        w = max(_minutes(_wait_start(tk, opening), tk.first_call), 0.0)
        svc = tk.first_call_service or tk.service
        waits.setdefault(svc, []).append(w)
        waits_ch.setdefault((svc, tk.channel), []).append(w)

    running_from = min(now, end) if now >= opening else None
    fields = []
    for svc in _services_in_order(branch, tickets):
        mine = [tk for tk in tickets.values() if tk.service == svc]
        issued = [tk for tk in tickets.values() if tk.issued_service == svc]
        states = Tally(tk.state for tk in mine)
        waiting_since = [_wait_start(tk, opening) for tk in mine if tk.state == "waiting"]
        cfg = branch.services.get(svc)
        all_waits = waits.get(svc, [])
        fields.append({
            "id": svc, "name": cfg.name if cfg else svc, "name_en": cfg.name_en if cfg else svc,
            "issued": len(issued),
            "issued_by_channel": {ch: sum(1 for tk in issued if tk.channel == ch) for ch in CHANNELS},
            "served": states["completed"], "waiting": states["waiting"], "at_counter": states["called"],
            "held": states["held"], "noshows": states["skipped"], "cancelled": states["cancelled"],
            "expired": states["expired"], "transferred_in": transferred_in[svc],
            "transferred_out": transferred_out[svc],
            "wait": summary(all_waits),
            "wait_by_channel": {ch: summary(waits_ch.get((svc, ch), [])) for ch in CHANNELS},
            "longest_waiting": (round(max(_minutes(s, running_from) for s in waiting_since), 1)
                                if waiting_since and running_from else None),
        })

    states = Tally(tk.state for tk in tickets.values())
    totals = {"issued": len(tickets), "served": states["completed"], "waiting": states["waiting"],
              "at_counter": states["called"], "held": states["held"], "noshows": states["skipped"],
              "cancelled": states["cancelled"], "expired": states["expired"], "skips": skips,
              "recalls": recalls, "transfers": transfers}
    channels = {}
    for ch in CHANNELS:
        mine = [tk for tk in tickets.values() if tk.channel == ch]
        st = Tally(tk.state for tk in mine)
        ch_waits = [w for (svc, c), ws in waits_ch.items() if c == ch for w in ws]
        channels[ch] = {"issued": len(mine), "served": st["completed"], "waiting": st["waiting"],
                        "noshows": st["skipped"], "cancelled": st["cancelled"], "expired": st["expired"],
                        "wait": summary(ch_waits)}

    return {
        "branch": branch.id, "day": day.isoformat(), "now": now.isoformat(timespec="seconds"), "seq": seq,
        "wait_from": "issue, or opening time for numbers issued before it",
        "totals": totals,
        "wait": summary([w for ws in waits.values() for w in ws]),
        "channels": channels,
        "fields": fields,
        "hours": _hours(branch, day, tz, now, counters, hours_issued, hours_calls, hours_recalls, hours_served),
        "counters": _counters(branch, counters),
        "ratings": _ratings(branch, ratings),
    }


def _services_in_order(branch: Branch, tickets: dict[str, _Ticket]) -> list[str]:
    """The branch's fields in display order, then any field met in the log but no longer configured."""
    known = list(branch.services)
    met = {tk.service for tk in tickets.values()} | {tk.issued_service for tk in tickets.values()}
    extra = sorted(met - set(known))
    return known + extra


def _overlap_hours(intervals: list[tuple[datetime, datetime]], start: datetime, stop: datetime) -> float:
    total = timedelta()
    for a, b in intervals:
        lo, hi = max(a, start), min(b, stop)
        if hi > lo:
            total += hi - lo
    return total / timedelta(hours=1)


def _hours(branch: Branch, day: date, tz: tzinfo | None, now: datetime, counters: dict[str, _Counter],
           issued: Tally[int], calls: Tally[int], recalls: Tally[int], served: Tally[int]) -> list[dict[str, Any]]:
    """One row per clock hour of the working day (opening to closing), widened to any hour with
    calls or an open counter outside it: calls, recalls, served, issued, and staffed counters."""
    p = branch.policy
    first, last = p.opens.hour, (p.closes.hour - 1 if p.closes.minute == 0 else p.closes.hour)
    used = [h for h in (*calls, *recalls, *served) if calls[h] or recalls[h] or served[h]]
    for ctr in counters.values():
        for a, b in ctr.intervals:
            if b > a:
                used += [a.hour, (b - timedelta(microseconds=1)).hour if b.date() == day else 23]
    if used:
        first, last = min(first, *used), max(last, *used)
    rows = []
    for h in range(first, last + 1):
        start = datetime.combine(day, time(h), tz)
        stop = start + timedelta(hours=1)
        staffed = sum(_overlap_hours(ctr.intervals, start, stop) for ctr in counters.values())
        # The hour under way counts only its part gone by: 16 counters open since 11:00 at 11:20 are
        # 5.3 counter-hours but 16 counters staffed.
        elapsed = min(max((now - start) / timedelta(hours=1), 0.0), 1.0)
        rows.append({"hour": h, "label": f"{h:02d}:00", "issued": issued[h], "calls": calls[h],
                     "recalls": recalls[h], "served": served[h], "counter_hours": round(staffed, 2),
                     "counters": round(staffed / elapsed, 1) if elapsed > 0 else 0.0,
                     "calls_per_counter_hour": round(calls[h] / staffed, 2) if staffed > 0 else None,
                     "elapsed": round(elapsed, 3), "future": elapsed == 0, "partial": 0 < elapsed < 1})
    return rows


def _counters(branch: Branch, counters: dict[str, _Counter]) -> list[dict[str, Any]]:
    order = list(branch.counters) + sorted(set(counters) - set(branch.counters))
    out = []
    for cid in order:
        ctr = counters.get(cid) or _Counter(cid)
        hours = sum(((b - a) for a, b in ctr.intervals), timedelta()) / timedelta(hours=1)
        out.append({"id": cid, "open_hours": round(hours, 2), "calls": ctr.calls, "served": ctr.served,
                    "skips": ctr.skips, "calls_per_hour": round(ctr.calls / hours, 1) if hours > 0 else None})
    return out


def _ratings(branch: Branch, ratings: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [r["score"] for r in ratings]
    dist = Tally(scores)
    by_field: dict[str, list[int]] = {}
    for r in ratings:
        by_field.setdefault(r["service"], []).append(r["score"])
    comments = [r for r in ratings if r["comment"]]
    comments.sort(key=lambda r: r["t"], reverse=True)
    return {
        "count": len(scores),
        "mean": round(statistics.fmean(scores), 2) if scores else None,
        "distribution": [{"score": s, "count": dist[s]} for s in range(1, 6)],
        "by_field": [{"id": svc, "name": branch.services[svc].name if svc in branch.services else svc,
                      "name_en": branch.services[svc].name_en if svc in branch.services else svc,
                      "count": len(v), "mean": round(statistics.fmean(v), 2)}
                     for svc, v in sorted(by_field.items(), key=lambda kv: list(branch.services).index(kv[0])
                                          if kv[0] in branch.services else 999)],
        "comments": comments[:RECENT_COMMENTS],
        "comments_total": len(comments),
    }
