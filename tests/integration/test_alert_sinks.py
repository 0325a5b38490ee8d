"""``perfwatch notify`` against a real Alertmanager (Debian's 0.25.0) routing to a webhook receiver served by
the test, with the real consumer and the tiny bundle upstream. Loopback only; every process stopped."""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from perfwatch.bench.harness import committed
from perfwatch.consumer.processor import StreamProcessor
from perfwatch.producer.publisher import Publisher
from perfwatch.producer.replay import replay
from perfwatch.sample import Sample
from perfwatch.settings import ConsumerSettings, NotifySettings
from perfwatch.subscriber.notify import Notifier
from perfwatch.subscriber.payloads import SIGNATURE_HEADER
from perfwatch.verdict import Alert, ModelRef, SourceRef
from tests.kafka_fixtures import Broker
from tests.programs import Receiver, alertmanager, alertmanager_config, metric_total, wait_until
from tests.streams import make_topics, produce, read_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _run(target: Any, **kw: Any) -> threading.Thread:
    t = threading.Thread(target=target, kwargs=kw, daemon=True)
    t.start()
    return t


def _samples(run: str, host: str, cpus: list[float], start: datetime) -> list[Sample]:
    return [Sample(run_id=run, host=host, ts=start + timedelta(seconds=i), cpu_pct=c, mem_pct=30.0, disk_pct=20.0)
            for i, c in enumerate(cpus)]


def _replay(kafka: Broker, topic: str, samples: list[Sample]) -> None:
    summary = replay(samples, Publisher(kafka.conf, topic), speed=None, show_progress=False)
    assert summary.delivered == len(samples)


def _notifications(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(status, run_id, host) of every alert in every notification Alertmanager sent."""
    return [(a["status"], a["labels"]["run_id"], a["labels"]["host"]) for b in receiver.bodies() for a in b["alerts"]]


def _committed(kafka: Broker, group: str, topic: str) -> int:
    return committed(kafka.conf, group, topic)


class Pipeline:
    """The real consumer (hysteresis 2/3) and a notifier, both running until the test ends."""

    def __init__(self, kafka: Broker, topics: Any, bundle: Path, group: str, notify: NotifySettings) -> None:
        self.proc = StreamProcessor(ConsumerSettings(bootstrap_servers=kafka.bootstrap, bundle=bundle,
                                                     group_id=group, hysteresis="2/3", emit_predictions=False,
                                                     **topics.settings()))
        self.notifier = Notifier(notify)
        self.threads = [_run(self.proc.run), _run(self.notifier.run)]
        assert self.proc.ready.wait(60) and self.notifier.ready.wait(60)

    def stop(self) -> None:
        self.proc.stop()
        self.notifier.stop()
        for t in self.threads:
            t.join(60)
            assert not t.is_alive()


def _notify_settings(kafka: Broker, topics: Any, group: str, **kw: Any) -> NotifySettings:
    base: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap, "alerts_topic": topics.alerts,
                            "notify_group_id": group, "auto_offset_reset": "earliest", "resend_interval_s": 1.0,
                            "max_backoff_s": 1.0}
    return NotifySettings(**{**base, **kw})


def test_hot_run_fires_then_resolves_at_alertmanagers_receiver(kafka: Broker, topic_factory, group_factory,
                                                                tiny_bundle: Path, receiver: Receiver,
                                                                tmp_path: Path) -> None:
    topics = make_topics(topic_factory)
    run = f"hot-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(minutes=1)
    with alertmanager(tmp_path / "am", alertmanager_config(receiver.url + "/am")) as (_, am_url):
        pipe = Pipeline(kafka, topics, tiny_bundle, group_factory(),
                        _notify_settings(kafka, topics, group_factory(), alertmanager=am_url,
                                         labels="team=perf,env=test"))
        try:
            _replay(kafka, topics.samples, _samples(run, "api-1", [97.0] * 5, start))
            assert wait_until(lambda: ("firing", run, "api-1") in _notifications(receiver), 60), receiver.bodies()
            _replay(kafka, topics.samples, _samples(run, "api-1", [12.0] * 5, start + timedelta(seconds=5)))
            assert wait_until(lambda: ("resolved", run, "api-1") in _notifications(receiver), 60), receiver.bodies()
        finally:
            pipe.stop()
    firing = next(b for b in receiver.bodies() if b["status"] == "firing")
    alert = firing["alerts"][0]
    assert alert["labels"] == {"alertname": "PerfwatchHighLoad", "run_id": run, "host": "api-1",
                               "severity": "critical", "team": "perf", "env": "test"}
    ann = alert["annotations"]
    assert ann["cpu_pct"] == "97" and ann["label"] == "HighLoad" and float(ann["confidence"]) > 0.5
    assert ann["model_id"] and run in ann["summary"]
    # startsAt is the sample time of the firing record (the second hot sample with 2/3), not the send time
    assert datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")) == start + timedelta(seconds=1)
    # one firing and one resolved notification: re-sends every second did not re-notify
    assert Counter(_notifications(receiver)) == {("firing", run, "api-1"): 1, ("resolved", run, "api-1"): 1}
    records = read_json(kafka.conf, topics.alerts, idle_s=1)
    assert [r["state"] for r in records] == ["firing", "resolved"]
    assert pipe.notifier.stats.bad_records == 0


def test_alertmanager_down_and_back_loses_nothing_and_notifies_once(kafka: Broker, topic_factory, group_factory,
                                                                     tiny_bundle: Path, receiver: Receiver,
                                                                     tmp_path: Path) -> None:
    topics = make_topics(topic_factory)
    run = f"restart-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(minutes=5)
    hot, calm = [97.0] * 4, [12.0] * 4
    notify_group = group_factory()
    with alertmanager(tmp_path / "am", alertmanager_config(receiver.url + "/am")) as (am, am_url):
        pipe = Pipeline(kafka, topics, tiny_bundle, group_factory(),
                        _notify_settings(kafka, topics, notify_group, alertmanager=am_url))
        sent: list[list[dict]] = []  # every request Alertmanager accepted
        sink = pipe.notifier.alertmanager
        assert sink is not None
        real_send = sink.send

        def spy(alerts: list[dict]) -> None:
            at = datetime.now(UTC)
            real_send(alerts)
            sent.append([{**a, "sent": at} for a in alerts])

        sink.send = spy  # type: ignore[method-assign]
        try:
            # 1. h1 and h2 fire while Alertmanager is up
            _replay(kafka, topics.samples, _samples(run, "h1", hot, start) + _samples(run, "h2", hot, start))
            assert wait_until(lambda: {("firing", run, "h1"), ("firing", run, "h2")} <= set(_notifications(receiver)),
                              60), receiver.bodies()
            # Alertmanager logs a notification (its nflog, saved at shutdown) only once the receiver has answered;
            # stopped before that, it forgets h1 was notified and never notifies h1's resolve: it resolves only
            # what it notified. So wait for its own count of answered attempts before stopping it.
            assert wait_until(lambda: metric_total(am_url, "alertmanager_notification_latency_seconds_count",
                                                   integration="webhook") >= 2, 30)
            # The notifier commits once Alertmanager accepted the records; Alertmanager notifies at once for
            # alerts older than group_wait, so the receiver can hear of them before that commit lands.
            assert wait_until(lambda: _committed(kafka, notify_group, topics.alerts) == 2, 30)
            # 2. Alertmanager stops; meanwhile h1 resolves, h3 fires, h4 fires and resolves
            am.stop()
            nflog = (tmp_path / "am" / "data" / "nflog").read_bytes()
            assert b'host="h1"' in nflog and b'host="h2"' in nflog, "Alertmanager's saved nflog lacks h1 or h2"
            later = start + timedelta(seconds=10)
            _replay(kafka, topics.samples, _samples(run, "h1", calm, later) + _samples(run, "h3", hot, later)
                    + _samples(run, "h4", hot + calm, later))
            assert wait_until(lambda: len(read_json(kafka.conf, topics.alerts, idle_s=0.5)) == 6, 60)
            assert wait_until(lambda: pipe.notifier.stats.retries >= 3, 30)
            # nothing is committed while Alertmanager cannot take it
            assert _committed(kafka, notify_group, topics.alerts) == 2
            # 3. Alertmanager comes back (same storage: its notification log survives, as in production)
            am.start()
            want = {("firing", run, "h3"), ("resolved", run, "h1")}
            assert wait_until(lambda: want <= set(_notifications(receiver)), 60), \
                (_notifications(receiver), am.log.read_text()[-4000:])
            assert wait_until(lambda: _committed(kafka, notify_group, topics.alerts) == 6, 30)
            asked_at = datetime.now(UTC)
            active = requests.get(am_url + "/api/v2/alerts", params={"filter": f'run_id="{run}"'}, timeout=5).json()
        finally:
            pipe.stop()
    # every alert record reached Alertmanager, in order per host
    seen: dict[str, list[str]] = {}
    for batch in sent:
        for a in batch:
            host = a["labels"]["host"]
            # a firing alert ends in the future (4 resend intervals), a resolved one at or before the send
            state = "resolved" if datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) <= a["sent"] else "firing"
            if not seen.get(host) or seen[host][-1] != state:
                seen.setdefault(host, []).append(state)
    assert seen == {"h1": ["firing", "resolved"], "h2": ["firing"], "h3": ["firing"], "h4": ["firing", "resolved"]}
    # Alertmanager holds the still-firing ones again after its restart
    firing_in_am = {a["labels"]["host"] for a in active
                    if datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) > asked_at}
    assert firing_in_am == {"h2", "h3"}
    # no alert notified twice (repeat_interval is 1h): h2 was re-sent after the restart but not re-notified
    counts = Counter(_notifications(receiver))
    assert counts[("firing", run, "h1")] == counts[("firing", run, "h2")] == counts[("firing", run, "h3")] == 1
    assert counts[("resolved", run, "h1")] == 1
    assert all(n == 1 for n in counts.values()), counts


def _alert(run: str, host: str, state: str | None, i: int) -> tuple[bytes, bytes]:
    now = datetime.now(UTC)
    a = Alert(run_id=run, host=host, ts=now, label="HighLoad", confidence=0.97,
              scores={"LowLoad": 0.01, "MediumLoad": 0.02, "HighLoad": 0.97}, cpu_pct=95.0, mem_pct=40.0,
              disk_pct=10.0, model=ModelRef(id="tiny-test", sha256="0" * 64),
              source=SourceRef(topic="perf.samples", partition=0, offset=i), detected_at=now,
              state=state)  # type: ignore[arg-type]
    return f"{run}/{host}".encode(), a.model_dump_json().encode()


def test_webhook_posts_each_transition_signed_and_retries_until_accepted(kafka: Broker, topic_factory,
                                                                        group_factory, receiver: Receiver) -> None:
    topics = make_topics(topic_factory)
    group = group_factory()
    records = [_alert("w", "a", "firing", 0), _alert("w", "b", "firing", 1), _alert("w", "a", "resolved", 2)]
    produce(kafka.conf, topics.alerts, records)
    receiver.status = 503  # down at first: nothing may be lost or committed
    n = Notifier(_notify_settings(kafka, topics, group, webhook=receiver.url + "/hook", webhook_text=True,
                                  webhook_secret="s3cret"))  # noqa: S106 - a test key
    t = _run(n.run)
    try:
        assert wait_until(lambda: n.stats.retries >= 2, 30)
        assert _committed(kafka, group, topics.alerts) == 0 and receiver.posts == []
        receiver.status = 200
        assert wait_until(lambda: len(receiver.posts) >= 3 and _committed(kafka, group, topics.alerts) == 3, 30)
    finally:
        n.stop()
        t.join(30)
    assert len(receiver.posts) == 3  # one per transition, none twice
    for post in receiver.posts:
        expected = "sha256=" + hmac.new(b"s3cret", post.raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(post.headers[SIGNATURE_HEADER], expected)
    bodies = receiver.bodies()
    assert [(b["status"], b["labels"]["host"]) for b in bodies if b["labels"]["host"] == "a"] == \
        [("firing", "a"), ("resolved", "a")]
    assert {b["version"] for b in bodies} == {"1"} and len({b["id"] for b in bodies}) == 3
    assert all(b["text"].startswith((":rotating_light: *FIRING*", ":white_check_mark: *RESOLVED*")) for b in bodies)
    assert bodies[0]["alert"]["model"]["id"] == "tiny-test" and bodies[0]["labels"]["alertname"] == "PerfwatchHighLoad"


def test_without_hysteresis_a_burst_fires_once_and_resolves_after_the_quiet_time(kafka: Broker, topic_factory,
                                                                                  group_factory,
                                                                                  receiver: Receiver) -> None:
    topics = make_topics(topic_factory)
    produce(kafka.conf, topics.alerts, [_alert("q", "a", None, i) for i in range(20)])
    n = Notifier(_notify_settings(kafka, topics, group_factory(), webhook=receiver.url, quiet_s=2.0))
    t = _run(n.run)
    try:
        assert wait_until(lambda: len(receiver.posts) >= 2, 30)
        # more HighLoad verdicts for the same key after it resolved: a new episode
        produce(kafka.conf, topics.alerts, [_alert("q", "a", None, 100 + i) for i in range(5)])
        assert wait_until(lambda: len(receiver.posts) >= 4, 30)
    finally:
        n.stop()
        t.join(30)
    assert [b["status"] for b in receiver.bodies()] == ["firing", "resolved", "firing", "resolved"]
    assert n.stats.consumed == 25


def test_notify_cli_rejects_bad_labels_and_missing_sink() -> None:
    from perfwatch.app.cli import main

    assert main(["notify", "--webhook", "http://127.0.0.1:9", "--labels", "no-equals-sign"]) != 0
    assert main(["notify", "--bootstrap-servers", "127.0.0.1:9"]) != 0


def test_notify_command_delivers_and_stops_cleanly_on_sigterm(kafka: Broker, topic_factory, group_factory,
                                                              receiver: Receiver) -> None:
    import os
    import signal
    import subprocess
    import sys

    topics = make_topics(topic_factory)
    produce(kafka.conf, topics.alerts, [_alert("cli", "a", "firing", 0), _alert("cli", "a", "resolved", 1)])
    env = {**os.environ, "PERFWATCH_WEBHOOK_SECRET": "k"}
    proc = subprocess.Popen([sys.executable, "-m", "perfwatch.app.cli", "notify", "--webhook", receiver.url,
                             "--bootstrap-servers", kafka.bootstrap, "--alerts-topic", topics.alerts,
                             "--notify-group-id", group_factory(), "--auto-offset-reset", "earliest"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: len(receiver.posts) == 2, 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "2 records, 1 firing, 1 resolved" in err and "0 retries" in err
    assert [b["status"] for b in receiver.bodies()] == ["firing", "resolved"]
    assert all(SIGNATURE_HEADER in p.headers for p in receiver.posts)


def test_a_new_owner_restores_firing_alerts_from_the_topic_and_resends_them(kafka: Broker, topic_factory,
                                                                            group_factory,
                                                                            receiver: Receiver) -> None:
    """A notifier that takes over (restart, rebalance) has no state of its own: it rebuilds it from the
    topic up to the committed offset, so Alertmanager keeps getting the alerts that still fire (else they
    would resolve by themselves at endsAt while the load test is still hot)."""
    topics = make_topics(topic_factory)
    group = group_factory()
    produce(kafka.conf, topics.alerts, [_alert("own", "a", "firing", 0), _alert("own", "b", "firing", 1),
                                        _alert("own", "b", "resolved", 2)])
    first = Notifier(_notify_settings(kafka, topics, group, webhook=receiver.url + "/hook"))
    t = _run(first.run)
    try:
        assert wait_until(lambda: _committed(kafka, group, topics.alerts) == 3, 60)
    finally:
        first.stop()
        t.join(30)
    # the next owner talks to an Alertmanager API endpoint (the receiver stands in for it here)
    second = Notifier(_notify_settings(kafka, topics, group, alertmanager=receiver.url))
    t = _run(second.run)
    try:
        assert wait_until(lambda: any(p.path == "/api/v2/alerts" for p in receiver.posts), 60)
    finally:
        second.stop()
        t.join(30)
    assert second.stats.consumed == 0  # nothing was redelivered: the state came from the restore
    first_post = next(p.json for p in receiver.posts if p.path == "/api/v2/alerts")
    now = datetime.now(UTC)
    state = {a["labels"]["host"]: datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) > now
             for a in first_post}
    assert state == {"a": True, "b": False}  # a still fires; b is re-sent resolved for a while
