"""The pages' routes, and their static files, for the composition root (hub.app) to mount."""
from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from displays import admin, announce, board, chooser, citizen, counter, kiosk
from displays.render import STATIC


def routes() -> list[BaseRoute]:
    pages = [*board.routes, *citizen.routes, *chooser.routes, *kiosk.routes, *counter.routes, *admin.routes,
             *announce.routes]
    return [*pages, Mount("/static", app=StaticFiles(directory=STATIC), name="static")]
