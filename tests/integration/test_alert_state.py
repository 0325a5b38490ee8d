"""Hysteresis state backed by a compacted changelog, against the real broker: restore, corrupt records,
and one `firing` + one `resolved` per episode through SIGKILLs and partitions moving between members."""

from __future__ import annotations

import logging
import random
import signal
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from perfwatch.consumer import changelog
from perfwatch.consumer.processor import StreamProcessor
from perfwatch.consumer.state import KeyState, PartitionState, encode
from perfwatch.labels import HIGH
from perfwatch.settings import ConsumerSettings
from tests.kafka_fixtures import Broker
from tests.streams import (
    Topics,
    consume_cli,
    make_topics,
    produce,
    read_json_to_end,
    run_in_thread,
    sample_msg,
    total,
    wait_for,
)

pytestmark = [pytest.mark.integration]

# One host's episode: low, high long enough to fire (3 of 5), then low long enough to resolve.
EPISODE = [10.0] * 30 + [97.0] * 60 + [12.0] * 60


def _settings(kafka: Broker, topics: Topics, bundle: Path, group: str, **kw) -> ConsumerSettings:  # noqa: ANN003
    return ConsumerSettings(bootstrap_servers=kafka.bootstrap, bundle=bundle, group_id=group,
                            **topics.settings(), **kw)


def _states(kafka: Broker, topics: Topics, host: str, committed: bool) -> list[str]:
    return [a["state"] for a in read_json_to_end(kafka.conf, topics.alerts, committed=committed) if a["host"] == host]


def _expected_offsets(kafka: Broker, topics: Topics, host: str) -> list[int]:
    """Where 3/5 must fire and resolve, from the committed verdicts of ``host`` (one partition, in order)."""
    verdicts = sorted((v["source"]["offset"], v["label"] == HIGH)
                      for v in read_json_to_end(kafka.conf, topics.predictions) if v["host"] == host)
    assert [o for o, _ in verdicts] == list(range(len(EPISODE)))  # every sample once
    out, firing = [], False
    for i in range(len(verdicts)):
        highs = sum(h for _, h in verdicts[max(0, i - 4):i + 1])
        if firing != (highs >= 3):
            firing = not firing
            out.append(i)
    return out


def _alert_offsets(kafka: Broker, topics: Topics, host: str) -> list[int]:
    return [a["source"]["offset"] for a in read_json_to_end(kafka.conf, topics.alerts) if a["host"] == host]


def test_restore_reads_to_the_end_and_skips_a_corrupt_record(kafka: Broker, topic_factory,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    topic = topic_factory("changelog", partitions=2)
    p = Producer({**kafka.conf, "transactional.id": f"t-{topic}"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3000):
        p.produce(topic, encode(KeyState(1, 1, False, float(i), i)), f"r/{i % 1000}".encode(), partition=i % 2)
    p.produce(topic, b"\xff not a state record", b"r/corrupt", partition=0)
    p.produce(topic, None, b"r/0", partition=0)  # tombstone: r/0 is gone
    p.commit_transaction(30)  # ends with a transaction marker: restore must still see its end
    p.begin_transaction()
    p.produce(topic, encode(KeyState()), b"r/aborted", partition=1)
    p.flush(10)
    p.abort_transaction(30)
    parts = {0: PartitionState(), 1: PartitionState()}
    with caplog.at_level(logging.WARNING, "perfwatch.consumer.changelog"):
        results = {r.partition: r for r in changelog.restore(kafka.conf, topic, parts)}
    assert results[0].records == 1502 and results[1].records == 1500  # everything committed, nothing aborted
    assert results[0].corrupt == 1 and results[1].corrupt == 0
    assert "r/corrupt" not in parts[0].keys and "r/0" not in parts[0].keys and "r/aborted" not in parts[1].keys
    assert len(parts[0].keys) == 499 and len(parts[1].keys) == 500
    assert parts[0].keys["r/998"].seen == 2998.0  # the latest value of each key wins
    assert any("r/corrupt" in r.message and "skipped: not JSON" in r.message for r in caplog.records)


def test_changelog_is_created_compacted_and_co_partitioned(kafka: Broker, topic_factory) -> None:
    samples = topic_factory("samples", partitions=5)
    log_topic = f"{samples}.alert-state"
    changelog.ensure_changelog(kafka.conf, samples, log_topic)
    assert changelog.partition_count(kafka.conf, log_topic) == 5
    res = ConfigResource(ConfigResource.Type.TOPIC, log_topic)
    admin = AdminClient(kafka.conf)
    cfg = admin.describe_configs([res])[res].result()
    assert cfg["cleanup.policy"].value == "compact"
    other = topic_factory("samples", partitions=2)
    with pytest.raises(RuntimeError, match="partition i of one must match"):
        changelog.ensure_changelog(kafka.conf, other, log_topic)


@pytest.mark.slow
def test_state_survives_a_restart_and_idle_keys_expire(kafka: Broker, topic_factory, group_factory,
                                                       tiny_bundle: Path) -> None:
    """High samples before a restart and after it fire once (the window was restored, not refilled);
    an idle firing key resolves on expiry and its state becomes a tombstone."""
    topics = make_topics(topic_factory)
    group = group_factory()
    produce(kafka.conf, topics.samples, [sample_msg(i, 97.0, host="web-1") for i in range(2)])
    first = StreamProcessor(_settings(kafka, topics, tiny_bundle, group, hysteresis="3/5", batch_size=1,
                                      guarantee="exactly-once"))
    run_in_thread(first, max_idle_s=3).join(60)
    assert first.stats.alerts == 0
    produce(kafka.conf, topics.samples, [sample_msg(2, 97.0, host="web-1")])
    second = StreamProcessor(_settings(kafka, topics, tiny_bundle, group, hysteresis="3/5", batch_size=1,
                                       guarantee="exactly-once", state_expiry_s=10.0))
    t = run_in_thread(second)
    assert wait_for(lambda: second.stats.alerts == 2, timeout=60)  # firing (2 restored + 1), then resolved
    second.stop()
    t.join(60)
    assert _states(kafka, topics, "web-1", committed=True) == ["firing", "resolved"]
    assert _alert_offsets(kafka, topics, "web-1") == [2, 2]  # fired on the 3rd high; resolved copies it
    restored = second.metrics.registry.get_sample_value("perfwatch_state_restore_records_total")
    assert restored is not None and restored >= 1
    log_topic = f"{topics.samples}.alert-state"
    values = [m.value() for m in changelog_messages(kafka, log_topic)]
    assert len(values) == 4 and values[-1] is None  # 3 samples, then the last word on web-1: a tombstone
    assert second.metrics.registry.get_sample_value("perfwatch_state_expired_total") == 1


def changelog_messages(kafka: Broker, topic: str) -> list:
    from perfwatch.kafkaio import read_topic

    return list(read_topic(kafka.conf, topic, idle_s=2, read_committed=True))


def _kill_at_random_points(kafka: Broker, topics: Topics, bundle: Path, group: str, guarantee: str,
                           kills: int, rng: random.Random) -> None:
    """Feed the episode in chunks; during each chunk SIGKILL the consumer at a random point of its
    progress (and a random moment after it), then restart it; the last one runs to idle."""
    stable = ["--transactional-id", f"{group}-0"] if guarantee == "exactly-once" else []
    args = ["--group-id", group, "--guarantee", guarantee, "--hysteresis", "3/5", "--batch-size", "4",
            "--max-wait-ms", "20", *stable]
    n = len(EPISODE)
    chunks = [EPISODE[k * n // (kills + 1):(k + 1) * n // (kills + 1)] for k in range(kills + 1)]
    sent = 0
    for k, chunk in enumerate(chunks):
        produce(kafka.conf, topics.samples, [sample_msg(sent + i, c, host="web-1") for i, c in enumerate(chunk)])
        sent += len(chunk)
        if k == kills:
            break
        proc = consume_cli(kafka.bootstrap, topics, bundle, *args)
        try:
            target = sent - len(chunk) + rng.randint(1, len(chunk) - 1)
            assert wait_for(lambda t=target: total(kafka.conf, topics.predictions) >= t, timeout=120)
            subprocess.run(["sleep", f"{rng.uniform(0, 0.3):.2f}"], check=True)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    last = consume_cli(kafka.bootstrap, topics, bundle, *args, "--until-idle", "8")
    out, _ = last.communicate(timeout=240)
    assert last.returncode == 0, out[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
def test_one_episode_through_five_sigkills(kafka: Broker, topic_factory, group_factory, tiny_bundle: Path,
                                           guarantee: str) -> None:
    topics = make_topics(topic_factory)
    _kill_at_random_points(kafka, topics, tiny_bundle, group_factory(), guarantee, 5, random.Random(16))
    states = _states(kafka, topics, "web-1", committed=guarantee == "exactly-once")
    if guarantee == "exactly-once":
        assert states == ["firing", "resolved"]
        # and at the very samples an uninterrupted 3/5 window fires and resolves: no window was lost
        assert _alert_offsets(kafka, topics, "web-1") == _expected_offsets(kafka, topics, "web-1")
    else:
        assert states.count("firing") >= 1 and states.count("resolved") >= 1
        firing = False
        for s in states:  # never a `resolved` that no `firing` came before
            assert s == "firing" or firing, states
            firing = s == "firing"
        print(f"at-least-once states: {states}")


@pytest.mark.slow
def test_episode_moves_between_two_members(kafka: Broker, topic_factory, group_factory, tiny_bundle: Path) -> None:
    """One partition; A holds it while the window fills, leaves with 2 of 3 highs in (revoke: B restores and
    goes on), A comes back and B is SIGKILLed with 2 of 3 lows in (A restores). Exactly one firing and one
    resolved, each at the sample where an uninterrupted window would have them."""
    topics = make_topics(topic_factory, partitions=1)
    group = group_factory()
    args = ["--group-id", group, "--guarantee", "exactly-once", "--hysteresis", "3/5", "--batch-size", "4",
            "--max-wait-ms", "20", "-v"]
    first_move, second_move = 32, 92  # 30 low + 2 high; 60 high + 2 low
    a = consume_cli(kafka.bootstrap, topics, tiny_bundle, *args)
    b: subprocess.Popen[str] | None = None
    a2: subprocess.Popen[str] | None = None
    try:
        produce(kafka.conf, topics.samples,
                [sample_msg(i, c, host="web-1") for i, c in enumerate(EPISODE[:first_move])])
        assert wait_for(lambda: total(kafka.conf, topics.predictions) >= first_move, timeout=120)
        b = consume_cli(kafka.bootstrap, topics, tiny_bundle, *args)  # joins; the partition stays with A
        assert _states(kafka, topics, "web-1", committed=True) == []
        a.send_signal(signal.SIGTERM)
        a.wait(60)
        produce(kafka.conf, topics.samples, [sample_msg(first_move + i, c, host="web-1")
                                             for i, c in enumerate(EPISODE[first_move:second_move])])
        assert wait_for(lambda: total(kafka.conf, topics.predictions) >= second_move, timeout=120)
        assert _states(kafka, topics, "web-1", committed=True) == ["firing"]
        a2 = consume_cli(kafka.bootstrap, topics, tiny_bundle, *args)
        b.send_signal(signal.SIGKILL)  # mid-episode, lost: a2 takes over after the session timeout
        b.wait(10)
        produce(kafka.conf, topics.samples, [sample_msg(second_move + i, c, host="web-1")
                                             for i, c in enumerate(EPISODE[second_move:])])
        assert wait_for(lambda: len(read_json_to_end(kafka.conf, topics.predictions)) >= len(EPISODE),
                        timeout=180, every=2)
    finally:
        for proc in (a, b, a2):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
    assert _states(kafka, topics, "web-1", committed=True) == ["firing", "resolved"]
    assert _alert_offsets(kafka, topics, "web-1") == _expected_offsets(kafka, topics, "web-1")
