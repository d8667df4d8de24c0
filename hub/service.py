"""The service layer: the one place where the domain meets the store and the broker.

A command is decided by the pure domain from the branch's state, folded into that state, appended
to the log (with its idempotency record) in one transaction, and only then published and answered.
Commands on one branch run one at a time in this process; another process writing the same log
is detected by the store's seq check, and the command is decided again on the fresh state.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from hub import loops, views
from hub.auth import Claims, Tokens
from hub.broker import Broker
from hub.clock import Clock
from hub.domain import commands, identity
from hub.domain.citizens import Citizen, history
from hub.domain.config import Centre
from hub.domain.errors import DomainError, conflict, forbidden, not_found
from hub.domain.events import TYPES, Event, public
from hub.domain.state import BranchState, apply, fold
from hub.domain.ticket import Ticket
from hub.store import Idempotency, SeqConflict, Store, StoreUnavailable
from hub.store.outbox import OutboxItem
from notifier.rules import Rules

log = logging.getLogger("queuecast.command")

_ATTEMPTS = 5    # a seq conflict means another process wrote first; this many re-decisions at most



def _dumps(ev: Event) -> bytes:
    return json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode()


Decide = Callable[[BranchState, datetime], list[Event]]
Respond = Callable[[BranchState, list[Event], datetime], dict]


@dataclass(frozen=True)
class IdemRequest:
    key: str
    fingerprint: str


class QueueService:
    def __init__(self, centre: Centre, store: Store, broker: Broker, clock: Clock, tokens: Tokens,
                 public_url: str, notify_ahead: int = 5):
        self.centre, self.store, self.broker, self.clock, self.tokens = centre, store, broker, clock, tokens
        self.public_url = public_url.rstrip("/")
        # The messages an event makes owed go into the log's transaction with it (the outbox).
        self.rules = Rules(lambda branch, tid: self.tracking_url(self.tokens.ticket(branch, tid)), notify_ahead)
        self.states: dict[str, BranchState] = {}
        self.epochs: dict[str, str] = {}
        self._locks = {b: asyncio.Lock() for b in centre.branches}
        self._citizen_lock = asyncio.Lock()     # the per-citizen limits span branches
        self._stale: set[str] = set()           # branches whose state may hold events not in the log
        # Called, in seq order and under the branch lock, with every event folded into a branch's
        # state (made here or learned from another process) and its public JSON, encoded once.
        self.on_event: list[Callable[[str, Event, bytes], None]] = []
        # Called under the branch lock before events of time `now` are folded into a branch's state
        # (a command about to be decided, an event of another process): what was due before `now`
        # (hub.predictions) is done on the state as it was then.
        self.before_fold: list[Callable[[BranchState, datetime], None]] = []
        # Called when a branch's history may have been lost (epoch changed): clients must resync.
        self.on_reset: list[Callable[[str], None]] = []
        # A log other processes append to (redis://): catch up before deciding, to avoid conflicts.
        self.shared = getattr(store, "shared", False)
        # Told of every command: (name, outcome, seconds). /metrics listens.
        self.on_command: list[Callable[[str, str, float], None]] = []

    async def load(self) -> None:
        """Rebuild every branch's state from its log."""
        for b in self.centre.branches.values():
            self.epochs[b.id] = (await self.store.head(b.id)).epoch
            self.states[b.id] = fold(b, await self.store.events_since(b.id, 0))

    def lock(self, branch: str) -> asyncio.Lock:
        """Held while a branch's state moves: hold it to read a state consistent with its seq."""
        self.state(branch)
        return self._locks[branch]

    def now(self) -> datetime:
        return self.clock.now()

    def state(self, branch: str) -> BranchState:
        st = self.states.get(branch)
        if st is None:
            raise not_found("branch_not_found", f"No branch {branch!r}.", f"Không có chi nhánh {branch!r}.")
        return st

    # -- the command pipeline -----------------------------------------------------------------------

    async def run(self, name: str, branch: str, decide: Decide, respond: Respond, *,
                  idem: IdemRequest | None = None, status: int = 200, log_fields: dict | None = None
                  ) -> tuple[int, dict]:
        self.state(branch)                     # 404 for an unknown branch, before waiting
        started = time.perf_counter()
        outcome = "error"
        try:
            async with self._locks[branch]:
                if self.shared or branch in self._stale:
                    await self._catch_up(branch)
                # Read under the lock: a failed command before us may have replaced the state.
                st = self.states[branch]
                if idem is not None:
                    kept = await self.store.idempotency(branch, idem.key)
                    if kept is not None:
                        if kept.fingerprint != idem.fingerprint:
                            raise conflict("idempotency_key_reused",
                                           "This Idempotency-Key was used for a different request.",
                                           "Khóa Idempotency-Key đã được dùng cho một yêu cầu khác.")
                        outcome = "replayed"
                        return kept.status, json.loads(kept.body)
                for _ in range(_ATTEMPTS):
                    try:
                        result = await self._attempt(st, decide, respond, idem, status)
                        outcome = "ok"
                        return result
                    except SeqConflict:
                        st = self.states[branch]       # _attempt has re-read the log
                raise conflict("busy", "The branch log is changing too fast; try again.",
                               "Hệ thống đang bận; vui lòng thử lại.")
        except DomainError as e:
            outcome = e.code
            raise
        except StoreUnavailable as e:
            outcome = "store_unavailable"
            raise DomainError("unavailable", "store_unavailable",
                              "The queue's store cannot be reached; nothing was done. Retry shortly.",
                              "Không kết nối được kho dữ liệu; chưa thực hiện. Vui lòng thử lại.",
                              retry_after=2) from e
        finally:
            fields = {k: v for k, v in (log_fields or {}).items() if v is not None}
            if "phone" in fields:
                fields["phone"] = identity.mask_phone(fields["phone"])
            seconds = time.perf_counter() - started
            log.info("command", extra={"fields": {"cmd": name, "branch": branch, "outcome": outcome,
                                                  "ms": round(seconds * 1000, 2), **fields}})
            for fn in self.on_command:
                fn(name, outcome, seconds)

    async def _attempt(self, st: BranchState, decide: Decide, respond: Respond,
                       idem: IdemRequest | None, status: int) -> tuple[int, dict]:
        now = self.now()
        for fn in self.before_fold:
            fn(st, now)
        evs = decide(st, now)                  # a refusal raises here: nothing has changed
        head = st.seq
        try:
            for ev in evs:                     # fold first: the answer (kept with the events) needs it
                apply(st, ev)
            body = respond(st, evs, now)
            record = None
            if idem is not None:
                record = Idempotency(idem.key, idem.fingerprint, status,
                                     json.dumps(body, ensure_ascii=False, separators=(",", ":")))
            stored = await self.store.append(st.id, head, evs, record, outbox=self._owed(st, evs, now))
        except BaseException:
            # Not in the log, so not in the state: rebuild it from the log (rare: a conflict or I/O
            # fault). If the log cannot be read either, the state is marked stale and rebuilt
            # before anything else uses it.
            self._stale.add(st.id)
            try:
                await asyncio.shield(self._catch_up(st.id))
            except Exception:
                log.warning("state kept stale until the log can be read", extra={"fields": {"branch": st.id}})
            raise
        st.seq = head + len(stored)
        self._deliver(st.id, stored)
        for ev in stored:
            try:
                await self.broker.publish(st.id, _dumps(ev))
            except Exception:       # the event is in the log: other processes will catch up from it
                log.warning("publish failed", exc_info=True, extra={"fields": {"branch": st.id, "seq": ev["seq"]}})
        return status, body

    def _owed(self, st: BranchState, evs: list[Event], now: datetime) -> list[OutboxItem]:
        try:
            return self.rules.owed(st, evs, now)
        except Exception:       # a fault in the rules must not stop the queue: the calls matter more
            log.exception("notifications not computed", extra={"fields": {"branch": st.id}})
            return []

    def _deliver(self, branch: str, evs: list[Event]) -> None:
        for ev in evs:
            data = _dumps(public(ev))
            for fn in self.on_event:
                fn(branch, ev, data)

    async def _reload(self, branch: str, *, replaced: bool = False) -> BranchState:
        """Rebuild the state from the log. Unless the history was replaced, the watchers are then
        given the events they have not had yet (another process appended them while our append
        conflicted, or while the store could not be read): a reload must not leave a gap in a feed."""
        seen = self.states[branch].seq
        evs = await self.store.events_since(branch, 0)
        st = fold(self.centre.branches[branch], evs)
        self.states[branch] = st
        self._stale.discard(branch)
        if not replaced:
            self._deliver(branch, [ev for ev in evs if ev["seq"] > seen])
        return st

    # -- following other processes ----------------------------------------------------------------

    async def _catch_up(self, branch: str) -> None:
        """Fold in what other processes appended since our seq, or rebuild a stale state (call
        with the branch lock held). The epoch is checked first, so that the events of a replaced
        history are never passed on as if they followed the ones the watchers have."""
        st = self.states[branch]
        head = await self.store.head(branch)
        if head.epoch != self.epochs[branch] or head.seq < st.seq:
            # The log is not the one we folded (a wiped or replaced Redis): start again from it.
            log.warning("branch history replaced", extra={"fields": {"branch": branch, "seq": st.seq,
                                                                     "head": head.seq}})
            self.epochs[branch] = head.epoch
            await self._reload(branch, replaced=True)
            for fn in self.on_reset:
                fn(branch)
            return
        if branch in self._stale:
            await self._reload(branch)
            return
        if head.seq == st.seq:
            return
        evs = await self.store.events_since(branch, st.seq)
        for ev in evs:
            apply(st, ev)
        self._deliver(branch, evs)

    async def follow(self) -> None:
        """Keep every branch's state current with events other processes publish; runs for the
        process's lifetime. A gap, or a broker reconnect (RESYNC), is filled from the log."""
        async def one(branch: str) -> None:
            async with self.broker.subscribe(branch) as messages:
                await self._locked_catch_up(branch)      # what happened before we subscribed
                async for raw in messages:
                    ev = json.loads(raw)
                    seq = ev.get("seq")
                    if seq is not None and seq <= self.states[branch].seq:
                        continue                         # ours, or already caught up
                    if seq == self.states[branch].seq + 1 and ev.get("type") in TYPES:
                        async with self._locks[branch]:
                            st = self.states[branch]
                            if seq == st.seq + 1:
                                for fn in self.before_fold:
                                    fn(st, datetime.fromisoformat(ev["t"]))
                                apply(st, ev)
                                self._deliver(branch, [ev])
                                continue
                    await self._locked_catch_up(branch)  # a gap, or RESYNC

        await asyncio.gather(*(loops.every(1.0, lambda b=b: one(b), f"follow:{b}") for b in self.states))

    async def catch_up(self, branch: str | None = None) -> None:
        """Fold in what other processes appended, to one branch or every branch (a process with no
        broker to tell it, like the notifier on SQLite, polls this)."""
        for b in self.states if branch is None else (branch,):
            await self._locked_catch_up(b)

    async def _locked_catch_up(self, branch: str) -> None:
        async with self._locks[branch]:
            await self._catch_up(branch)

    # -- commands -----------------------------------------------------------------------------------

    async def issue(self, branch: str, *, service: str, channel: str, priority: bool = False,
                    phone: str | None = None, claims: Claims | None = None,
                    idem: IdemRequest | None = None, lang: str | None = None) -> tuple[int, dict]:
        st = self.state(branch)
        citizen = None
        if claims is not None and claims.kind == "citizen":
            citizen = Citizen(self.tokens.pseudonym(claims.cccd), identity.birth_year(claims.cccd))
            phone = phone or claims.phone
        if phone is not None:
            phone = identity.normalize_phone(phone)

        def decide(st: BranchState, now: datetime) -> list[Event]:
            hist = None
            if citizen is not None:
                day = views.issuing_day(st, now)
                hist = history(citizen, day, self.states.values())
            return commands.issue(st, now, service=service, channel=channel, priority=priority,
                                  phone=phone, citizen=citizen, history=hist, lang=lang)

        def respond(st: BranchState, evs: list[Event], now: datetime) -> dict:
            t = st.tickets[evs[0]["ticket"]]
            token = self.tokens.ticket(st.id, t.id)
            view = views.ticket_view(st, t, now, tracking_url=self.tracking_url(token))
            return {"number": t.number, "service": t.service, "token": token,
                    "tracking_url": view["tracking_url"], "issued_at": view["issued_at"],
                    "position": view["position"], "eta": view["eta"], "ticket": t.id, "branch": st.id,
                    "day": view["day"], "channel": t.channel, "priority": t.priority,
                    "people_ahead": view["people_ahead"], "service_name": view["service_name"],
                    "branch_name": view["branch_name"]}

        fields = {"service": service, "channel": channel, "phone": phone}
        if citizen is None:
            return await self.run("issue", branch, decide, respond, idem=idem, status=201, log_fields=fields)
        async with self._citizen_lock:
            return await self.run("issue", branch, decide, respond, idem=idem, status=201, log_fields=fields)

    async def open_counter(self, branch: str, counter: str, services: list[str] | None,
                           idem: IdemRequest | None = None) -> tuple[int, dict]:
        return await self.run("counter.open", branch,
                              lambda st, now: commands.open_counter(st, now, counter, services),
                              self._counter_answer(counter), idem=idem, log_fields={"counter": counter})

    async def close_counter(self, branch: str, counter: str, idem: IdemRequest | None = None) -> tuple[int, dict]:
        return await self.run("counter.close", branch,
                              lambda st, now: commands.close_counter(st, now, counter),
                              self._counter_answer(counter), idem=idem, log_fields={"counter": counter})

    async def call_next(self, branch: str, counter: str, idem: IdemRequest | None = None) -> tuple[int, dict]:
        def respond(st: BranchState, evs: list[Event], now: datetime) -> dict:
            called = st.tickets[evs[-1]["ticket"]]
            done = [e["number"] for e in evs if e["type"] == "ticket.completed"]
            return {"ticket": self.staff_ticket(st, called, now), "completed": done}

        return await self.run("call-next", branch, lambda st, now: commands.call_next(st, now, counter),
                              respond, idem=idem, log_fields={"counter": counter})

    ACTIONS = ("recall", "complete", "skip", "transfer", "cancel", "check-in")

    async def act(self, branch: str, number: str, action: str, *, staff: Claims,
                  service: str | None = None, counter: str | None = None,
                  idem: IdemRequest | None = None) -> tuple[int, dict]:
        """A staff action on one ticket. A counter-bound token acts only on its own counter's tickets."""
        if action not in self.ACTIONS:
            raise not_found("unknown_action", f"No action {action!r}; one of {', '.join(self.ACTIONS)}.",
                            f"Không có thao tác {action!r}.")
        counter = staff.counter or counter

        def decide(st: BranchState, now: datetime) -> list[Event]:
            t = commands.find_ticket(st, now, number)
            if staff.counter and t.counter not in (None, staff.counter) and action != "check-in":
                raise forbidden("other_counter", f"Number {number} belongs to counter {t.counter}.",
                                f"Số {number} thuộc quầy {t.counter}.")
            if action == "recall":
                return commands.recall(st, now, t, counter)
            if action == "complete":
                return commands.complete(st, now, t)
            if action == "skip":
                return commands.skip(st, now, t)
            if action == "transfer":
                return commands.transfer(st, now, t, service)
            if action == "check-in":
                return commands.check_in(st, now, t)
            return commands.cancel(st, now, t, by="staff")

        def respond(st: BranchState, evs: list[Event], now: datetime) -> dict:
            return {"ticket": self.staff_ticket(st, st.tickets[evs[0]["ticket"]], now)}

        return await self.run(action, branch, decide, respond, idem=idem,
                              log_fields={"number": number, "counter": counter, "service": service})

    async def give_back(self, token: str) -> tuple[int, dict]:
        return await self._holder("give-back", token, lambda st, now, t: commands.cancel(st, now, t, by="citizen"))

    async def _holder(self, name: str, token: str, decide_on: Callable[[BranchState, datetime, Ticket], list[Event]],
                      log_fields: dict | None = None) -> tuple[int, dict]:
        """A command by a ticket's holder, who proves it with the ticket token."""
        branch, tid = self.tokens.read_ticket(token)
        st = self.state(branch)

        def respond(st: BranchState, evs: list[Event], now: datetime) -> dict:
            return views.ticket_view(st, st.tickets[tid], now, tracking_url=self.tracking_url(token))

        return await self.run(name, st.id, lambda st, now: decide_on(st, now, self._ticket(st, tid)), respond,
                              log_fields={"ticket": tid, **(log_fields or {})})

    async def opt_in(self, token: str, *, channel: str, phone: str | None = None, subscription: dict | None = None,
                     ahead: int | None = None, travel_minutes: float | None = None,
                     lang: str | None = None) -> tuple[int, dict]:
        if phone is not None:
            phone = identity.normalize_phone(phone)
        return await self._holder(
            "notify", token,
            lambda st, now, t: commands.opt_in(st, now, t, channel=channel, phone=phone, subscription=subscription,
                                               ahead=ahead, travel_minutes=travel_minutes, lang=lang),
            {"channel": channel, "phone": phone})

    async def opt_out(self, token: str, channel: str) -> tuple[int, dict]:
        """The holder turns a channel off (DELETE /api/tickets/{token}/notifications/{channel})."""
        return await self._holder("notify-off", token,
                                  lambda st, now, t: commands.unsubscribe(st, now, t, channel=channel),
                                  {"channel": channel})

    async def unsubscribe(self, branch: str, ticket_id: str, channel: str, *, endpoint: str | None = None
                          ) -> tuple[int, dict]:
        """The notifier found a channel gone (a push subscription answered 404/410): stop using it.
        With `endpoint`, only that push subscription goes. `{"removed": bool}`."""
        def decide(st: BranchState, now: datetime) -> list[Event]:
            return commands.unsubscribe(st, now, self._ticket(st, ticket_id), channel=channel, by="notifier",
                                        endpoint=endpoint)

        return await self.run("unsubscribe", branch, decide, lambda st, evs, now: {"removed": bool(evs)},
                              log_fields={"ticket": ticket_id, "channel": channel})

    async def rate(self, token: str, score: int, comment: str = "") -> tuple[int, dict]:
        return await self._holder("rate", token, lambda st, now, t: commands.rate(st, now, t, score, comment))

    async def check_in_token(self, branch: str, token: str) -> tuple[int, dict]:
        """An online holder's QR scanned at the branch's kiosk."""
        tb, tid = self.tokens.read_ticket(token)
        if tb != branch:
            raise conflict("wrong_branch", "This number is for another branch.", "Số thứ tự này thuộc chi nhánh khác.")

        def decide(st: BranchState, now: datetime) -> list[Event]:
            return commands.check_in(st, now, self._ticket(st, tid))

        def respond(st: BranchState, evs: list[Event], now: datetime) -> dict:
            return views.ticket_view(st, st.tickets[tid], now)

        return await self.run("check-in", branch, decide, respond, log_fields={"ticket": tid})

    async def tick(self) -> int:
        """Time-driven events (expiry at closing) for every branch; returns how many happened."""
        n = 0
        for branch, st in list(self.states.items()):
            if commands.tick(st, self.now()):
                _, body = await self.run("tick", branch, commands.tick, lambda st, evs, now: {"events": len(evs)})
                n += body["events"]
        return n

    # -- reads --------------------------------------------------------------------------------------

    def branch_view(self, branch: str) -> dict:
        return views.branch_view(self.state(branch), self.now())

    def branches_view(self) -> list[dict]:
        now = self.now()
        return [views.branch_view(st, now) for st in self.states.values()]

    def ticket_view(self, token: str, travel_minutes: float | None = None) -> dict:
        branch, tid = self.tokens.read_ticket(token)
        st = self.state(branch)
        return views.ticket_view(st, self._ticket(st, tid), self.now(), tracking_url=self.tracking_url(token),
                                 travel_minutes=travel_minutes)

    def tracking_url(self, token: str) -> str:
        return f"{self.public_url}/t/{token}"

    # -- helpers ------------------------------------------------------------------------------------

    def _ticket(self, st: BranchState, tid: str) -> Ticket:
        t = st.tickets.get(tid)
        if t is None:
            raise not_found("ticket_not_found", "This number is no longer kept (an earlier day).",
                            "Số thứ tự này không còn được lưu (ngày trước).")
        return t

    def _counter_answer(self, counter: str) -> Respond:
        def respond(st: BranchState, evs: list[Event], now: datetime) -> dict:
            c = st.counters[counter]
            return {"counter": {"id": c.id, "open": c.open, "services": list(c.services),
                                "current": st.tickets[c.current].number if c.current else None}}
        return respond

    def staff_ticket(self, st: BranchState, t: Ticket, now: datetime) -> dict:
        """What the counter sees: the ticket, and the holder's online no-show record (never the CCCD)."""
        view = views.ticket_view(st, t, now)
        noshows = 0
        if t.citizen:
            noshows = sum(len(s.citizens[t.citizen].noshows) for s in self.states.values()
                          if t.citizen in s.citizens)
        view["noshows"] = noshows
        return view
