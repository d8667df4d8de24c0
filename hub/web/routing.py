"""One route per path, whatever the modules that serve it.

Starlette answers a request whose path matches a route but not its method with that route's 405,
and its `Allow` names that route's methods only. Two routes for one path (GET and DELETE of
/api/tickets/{token}, from one module; GET and POST of /api/branches/{b}/kiosks, from another) made
`OPTIONS /api/tickets/{token}` answer `Allow: HEAD, GET`: DELETE missing, so a client (or a CORS
preflight, or a fuzzer) was told wrong. Here the handlers of one path become one route that
dispatches on the method, so a 405 names every method the path takes (RFC 9110 15.5.6).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

Handler = Callable[[Request], Awaitable[Response]]


def by_method(handlers: dict[str, Handler]) -> Handler:
    """One endpoint for several methods; HEAD is served by GET's handler, as Starlette does."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    endpoint.__name__ = "_or_".join(h.__name__ for h in handlers.values())
    return endpoint


def one_per_path(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """`routes` with the plain HTTP routes of one path merged into one, where the first of them was.
    WebSocket routes and mounts are kept as they are (a WebSocket route never answers HTTP)."""
    handlers: dict[str, dict[str, Handler]] = {}
    for route in routes:
        if type(route) is Route:
            for method in sorted((route.methods or set()) - {"HEAD"}):
                if method in handlers.setdefault(route.path, {}):
                    raise ValueError(f"{method} {route.path} is served twice")
                handlers[route.path][method] = route.endpoint
    shared = {path: methods for path, methods in handlers.items() if len(methods) > 1}
    out: list[BaseRoute] = []
    for route in routes:
        if type(route) is not Route or route.path not in shared:
            out.append(route)
        elif route.path not in {r.path for r in out if type(r) is Route}:
            out.append(Route(route.path, by_method(shared[route.path]), methods=list(shared[route.path])))
    return out
