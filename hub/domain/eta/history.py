"""What the log teaches about a branch, learned causally: each event is seen once, in order.

Recent days count more than old ones (`DAY_DECAY` per day), so drift from one day to the next is
followed; today's services count fully from the first one. Everything here is a count or a bounded
sample, so a branch's memory does not grow with the length of the log.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import date

DAY_DECAY = 0.6              # weight of yesterday's observations against today's
KEEP_DAYS = 5                # counter plans of this many past days are sampled as "today's plan"
SAMPLES = 300                # per field, the most recent service durations kept

# Categories of a called number for no-shows: an online holder who has not checked in is the one
# most likely not to be there (DESIGN §2, "virtual" numbers).
KIOSK, ONLINE_IN, ONLINE_OUT = 0, 1, 2
CATEGORIES = (KIOSK, ONLINE_IN, ONLINE_OUT)
PRIOR_NOSHOW = {KIOSK: 0.03, ONLINE_IN: 0.05, ONLINE_OUT: 0.25}
PRIOR_CALLS = 20.0
# Minutes before its call at which an online number had not checked in yet: the grid of
# History.absent_online, the no-show rate of such a number (forward.replicate looks it up).
LEADS = (0.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 360.0, 720.0)


def category(channel: str, checked_in: bool) -> int:
    if channel == "kiosk":
        return KIOSK
    return ONLINE_IN if checked_in else ONLINE_OUT


# (open, close) of a counter, minutes after local midnight; close is None while it is open.
Interval = tuple[float, float | None]
# One day's priority numbers issued: field → hour of the day → how many.
Profile = dict[str, dict[int, int]]


@dataclass
class DayPlan:
    """One past day of one counter: the fields it opened with and its open intervals (minutes
    after local midnight)."""
    services: tuple[str, ...]
    intervals: list[Interval] = field(default_factory=list)


@dataclass(slots=True)
class Arrival:
    """An online number at its first call: how many minutes before it the holder had checked
    in (None: not yet), and whether it turned out a no-show (set when it is skipped)."""
    checked_before: float | None
    noshow: bool = False


class History:
    def __init__(self) -> None:
        self.day = 0                                            # index of the current service day
        self.done: dict[str, deque[tuple[float, int]]] = defaultdict(lambda: deque(maxlen=SAMPLES))  # field → (min, day)
        self.by_counter: dict[str, deque[tuple[str, float, int]]] = defaultdict(lambda: deque(maxlen=40))  # → (field, min, day)
        self.skip_minutes: deque[float] = deque(maxlen=200)
        self.calls = {c: 0.0 for c in CATEGORIES}
        self.noshows = {c: 0.0 for c in CATEGORIES}
        self.skips = self.recalls = self.holds = self.returns = 0.0
        self.issued_n = {"kiosk": 0.0, "online": 0.0}      # numbers issued, and given back before
        self.given_back = {"kiosk": 0.0, "online": 0.0}    # their first call, by channel
        self.recall_delays: deque[float] = deque(maxlen=100)
        self.online_calls: deque[Arrival] = deque(maxlen=400)
        self.return_delays: deque[float] = deque(maxlen=100)
        self.finished: dict[str, float] = defaultdict(float)         # field → services ended
        self.transfers: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.partial_minutes: deque[float] = deque(maxlen=100)
        self.gaps: deque[float] = deque(maxlen=200)                # counter free → next call
        self.issues_today: list[tuple[float, str, bool]] = []      # (minute, field, priority)
        # Numbers taken while no service day is running (the evening before, the early morning,
        # a weekend): they belong to the next service day, which is not known until it starts.
        self.issues_early: list[tuple[date, float, str, bool]] = []
        self.priority_days: deque[Profile] = deque(maxlen=KEEP_DAYS)    # per past day
        self.issue_ends: deque[float] = deque(maxlen=KEEP_DAYS)         # last issue, minutes of day
        self.plans_today: dict[str, DayPlan] = {}
        self.plans: deque[dict[str, DayPlan]] = deque(maxlen=KEEP_DAYS)   # past days: counter → plan
        self.closures: deque[float] = deque(maxlen=200)                 # minutes closed within a day

    # -- days ----------------------------------------------------------------------------------

    def new_day(self, today: date | None, new: date) -> None:
        """The first counter activity of a new local date: today becomes history."""
        if self.plans_today:
            self.plans.append(self.plans_today)
            profile = self._profile()
            if profile is not None:
                self.priority_days.append(profile[0])
                self.issue_ends.append(profile[1])
            if today is not None:     # taken after today's last close: for the new day
                last_close = self._last_close()
                self.issues_early = [(today, m, f, p) for m, f, p in self.issues_today if m > last_close] \
                    + self.issues_early
        # Minutes before the new day's midnight are negative: a number taken at 20:00 the evening
        # before is at -240, which is how the priority profile learns the night.
        self.issues_today = sorted((m - 1440 * (new - d).days, f, p) for d, m, f, p in self.issues_early)
        self.issues_early, self.plans_today = [], {}
        self.day += 1
        for by_cat in (self.calls, self.noshows):
            for cat in by_cat:
                by_cat[cat] *= DAY_DECAY
        self.skips *= DAY_DECAY
        self.recalls *= DAY_DECAY
        self.holds *= DAY_DECAY
        self.returns *= DAY_DECAY
        for f in self.finished:
            self.finished[f] *= DAY_DECAY
        for by_channel in (self.issued_n, self.given_back):
            for channel in by_channel:
                by_channel[channel] *= DAY_DECAY
        for dests in self.transfers.values():
            for k in dests:
                dests[k] *= DAY_DECAY

    def weight(self, day: int) -> float:
        return DAY_DECAY ** (self.day - day)

    # -- what happened -------------------------------------------------------------------------

    def _profile(self) -> tuple[Profile, float] | None:
        """Today's priority arrivals by field and hour, and its last issue: of the numbers taken
        before the day's last close (after it, online numbers are for the next working day)."""
        last_close = self._last_close()
        today = [(m, f, p) for m, f, p in self.issues_today if m <= last_close]
        if not today:
            return None
        hours: Profile = defaultdict(lambda: defaultdict(int))
        for m, f, p in today:
            if p:
                hours[f][int(m // 60)] += 1
        return hours, max(m for m, _, _ in today)

    def _last_close(self) -> float:
        return max(((iv[1] or 0) for p in self.plans_today.values() for iv in p.intervals), default=0.0)

    def past(self, today_done: bool) -> tuple[list[dict[str, DayPlan]], list[Profile], list[float]]:
        """(counter plans, priority profiles, last issues) of past days; with `today_done`, today
        counts as past already (a forecast made after closing, for the next working day)."""
        plans, prios, ends = list(self.plans), list(self.priority_days), list(self.issue_ends)
        if today_done and self.plans_today:
            plans = (plans + [self.plans_today])[-KEEP_DAYS:]
            profile = self._profile()
            if profile is not None:
                prios = (prios + [profile[0]])[-KEEP_DAYS:]
                ends = (ends + [profile[1]])[-KEEP_DAYS:]
        return plans, prios, ends

    def issued(self, service: str, priority: bool, minute: float) -> None:
        self.issues_today.append((minute, service, priority))

    def issued_early(self, day: date, service: str, priority: bool, minute: float) -> None:
        self.issues_early.append((day, minute, service, priority))

    def counted(self, channel: str) -> None:
        self.issued_n[channel] = self.issued_n.get(channel, 0.0) + 1

    def cancelled_waiting(self, channel: str) -> None:
        self.given_back[channel] = self.given_back.get(channel, 0.0) + 1

    def service_ended(self, counter: str, service: str, minutes: float) -> None:
        self.done[service].append((minutes, self.day))
        self.by_counter[counter].append((service, minutes, self.day))
        self.finished[service] += 1

    def transferred(self, service: str, to: str, minutes: float) -> None:
        self.finished[service] += 1
        self.transfers[service][to] += 1
        self.partial_minutes.append(minutes)

    def called(self, cat: int, first: bool) -> None:
        if first:
            self.calls[cat] += 1

    def online_called(self, checked_before: float | None) -> Arrival:
        record = Arrival(checked_before)
        self.online_calls.append(record)
        return record

    def absent_online(self) -> list[float]:
        """Per LEADS[i]: the share of no-shows among online numbers that had not checked in
        LEADS[i] minutes before their call. Called right now without checking in, a holder is
        mostly not there; called in three hours, most will have come by then. Forecasts made
        the evening before depend on it: at night nobody has checked in yet."""
        out = []
        prior = PRIOR_NOSHOW[ONLINE_OUT]
        for x in LEADS:
            rows = [r for r in self.online_calls if r.checked_before is None or r.checked_before < x]
            out.append((sum(1 for r in rows if r.noshow) + prior * 5) / (len(rows) + 5))
        return out

    def skipped(self, cat: int, minutes: float, first: bool, held: bool) -> None:
        self.skip_minutes.append(minutes)
        if first:
            self.noshows[cat] += 1
        self.skips += 1
        if held:
            self.holds += 1

    def recalled_after(self, minutes: float) -> None:
        self.recalls += 1
        self.recall_delays.append(minutes)

    def returned_after(self, minutes: float) -> None:
        self.returns += 1
        self.return_delays.append(minutes)

    def counter_gap(self, minutes: float) -> None:
        self.gaps.append(minutes)

    def counter_opened(self, counter: str, services: tuple[str, ...], minute: float) -> None:
        plan = self.plans_today.setdefault(counter, DayPlan(services))
        if plan.intervals:
            closed = plan.intervals[-1][1]
            if closed is None:
                return                              # re-opened with other fields: same interval
            self.closures.append(minute - closed)
        plan.intervals.append((minute, None))

    def counter_closed(self, counter: str, minute: float) -> None:
        plan = self.plans_today.get(counter)
        if plan and plan.intervals and plan.intervals[-1][1] is None:
            plan.intervals[-1] = (plan.intervals[-1][0], minute)
