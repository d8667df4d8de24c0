"""Prometheus metrics of one hub process, in a registry of its own (one per app, so that several
apps in one test process do not collide). Counters that already exist elsewhere (feed stats, broker
reconnects, branch seqs) are read at scrape time instead of being kept twice."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.applications import Starlette

COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.command_seconds = Histogram(
            "queuecast_command_seconds", "Time to decide, log and answer a command, by outcome",
            ["command", "outcome"], buckets=COMMAND_BUCKETS, registry=self.registry)
        self._app: Starlette | None = None
        self.registry.register(_Live(self))

    def bind(self, app: Starlette) -> None:
        """The app whose service, feeds and broker the scrape reads."""
        self._app = app

    def observe_command(self, command: str, outcome: str, seconds: float) -> None:
        self.command_seconds.labels(command, outcome).observe(seconds)


class _Live:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        app = self.metrics._app
        state = getattr(app, "state", None)
        feeds = getattr(state, "feeds", None)
        service = getattr(state, "service", None)
        if feeds is not None:
            s = feeds.stats
            conns = GaugeMetricFamily("queuecast_feed_connections", "Open feed connections", labels=["feed"])
            for kind, n in s.connections.items():
                conns.add_metric([kind], n)
            yield conns
            yield CounterMetricFamily("queuecast_feed_deliveries", "Frames queued to feed connections",
                                      value=s.deliveries)
            yield CounterMetricFamily("queuecast_feed_direct", "WebSocket connections fed prepared frames directly",
                                      value=s.direct)
            yield CounterMetricFamily("queuecast_feed_writes", "Writes of live frames to direct WebSocket "
                                      "connections: one per connection per command", value=s.writes)
            yield CounterMetricFamily("queuecast_feed_slow_cuts", "Connections cut for falling behind",
                                      value=s.slow_cuts)
            yield CounterMetricFamily("queuecast_feed_refused", "Feed connections refused: their address had "
                                      "QUEUECAST_MAX_FEEDS_PER_ADDRESS open", value=feeds.addresses.refused)
            starts = CounterMetricFamily("queuecast_feed_starts", "Feed connections by how they started",
                                         labels=["how"])
            starts.add_metric(["resume"], s.resumes)
            starts.add_metric(["snapshot"], s.snapshots)
            yield starts
        if service is not None:
            yield CounterMetricFamily("queuecast_broker_reconnects", "Times the broker link was restored",
                                      value=getattr(service.broker, "reconnects", 0))
            seq = GaugeMetricFamily("queuecast_branch_seq", "Last event seq folded, per branch", labels=["branch"])
            waiting = GaugeMetricFamily("queuecast_branch_waiting", "Numbers waiting today, per branch",
                                        labels=["branch"])
            forecasts = CounterMetricFamily("queuecast_forecasts_computed", "ETA forecasts simulated in this "
                                            "process, per branch (on a shared log, only where the branch changed)",
                                            labels=["branch"])
            now = service.now()
            for branch, st in service.states.items():
                seq.add_metric([branch], st.seq)
                waiting.add_metric([branch], len(st.waiting(now.date())))
                forecasts.add_metric([branch], st.eta.simulations)
            yield seq
            yield waiting
            yield forecasts
            held = service.branches
            yield GaugeMetricFamily("queuecast_branches_held", "Branches this process holds (loaded, followed)",
                                    value=len(held.states))
            yield CounterMetricFamily("queuecast_branch_loads", "Branches loaded from their log (held)",
                                      value=held.loads)
            yield CounterMetricFamily("queuecast_branch_let_goes", "Idle branches let go", value=held.let_goes)
