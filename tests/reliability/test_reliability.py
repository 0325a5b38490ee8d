"""Reliability, short form (the long form is `perfwatch chaos`): every scenario ends with exact counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfwatch.bench.chaos import broker_restart, consumer_crashes, coordinator_loss, scale_in_out
from perfwatch.bench.fuzz import bad_input_at_volume
from perfwatch.bench.harness import Result
from perfwatch.bench.security import bad_bundle_refused, sasl_round_trip
from tests.kafka_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _show(r: Result) -> None:
    print(f"\n{r.scenario}: messages {r.messages}, lost {r.lost}, duplicated {r.duplicated}, DLQ {r.dlq}; {r.note}")


def test_consumer_sigkilled_exactly_once(kafka: Broker, tiny_bundle: Path) -> None:
    r = consumer_crashes(kafka.bootstrap, tiny_bundle, "exactly-once", n=4000, kills=3)
    _show(r)
    assert (r.messages, r.lost, r.duplicated) == (4000, 0, 0)
    assert r.ok, r.note  # and no restarted consumer stalled


def test_consumer_sigkilled_at_least_once(kafka: Broker, tiny_bundle: Path) -> None:
    r = consumer_crashes(kafka.bootstrap, tiny_bundle, "at-least-once", n=4000, kills=3)
    _show(r)
    assert (r.messages, r.lost) == (4000, 0)
    assert r.ok, r.note  # and no restarted consumer stalled


def test_broker_restart_mid_stream(tiny_bundle: Path) -> None:
    r = broker_restart(tiny_bundle, n=2000, rate=400)
    _show(r)
    assert r.ok and (r.messages, r.lost) == (2000, 0)
    assert "never restarted" in r.note


def test_cluster_loses_its_group_coordinator(tiny_bundle: Path) -> None:
    """The way out of librdkafka's hang in send_offsets_to_transaction: each run SIGKILLs or SIGSTOPs the
    group's coordinator; the consumer carries on, or exits on its deadline and is restarted by a supervisor,
    and no run hangs, loses or repeats. 4 runs here (≈ 4 min); `perfwatch chaos` runs 10."""
    r = coordinator_loss(tiny_bundle, runs=4, n=600, rate=100)
    _show(r)
    assert (r.messages, r.lost, r.duplicated, r.dlq) == (2400, 0, 0, 0), r.note
    assert r.ok and "0 runs hung" in r.note, r.note


def test_scale_in_and_out(kafka: Broker, tiny_bundle: Path) -> None:
    r = scale_in_out(kafka.bootstrap, tiny_bundle, n=4000, rate=500)
    _show(r)
    assert (r.messages, r.lost) == (4000, 0)


def test_bad_input_at_volume(kafka: Broker, tiny_bundle: Path) -> None:
    r = bad_input_at_volume(kafka.bootstrap, tiny_bundle, n_bad=2000)
    _show(r)
    assert (r.messages, r.lost, r.dlq) == (4000, 0, 2000)
    assert r.ok, r.note  # consumer stayed up, memory flat


def test_tampered_bundle_refused(tiny_bundle: Path) -> None:
    r = bad_bundle_refused(tiny_bundle)
    _show(r)
    assert r.ok


def test_sasl_credentials_and_wrong_password(tiny_bundle: Path) -> None:
    r = sasl_round_trip(tiny_bundle, n=300)
    _show(r)
    assert r.ok, r.note
    assert "password printed: False" in r.note
