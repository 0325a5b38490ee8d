"""A micro-batch: decode + validate every message, tokenize the valid ones once, remember offsets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message, TopicPartition

from perfwatch.errors import ContractError
from perfwatch.runtime import BundleModel, Encoded
from perfwatch.sample import Sample, decode_sample
from perfwatch.template import sample_text


@dataclass
class Batch:
    valid: list[tuple[Message, Sample]] = field(default_factory=list)
    invalid: list[tuple[Message, ContractError]] = field(default_factory=list)
    encoded: Encoded | None = None
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> offset to commit
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # where to rewind on an aborted txn

    def __len__(self) -> int:
        return len(self.valid) + len(self.invalid)

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.next_offsets.items()]


def coords(m: Message) -> tuple[str, int, int]:
    """topic, partition, offset of a consumed (non-error) message, which always has all three."""
    return cast(str, m.topic()), cast(int, m.partition()), cast(int, m.offset())


def message_time(msg: Message) -> datetime | None:
    """The record's timestamp; one no date can hold (past year 9999) is bad input, never a crash."""
    kind, ms = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise ContractError("bad_timestamp", f"record timestamp {ms} ms is not a date ({exc})") from exc


def prepare(msgs: list[Message], model: BundleModel, max_bytes: int, mem_total_gb: float | None) -> Batch:
    batch = Batch()
    for m in msgs:
        topic, part, off = coords(m)
        tp = (topic, part)
        batch.first_offsets.setdefault(tp, off)
        batch.next_offsets[tp] = off + 1
        try:
            sample = decode_sample(m.value(), max_bytes=max_bytes, mem_total_gb=mem_total_gb, key=m.key(),
                                   received_at=message_time(m))
        except ContractError as exc:
            batch.invalid.append((m, exc))
        else:
            batch.valid.append((m, sample))
    if batch.valid:
        batch.encoded = model.encode([sample_text(s) for _, s in batch.valid])
    return batch
