"""Web push connects only where QUEUECAST_PUSH_HOSTS allows, checked again at send time after DNS
(issue 14, point 4; notifier/senders/destinations.py). The proof that nothing was contacted is a
real listener on 127.0.0.1 that counts the TCP connections it accepts; each test also shows the
same listener IS reached when the settings allow it, so a zero means refused, not unreachable."""
from __future__ import annotations

import asyncio
import random
from contextlib import asynccontextmanager
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from hub.domain.notifications.message import Message
from hub.domain.push import PushDestinations
from hub.store.outbox import FAILED, QUEUED
from notifier.channels import open_senders
from notifier.senders.destinations import ForbiddenDestination, GuardedConnector, forbidden, push_session
from notifier.senders.protocol import FORBIDDEN_DESTINATION, Outcome
from notifier.senders.webpush import WebPushSender
from notifier.worker import Worker

from conftest import push_subscription, running_app
from waiting import deadline, within

pytestmark = pytest.mark.anyio

VAPID_KEY = "fqixSeLZA6J7LS-o5u1R-6HcMNzuBbu6kx7xZM_AUEM"
PARAMS = {"number": "2001", "service": "Hộ tịch", "branch": "Chi nhánh số 1", "counter": "5", "ahead": 0,
          "url": "http://127.0.0.1:8000/t/abc"}
LOCAL = PushDestinations(("127.0.0.1",), allow_private=True)


@asynccontextmanager
async def counting_listener():
    """A TCP listener on 127.0.0.1 that accepts, counts and hangs up: `.connections`, `.port`."""
    class Listener:
        connections = 0
        port = 0

    listener = Listener()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        writer.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


def push_message(subscription: dict) -> Message:
    return Message(branch="1", ticket="20260519-2001", trigger="ahead", channel="push", recipient=subscription,
                   params=PARAMS)


def sender(session: aiohttp.ClientSession) -> WebPushSender:
    return WebPushSender(session, vapid_private_key=VAPID_KEY, subject="mailto:hotro@hanoi.gov.vn",
                         timeout=deadline(30))


# -- the case, through the app, its outbox and the worker -----------------------------------

async def opted_in(client, endpoint: str) -> tuple[str, str]:
    """A number at branch 1 whose holder subscribed `endpoint`: (its token, the key of the push owed)."""
    r = await client.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})
    assert r.status_code == 201, r.text
    token, ticket = r.json()["token"], r.json()["ticket"]
    r = await client.post(f"/api/tickets/{token}/notifications",
                          json={"channel": "push", "subscription": push_subscription(endpoint)})
    assert r.status_code == 200, r.text
    return token, f"1/{ticket}:ahead:push"          # no one ahead: "you are next" is owed at once


async def test_a_subscription_stored_before_the_setting_narrowed_gets_no_connection(settings, clock):
    """Stored while a lab allowed 127.0.0.1; the worker now runs with the defaults. The push is a
    permanent forbidden_destination, no TCP connection is made, and the subscription is kept."""
    lab = replace(settings, push_hosts="127.0.0.1", push_allow_private="on")
    async with counting_listener() as listener, running_app(lab, clock) as client:
        endpoint = f"https://127.0.0.1:{listener.port}/push/abc"
        # With the defaults the same subscription is refused at the door, and nothing is appended.
        async with running_app(replace(settings, database=settings.database.replace(".db", "-2.db")), clock) as strict:
            r = await strict.post("/api/branches/1/tickets", json={"service": "dat-dai", "channel": "kiosk"})
            before = await strict.app.state.storage.log.events_since("1", 0)
            r = await strict.post(f"/api/tickets/{r.json()['token']}/notifications",
                                  json={"channel": "push", "subscription": push_subscription(endpoint)})
            assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_push_service"
            assert await strict.app.state.storage.log.events_since("1", 0) == before

        token, key = await opted_in(client, endpoint)
        service, outbox = client.app.state.service, client.app.state.outbox
        async with open_senders(settings) as senders:              # the defaults
            worker = Worker(service, outbox, senders, rng=random.Random(7))
            assert await within(worker.step(), "a worker step") == 1
        item = await outbox.get(key)
        assert (item.status, item.error) == (FAILED, FORBIDDEN_DESTINATION), item
        assert listener.connections == 0
        # Kept: the refusal is about our settings, not the holder's browser (notifier/senders/webpush.py).
        assert (await client.get(f"/api/tickets/{token}")).json()["notifications"] == {"push": {"ahead": None}}

        # The control: with the lab's settings the same worker does connect to it.
        r = await client.post("/api/outbox/redrive", json={"key": key},
                              headers={"Authorization": f"Bearer {client.app.state.tokens.staff('1')}"})
        assert r.status_code == 200, r.text
        async with open_senders(lab) as senders:
            worker = Worker(service, outbox, senders, rng=random.Random(7))
            await within(worker.step(), "a worker step")
        assert listener.connections >= 1
        assert (await outbox.get(key)).status == QUEUED        # the listener hung up: worth a retry


async def test_an_allowed_name_that_resolves_to_loopback_gets_no_connection(settings, clock):
    """DNS rebinding's shape with real DNS: "localhost" is on the list (the opt-in cannot know where a
    name goes), resolves to 127.0.0.1 at send time, and private addresses are not allowed."""
    named = replace(settings, push_hosts="localhost")
    async with counting_listener() as listener, running_app(named, clock) as client:
        token, key = await opted_in(client, f"https://localhost:{listener.port}/push/abc")
        async with open_senders(named) as senders:
            worker = Worker(client.app.state.service, client.app.state.outbox, senders, rng=random.Random(7))
            await within(worker.step(), "a worker step")
        item = await client.app.state.outbox.get(key)
        assert (item.status, item.error) == (FAILED, FORBIDDEN_DESTINATION) and "resolves only to" in item.detail
        assert listener.connections == 0


# -- the guard itself -------------------------------------------------------------------------------

async def test_a_redirect_off_the_list_is_not_followed():
    """A push service (allowed) that redirects elsewhere: the second hop is checked like the first."""
    async with counting_listener() as elsewhere:
        hits = []

        async def redirect(request: web.Request) -> web.Response:
            hits.append(request.path)
            raise web.HTTPTemporaryRedirect(f"http://localhost:{elsewhere.port}/metadata")

        app = web.Application()
        app.router.add_post("/push/{sid}", redirect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            async with push_session(LOCAL) as session:
                result = await sender(session).send(push_message(push_subscription(f"http://127.0.0.1:{port}/push/x")))
        finally:
            await runner.cleanup()
    assert (result.outcome, result.error) == (Outcome.PERMANENT, FORBIDDEN_DESTINATION), result
    assert hits == ["/push/x"] and elsewhere.connections == 0


async def test_the_connector_refuses_an_address_even_without_the_sessions_other_checks():
    """The last gate: an IP literal never reaches a resolver, so the socket factory judges it."""
    async with counting_listener() as listener:
        async with aiohttp.ClientSession(connector=GuardedConnector(PushDestinations())) as bare:
            with pytest.raises(aiohttp.ClientError) as e:
                await bare.post(f"https://127.0.0.1:{listener.port}/x", data=b"x")
        assert isinstance(forbidden(e.value), ForbiddenDestination)
        assert listener.connections == 0
        async with aiohttp.ClientSession(connector=GuardedConnector(LOCAL)) as bare:      # the control
            with pytest.raises(aiohttp.ClientError) as e:
                await bare.post(f"https://127.0.0.1:{listener.port}/x", data=b"x")
        assert forbidden(e.value) is None and listener.connections == 1


async def test_web_push_refuses_a_session_without_the_guard():
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(TypeError, match="push_session"):
            sender(plain)
