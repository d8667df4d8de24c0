"""Keeping the p10–p90 range honest: conformal corrections learned from the estimator's own past.

The simulation's spread only covers the randomness it models; whatever it gets wrong (a staff
member slower today, a closure nobody planned) shows up as outcomes outside the range. Every
prediction that was published is remembered until its number is called; then the outcome is
scored against it, in units of the prediction's own spread, per horizon band. A new prediction is
widened (or narrowed) by the 90th percentile of the recent scores on each side, and its median
moved by their median, so that about 10% of outcomes fall below p10 and 10% above p90 again
(split conformal quantile regression, one-sided per tail). Causal by construction: an outcome is
used only once it has happened.
"""
from __future__ import annotations

from collections import deque
from datetime import datetime

BANDS = (20.0, 60.0, 150.0, 360.0)   # horizon bands (minutes of p50): from "any minute" to "tomorrow"
MIN_SCORES = 40                    # fewer scores than this in a band: use all bands together
KEEP = 1500                        # scores kept per band
FLOOR = 1.0                        # minutes: a spread of zero still has this much room
MEDIAN_SHIFT = 0.8                 # of the median score, applied to p50 (a little shrinkage)


def _band(p50: float) -> int:
    for i, edge in enumerate(BANDS):
        if p50 < edge:
            return i
    return len(BANDS)


def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    i = int(pos)
    j = min(i + 1, len(s) - 1)
    return s[i] + (s[j] - s[i]) * (pos - i)


def _spreads(p10: float, p50: float, p90: float) -> tuple[float, float]:
    room = FLOOR + 0.05 * p50
    return max(p50 - p10, room), max(p90 - p50, room)


class Calibration:
    def __init__(self) -> None:
        self.open: dict[str, list[tuple[datetime, float, float, float]]] = {}
        self.scores = [deque(maxlen=KEEP) for _ in range(len(BANDS) + 1)]
        self._cache: dict[int, tuple[float, float, float] | None] = {}

    def remember(self, ticket: str, t: datetime, raw: tuple[float, float, float]) -> None:
        self.open.setdefault(ticket, []).append((t, *raw))

    def outcome(self, ticket: str, called: datetime | None) -> None:
        """The number was called at `called` (None: it never will be, e.g. given back)."""
        for t, p10, p50, p90 in self.open.pop(ticket, ()):
            if called is None:
                continue
            y = (called - t).total_seconds() / 60
            lo, hi = _spreads(p10, p50, p90)
            self.scores[_band(p50)].append(((p10 - y) / lo, (y - p90) / hi, (y - p50) / ((lo + hi) / 2)))
            self._cache.clear()

    def _corrections(self, band: int) -> tuple[float, float, float] | None:
        if band not in self._cache:
            scores = list(self.scores[band])
            if len(scores) < MIN_SCORES:
                scores = [s for b in self.scores for s in b]
            if len(scores) < MIN_SCORES:
                self._cache[band] = None
            else:
                self._cache[band] = (_quantile([s[0] for s in scores], 0.9),
                                     _quantile([s[1] for s in scores], 0.9),
                                     MEDIAN_SHIFT * _quantile([s[2] for s in scores], 0.5))
        return self._cache[band]

    def adjust(self, p10: float, p50: float, p90: float) -> tuple[float, float, float]:
        fix = self._corrections(_band(p50))
        if fix is None:
            return p10, p50, p90
        lo_fix, hi_fix, mid_fix = fix
        lo, hi = _spreads(p10, p50, p90)
        m = max(p50 + mid_fix * (lo + hi) / 2, 0.0)
        a = max(p10 - lo_fix * lo, 0.0)
        b = p90 + hi_fix * hi
        return min(a, m), m, max(b, m)
