"""Prometheus metrics of one stream processor (own registry, so several can live in one process)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.utils import floatToGoString

Health = Callable[[], tuple[bool, str]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class BatchHistogram:
    """A histogram observed a batch at a time: one numpy pass per batch instead of a Python ``observe`` per
    value (a per-sample observe was 4 % of the loop at its ceiling). Exposed as prometheus_client's custom
    collector, with the series a ``Histogram`` of the same name and buckets has (``_bucket{le}``, ``_count``,
    ``_sum``)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = np.array([*buckets, float("inf")])
        self._counts = np.zeros(len(self._bounds), dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]  # a NaN has no bucket (and would widen the counts)
        if not len(values):
            return
        # a value v falls in the first bucket whose upper bound is >= v (Prometheus' "le")
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=len(self._bounds))
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> list[HistogramMetricFamily]:
        with self._lock:
            cumulative, total = np.cumsum(self._counts).tolist(), self._sum
        return [HistogramMetricFamily(self.name, self.documentation, sum_value=total,
                                      buckets=[(floatToGoString(b), c) for b, c in zip(self._bounds.tolist(),
                                                                                        cumulative, strict=True)])]


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.samples = Counter("perfwatch_samples_total", "messages consumed from the samples topic", registry=r)
        self.verdicts = Counter("perfwatch_verdicts_total", "verdicts by label", ["label"], registry=r)
        self.alerts = Counter("perfwatch_alerts_total", "alert records by state", ["state"], registry=r)
        self.dlq = Counter("perfwatch_dlq_total", "dead-lettered messages by reason", ["reason"], registry=r)
        self.batch_size = Histogram("perfwatch_batch_size", "messages per micro-batch", registry=r,
                                    buckets=(1, 4, 16, 32, 64, 128, 256, 512, 1024))
        self.inference = Histogram("perfwatch_inference_seconds", "ONNX Runtime time per batch", registry=r,
                                   buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.latency = BatchHistogram("perfwatch_end_to_end_seconds", "sample timestamp → verdict produced",
                                      LATENCY_BUCKETS, r)
        self.lag = Gauge("perfwatch_consumer_lag", "messages behind the end of each partition", ["partition"],
                         registry=r)
        self.undeliverable = Counter("perfwatch_undeliverable_total",
                                     "inputs sent to the DLQ because their output could not be delivered", registry=r)
        self.restore_seconds = Histogram("perfwatch_state_restore_seconds", "changelog restore time per assignment",
                                         registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.restore_records = Counter("perfwatch_state_restore_records_total", "changelog records restored",
                                       registry=r)
        self.changelog_corrupt = Counter("perfwatch_state_changelog_corrupt_total",
                                         "changelog records skipped on restore because they did not decode", registry=r)
        self.state_keys = Gauge("perfwatch_state_keys", "hysteresis keys held in memory", registry=r)
        self.state_expired = Counter("perfwatch_state_expired_total", "hysteresis keys expired for idleness",
                                     registry=r)
        self.cache_lookups = Counter("perfwatch_response_cache_lookups", "response cache lookups by result",
                                     ["result"], registry=r)
        self.cache_entries = Gauge("perfwatch_response_cache_entries", "model inputs with a cached answer",
                                   registry=r)
        self.cache_bytes = Gauge("perfwatch_response_cache_bytes", "size of the response cache's table when full",
                                 registry=r)
        self.paused = Gauge("perfwatch_paused", "1 while partitions are paused for backpressure", registry=r)

    def serve(self, port: int, health: Health | None = None) -> WSGIServer:
        """/metrics (Prometheus) and /healthz (200 while ``health`` says live, else 503 with the reason)."""
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok, why = health() if health is not None else (True, "ok")
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [why.encode() + b"\n"]
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        server = make_server("0.0.0.0", port, app, ThreadingWSGIServer, handler_class=_QuietHandler)  # noqa: S104
        threading.Thread(target=server.serve_forever, name="perfwatch-metrics", daemon=True).start()
        return server
