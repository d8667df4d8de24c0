"""Recorded ETA predictions: what the hub published, kept so that real days can be scored later.

Each hub process publishes its estimator's predictions on the schedule of `queuecast eta replay`
(hub.predictions) and hands them to the store as lines of the replay's format (docs/trace.md#recorded-predictions):
`{"t", "ticket", "p10", "p50", "p90"}`. Every process of a deployment publishes the same points,
so a point, the pair (instant `t`, `ticket`) of a branch, is kept once: the first line given for
it wins and later ones change nothing. Lines are filed under the service day of their ticket, so
the predictions of day D include the ones made the evening before for D's online numbers, as the
export of day D includes those numbers (`queuecast export-trace --date D --predictions FILE`).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

FIELDS = ("t", "ticket", "p10", "p50", "p90")


class Predictions(Protocol):
    async def add(self, branch: str, day: date, lines: list[dict[str, Any]]) -> None:
        """Keep `lines` (replay format) of the branch's service `day`, each unless its point
        (t, ticket) is kept already; all of them in one write."""

    async def of_day(self, branch: str, day: date) -> list[dict[str, Any]]:
        """The lines kept for that branch and day, ordered by `t`, then by when they were added."""

    async def prune(self, branch: str, before: date) -> int:
        """Forget the branch's lines of service days before `before`; returns how many days went.
        A busy branch records some 20,000 lines a day: they are kept to be scored, not forever."""


def instant(line: dict[str, Any]) -> float:
    """The line's `t` as unix seconds, after checking the line: two spellings of one instant
    (another UTC offset) are one point, and the order of lines is the order of instants."""
    missing = [f for f in FIELDS if f not in line]
    if missing:
        raise ValueError(f"prediction line without {', '.join(missing)}: {line!r}")
    if not isinstance(line["ticket"], str) or not line["ticket"]:
        raise ValueError(f"prediction line: ticket must be a non-empty string: {line!r}")
    t = datetime.fromisoformat(line["t"])
    if t.tzinfo is None:
        raise ValueError(f"prediction line: t has no UTC offset: {line!r}")
    return t.timestamp()


def point_key(line: dict[str, Any]) -> str:
    """The point of a line as one string (the Redis store's set member)."""
    return f"{instant(line)!r} {line['ticket']}"
