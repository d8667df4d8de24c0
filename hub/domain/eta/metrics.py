"""Scoring predictions of the first call against what happened (docs/eta.md).

A `Sample` is one prediction point of the prediction schedule (docs/trace.md) for one number, with every
predictor's quantiles at that point and the number's real first call. Accuracy is scored per
point; "leave home" per number, replaying what a citizen who watches their number's predictions
would have done. Pure: samples in, figures out.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median

from hub.domain.eta.leave_home import LEAVE_MARGIN_MINUTES as LEAVE_MARGIN  # the hub's own margin

QUANTILES = (0.1, 0.5, 0.9)
BANDS = ((0, 15), (15, 30), (30, 60), (60, 120), (120, float("inf")))    # actual wait, minutes
STEP = 5.0                  # minutes between two prediction points: a leave-by due before the next one is acted on now


@dataclass(frozen=True, slots=True)
class Sample:
    t: float                                    # minutes (since the epoch) of the prediction
    ticket: str
    issued: float                               # minutes, as `t`
    called: float | None                        # the first call; None: never called
    online: bool                                # an online number: its holder may be at home
    service_hours: bool                         # False: the evening before or before opening
    day: int                                    # the trace's service day (0: the warm-up day)
    q: dict[str, tuple[float, float, float]]    # predictor → (p10, p50, p90)

    @property
    def y(self) -> float | None:
        return None if self.called is None else self.called - self.t


@dataclass(frozen=True)
class Scores:
    n: int                          # points scored
    never_called: int               # points left out: their number was never called
    mae: float
    p90_abs: float
    bias: float                     # mean of predicted − actual: > 0 predicts too long a wait
    coverage: float | None          # share of outcomes within [p10, p90]; None for a point predictor
    pinball: float                  # mean over p10, p50, p90
    mae_by_band: tuple[tuple[int, float | None], ...]      # per band of BANDS: (n, MAE)


def quantile(xs: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    i = int(pos)
    j = min(i + 1, len(s) - 1)
    return s[i] + (s[j] - s[i]) * (pos - i)


def pinball(y: float, pred: float, q: float) -> float:
    d = y - pred
    return q * d if d >= 0 else (q - 1) * d


def band_of(y: float) -> int:
    for i, (lo, hi) in enumerate(BANDS):
        if lo <= y < hi:
            return i
    return len(BANDS) - 1


def is_point(samples: list[Sample], predictor: str) -> bool:
    """A point predictor publishes p10 = p50 = p90 everywhere: its coverage means nothing."""
    return all(s.q[predictor][0] == s.q[predictor][2] for s in samples)


def scores(samples: Iterable[Sample], predictor: str) -> Scores | None:
    samples = list(samples)
    scored = [s for s in samples if s.called is not None]
    if not scored:
        return None
    errs, abs_errs, pin, inside = [], [], 0.0, 0
    bands: list[list[float]] = [[] for _ in BANDS]
    for s in scored:
        y = s.y
        assert y is not None                    # `scored` are the called ones
        p10, p50, p90 = s.q[predictor]
        e = p50 - y
        errs.append(e)
        abs_errs.append(abs(e))
        bands[band_of(y)].append(abs(e))
        pin += sum(pinball(y, p, q) for p, q in zip((p10, p50, p90), QUANTILES)) / len(QUANTILES)
        inside += p10 <= y <= p90
    n = len(scored)
    return Scores(n=n, never_called=len(samples) - n, mae=sum(abs_errs) / n, p90_abs=quantile(abs_errs, 0.9),
                  bias=sum(errs) / n, coverage=None if is_point(scored, predictor) else inside / n,
                  pinball=pin / n,
                  mae_by_band=tuple((len(b), sum(b) / len(b) if b else None) for b in bands))


@dataclass(frozen=True)
class LeaveHome:
    n: int                      # numbers followed
    too_short: int              # left out: called sooner after issue than travel + margin
    never_called: int           # left out: never called
    late: float                 # share called before the citizen arrived
    idle_mean: float | None     # minutes at the branch before the call, of those on time
    idle_median: float | None


def departure(points: list[Sample], predictor: str, travel: float, margin: float) -> float | None:
    """When the citizen leaves home: at the first point whose leave-by (t + low − travel − margin)
    falls before the next point, at that leave-by or at once if it has passed; None if the number
    is called first. `low` is p10, which is p50 for a point predictor."""
    for s in points:
        if s.called is not None and s.t >= s.called:
            break
        leave_by = s.t + s.q[predictor][0] - travel - margin
        if leave_by <= s.t + STEP:
            return max(s.t, leave_by)
    return None


def by_ticket(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in samples:
        out.setdefault(s.ticket, []).append(s)
    for pts in out.values():
        pts.sort(key=lambda s: s.t)
    return out


def leave_home(tickets: dict[str, list[Sample]], predictor: str, travel: float, margin: float = LEAVE_MARGIN,
               exclude_under: float | None = None) -> LeaveHome | None:
    """The citizens of `tickets` (number → its points in time order) leaving home by the
    predictor. Numbers called within `exclude_under` minutes of issue (default travel + margin)
    are left out: nobody at home could have made it, whatever the prediction."""
    cutoff = travel + margin if exclude_under is None else exclude_under
    followed = too_short = never = late = 0
    idle: list[float] = []
    for pts in tickets.values():
        first = pts[0]
        if first.called is None:
            never += 1
            continue
        if first.called - first.issued < cutoff:
            too_short += 1
            continue
        followed += 1
        left = departure(pts, predictor, travel, margin)
        if left is None or first.called < left + travel:
            late += 1
        else:
            idle.append(first.called - (left + travel))
    if not followed:
        return None
    return LeaveHome(n=followed, too_short=too_short, never_called=never, late=late / followed,
                     idle_mean=sum(idle) / len(idle) if idle else None,
                     idle_median=median(idle) if idle else None)
