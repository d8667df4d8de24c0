"""The senders of one notifier process, built from the settings: the gateways share one aiohttp
session; web push has a guarded one of its own (it goes where holders say, within QUEUECAST_PUSH_HOSTS).

Channels and what carries them:
- sms: the gateway of QUEUECAST_SMS_PROVIDER (eSMS, Twilio, or the log when none is set);
- push: web push signed with the hub's VAPID key (the one the browsers subscribed with);
- zalo: ZNS, when an Official Account token and an approved template are set.
A channel that cannot be built here (no Zalo account set up, no VAPID key on a shared database) has
no sender: its messages fail as `not_configured` dead letters, re-drivable once the settings are fixed.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from hub.settings import Settings, SettingsError
from notifier.reports import callback_url
from notifier.senders.destinations import push_session
from notifier.senders.esms import EsmsSender
from notifier.senders.log import LogSender
from notifier.senders.protocol import Sender
from notifier.senders.twilio import TwilioSender
from notifier.senders.webpush import WebPushSender
from notifier.senders.zalo import ZaloSender

log = logging.getLogger("queuecast.notifier")

# Connections kept open per gateway host: enough for the worker's batch, few enough to be polite.
CONNECTIONS_PER_HOST = 20


def sms_sender(settings: Settings, session: aiohttp.ClientSession) -> Sender:
    if settings.sms_provider == "esms":
        return EsmsSender(session, base_url=settings.sms_base_url, api_key=settings.sms_key,
                          secret_key=settings.sms_secret, brandname=settings.sms_sender,
                          unicode=settings.sms_diacritics, callback_url=callback_url(settings.public_url, "esms"))
    if settings.sms_provider == "twilio":
        return TwilioSender(session, base_url=settings.sms_base_url, account_sid=settings.sms_key,
                            auth_token=settings.sms_secret, sender=settings.sms_sender,
                            unicode=settings.sms_diacritics,
                            status_callback=callback_url(settings.public_url, "twilio"))
    return LogSender()


@asynccontextmanager
async def open_senders(settings: Settings) -> AsyncIterator[dict[str, Sender]]:
    connector = aiohttp.TCPConnector(limit_per_host=CONNECTIONS_PER_HOST)
    # Web push has a session of its own, guarded: its destinations come from holders, the gateways'
    # from the operator (notifier/senders/destinations.py).
    async with aiohttp.ClientSession(connector=connector) as session, \
            push_session(settings.push_destinations) as pushing:
        senders: dict[str, Sender] = {"sms": sms_sender(settings, session)}
        try:
            senders["push"] = WebPushSender(pushing, vapid_private_key=settings.resolve_vapid_key(),
                                            subject=settings.vapid_subject)
        except SettingsError as e:
            log.warning("no web push", extra={"fields": {"why": str(e)}})
        if settings.zalo_token and settings.zalo_template:
            senders["zalo"] = ZaloSender(session, base_url=settings.zalo_base_url, access_token=settings.zalo_token,
                                         template_id=settings.zalo_template)
        yield senders
