"""`QueueService`: the commands and reads of the queue, for the web layer, the pages, the demo and
the notifier. Each command is a decision of the domain (hub.domain.commands) run through the
pipeline (hub.service.pipeline); each read is a view (hub.views) of a branch's folded state.
Answers are JSON-ready dicts; refusals are DomainErrors, which the web layer turns into statuses.
"""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from hub import views
from hub.auth import Claims, TicketRef, Tokens
from hub.broker.base import Broker
from hub.clock import Clock
from hub.domain import commands, identity
from hub.domain.config import Centre
from hub.domain.errors import conflict, excerpt, forbidden, invalid, not_found, unauthorized
from hub.domain.events import Event
from hub.domain.limits import Books, Citizen, history
from hub.domain.notifications.rules import Rules
from hub.domain.push import PushDestinations
from hub.domain.state import BranchState
from hub.domain.ticket import Ticket
from hub.phones import normalize_phone
from hub.service.branches import Branches
from hub.service.follow import Following
from hub.service.holding import Holding
from hub.service.kiosks import KioskDevices
from hub.service.pipeline import IdemRequest, Pipeline, Respond
from hub.service.reserved import ReservedIssue
from hub.store.eventlog import EventLog, LogHead
from hub.store.quotas import Quotas

Answer = dict[str, Any]


class QueueService:
    def __init__(self, centre: Centre, events: EventLog, broker: Broker, clock: Clock, tokens: Tokens,
                 public_url: str, notify_ahead: int = 5, kiosk_pace: tuple[int, float] | None = None,
                 quotas: Quotas | None = None, idle_seconds: float = 600.0, hold: str = "busy"):
        """`quotas`: the store's reservations, which hold the per-citizen limits across processes
        (hub.service.reserved); without them the limits hold within this process only.
        `idle_seconds`, `hold`: when branches are let go (hub.service.holding)."""
        self.centre, self.broker, self.clock, self.tokens = centre, broker, clock, tokens
        self.public_url = public_url.rstrip("/")
        # The messages an event makes owed go into the log's transaction with it (the outbox).
        self.rules = Rules(self._link, notify_ahead)
        self.branches = Branches(centre, events, idle_seconds=idle_seconds)
        self.pipeline = Pipeline(self.branches, events, broker, clock, self.rules)
        self.run = self.pipeline.run
        self._citizen_lock = asyncio.Lock()     # the per-citizen limits span branches (no quotas)
        self.reserved = ReservedIssue(quotas, clock) if quotas is not None else None
        # Kiosk devices: enrolled, handed out and revoked through the log; each keeps to this pace.
        self.kiosk_pace = kiosk_pace
        self.kiosks = KioskDevices(self.branches, self.pipeline, tokens, public_url, self.catch_up)
        # The branches' hooks, named here for those who watch the service (feeds, predictions, metrics).
        self.on_event = self.branches.on_event
        self.before_fold = self.branches.before_fold
        self.on_reset = self.branches.on_reset
        self.on_command = self.pipeline.on_command
        self.following = Following(self.branches, broker)
        self.holding = Holding(self.branches, clock, hold)

    # -- the branches' states ---------------------------------------------------------------------

    @property
    def states(self) -> dict[str, BranchState]:
        return self.branches.states

    @property
    def epochs(self) -> dict[str, str]:
        return self.branches.epochs

    async def load(self) -> None:
        """Hold every branch (its state folded from its log); those with nothing to do are let go
        again once idle (hub.service.holding)."""
        await self.branches.hold_all()

    async def hold(self, branch: str) -> BranchState:
        """The branch's state, loaded if this process does not hold it yet; 404 for an unknown
        branch. Every entry point awaits it before `state` (a command, a feed, a page or view)."""
        return await self.branches.hold(branch)

    async def hold_ticket(self, token: str) -> TicketRef:
        """Hold the branch of a holder's token (read, so 401 for a bad one); the token's ticket."""
        ref = self.tokens.read_ticket(token)
        await self.hold(ref.branch)
        return ref

    def lock(self, branch: str) -> asyncio.Lock:
        """Held while a branch's state moves: hold it to read a state consistent with its seq."""
        return self.branches.lock(branch)

    def state(self, branch: str) -> BranchState:
        return self.branches.state(branch)

    def now(self) -> datetime:
        return self.clock.now()

    async def follow(self, following: asyncio.Event | None = None) -> None:
        """Fold in what other processes publish to the branches held, for the process's lifetime
        (hub.service.follow); `following` is set once every branch held at the start is followed."""
        await self.following.run(following)

    async def catch_up(self, branch: str | None = None, *, verify: bool = False) -> None:
        """Fold in what other processes appended (a process with no broker to tell it polls this);
        `verify`: compare our last event with the log's even at an equal head (Branches.catch_up_locked)."""
        await self.branches.catch_up(branch, verify=verify)

    async def head(self, branch: str) -> LogHead:
        self.branches.known(branch)
        return await self.branches.head(branch)

    async def events_since(self, branch: str, after_seq: int, limit: int | None = None) -> list[Event]:
        """The log after `after_seq` (a feed's resume, the board's recent calls)."""
        self.branches.known(branch)
        return await self.branches.events_since(branch, after_seq, limit)

    async def events_of_day(self, branch: str, day: date) -> list[Event]:
        """A service day's events (the admin page's statistics)."""
        self.branches.known(branch)
        return await self.branches.events_of_day(branch, day)

    # -- commands -----------------------------------------------------------------------------------

    async def issue(self, branch: str, *, service: str, channel: str, priority: bool = False,
                    phone: str | None = None, claims: Claims | None = None,
                    idem: IdemRequest | None = None, lang: str | None = None, device: str | None = None) -> Answer:
        """A new number; `device`: the enrolled kiosk device asking (attributed in the log, paced)."""
        await self.hold(branch)                # 404 for an unknown branch, before anything else
        citizen = None
        if claims is not None and claims.kind == "citizen":
            if claims.cccd is None:         # Tokens.citizen always signs one; a token without it is not one of ours
                raise unauthorized("invalid_token", "This citizen token names no citizen.",
                                   "Mã xác thực công dân không hợp lệ.")
            born = identity.check_born(claims.cccd, self.now().year)
            citizen = Citizen(self.tokens.pseudonym(claims.cccd), born)
            phone = phone or claims.phone
        if phone is not None:
            phone = normalize_phone(phone)

        def decide(st: BranchState, now: datetime) -> list[Event]:
            hist = None
            if citizen is not None:
                day = views.issuing_day(st, now)
                hist = history(citizen, day, self._books())
            return commands.issue(st, now, service=service, channel=channel, priority=priority,
                                  phone=phone, citizen=citizen, history=hist, lang=lang, device=device,
                                  pace=self.kiosk_pace, nonce=nonce)

        def respond(st: BranchState, evs: list[Event], now: datetime) -> Answer:
            t = st.tickets[evs[0]["ticket"]]
            token = self.token_of(st.id, t)
            view = views.ticket_view(st, t, now, tracking_url=self.tracking_url(token))
            return {"number": t.number, "service": t.service, "token": token,
                    "tracking_url": view["tracking_url"], "issued_at": view["issued_at"],
                    "position": view["position"], "eta": view["eta"], "ticket": t.id, "branch": st.id,
                    "day": view["day"], "channel": t.channel, "priority": t.priority,
                    "people_ahead": view["people_ahead"], "service_name": view["service_name"],
                    "branch_name": view["branch_name"]}

        nonce = secrets.token_urlsafe(6)       # 48 random bits: a re-issued id never gets the same
        fields = {"service": service, "channel": channel, "phone": phone, "device": device}
        if device is not None:
            await self.kiosks.refresh(branch, device)
        if citizen is None:
            return await self.run("issue", branch, decide, respond, idem=idem, log_fields=fields)
        if self.reserved is not None:
            return await self.reserved.issue(
                self.state(branch), citizen.pseudonym, service, decide,
                lambda reserved: self.run("issue", branch, reserved, respond, idem=idem, log_fields=fields), idem)
        async with self._citizen_lock:
            return await self.run("issue", branch, decide, respond, idem=idem, log_fields=fields)

    async def open_counter(self, branch: str, counter: str, services: list[str] | None,
                           idem: IdemRequest | None = None) -> Answer:
        return await self.run("counter.open", branch,
                              lambda st, now: commands.open_counter(st, now, counter, services),
                              self._counter_answer(counter), idem=idem, log_fields={"counter": counter})

    async def close_counter(self, branch: str, counter: str, idem: IdemRequest | None = None) -> Answer:
        return await self.run("counter.close", branch,
                              lambda st, now: commands.close_counter(st, now, counter),
                              self._counter_answer(counter), idem=idem, log_fields={"counter": counter})

    async def call_next(self, branch: str, counter: str, idem: IdemRequest | None = None) -> Answer:
        def respond(st: BranchState, evs: list[Event], now: datetime) -> Answer:
            called = st.tickets[evs[-1]["ticket"]]
            done = [e["number"] for e in evs if e["type"] == "ticket.completed"]
            return {"ticket": self.staff_ticket(st, called, now), "completed": done}

        return await self.run("call-next", branch, lambda st, now: commands.call_next(st, now, counter),
                              respond, idem=idem, log_fields={"counter": counter})

    ACTIONS = ("recall", "complete", "skip", "transfer", "cancel", "check-in")

    async def act(self, branch: str, number: str, action: str, *, staff: Claims,
                  service: str | None = None, counter: str | None = None,
                  idem: IdemRequest | None = None) -> Answer:
        """A staff action on one ticket. A counter-bound token acts only on the numbers its counter
        called (docs/rules.md): not on a waiting number, nor on another counter's. Checking a holder
        in is the exception: whoever meets a citizen at the branch may record that they came."""
        if action not in self.ACTIONS:
            raise not_found("unknown_action", f"No action {excerpt(action)}; one of {', '.join(self.ACTIONS)}.",
                            f"Không có thao tác {excerpt(action)}.")
        counter = staff.counter or counter

        def decide(st: BranchState, now: datetime) -> list[Event]:
            t = commands.find_ticket(st, now, number)
            if staff.counter and action != "check-in" and t.counter != staff.counter:
                raise forbidden("out_of_scope",
                                f"Counter {staff.counter}'s token acts only on the numbers counter {staff.counter} "
                                f"called; {number} is not one of them.",
                                f"Mã của quầy {staff.counter} chỉ thao tác trên số do quầy này gọi; "
                                f"số {number} không thuộc quầy.")
            if action == "recall":
                return commands.recall(st, now, t, counter)
            if action == "complete":
                return commands.complete(st, now, t)
            if action == "skip":
                return commands.skip(st, now, t)
            if action == "transfer":
                if service is None:       # the API asks for it (hub.web.api); so must any other caller
                    raise invalid("missing_field", "Field 'service' is required.", "Thiếu trường 'service'.",
                                  field="service")
                return commands.transfer(st, now, t, service)
            if action == "check-in":
                return commands.check_in(st, now, t)
            return commands.cancel(st, now, t, by="staff")

        def respond(st: BranchState, evs: list[Event], now: datetime) -> Answer:
            return {"ticket": self.staff_ticket(st, st.tickets[evs[0]["ticket"]], now)}

        return await self.run(action, branch, decide, respond, idem=idem,
                              log_fields={"number": number, "counter": counter, "service": service})

    async def give_back(self, token: str) -> Answer:
        return await self._holder("give-back", token, lambda st, now, t: commands.cancel(st, now, t, by="citizen"))

    async def _holder(self, name: str, token: str, decide_on: Callable[[BranchState, datetime, Ticket], list[Event]],
                      log_fields: dict[str, Any] | None = None) -> Answer:
        """A command by a ticket's holder, who proves it with the ticket token."""
        ref = self.tokens.read_ticket(token)
        st = await self.hold(ref.branch)

        def respond(st: BranchState, evs: list[Event], now: datetime) -> Answer:
            return views.ticket_view(st, st.tickets[ref.ticket], now, tracking_url=self.tracking_url(token))

        return await self.run(name, st.id, lambda st, now: decide_on(st, now, self.held(st, ref)), respond,
                              log_fields={"ticket": ref.ticket, **(log_fields or {})})

    async def opt_in(self, token: str, *, channel: str, phone: str | None = None, subscription: dict[str, Any] | None = None,
                     ahead: int | None = None, travel_minutes: float | None = None,
                     lang: str | None = None, push_to: PushDestinations = PushDestinations()) -> Answer:
        """`push_to`: where a push subscription may point (the settings' QUEUECAST_PUSH_HOSTS)."""
        if phone is not None:
            phone = normalize_phone(phone)
        return await self._holder(
            "notify", token,
            lambda st, now, t: commands.opt_in(st, now, t, channel=channel, phone=phone, subscription=subscription,
                                               ahead=ahead, travel_minutes=travel_minutes, lang=lang, push_to=push_to),
            {"channel": channel, "phone": phone})

    async def opt_out(self, token: str, channel: str) -> Answer:
        """The holder turns a channel off (DELETE /api/tickets/{token}/notifications/{channel})."""
        return await self._holder("notify-off", token,
                                  lambda st, now, t: commands.unsubscribe(st, now, t, channel=channel),
                                  {"channel": channel})

    async def unsubscribe(self, branch: str, ticket_id: str, channel: str, *, endpoint: str | None = None
                          ) -> Answer:
        """The notifier found a channel gone (a push subscription answered 404/410): stop using it.
        With `endpoint`, only that push subscription goes. `{"removed": bool}`."""
        def decide(st: BranchState, now: datetime) -> list[Event]:
            return commands.unsubscribe(st, now, self._ticket(st, ticket_id), channel=channel, by="notifier",
                                        endpoint=endpoint)

        return await self.run("unsubscribe", branch, decide, lambda st, evs, now: {"removed": bool(evs)},
                              log_fields={"ticket": ticket_id, "channel": channel})

    async def rate(self, token: str, score: int, comment: str = "") -> Answer:
        return await self._holder("rate", token, lambda st, now, t: commands.rate(st, now, t, score, comment))

    async def check_in_token(self, branch: str, token: str, device: str | None = None) -> Answer:
        """An online holder's QR scanned at the branch's kiosk (`device`: an enrolled one, or staff)."""
        await self.hold(branch)
        if device is not None:          # a device that may no longer act learns nothing of the ticket
            await self.kiosks.refresh(branch, device)
            self.state(branch).kiosks.require(device)
        ref = self.tokens.read_ticket(token)
        if ref.branch != branch:
            raise conflict("wrong_branch", "This number is for another branch.", "Số thứ tự này thuộc chi nhánh khác.")

        def decide(st: BranchState, now: datetime) -> list[Event]:
            return commands.check_in(st, now, self.held(st, ref), device)

        def respond(st: BranchState, evs: list[Event], now: datetime) -> Answer:
            return views.ticket_view(st, st.tickets[ref.ticket], now)

        return await self.run("check-in", branch, decide, respond,
                              log_fields={"ticket": ref.ticket, "device": device})

    async def tick(self) -> int:
        """Time-driven events (expiry at closing) for every branch held (a branch with numbers
        waiting is never let go by a process holding busy branches: hub.service.holding); returns
        how many happened."""
        n = 0
        for branch, st in list(self.states.items()):
            if commands.tick(st, self.now()):
                body = await self.run("tick", branch, commands.tick, lambda st, evs, now: {"events": len(evs)})
                n += body["events"]
        return n

    # -- reads --------------------------------------------------------------------------------------

    def branch_view(self, branch: str) -> dict[str, Any]:
        return views.branch_view(self.state(branch), self.now())

    async def branches_view(self) -> list[dict[str, Any]]:
        """Every branch's view: the held ones' from their state, the others' as kept when they
        were let go (hub.service.holding says how long that stays true); a branch with neither
        (never held by an `asked` process) is held to answer."""
        now = self.now()
        out = []
        for b in self.centre.branches:
            kept = self.holding.kept_view(b)
            out.append(kept if kept is not None and b not in self.states
                       else views.branch_view(await self.hold(b), now))
        return out

    def ticket_view(self, token: str, travel_minutes: float | None = None) -> dict[str, Any]:
        ref = self.tokens.read_ticket(token)
        st = self.state(ref.branch)
        return views.ticket_view(st, self.held(st, ref), self.now(), tracking_url=self.tracking_url(token),
                                 travel_minutes=travel_minutes)

    def tracking_url(self, token: str) -> str:
        return f"{self.public_url}/t/{token}"

    def _link(self, branch: str, tid: str) -> str:
        """A ticket's tracking link, for the messages its events make owed (hub.domain.notifications)."""
        return self.tracking_url(self.token_of(branch, self.states[branch].tickets[tid]))

    def token_of(self, branch: str, t: Ticket) -> str:
        """The holder's token of ticket `t` of `branch`: names it, and only it (its nonce)."""
        return self.tokens.ticket(branch, t.id, t.nonce)

    # -- helpers ------------------------------------------------------------------------------------

    def _books(self) -> list[Books]:
        """Every branch's citizens' records this process knows: the held branches' and those kept
        from the branches let go (hub.domain.limits.history; no-shows count across branches)."""
        return [*self.states.values(), *self.holding.books.values()]

    def held(self, st: BranchState, ref: TicketRef) -> Ticket:
        """The ticket a holder's token names in `st`: the same id is not enough, the nonce must be
        the one it was issued with. Another nonce means the number was lost with its history (a
        wiped or older log) and issued again to someone else: to this token it does not exist."""
        t = self._ticket(st, ref.ticket)
        if t.nonce != ref.nonce:
            raise not_found("ticket_not_found", "No ticket for this link: this number was issued again after "
                            "the branch's records were reset, to someone else.",
                            "Không tìm thấy số thứ tự của đường dẫn này (dữ liệu chi nhánh đã được khôi phục).")
        return t

    def _ticket(self, st: BranchState, tid: str) -> Ticket:
        t = st.tickets.get(tid)
        if t is None:
            raise not_found("ticket_not_found", "This number is no longer kept (an earlier day).",
                            "Số thứ tự này không còn được lưu (ngày trước).")
        return t

    def _counter_answer(self, counter: str) -> Respond:
        def respond(st: BranchState, evs: list[Event], now: datetime) -> Answer:
            c = st.counters[counter]
            return {"counter": {"id": c.id, "open": c.open, "services": list(c.services),
                                "current": st.tickets[c.current].number if c.current else None}}
        return respond

    def staff_ticket(self, st: BranchState, t: Ticket, now: datetime) -> Answer:
        """What the counter sees: the ticket, and the holder's online no-show record (never the CCCD)."""
        view = views.ticket_view(st, t, now)
        noshows = 0
        if t.citizen:
            noshows = sum(len(s.citizens[t.citizen].noshows) for s in self._books() if t.citizen in s.citizens)
        view["noshows"] = noshows
        return view
