""""Leave home by": when the low quantile of the remaining wait reaches the trip plus a margin
(DESIGN §4). The phone page shows it, the notifier says "leave now" when it comes, and the
evaluation replays the same rule (hub.domain.eta.metrics), so all three read this one definition."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

LEAVE_MARGIN_MINUTES = 5.0     # arrive this much before the earliest likely call


class Quantiles(Protocol):
    @property           # read-only: estimator.Quantiles is a frozen dataclass
    def p10(self) -> float: ...


def leave_by(now: datetime, est: Quantiles, travel_minutes: float) -> datetime:
    """When to leave home to be at the branch before the earliest likely call (the ETA's p10)."""
    return now + timedelta(minutes=est.p10 - travel_minutes - LEAVE_MARGIN_MINUTES)
