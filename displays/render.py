"""Rendering a page: every page is a view model (a dict) rendered by a template, and the same
dict is the page's JSON twin (`?format=json`, or `Accept: application/json`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from displays import i18n

STATIC = Path(__file__).resolve().parents[1] / "static"     # served at /static (displays.routes)

env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                  autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def wants_json(request: Request) -> bool:
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return accept.split(",")[0].strip().startswith("application/json")


def page(request: Request, template: str, view: dict[str, Any], *, status: int = 200,
         words: dict[str, tuple[str, str]] | None = None, **context: Any) -> Response:
    """`view` as JSON (the twin) or rendered by `template` with the page's own `words` and `context`."""
    if wants_json(request):
        return JSONResponse(view, status_code=status)
    language = i18n.lang(request)
    other = "en" if language == "vi" else "vi"
    # Keeps ?day=, ?fields=, ... but never a token: a link is copied, logged and sent as Referer.
    switch = request.url.remove_query_params("token").include_query_params(lang=other)
    html = env.get_template(template).render(view=view, lang=language, w=i18n.words(language, words),
                                             path=request.url.path, query=request.url.query,
                                             lang_switch_url=f"{switch.path}?{switch.query}", **context)
    response = HTMLResponse(html, status_code=status)
    if "lang" in request.query_params and language == request.query_params["lang"]:
        response.set_cookie(i18n.COOKIE, language, max_age=365 * 86400, samesite="lax")
    return response
