"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus."""
from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROBE_TIMEOUT = 2.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the store and the broker answer; says which one does not."""
    probes = getattr(request.app.state, "probes", None)
    if probes is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    checks = {}
    for name, ping in probes.items():
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await ping()
            checks[name] = "ok"
        except Exception as e:          # a probe reports, it does not fail
            checks[name] = f"down: {type(e).__name__}: {e}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", **checks}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"]),
          Route("/metrics", metrics, methods=["GET"])]
