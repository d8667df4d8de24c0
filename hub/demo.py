"""`queuecast demo`: the hub on the embedded default plus simulated citizens and counter staff,
so that every page and feed moves on its own, whenever it is run (a Sunday night included).

The simulator is only a client of QueueService: every number, call, skip and break goes through
the same commands as the API's, so it is logged, appended to the event log and published exactly
like real traffic. It reads the service's state only to decide what a person would do next.
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from hub.auth import Claims, Tokens
from hub.clock import RealClock, parse_start
from hub.config import load_config
from hub.domain import calendar
from hub.domain.config import Branch, Centre
from hub.domain.errors import DomainError
from hub.domain.ticket import State
from hub.service.queue import Answer, QueueService
from hub.settings import Settings
from hub.sim.people import FIELD_WEIGHTS, fake_citizen
from hub.store import open_store

log = logging.getLogger("queuecast.demo")

DEMO_OPENING = timedelta(minutes=30)   # a demo day starts at 08:30: doors open, queue forming
RUNWAY = timedelta(minutes=30)         # less issuing time left today than this: start tomorrow
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Arrivals come ~15x faster than on a real morning, so service is compressed alike (a planned minute
# takes 4 s): counters stay about as busy as on a real morning, and queues form and drain.
SECONDS_PER_SERVICE_MINUTE = 4.0
ONLINE = 0.30               # share of numbers taken online
CHECK_IN = 0.8              # online holders who scan their QR at the kiosk soon after booking
TELLS_TRIP = 0.3            # online holders who give their trip time, to be told when to leave home
TRIPS = (15, 20, 30, 40)    # minutes
NOSHOW, RECALL = 0.05, 0.4  # called numbers nobody answers; of those, the ones who come back
BREAK = 0.02                # chance, after each citizen, that the counter takes a short break
STEP_TIMEOUT = 10.0         # one command never holds a simulated person longer than this

CheckIn = tuple[float, str, str]    # an online holder's QR to scan: (time.monotonic() due, ticket id, token)



def demo_start(branch: Branch, real_now: datetime) -> datetime | None:
    """Where the demo's clock starts: None if `real_now` is good (kiosk issuing open, with at least
    RUNWAY of it left), else 08:30 of today (before opening) or of the next working day."""
    p, cal = branch.policy, branch.calendar
    try:
        day = calendar.issuing_day(branch, real_now, "kiosk")
        if real_now + RUNWAY <= calendar.at(day, p.issuing_until, real_now):
            return None
        day = calendar.next_working_day(cal, day)
    except DomainError:
        today = real_now.date()
        early = cal.is_working_day(today) and real_now.time() < p.opens
        day = today if early else calendar.next_working_day(cal, today)
    return calendar.at(day, p.opens, real_now) + DEMO_OPENING


async def _last_logged(settings: Settings, centre: Centre) -> datetime | None:
    """The time of the latest event in the log: a demo run on a weekend writes the coming Monday,
    and the next run must not write earlier times after it."""
    latest = None
    async with open_store(settings.database) as store:
        for b in centre.branches:
            seq = (await store.log.head(b)).seq
            for ev in await store.log.events_since(b, seq - 1) if seq else []:
                t = datetime.fromisoformat(ev["t"])
                latest = t if latest is None else max(latest, t)
    return latest


def demo_clock(settings: Settings, centre: Centre) -> tuple[RealClock, str | None]:
    """The hub clock, and a line to print if it is not real time. QUEUECAST_CLOCK always wins."""
    tz = settings.zone
    if settings.clock != "real":
        return RealClock(tz, parse_start(settings.clock, tz)), None
    real = datetime.now(tz)
    last = asyncio.run(_last_logged(settings, centre))
    basis = max(real, last.astimezone(tz)) if last else real
    branch = centre.branches["1"]
    start = demo_start(branch, basis)
    if start is None and basis == real:
        return RealClock(tz), None
    if basis != real:
        why = "continuing the demo's earlier log"
    else:
        try:
            calendar.issuing_day(branch, real, "kiosk")
            why = "little of today's issuing hours is left"
        except DomainError:
            why = "real time is outside working hours"
    start = start or basis
    return RealClock(tz, start), f"Demo clock: {WEEKDAYS[start.weekday()]} {start:%Y-%m-%d %H:%M} ({why})"


# The demo runs on one machine, to be tried from it: a kiosk page opened there issues without being
# enrolled, as if the machine were the lobby's network (policy kiosk_lobby_networks).
DEMO_LOBBY = ("127.0.0.0/8", "::1/128")


def demo_centre(centre: Centre) -> Centre:
    """The bundled centre with this machine as every branch's lobby network (DEMO_LOBBY)."""
    branches = {b.id: replace(b, policy=replace(b.policy, kiosk_lobby_networks=b.policy.kiosk_lobby_networks or DEMO_LOBBY))
                for b in centre.branches.values()}
    return replace(centre, branches=branches)


def run(settings: Settings, host: str, port: int) -> int:
    from hub import logs, server
    from hub.app import create_app

    logs.setup()
    # One log line per simulated command would bury the banner and token printed below.
    logging.getLogger("queuecast.command").setLevel(logging.WARNING)
    # One process: the in-memory broker, so simulated calls never reach a shared Redis.
    settings = replace(settings, broker="memory://", config="")
    centre = demo_centre(load_config(None))
    clock, note = demo_clock(settings, centre)
    token = Tokens(settings.resolve_secret()).staff("1")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    if note:
        print(note)
    print(f"queuecast demo: simulated traffic in {len(centre.branches)} branches (Ctrl-C stops)\n"
          f"  hub       {url}/\n  API       {url}/api\n  branch 1  {url}/api/branches/1\n"
          f"  kiosk     {url}/kiosk/1 (this machine counts as the lobby: no enrolment needed)\n"
          f"  staff token for branch 1 (14 h):\n    {token}\n"
          f"  try: curl -X POST -H 'Authorization: Bearer {token}' {url}/api/branches/1/counters/16/call-next\n"
          f"       (409 counter_closed while its simulated clerk is on a break: POST .../counters/16/open first)",
          flush=True)
    seed = time.time_ns() % 2**32
    # With QUEUECAST_NOTIFIER=inline (the default) the demo's messages go to the log (QUEUECAST_SMS_PROVIDER=log).
    server.run(create_app(settings, clock=clock, centre=centre, tasks=[partial(traffic, seed=seed)], demo=True),
               host, port, settings)
    return 0


# -- the simulator ----------------------------------------------------------------------------------

async def _do(what: str, command: Awaitable[Answer]) -> Answer | DomainError | None:
    """One bounded step: the answer body, the DomainError of a refusal (already logged by the
    service with its code), or None after an unexpected failure, logged here. Never raises but
    CancelledError, so no simulated person ever stops."""
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that
        # arrives as the command completes, and the demo then outlived the hub's shutdown.
        async with asyncio.timeout(STEP_TIMEOUT):
            return await command
    except DomainError as e:
        return e
    except Exception:
        log.exception("demo step failed", extra={"fields": {"step": what}})
        return None


async def _issue(service: QueueService, b: str, rng: random.Random, check_ins: list[CheckIn]
                 ) -> Answer | DomainError | None:
    fields = list(service.centre.branches[b].services)
    field = rng.choices(fields, [FIELD_WEIGHTS.get(f, 2) for f in fields])[0]
    if rng.random() >= ONLINE:
        return await _do("issue", service.issue(b, service=field, channel="kiosk", priority=rng.random() < 0.03))
    # A citizen verified through VNeID: the same claims a citizen token carries through the API.
    cccd, phone = fake_citizen(rng, service.now().year)
    claims = service.tokens.verify(service.tokens.citizen(cccd, phone))
    body = await _do("issue", service.issue(b, service=field, channel="online", claims=claims))
    if isinstance(body, dict) and rng.random() < TELLS_TRIP:     # so that "leave home now" goes out too
        await _do("notify", service.opt_in(body["token"], channel="sms", travel_minutes=rng.choice(TRIPS)))
    if isinstance(body, dict) and rng.random() < CHECK_IN:
        check_ins.append((time.monotonic() + rng.uniform(3, 30), body["ticket"], body["token"]))
    return body


async def _forever(what: str, step: Callable[[], Awaitable[None]]) -> None:
    """One simulated person's steps until cancelled: a failure is logged and the person goes on."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("demo step failed", extra={"fields": {"step": what}})
            await asyncio.sleep(5)


async def _arrivals(service: QueueService, b: str, rng: random.Random, mean_gap: float) -> None:
    """Citizens of one branch: a Poisson process of numbers, and online holders checking in."""
    check_ins: list[CheckIn] = []

    async def step() -> None:
        await asyncio.sleep(rng.expovariate(1 / mean_gap))
        for item in [c for c in check_ins if c[0] <= time.monotonic()]:
            check_ins.remove(item)
            t = (await service.hold(b)).tickets.get(item[1])
            if t is not None and not t.checked_in and t.state in (State.WAITING, State.HELD):
                await _do("check-in", service.check_in_token(b, item[2]))
        body = await _issue(service, b, rng, check_ins)
        if isinstance(body, DomainError) and body.code == "issuing_closed":
            await asyncio.sleep(60)       # after the cut-off: only the counters move until tomorrow

    await _forever(f"arrivals {b}", step)


def _serve_seconds(service: QueueService, b: str, field: str, rng: random.Random) -> float:
    """Lognormal around the field's planned time, compressed: mostly 0.5-1.5 x the mean."""
    mean, sigma = service.centre.branches[b].services[field].service_minutes * SECONDS_PER_SERVICE_MINUTE, 0.4
    return rng.lognormvariate(math.log(mean) - sigma ** 2 / 2, sigma)


async def _counter(service: QueueService, b: str, c: str, rng: random.Random) -> None:
    """One counter's staff: serve, call the next, now and then a no-show or a short break."""
    staff = Claims("staff", branch=b, counter=c)

    async def complete_current() -> None:
        st = await service.hold(b)
        t = st.tickets.get(st.counters[c].current or "")
        if t is not None:
            await _do("complete", service.act(b, t.number, "complete", staff=staff))

    async def step() -> None:
        st = await service.hold(b)
        current = st.tickets.get(st.counters[c].current or "")
        if current is not None:
            await asyncio.sleep(_serve_seconds(service, b, current.service, rng))
            if rng.random() < BREAK:          # closing needs an idle counter: finish the citizen first
                await complete_current()
                await _do("counter.close", service.close_counter(b, c))
                await asyncio.sleep(rng.uniform(30, 60))
                await _do("counter.open", service.open_counter(b, c, None))
                return
        st = await service.hold(b)
        ctr = st.counters[c]
        if not ctr.open or not st.waiting(service.now().date(), frozenset(ctr.services)):
            await complete_current()          # call-next would refuse (queue_empty) and keep it
            await asyncio.sleep(rng.uniform(2, 4))
            return
        body = await _do("call-next", service.call_next(b, c))    # completes the current one
        if isinstance(body, dict) and rng.random() < NOSHOW:
            number = body["ticket"]["number"]
            await asyncio.sleep(rng.uniform(3, 8))                  # called twice on the board
            await _do("skip", service.act(b, number, "skip", staff=staff))
            if rng.random() < RECALL:
                await asyncio.sleep(rng.uniform(5, 20))             # ... and comes back running
                await _do("recall", service.act(b, number, "recall", staff=staff))
        elif not isinstance(body, dict):
            await asyncio.sleep(rng.uniform(1, 3))

    await _forever(f"counter {b}/{c}", step)


async def traffic(service: QueueService, *, seed: int | None = None) -> None:
    """Every branch's counters and citizens, until cancelled (the app's lifespan ends)."""
    rng = random.Random(seed)
    log.info("demo traffic", extra={"fields": {"seed": seed, "branches": len(service.centre.branches)}})
    for b, branch in service.centre.branches.items():
        for c in branch.counters:
            await _do("counter.open", service.open_counter(b, c, None))    # already open: no event
        # A citizen an earlier run left at a counter on an earlier day is finished now: once a new
        # day's number is logged, that ticket is forgotten and the counter could not call again.
        st, today = await service.hold(b), service.now().date()
        for c, ctr in st.counters.items():
            t = st.tickets.get(ctr.current or "")
            if t is not None and t.day < today and st.by_number(today, t.number) is None:
                await _do("complete", service.act(b, t.number, "complete", staff=Claims("staff", b, c)))
    for b in service.centre.branches:      # the morning queue: the counters have work at once
        for _ in range(12 if b == "1" else 4):
            await _issue(service, b, rng, [])
    async with asyncio.TaskGroup() as group:
        for b, branch in service.centre.branches.items():
            # Branch 1 (the inter-agency building) is the busiest: a number every 4 s, others 6-10 s.
            gap = 4.0 if b == "1" else rng.uniform(6, 10)
            group.create_task(_arrivals(service, b, random.Random(rng.getrandbits(64)), gap))
            for c in branch.counters:
                group.create_task(_counter(service, b, c, random.Random(rng.getrandbits(64))))
