"""Service times as a lognormal law, fitted from durations of which some are still running.

A service still in progress at the prediction time is a right-censored observation: it has lasted
at least `elapsed`. Fitting completed services only would forget exactly the long ones that are
keeping a counter busy right now, so the estimate would be biased low when it matters most. The fit
is a weighted maximum-likelihood estimate on the log scale by expectation-maximisation: a censored
log-duration is replaced by its expectation under the current fit, given that it exceeds the log of
the elapsed time (the truncated-normal moments).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_N01 = NormalDist()
MIN_SIGMA, MAX_SIGMA = 0.05, 1.5
EM_ROUNDS = 8


@dataclass(frozen=True)
class LogNormal:
    mu: float                   # of log-minutes
    sigma: float

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma ** 2 / 2)

    def survival(self, minutes: float) -> float:
        if minutes <= 0:
            return 1.0
        return 1.0 - _N01.cdf((math.log(minutes) - self.mu) / self.sigma)

    def remaining(self, elapsed: float, u: float) -> float:
        """The rest of a service that has lasted `elapsed` minutes, at uniform quantile `u`:
        inverse transform of the law conditioned on exceeding `elapsed`."""
        if elapsed <= 0:
            return math.exp(self.mu + self.sigma * _N01.inv_cdf(min(max(u, 1e-9), 1 - 1e-9)))
        lo = _N01.cdf((math.log(elapsed) - self.mu) / self.sigma)
        q = lo + u * (1.0 - lo)
        if q >= 1.0 - 1e-9:             # deep in the tail: the law says little; assume a little more
            return 0.25 * elapsed + 1.0
        return max(math.exp(self.mu + self.sigma * _N01.inv_cdf(q)) - elapsed, 0.0)


def _tail_moments(mu: float, sigma: float, c: float) -> tuple[float, float]:
    """E[X] and E[X²] of X ~ N(mu, sigma) given X > c."""
    a = (c - mu) / sigma
    tail = 1.0 - _N01.cdf(a)
    if tail < 1e-12:
        return c, c * c
    lam = _N01.pdf(a) / tail                    # inverse Mills ratio
    m1 = mu + sigma * lam
    var = sigma ** 2 * (1 + a * lam - lam ** 2)
    return m1, var + m1 * m1


def fit(done: list[tuple[float, float]], running: list[tuple[float, float]], prior: LogNormal,
        prior_weight: float) -> LogNormal:
    """Weighted fit from (minutes, weight) of completed services and of services still running.

    The prior (the configured planning mean, or the pooled fit of all fields) counts as
    `prior_weight` observations, so a field seen twice today is not judged on two services.
    """
    logs = [(math.log(max(m, 0.05)), w) for m, w in done]
    cens = [(math.log(max(m, 0.05)), w) for m, w in running]
    total = prior_weight + sum(w for _, w in logs) + sum(w for _, w in cens)
    mu, sigma = prior.mu, prior.sigma
    if total <= prior_weight:
        return prior
    prior_m2 = prior.sigma ** 2 + prior.mu ** 2
    for _ in range(EM_ROUNDS if cens else 1):
        s1 = prior_weight * prior.mu + sum(w * x for x, w in logs)
        s2 = prior_weight * prior_m2 + sum(w * x * x for x, w in logs)
        for c, w in cens:
            m1, m2 = _tail_moments(mu, sigma, c)
            s1 += w * m1
            s2 += w * m2
        mu = s1 / total
        sigma = math.sqrt(max(s2 / total - mu * mu, 0.0))
        sigma = min(max(sigma, MIN_SIGMA), MAX_SIGMA)
    return LogNormal(mu, sigma)


def from_mean(mean_minutes: float, sigma: float = 0.6) -> LogNormal:
    return LogNormal(math.log(max(mean_minutes, 0.1)) - sigma ** 2 / 2, sigma)
