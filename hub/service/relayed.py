"""A forecast another hub process sent with its event, decoded only when something reads it.

Its per-number part (`raw`, `tickets`, `new_number`: most of the message, a float per quantile of
every waiting number) comes after the event's line (hub.service.pipeline) and is decoded on first
use: a process with no watcher and no prediction point due before the next event never reads it
(a call-next's forecast, mostly), and decoding it was most of what following a branch cost (issue 16).
Its time, lead and quiet period come with the event, for the estimator to keep it by.
"""
from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from hub.domain.eta.estimator import Forecast

LAZY = ("raw", "tickets", "new_number")


def split(forecast: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """What goes with the event (small), and the rest, encoded, to be decoded when read."""
    head = {k: v for k, v in forecast.items() if k not in LAZY}
    body = json.dumps({k: forecast[k] for k in LAZY}, ensure_ascii=False, separators=(",", ":")).encode()
    return head, body


class RelayedForecast(Forecast):
    """A Forecast whose `raw`, `tickets` and `new_number` are decoded from `body` when first read."""

    def __init__(self, head: dict[str, Any], body: bytes):
        quiet = head.get("quiet_until")
        self.at = datetime.fromisoformat(head["at"])
        self.quiet_until = datetime.fromisoformat(quiet) if quiet else None
        self.lead = float(head["lead"])
        self._body = body

    def __getattr__(self, name: str) -> Any:
        # Only attributes not set yet come here: the three decoded on first read.
        if name not in LAZY or "_body" not in self.__dict__:
            raise AttributeError(name)
        body = self.__dict__.pop("_body")
        full = Forecast.from_dict({**json.loads(body), "at": self.at.isoformat(), "lead": self.lead})
        self.raw, self.tickets, self.new_number = full.raw, full.tickets, full.new_number
        return getattr(self, name)

    def __eq__(self, other: object) -> bool:
        # Equal to the Forecast it was made from (the dataclass's own __eq__ wants the same class).
        if not isinstance(other, Forecast):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Forecast))

    __hash__ = None     # type: ignore[assignment]  # as the dataclass's: mutable, compared by value
