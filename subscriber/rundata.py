"""One run read back from the three topics: its samples, verdicts and alerts, each topic read to the end
offsets it had when the read began, each verdict and alert counted once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from perfwatch.decoding import decode_record
from perfwatch.errors import ContractError
from perfwatch.sample import Sample
from perfwatch.settings import SampleSettings
from perfwatch.subscriber.alerts import read_alert
from perfwatch.subscriber.episodes import Episode, host_episodes
from perfwatch.topicread import key_partition, partition_count, read_to_end
from perfwatch.verdict import Alert, Verdict

Coords = tuple[str, int, int]  # topic, partition, offset


@dataclass
class RunData:
    run_id: str
    samples: list[Sample] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    sample_offsets: dict[int, int] = field(default_factory=dict)  # samples-topic partition -> last offset of run
    duplicates: int = 0  # verdicts and alerts delivered more than once (at-least-once), counted once
    unreadable: int = 0  # records on the predictions/alerts topics that are not verdicts
    why_no_verdicts: str | None = None

    @property
    def hosts(self) -> list[str]:
        return sorted({v.host for v in self.verdicts} | {s.host for s in self.samples})

    def host_verdicts(self, host: str) -> list[Verdict]:
        return sorted((v for v in self.verdicts if v.host == host), key=lambda v: v.ts)

    def host_samples(self, host: str) -> list[Sample]:
        return sorted((s for s in self.samples if s.host == host), key=lambda s: s.ts)  # type: ignore[arg-type, return-value]

    def episodes(self) -> list[Episode]:
        return [e for h in self.hosts
                for e in host_episodes(h, self.host_verdicts(h), [a for a in self.alerts if a.host == h])]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _source(v: Verdict) -> Coords:
    return v.source.topic, v.source.partition, v.source.offset


def _verdicts(conf: dict[str, Any], topic: str, run_id: str, partitions: set[int] | None,
              data: RunData, deadline_s: float) -> list[Verdict]:
    seen: set[Coords] = set()
    out: list[Verdict] = []
    for m in read_to_end(conf, topic, partitions=partitions, deadline_s=deadline_s):
        try:
            v = Verdict.model_validate_json(m.value() or b"")
        except ValueError:
            data.unreadable += 1
            continue
        if v.run_id != run_id:
            continue
        if _source(v) in seen:
            data.duplicates += 1
            continue
        seen.add(_source(v))
        out.append(v)
    return out


def _alerts(conf: dict[str, Any], topic: str, run_id: str, partitions: set[int] | None,
            data: RunData, deadline_s: float) -> list[Alert]:
    seen: set[tuple[Coords, str | None]] = set()
    out: list[Alert] = []
    for m in read_to_end(conf, topic, partitions=partitions, deadline_s=deadline_s):
        a = read_alert(m)
        if a is None:
            data.unreadable += 1
            continue
        if a.run_id != run_id:
            continue
        if (_source(a), a.state) in seen:
            data.duplicates += 1
            continue
        seen.add((_source(a), a.state))
        out.append(a)
    return out


def _key_partitions(conf: dict[str, Any], topic: str, keys: set[bytes | None]) -> set[int] | None:
    """Partitions holding the outputs of these sample keys (the consumer keeps a sample's key); None (all)
    when a sample had no key, since its outputs may be anywhere."""
    if not keys or None in keys:
        return None
    n = partition_count(conf, topic)
    return {key_partition(k, n) for k in keys if k is not None}


def why_no_verdicts(conf: dict[str, Any], samples_topic: str, group_id: str, sample_offsets: dict[int, int],
                    predictions_topic: str) -> str:
    """Why a run with samples has no verdicts, from the consumer group's committed offsets."""
    c = Consumer({**conf, "group.id": group_id, "enable.auto.commit": False})
    try:
        committed = {tp.partition: tp.offset for tp in
                     c.committed([TopicPartition(samples_topic, p) for p in sample_offsets], timeout=10)}
    finally:
        c.close()
    if all(o < 0 for o in committed.values()):
        return (f"no consumer has run: group {group_id} has committed nothing on {samples_topic} "
                "(start `perfwatch consume`, or give its --group-id)")
    behind = sorted(p for p, last in sample_offsets.items() if committed.get(p, -1) <= last)
    if behind:
        return (f"the consumer is behind: group {group_id} has not yet committed past this run's samples "
                f"on partition {', '.join(map(str, behind))} of {samples_topic}; run the report again later")
    return (f"group {group_id} has processed this run's samples, but no verdicts are on {predictions_topic} "
            "(was the consumer run with --no-emit-predictions, or other topics?)")


def collect(conf: dict[str, Any], run_id: str, samples_topic: str, predictions_topic: str, alerts_topic: str,
            *, group_id: str = "perfwatch-consumer", rules: SampleSettings | None = None,
            deadline_s: float = 300.0) -> RunData:
    """Everything of one run, each topic read to the end offsets it had when the read began. Samples are
    decoded as the consumer decodes them (``rules``; from the environment when not given); verdicts and
    alerts delivered twice (at-least-once) are kept once, by the sample they came from."""
    rules = rules or SampleSettings()  # type: ignore[call-arg]  # from the environment
    data = RunData(run_id)
    keys: set[bytes | None] = set()
    for m in read_to_end(conf, samples_topic, deadline_s=deadline_s):
        try:
            s = decode_record(m, rules)
        except ContractError:
            continue
        if s.run_id == run_id:
            data.samples.append(s)
            keys.add(m.key())
            p, off = m.partition(), m.offset()
            if p is not None and off is not None:
                data.sample_offsets[p] = max(off, data.sample_offsets.get(p, -1))
    data.verdicts = _verdicts(conf, predictions_topic, run_id, _key_partitions(conf, predictions_topic, keys),
                              data, deadline_s)
    data.alerts = _alerts(conf, alerts_topic, run_id, _key_partitions(conf, alerts_topic, keys), data, deadline_s)
    if data.samples and not data.verdicts:
        data.why_no_verdicts = why_no_verdicts(conf, samples_topic, group_id, data.sample_offsets,
                                               predictions_topic)
    return data
