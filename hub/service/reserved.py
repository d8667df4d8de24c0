"""A citizen's number issued under a reservation of the store (hub.store.quotas), so that the
per-citizen limits hold across hub processes and branches, not only within what one process has
folded.

The order: decide once on this process's state (the fast refusals: an unknown field, a full day,
a limit this process already sees), reserve in the store (the refusal that holds everywhere),
then run the command through the pipeline. If the number is not issued after all (a refusal on
the fresh state, a conflict, the store failing), the reservation is given back, so a failed
attempt never costs the citizen a number of their day. An issued number keeps it, cancelled or
given back later included: every number issued counts (hub.domain.limits.check).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from hub.clock import Clock
from hub.domain import limits
from hub.domain.errors import DomainError, conflict
from hub.domain.events import Event
from hub.domain.state import BranchState
from hub.service.pipeline import Decide, IdemRequest
from hub.store.errors import StoreUnavailable
from hub.store.quotas import DAILY_LIMIT, FIELD_LIMIT, TAKEN, Limits, Quotas, Reservation

log = logging.getLogger("queuecast.quotas")


class ReservedIssue:
    def __init__(self, quotas: Quotas, clock: Clock):
        self.quotas, self.clock = quotas, clock
        self._running: set[asyncio.Task[Any]] = set()

    async def issue(self, st: BranchState, citizen: str, service: str, decide: Decide,
                    run: Callable[[Decide], Awaitable[dict[str, Any]]], idem: IdemRequest | None) -> dict[str, Any]:
        """`decide`: the issue's decision; `run(decide)`: the command through the pipeline."""
        now = self.clock.now()
        try:
            [issued] = decide(st, now)         # refuses here what this process can already tell
        except DomainError as refused:
            if idem is None:
                raise
            # Maybe a retry of a number issued already: the pipeline gives the answer kept under
            # its key first, and this refusal only if there is none.
            error = refused

            def refuse(st: BranchState, now: datetime) -> list[Event]:
                raise error
            return await run(refuse)
        day = date.fromisoformat(issued["day"])
        # Named by the Idempotency-Key if there is one: a retry finds its reservation HELD. Hashed:
        # the web layer's key names its holder (the CCCD, hub.web.decode.idempotency).
        rid = (hashlib.sha256(f"{st.id}\n{idem.key}".encode()).hexdigest()[:32] if idem is not None
               else secrets.token_hex(16))
        r = Reservation(citizen, day, st.id, service, rid)
        p = st.config.policy
        try:
            answer = await self.quotas.reserve(r, Limits(p.per_field, p.per_day), now)
        except StoreUnavailable as e:
            raise DomainError("unavailable", "store_unavailable", *e.public, retry_after=2) from e
        if answer in (FIELD_LIMIT, DAILY_LIMIT):
            raise limits.refusal(answer, p, st.config.services[service], day)

        def decide_reserved(st: BranchState, now: datetime) -> list[Event]:
            evs = decide(st, now)
            if evs[0]["day"] != issued["day"]:      # the issuing day turned since the reservation
                raise conflict("busy", "The issuing day has just changed; try again.",
                               "Ngày cấp số vừa chuyển sang ngày mới; vui lòng thử lại.")
            return evs

        async def issue_or_release() -> dict[str, Any]:
            try:
                return await run(decide_reserved)
            except BaseException as e:
                # HELD: the request that took it answers for it. A store that failed mid-command
                # (a WAIT short of replicas, a reply lost) may have kept the number: the
                # reservation stays (until its day ends), since a limit must never be passed.
                if answer == TAKEN and not _outcome_unknown(e):
                    await self._release(r)
                raise

        # Shielded from the caller's cancellation (a client gone): cut short, it could not tell an
        # appended number (which keeps its reservation) from one that never was (which gives it back).
        task = asyncio.ensure_future(issue_or_release())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())   # retrieved: no warning
        return await asyncio.shield(task)

    async def _release(self, r: Reservation) -> None:
        try:
            await self.quotas.release(r)
        except Exception:       # the store is failing too: the reservation stays until its day ends
            log.warning("reservation not released", exc_info=True,
                        extra={"fields": {"branch": r.branch, "day": r.day.isoformat(), "field": r.field}})


def _outcome_unknown(e: BaseException) -> bool:
    return isinstance(e, StoreUnavailable) or isinstance(e.__cause__, StoreUnavailable)
