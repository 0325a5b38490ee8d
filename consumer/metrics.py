"""Prometheus metrics of one stream processor (own registry, so several can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


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
        self.latency = Histogram("perfwatch_end_to_end_seconds", "sample timestamp → verdict produced", registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.lag = Gauge("perfwatch_consumer_lag", "messages behind the end of each partition", ["partition"],
                         registry=r)
        self.paused = Gauge("perfwatch_paused", "1 while partitions are paused for backpressure", registry=r)

    def serve(self, port: int) -> None:
        start_http_server(port, addr="0.0.0.0", registry=self.registry)  # noqa: S104 - a metrics endpoint
