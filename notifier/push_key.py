"""Web push, the browser's half: the VAPID public key a page subscribes with (`GET /api/push/key`).

The key pair outlives restarts (Settings.resolve_vapid_key keeps it beside the SQLite file or takes
QUEUECAST_VAPID_PRIVATE_KEY): a browser subscribed with the public key, and the push service refuses
messages signed with any other. A shared (redis://) deployment without the variable has no key;
push is then simply not offered (404 push_unavailable, no button on the page) and SMS still works.
"""
from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.domain.errors import not_found
from hub.settings import SettingsError

log = logging.getLogger("queuecast.push")


def public_key(app: Starlette) -> str | None:
    """The applicationServerKey (base64url, uncompressed P-256 point), worked out once per process."""
    key: str | None
    if hasattr(app.state, "vapid_public_key"):
        key = app.state.vapid_public_key
    else:
        from notifier.senders.webpush import vapid_public_key  # pywebpush and friends: only when used
        try:
            key = vapid_public_key(app.state.settings.resolve_vapid_key())
        except SettingsError as e:
            log.warning("web push is off: %s", e)
            key = None
        app.state.vapid_public_key = key
    return key


async def push_key(request: Request) -> JSONResponse:
    key = public_key(request.app)
    if key is None:
        raise not_found("push_unavailable", "Web push is not configured on this hub (QUEUECAST_VAPID_PRIVATE_KEY).",
                        "Hệ thống chưa bật thông báo đẩy.")
    return JSONResponse({"key": key}, headers={"Cache-Control": "no-cache"})


routes = [Route("/api/push/key", push_key, methods=["GET"])]
