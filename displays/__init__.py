"""Displays: the pages people meet (TV board, phone page, branch chooser, kiosk, counter console,
admin), server-rendered with jinja2, live through the feeds, each with a JSON twin."""
from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "static"


def routes() -> list:
    from displays import admin, announce, board, chooser, citizen, counter, kiosk

    pages = [*board.routes, *citizen.routes, *chooser.routes, *kiosk.routes, *counter.routes, *admin.routes,
             *announce.routes]
    return [*pages, Mount("/static", app=StaticFiles(directory=STATIC), name="static")]
