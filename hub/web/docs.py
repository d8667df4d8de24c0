"""/openapi.json and a readable API page rendered from the same document."""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from hub.web import openapi

_env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                   autoescape=select_autoescape(["html"]))


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(openapi.document(request.app.state.centre, request.app.state.settings))


async def api_page(request: Request) -> HTMLResponse:
    doc = openapi.document(request.app.state.centre, request.app.state.settings)
    ops = [(path, method.upper(), op) for path, item in doc["paths"].items() for method, op in item.items()]
    return HTMLResponse(_env.get_template("api.html").render(doc=doc, ops=ops))


async def index(request: Request) -> HTMLResponse:
    """The hub's front page: every branch at a glance (its JSON twin is /api/branches)."""
    service = request.app.state.service
    return HTMLResponse(_env.get_template("index.html").render(
        centre=request.app.state.centre, branches=await service.branches_view(),
        now=f"{service.now():%H:%M %d/%m/%Y}"))


routes = [Route("/", index, methods=["GET"]), Route("/openapi.json", openapi_json, methods=["GET"]), Route("/api", api_page, methods=["GET"])]
