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
# A range is narrowed by at most this much of its spread: the scores of one night all share that
# night's surprises, so a few calm nights are little evidence that the next one will be calm.
MAX_NARROW = 0.15

Prediction = tuple[datetime, float, float, float, float]    # (when, p10, p50, p90, lead)
# An outcome in units of its prediction's spread: (below p10, above p90, off p50, weight).
Score = tuple[float, float, float, int]


def _band(p50: float, lead: float) -> int:
    """Horizon band of a prediction, counted from when the counters open: a forecast made the
    evening before is uncertain about the morning, not about the night. Before-opening forecasts
    have bands of their own: their errors are of another kind."""
    offset = len(BANDS) + 1 if lead > 0 else 0
    for i, edge in enumerate(BANDS):
        if p50 - lead < edge:
            return offset + i
    return offset + len(BANDS)


def _quantile(pairs: list[tuple[float, float]], q: float) -> float:
    """Weighted quantile of (value, weight) pairs."""
    s = sorted(pairs)
    total = sum(w for _, w in s)
    acc = 0.0
    for x, w in s:
        acc += w
        if acc >= q * total:
            return x
    return s[-1][0]


def _spreads(p10: float, p50: float, p90: float, lead: float) -> tuple[float, float]:
    room = FLOOR + 0.05 * (p50 - lead)
    return max(p50 - p10, room), max(p90 - p50, room)


class Calibration:
    def __init__(self) -> None:
        self.open: dict[str, list[Prediction]] = {}
        self.scores: list[deque[Score]] = [deque(maxlen=KEEP) for _ in range(2 * (len(BANDS) + 1))]
        self._cache: dict[int, tuple[float, float, float] | None] = {}

    def remember(self, ticket: str, t: datetime, raw: tuple[float, float, float], lead: float) -> None:
        """Keep a published prediction until its outcome is known."""
        self.open.setdefault(ticket, []).append((t, *raw, lead))

    def outcome(self, ticket: str, called: datetime | None) -> None:
        """The number was called at `called` (None: it never will be, e.g. given back).

        It is scored once per horizon band, on the middle one of its predictions in that band and
        weighted by their number: a number forecast every 5 minutes through the night is one
        lesson that counts 150 times, not 150 lessons crowding out every other number's."""
        by_band: dict[int, list[Prediction]] = {}
        for p in self.open.pop(ticket, ()):
            by_band.setdefault(_band(p[2], p[4]), []).append(p)
        if called is None:
            return
        for band, preds in by_band.items():
            t, p10, p50, p90, lead = preds[len(preds) // 2]
            y = (called - t).total_seconds() / 60
            lo, hi = _spreads(p10, p50, p90, lead)
            self.scores[band].append(((p10 - y) / lo, (y - p90) / hi, (y - p50) / ((lo + hi) / 2), len(preds)))
            self._cache.clear()

    def _corrections(self, band: int) -> tuple[float, float, float] | None:
        if band not in self._cache:
            scores = list(self.scores[band])
            if len(scores) < MIN_SCORES:
                scores = [s for b in self.scores for s in b]    # little data yet: pool every band
            if len(scores) < MIN_SCORES:
                self._cache[band] = None
            else:
                self._cache[band] = (max(_quantile([(s[0], s[3]) for s in scores], 0.9), -MAX_NARROW),
                                     max(_quantile([(s[1], s[3]) for s in scores], 0.9), -MAX_NARROW),
                                     MEDIAN_SHIFT * _quantile([(s[2], s[3]) for s in scores], 0.5))
        return self._cache[band]

    def adjust(self, p10: float, p50: float, p90: float, lead: float) -> tuple[float, float, float]:
        """Corrected quantiles (never negative)."""
        fix = self._corrections(_band(p50, lead))
        if fix is None:
            return p10, p50, p90
        lo_fix, hi_fix, mid_fix = fix
        lo, hi = _spreads(p10, p50, p90, lead)
        m = max(p50 + mid_fix * (lo + hi) / 2, 0.0)
        a = max(p10 - lo_fix * lo, 0.0)
        b = p90 + hi_fix * hi
        return min(a, m), m, max(b, m)
