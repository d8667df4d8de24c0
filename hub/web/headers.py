"""Security headers on every HTTP answer (pages, their JSON twins, the API, static files, SSE), as
pure ASGI: the response is not buffered, so SSE streams flow as before, and WebSockets pass untouched.

- Content-Security-Policy: scripts only from the hub's own origin (the pages keep their code in
  /static; their `<script type="application/json">` data islands are not executed, so the policy
  does not apply to them); no plugins; no <base> rewriting relative URLs; never framed by another
  site (the admin and counter consoles act with a staff token: a framing page could make staff
  click). The printable kiosk ticket is framed by the kiosk page itself, so it allows its own origin.
- X-Content-Type-Options: nosniff, so no answer is ever run as something it was not served as.
- Referrer-Policy: no-referrer, because tracking links carry the ticket token in their path.
- Cache-Control: no-store on the consoles, which show staff-only figures and names.
"""
from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
CSP_FRAMED_BY_SELF = "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
FRAMED_BY_SELF = re.compile(r"/kiosk/[^/]+/ticket")          # the kiosk page shows the ticket in an iframe
CONSOLES = ("/admin/", "/counter/")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = CSP_FRAMED_BY_SELF if FRAMED_BY_SELF.fullmatch(path) else CSP
        console = path.startswith(CONSOLES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                # A handler that chose its own value keeps it (setdefault); consoles are never stored.
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if console:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
