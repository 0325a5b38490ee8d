"""perfwatch for Locust: one line in a locustfile streams live samples of the hosts under test, with Locust's
load (RPS, p95, error %) in each sample, to the samples topic while the test runs.

    import perfwatch.producer.locust_plugin  # noqa: F401

    locust -f locustfile.py --headless -u 50 -r 10 -t 10m --host https://api.example \\
        --perfwatch-bootstrap kafka:9092 --perfwatch-run-id checkout-42 \\
        --perfwatch-hosts http://api-1:9100,http://db-1:9100 --perfwatch-interval 5

- Off unless ``--perfwatch-bootstrap`` (or env ``PERFWATCH_BOOTSTRAP_SERVERS``) is set.
- Hosts: one sample per node_exporter in ``--perfwatch-hosts`` every interval; without hosts, the load
  generator itself (psutil). A silent exporter is logged once and retried with backoff (producer.node_exporter).
- Only the process that holds the whole test's stats publishes: a standalone Locust or the master;
  workers never do, so a distributed run publishes each host once per interval.
- Start and stop are visible on the stream: every sample has ``tags.source = "locust"`` and ``tags.phase``:
  ``start`` on each host's first sample of the test, ``running`` after, and ``stop`` on one last sample per
  host published when the test stops. ``tags.users`` is the running user count.
- Importing this module more than once (two package names) registers its listeners once.

Importing it imports Locust, which monkey-patches the process for gevent: import it from locustfiles only.
"""

from __future__ import annotations

import logging
import re
import socket
from datetime import UTC, datetime
from typing import Any

import gevent
import gevent.event
import gevent.pool
from locust import events
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner

from perfwatch.producer.live import psutil_sample
from perfwatch.producer.node_exporter import Fleet, target
from perfwatch.producer.publisher import Publisher
from perfwatch.producer.schedule import ticks
from perfwatch.sample import Sample
from perfwatch.settings import KafkaSettings

log = logging.getLogger("perfwatch.locust")

DEFAULT_INTERVAL_S = 5.0


def load_context(environment: Environment) -> dict[str, float | None]:
    """Locust's current RPS, p95 (ms) and error % (failures / requests), over Locust's own recent window."""
    total = environment.runner.stats.total if environment.runner else None
    if total is None:
        return {"rps": None, "p95_ms": None, "error_pct": None}
    rps, fails = float(total.current_rps), float(total.current_fail_per_sec)
    # Locust keeps the recent-window cache on masters and standalone runs only (workers drop it to save memory).
    p95 = total.get_current_response_time_percentile(0.95) if total.use_response_times_cache else None
    return {"rps": round(rps, 3), "p95_ms": None if p95 is None else float(p95),
            "error_pct": round(min(100.0, 100 * fails / rps), 3) if rps > 0 else 0.0}


class LocustStream:
    """Publishes the hosts under test every interval from a greenlet, between test_start and test_stop."""

    def __init__(self, environment: Environment, bootstrap: str, run_id: str, hosts: list[str],
                 interval_s: float, topic: str | None = None) -> None:
        self.env, self.run_id, self.interval_s = environment, run_id, interval_s
        given: dict[str, Any] = {"bootstrap_servers": bootstrap}
        kafka = KafkaSettings(**given)  # env PERFWATCH_… gives the SASL/SSL settings
        self.topic = topic or kafka.samples_topic
        self.publisher = Publisher(kafka.kafka_config(), self.topic)
        self.fleet = (Fleet([target(h) for h in hosts], interval_s, mapper=gevent.pool.Pool(min(32, len(hosts))).map)
                      if hosts else None)
        self.me = socket.gethostname()
        self.last: dict[str, Sample] = {}
        self.stopping = gevent.event.Event()
        self.loop: gevent.Greenlet | None = None

    def _poll(self) -> list[Sample]:
        return self.fleet.poll(self.run_id) if self.fleet else [psutil_sample(self.run_id, self.me)]

    def start(self) -> None:
        self._poll()  # the CPU baseline (node_exporter counters, or psutil's first call)
        self.loop = gevent.spawn(self._run)
        where = ", ".join(h.target.name for h in self.fleet.hosts) if self.fleet else f"{self.me} (this load generator)"
        log.info("perfwatch: publishing %s every %ss to %s as run %s", where, self.interval_s, self.topic, self.run_id)

    def _run(self) -> None:
        for _ in ticks(self.interval_s, stop=self.stopping):
            self._publish(self._poll(), final=False)

    def _publish(self, samples: list[Sample], final: bool) -> None:
        context = load_context(self.env)
        users = str(self.env.runner.user_count if self.env.runner else 0)
        for s in samples:
            phase = "stop" if final else ("running" if s.host in self.last else "start")
            s = s.model_copy(update={**context, "tags": {**s.tags, "source": "locust", "phase": phase,
                                                         "users": users}})
            self.publisher.send(s)
            self.last[s.host] = s

    def stop(self) -> None:
        """One last sample per host that published (its latest reading when it does not answer now), then flush."""
        self.stopping.set()
        if self.loop is not None:
            self.loop.join(timeout=self.interval_s + 5)
        fresh = {s.host: s for s in self._poll()}
        now = datetime.now(UTC)
        self._publish([fresh.get(h) or s.model_copy(update={"ts": now}) for h, s in self.last.items()], final=True)
        st = self.publisher.close(timeout=10)
        if self.fleet:
            self.fleet.close()
        log.info("perfwatch: run %s: sent %d, delivered %d, failed %d", self.run_id, st.sent, st.delivered, st.failed)


def _split_hosts(value: str | None) -> list[str]:
    return [h for h in re.split(r"[\s,]+", value or "") if h]


def _add_options(parser: Any, **_: Any) -> None:
    # On the parser itself: Locust's include_in_web_ui exists there, not on argument groups.
    parser.add_argument("--perfwatch-bootstrap", env_var="PERFWATCH_BOOTSTRAP_SERVERS", default=None,
                       include_in_web_ui=False, help="Kafka bootstrap servers; perfwatch is off without them")
    parser.add_argument("--perfwatch-run-id", env_var="PERFWATCH_RUN_ID", default=None, include_in_web_ui=False,
                       help="run id of the samples [default locust-<UTC start time>]")
    parser.add_argument("--perfwatch-hosts", env_var="PERFWATCH_HOSTS", default="", include_in_web_ui=False,
                       help="node_exporter URLs of the hosts under test, comma- or space-separated "
                            "([NAME=]URL); none: this load generator via psutil")
    parser.add_argument("--perfwatch-interval", env_var="PERFWATCH_INTERVAL", type=float, default=DEFAULT_INTERVAL_S,
                       include_in_web_ui=False, help="seconds between samples")
    parser.add_argument("--perfwatch-topic", env_var="PERFWATCH_SAMPLES_TOPIC", default=None, include_in_web_ui=False,
                       help="samples topic [default perf.samples]")


_streams: dict[int, LocustStream] = {}


def _on_test_start(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None or not opts.perfwatch_bootstrap:
        return
    if not isinstance(environment.runner, (MasterRunner, LocalRunner)):
        return  # a worker: the master holds the whole test's stats and publishes
    run_id = opts.perfwatch_run_id or f"locust-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    stream = LocustStream(environment, opts.perfwatch_bootstrap, run_id, _split_hosts(opts.perfwatch_hosts),
                          opts.perfwatch_interval, opts.perfwatch_topic)
    _streams[id(environment)] = stream
    stream.start()


def _on_test_stop(environment: Environment, **_: Any) -> None:
    stream = _streams.pop(id(environment), None)
    if stream is not None:
        stream.stop()


def register(ev: Any = events) -> None:
    """Add the options and listeners to Locust's events (once, however many times this module is imported)."""
    if getattr(ev, "_perfwatch_registered", False):
        return
    ev.init_command_line_parser.add_listener(_add_options)
    ev.test_start.add_listener(_on_test_start)
    ev.test_stop.add_listener(_on_test_stop)
    ev._perfwatch_registered = True


register()
