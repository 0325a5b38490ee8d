"""The notifier's alert lifecycle and payloads, with a hand-driven clock (no Kafka, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from perfwatch.settings import NotifySettings
from perfwatch.subscriber.book import AlertBook
from perfwatch.subscriber.payloads import AlertShape, signature
from perfwatch.verdict import Alert, ModelRef, SourceRef

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0.timestamp() + 100

    def __call__(self) -> float:
        return self.t


def alert(state: str | None, host: str = "a", at: int = 0, cpu: float = 95.0) -> Alert:
    ts = T0 + timedelta(seconds=at)
    return Alert(run_id="r", host=host, ts=ts, label="HighLoad", confidence=0.9, scores={"HighLoad": 0.9},
                 cpu_pct=cpu, mem_pct=1, disk_pct=2, model=ModelRef(id="m1", sha256="0" * 64),
                 source=SourceRef(topic="s", partition=0, offset=at), detected_at=ts,
                 state=state)  # type: ignore[arg-type]


def book(clock: Clock) -> AlertBook:
    return AlertBook(resend_s=10, quiet_s=30, resolved_keep_s=60, clock=clock)


def test_hysteresis_records_fire_once_and_resolve_once() -> None:
    c = Clock()
    b = book(c)
    t = b.apply(alert("firing", at=1), 0)
    assert t is not None and t.status == "firing" and t.entry.starts_at == T0 + timedelta(seconds=1)
    assert b.apply(alert("firing", at=2), 0) is None  # a redelivery: nothing new for a person
    t = b.apply(alert("resolved", at=5), 0)
    assert t is not None and t.status == "resolved" and t.entry.ends_at == T0 + timedelta(seconds=5)
    assert b.apply(alert("resolved", at=5), 0) is None


def test_without_hysteresis_a_burst_is_one_alert_until_the_quiet_time() -> None:
    c = Clock()
    b = book(c)
    transitions = [b.apply(alert(None, at=i, cpu=90 + i), 0) for i in range(5)]
    assert [t.status for t in transitions if t] == ["firing"]
    assert b.entries["r/a"].alert.cpu_pct == 94  # annotations: the latest record wins
    c.t += 29
    assert b.expire() == []
    b.apply(alert(None, at=40), 0)  # a new HighLoad restarts the quiet time
    c.t += 29
    assert b.expire() == []
    c.t += 1
    [t] = b.expire()
    assert t.status == "resolved" and t.entry.ends_at == datetime.fromtimestamp(c.t, UTC)


def test_due_resends_firing_every_interval_and_keeps_resolved_for_a_while() -> None:
    c = Clock()
    b = book(c)
    b.apply(alert("firing"), 0)
    assert len(b.due()) == 1
    b.mark_sent(b.due())
    assert b.due() == [] and b.next_due_in() == 10
    c.t += 10
    assert len(b.due()) == 1
    b.mark_sent(b.due())
    b.apply(alert("resolved", at=3), 0)
    assert len(b.due()) == 1  # changed: sent at once
    b.mark_sent(b.due())
    c.t += 59
    assert b.expire() == [] and "r/a" in b.entries
    c.t += 1
    b.expire()
    assert b.entries == {}


def test_revoked_partitions_are_forgotten() -> None:
    b = book(Clock())
    b.apply(alert("firing", host="a"), 0)
    b.apply(alert("firing", host="b"), 1)
    b.drop_partitions({1})
    assert set(b.entries) == {"r/a"}


def test_alertmanager_payload() -> None:
    c = Clock()
    b = book(c)
    b.apply(alert("firing", at=1), 0)
    shape = AlertShape("PerfwatchHighLoad", "critical", {"team": "perf", "host": "spoof"}, "http://grafana/d/x")
    now = datetime.fromtimestamp(c.t, UTC)
    am = shape.alertmanager(b.entries["r/a"], now, resend_s=10)
    assert am["labels"] == {"alertname": "PerfwatchHighLoad", "run_id": "r", "host": "a", "severity": "critical",
                            "team": "perf"}
    assert am["startsAt"] == "2026-11-25T10:00:01Z"
    assert am["endsAt"] == (now + timedelta(seconds=40)).isoformat().replace("+00:00", "Z")
    assert am["annotations"]["cpu_pct"] == "95" and am["annotations"]["model_id"] == "m1"
    assert am["generatorURL"] == "http://grafana/d/x"
    b.apply(alert("resolved", at=7), 0)
    assert shape.alertmanager(b.entries["r/a"], now, 10)["endsAt"] == "2026-11-25T10:00:07Z"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # the RFC 2104 / Wikipedia test vector
    assert signature(b"key", b"The quick brown fox jumps over the lazy dog") == \
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


@pytest.mark.parametrize("labels", ["team", "bad-name=x", "=x"])
def test_bad_static_labels_are_one_clear_error(labels: str) -> None:
    with pytest.raises(ValueError, match="expected name=value"):
        NotifySettings(webhook="http://x", labels=labels).check()


def test_a_sink_is_required() -> None:
    with pytest.raises(ValueError, match="--alertmanager URL and/or --webhook URL"):
        NotifySettings().check()
