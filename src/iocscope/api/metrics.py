"""Prometheus metrics of the service, in the text exposition format.

``MetricsMiddleware`` keeps the request counters. Engine counters (source
calls, cache hits, source errors) are read from ``Engine.stats`` at scrape
time, so they also count the work of batch and alert requests. Every
metric lives in the app's own registry, so two apps in one process (as in
the tests) never share counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iocscope.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Routes that matched nothing share one label, so scanners cannot create
# one time series per probed path.
UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The registry of one app and the counters the API layer updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "iocscope_http_requests",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "iocscope_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.enrichments = Counter(
            "iocscope_enrichments",
            "Indicators enriched through the API, by verdict.",
            ("verdict",),
            registry=self.registry,
        )
        self.invalid_indicators = Counter(
            "iocscope_invalid_indicators",
            "Indicators rejected as invalid by the API.",
            registry=self.registry,
        )

    def watch(self, runtime: Runtime) -> Collector:
        """Export the counters of ``runtime``'s engine, feeds and sources at scrape time.

        Returns the collector, for ``unwatch`` when the runtime closes.
        """
        collector = _RuntimeCollector(runtime)
        self.registry.register(collector)
        return collector

    def unwatch(self, collector: Collector) -> None:
        self.registry.unregister(collector)

    def count_verdicts(self, verdicts: Iterable[str]) -> None:
        for verdict in verdicts:
            self.enrichments.labels(verdict).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        stats = self._runtime.engine.stats
        per_source = (
            ("iocscope_source_calls", "Calls made to each source.", stats.source_calls),
            ("iocscope_cache_hits", "Source results answered from the cache.", stats.cache_hits),
            ("iocscope_source_errors", "Failed or rate-limited source calls.", stats.source_errors),
        )
        for name, documentation, counts in per_source:
            family = CounterMetricFamily(name, documentation, labels=("source",))
            for source, count in sorted(counts.items()):
                family.add_metric((source,), count)
            yield family
        yield _gauge(
            "iocscope_sources_enabled",
            "Sources that are configured and enabled.",
            sum(state.enabled for state in self._runtime.states),
        )
        feeds = self._runtime.feeds
        yield _gauge(
            "iocscope_feeds_loaded",
            "Feeds with at least one entry in memory.",
            sum(feeds.loaded(spec.name) for spec in feeds.specs),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def route_label(scope: Scope) -> str:
    """Return the route template that served a request, or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """ASGI middleware: count each HTTP request by route and status, and time it."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        status = 500

        async def capture_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture_status)
        finally:
            route = route_label(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(route).observe(self.clock() - started)
