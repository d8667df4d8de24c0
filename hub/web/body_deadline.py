"""A deadline for a request's body: a client that trickles its body (or sends part of it and then
nothing) gets 408 in the contract's shape once QUEUECAST_REQUEST_TIMEOUT seconds have passed since
its headers arrived, instead of holding a handler and a connection for as long as it likes.

Pure ASGI, so it works for every handler that reads a body (request.json(), request.form(),
hub.web.decode.json_body): only the `receive` calls made before the body is complete are timed; a
streaming response's own wait for the client to hang up (SSE) is never cut short. The headers'
own deadline is the server's (hub.connections), since nothing reaches the app before them.
"""
from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyDeadline:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        end = asyncio.get_running_loop().time() + self.seconds
        body_done = answered = False

        async def send_noting_start(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        async def receive_by_deadline() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(end):
                    message = await receive()
            except TimeoutError:
                if answered:        # the answer is under way: to the handler the client is just gone
                    return {"type": "http.disconnect"}
                # Connection: close, so the rest of the body is never read as the next request.
                raise HTTPException(408, f"The request body did not arrive within {self.seconds:g} s.",
                                    headers={"Connection": "close"}) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, receive_by_deadline, send_noting_start)
