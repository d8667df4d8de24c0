"""The Redis append script, sent twice: what a client library does after a lost reply (redis-py
retries a pipeline on a connection error; a Cluster client re-sends after MOVED). The second run
must answer 'ok' for the append it already made, never 'conflict', which would have the service
decide the command again (a second number called under one acknowledgement)."""
from __future__ import annotations

import pytest

from hub.store import open_store
from hub.store.redis_keys import dumps

pytestmark = pytest.mark.anyio


async def test_the_same_attempt_sent_again_is_answered_as_done_and_written_once(redis_url):
    async with open_store(redis_url) as store:
        log, k = store.log, store.log._k
        branch = "1"
        event = {"type": "counter.opened", "counter": "1", "services": ["ho-tich"], "seq": 1,
                 "t": "2026-05-19T09:00:00+07:00", "branch": branch, "day": "2026-05-19"}
        keys = [k.branch(branch, "head"), k.branch(branch, "log"), k.branch(branch, "idem"),
                k.branch(branch, "day:2026-05-19"), *k.outbox(branch)]

        def attempt(token: str) -> list:
            return [0, token, "", "", 1, dumps(event)]

        first = await log._append(keys=keys, args=attempt("a1"))
        again = await log._append(keys=keys, args=attempt("a1"))             # the reply was lost
        other = await log._append(keys=keys, args=attempt("b2"))             # someone else's, stale
        assert [list(map(str, r)) for r in (first, again, other)] == [["ok", "1"], ["ok", "1"], ["conflict", "1"]]
        assert await log.events_since(branch, 0) == [event]
        assert (await log.head(branch)).seq == 1
