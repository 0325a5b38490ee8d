"""perfwatch's own monitoring with the real programs: promtool checks and unit-tests the rules file, and a
real Prometheus (Debian's 2.42.0) loads it and scrapes a running consumer on loopback."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import start_http_server

from perfwatch.consumer.metrics import Metrics
from perfwatch.consumer.processor import StreamProcessor
from perfwatch.settings import ConsumerSettings
from perfwatch.tooling.programs import ensure_program
from tests.kafka_fixtures import Broker
from tests.programs import free_port, prometheus, wait_until
from tests.promql import consumer_metric_names, metric_names
from tests.streams import make_topics, produce, sample_msg

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "perfwatch-rules.yml"


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    promtool = str(ensure_program("promtool"))
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 11 rules found" in check.stdout
    unit = subprocess.run([promtool, "test", "rules", "perfwatch-rules.test.yml"], cwd=RULES.parent,
                          capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_rules_name_only_metrics_the_consumer_exports() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    known = consumer_metric_names() | recorded | {"up"}
    for g in groups:
        for r in g["rules"]:
            names = metric_names(r["expr"])
            assert names and names <= known, f"{r.get('record') or r.get('alert')}: {names - known}"
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert {"PerfwatchConsumerStalled", "PerfwatchConsumerLagGrowing", "PerfwatchDeadLetterSpike"} <= alerts


@pytest.mark.integration
@pytest.mark.slow
def test_prometheus_scrapes_the_consumer_and_counts_every_verdict(kafka: Broker, topic_factory, group_factory,
                                                                  tiny_bundle: Path, tmp_path: Path) -> None:
    topics = make_topics(topic_factory)
    n = 240
    produce(kafka.conf, topics.samples, [sample_msg(i, float(i % 100)) for i in range(n)]
            + [(b"bad/1", b"{not json")] * 7)
    metrics = Metrics()
    port = free_port()
    # the consumer's own registry, served on loopback only (its --metrics-port binds every interface)
    server, _ = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    proc = StreamProcessor(ConsumerSettings(bootstrap_servers=kafka.bootstrap, bundle=tiny_bundle,
                                            group_id=group_factory(), **topics.settings()), metrics=metrics)
    t = threading.Thread(target=proc.run, daemon=True)
    t.start()
    try:
        with prometheus(tmp_path / "prom", f"127.0.0.1:{port}", rules=RULES) as url:
            assert wait_until(lambda: proc.stats.verdicts == n and proc.stats.dlq == 7, 120)

            def query(q: str) -> list[dict]:
                r = requests.get(f"{url}/api/v1/query", params={"query": q}, timeout=5).json()
                assert r["status"] == "success", r
                return r["data"]["result"]

            def scalar(q: str) -> float | None:
                res = query(q)
                return float(res[0]["value"][1]) if res else None

            assert wait_until(lambda: scalar("sum(perfwatch_verdicts_total)") == n, 60), \
                query("perfwatch_verdicts_total")
            by_label = {r["metric"]["label"]: float(r["value"][1]) for r in query("perfwatch_verdicts_total")}
            assert sum(by_label.values()) == n and set(by_label) <= {"LowLoad", "MediumLoad", "HighLoad"}
            assert scalar('sum(perfwatch_dlq_total{reason="bad_json"})') == 7
            assert scalar("sum(perfwatch_samples_total)") == n + 7
            # the rules file is loaded and its recording rules evaluate over the scraped series
            rules = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
            assert {g["name"] for g in rules} == {"perfwatch"}
            assert all(r["health"] != "err" for g in rules for r in g["rules"]), rules
            assert wait_until(lambda: query("job:perfwatch_samples:rate1m") != [], 60)
    finally:
        proc.stop()
        t.join(60)
        server.shutdown()
