"""The notification worker: takes what the outbox owes, checks it is still true, sends it, records how.

One step:
1. fold in what other processes appended to the log (`QueueService.catch_up`: a worker on SQLite
   has no broker to tell it), so the state it judges by is the log's;
2. add the time-driven messages now due ("leave home now"), at most every LEAVE_EVERY seconds;
3. claim a batch with a lease, and for each item: drop it if it is no longer true; wait for the
   gateway's rate limit; send; then sent, or retried later (backoff with jitter; retryable
   failures only), or failed (a permanent refusal), or dead (retries used up).

Exactly once, in the normal case: a message is marked sent only after its gateway took it, and a
worker killed between the two leaves the item `sending` until its lease runs out; the next claim
sends it again with the same request id (the outbox key), which an idempotent gateway (eSMS) drops
as a repeat. What a gateway without one (Twilio, Zalo, web push) can still duplicate is in
docs/notifications.md.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hub import views
from hub.domain.identity import mask_recipient, mask_text
from hub.domain.notifications.rules import sms_fallback
from hub.ratelimit import RateLimiter
from hub.service.queue import QueueService
from hub.store.outbox import DEAD, DROPPED, FAILED, Outbox, OutboxItem
from notifier import backoff, segments, templates
from notifier.senders.protocol import NO_ZALO, SUBSCRIPTION_GONE, Outcome, Result, Sender

log = logging.getLogger("queuecast.notifier")

BATCH = 50               # items claimed at once
AT_ONCE = 50             # sent at the same time, whatever the batch: each holds a store connection while it
                         # records (redis-py's pool has 100, shared with the hub in inline mode)
LEASE = 60.0             # seconds a claim holds an item: well past a sender's 10 s timeout
POLL = 0.5               # seconds between two looks at an empty outbox
LEAVE_EVERY = 15.0       # seconds between two evaluations of "leave home now" (a forecast per branch)
NOT_CONFIGURED = "not_configured"
NO_LONGER_TRUE = "no_longer_true"
SENDER_FAULT = "sender_fault"


class Worker:
    def __init__(self, service: QueueService, outbox: Outbox, senders: Mapping[str, Sender], *, rate: float = 20,
                 batch: int = BATCH, lease: float = LEASE, max_attempts: int = backoff.MAX_ATTEMPTS,
                 rng: random.Random | None = None, sms_diacritics: bool = True):
        self.service, self.outbox, self.senders = service, outbox, senders
        self.rules = service.rules
        self.batch, self.lease, self.max_attempts = batch, lease, max_attempts
        self.rate = rate
        self.limits = RateLimiter(max(1, round(rate)), max(1, round(rate)) / rate)   # `rate` a second, bursts of one second
        self.rng = rng or random.Random()
        self.sms_diacritics = sms_diacritics     # how the SMS gateway is sent texts: what an SMS costs
        self._leave_at = 0.0
        self.counts = {"sent": 0, "retried": 0, "failed": 0, "dead": 0, "dropped": 0, "sms_parts": 0}

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Steps until `stop` is set; the step under way when it is set is finished (a send in
        flight is not cut: its gateway may have taken it, and we want to record that)."""
        failures = 0
        while not stop.is_set():
            try:
                done = await self.step()
                failures = 0
            except Exception:
                failures += 1
                done = 0
                log.exception("notifier step failed", extra={"fields": {"failures": failures}})
            if done == 0 or failures:
                try:
                    async with asyncio.timeout(min(POLL * 2 ** failures, 30.0)):
                        await stop.wait()
                except TimeoutError:
                    pass

    async def step(self) -> int:
        """One pass; how many items it handled."""
        await self.service.catch_up()
        now = self.service.now()
        if time.monotonic() >= self._leave_at:
            self._leave_at = time.monotonic() + LEAVE_EVERY
            await self._leave_home(now)
        items = await self.outbox.claim(now.timestamp(), self._claim_size(), self.lease)
        if items:
            slots = asyncio.Semaphore(AT_ONCE)

            async def one(item: OutboxItem) -> None:
                async with slots:
                    try:
                        await self._one(item)
                    except Exception:     # the item stays `sending`: its lease runs out and it is tried again
                        log.exception("notification not handled", extra={"fields": {"key": item.key}})
            await asyncio.gather(*(one(item) for item in items))
        return len(items)

    def _claim_size(self) -> int:
        """No more than the rate limit lets go within half a lease: an item still waiting for its
        turn when the lease ran out would be claimed again by another worker, and sent twice by a
        gateway that does not drop repeats."""
        return max(1, min(self.batch, int(self.rate * self.lease / 2)))

    async def _leave_home(self, now: datetime) -> None:
        # The branches held: with QUEUECAST_HOLD_BRANCHES=busy (always, in the notifier process)
        # that is every branch with numbers waiting (hub.service.holding).
        for st in list(self.service.states.values()):
            if any(t.travel_minutes is not None and t.notify and not t.checked_in for t in st.tickets.values()):
                due = self.rules.leave_due(st, views.forecast(st, now), now)
                if due:
                    at = now.timestamp()
                    await self.outbox.add([OutboxItem.owed(msg, at) for msg in due])

    # -- one item ----------------------------------------------------------------------------------

    async def _one(self, item: OutboxItem) -> None:
        if item.attempts > self.max_attempts:      # claimed again and again without an answer recorded
            await self._fail(item, DEAD, "too_many_attempts", f"claimed {item.attempts} times")
            return
        sender = self.senders.get(item.channel)
        if sender is None:
            await self._fail(item, FAILED, NOT_CONFIGURED, f"no {item.channel} sender is set up")
            await self._fallback(item)
            return
        while (wait := self.limits.reserve(item.channel)) > 0:
            await asyncio.sleep(wait)
        # The last look, after the wait for the gateway's turn and on the log as it is now: the
        # number may have been called, served or given back while this item waited.
        st = None
        if item.branch in self.service.centre.branches:
            # Held again if this process let it go: its messages are due whether or not anyone watches.
            await self.service.hold(item.branch)
            await self.service.catch_up(item.branch)
            st = self.service.states.get(item.branch)
        why = "no such branch" if st is None else self.rules.still_true(st, item.message, self.service.now())
        if why is not None:
            await self._fail(item, DROPPED, NO_LONGER_TRUE, why)
            return
        try:
            result = await sender.send(item.message)
        except Exception as exc:         # a bug, not the gateway (senders answer failures as Results)
            log.exception("sender raised", extra={"fields": {"key": item.key}})
            result = Result.retry(SENDER_FAULT, f"{type(exc).__name__}: {exc}")
        await self._record(item, result)

    async def _record(self, item: OutboxItem, result: Result) -> None:
        now = self.service.now().timestamp()
        fields: dict[str, Any] = {"key": item.key, "to": mask_recipient(item.recipient), "attempt": item.attempts}
        if result.outcome is Outcome.SENT:
            await self.outbox.sent(item.key, now, result.provider_id)
            self.counts["sent"] += 1
            if item.channel == "sms":       # billed per part: 160 GSM-7 / 70 UCS-2 characters each
                text = templates.render(item.trigger, item.params, item.lang, ascii=not self.sms_diacritics)
                parts = fields["sms_parts"] = segments.count(text).parts
                self.counts["sms_parts"] += parts
            log.info("notification sent", extra={"fields": fields})
        elif result.outcome is Outcome.RETRY and item.attempts < self.max_attempts:
            wait = backoff.delay(item.attempts, self.rng, result.retry_after)
            await self.outbox.retry(item.key, now, now + wait, result.error or "", result.detail)
            self.counts["retried"] += 1
            log.warning("notification to retry", extra={"fields": {**fields, "error": result.error,
                                                                   "in_s": round(wait, 1)}})
        elif result.outcome is Outcome.RETRY:
            await self._fail(item, DEAD, result.error or "", result.detail)
        else:
            await self._fail(item, FAILED, result.error or "", result.detail)
            if result.error == SUBSCRIPTION_GONE and item.channel == "push":
                await self._unsubscribe(item)
            await self._fallback(item, result.error)

    async def _fail(self, item: OutboxItem, status: str, error: str, detail: str) -> None:
        await self.outbox.fail(item.key, self.service.now().timestamp(), status, error, detail)
        self.counts[status] += 1
        level = logging.INFO if status == DROPPED else logging.WARNING
        log.log(level, f"notification {status}", extra={"fields": {
            "key": item.key, "to": mask_recipient(item.recipient), "error": error,
            "detail": mask_text(detail[:200])}})   # a gateway's words may quote the phone number

    async def _fallback(self, item: OutboxItem, error: str | None = None) -> None:
        """A Zalo message refused for good (or with no Zalo set up) goes by SMS instead."""
        sms = sms_fallback(item.message)
        if sms is not None and "sms" in self.senders:
            if await self.outbox.add([OutboxItem.owed(sms, self.service.now().timestamp())]):
                log.info("zalo fell back to sms", extra={"fields": {"key": item.key, "error": error or NO_ZALO}})

    async def _unsubscribe(self, item: OutboxItem) -> None:
        endpoint = item.recipient.get("endpoint") if isinstance(item.recipient, Mapping) else None
        if not isinstance(endpoint, str):   # an opt-in always has one (hub.domain.commands.opt_in); without
            return                          # it, "unsubscribe" would remove every subscription of the ticket
        try:
            await self.service.unsubscribe(item.branch, item.ticket, "push", endpoint=endpoint)
        except Exception:       # the item is already failed; the next message to it fails the same way
            log.warning("subscription not removed", exc_info=True, extra={"fields": {"key": item.key}})


