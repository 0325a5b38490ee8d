"""A micro-batch: decode + validate every message, tokenize the valid ones once, remember offsets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
from confluent_kafka import Message, TopicPartition

from perfwatch.consumer.response_cache import ResponseCache, keys_of, texts_of
from perfwatch.decoding import decode_sample
from perfwatch.decoding import record_time as message_time
from perfwatch.errors import ContractError
from perfwatch.runtime.model import BundleModel, Encoded
from perfwatch.sample import Sample
from perfwatch.template import sample_text


@dataclass
class Batch:
    valid: list[tuple[Message, Sample]] = field(default_factory=list)
    invalid: list[tuple[Message, ContractError]] = field(default_factory=list)
    encoded: Encoded | None = None  # the model's input: every valid sample, or (with a cache) its misses
    keys: np.ndarray | None = None  # with a response cache: each valid sample's input key
    miss_keys: np.ndarray | None = None  # ... and the distinct keys the model runs (the rows of ``encoded``)
    cache_hits: int = 0
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> offset to commit
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # where to rewind on an aborted txn

    def __len__(self) -> int:
        return len(self.valid) + len(self.invalid)

    def span(self) -> int:
        """Input offsets the batch covers (its messages, plus any transaction markers between them)."""
        return sum(nxt - self.first_offsets[tp] for tp, nxt in self.next_offsets.items())

    def probabilities(self, computed: np.ndarray, cache: ResponseCache | None) -> np.ndarray:
        """One row per valid sample, from the model's rows for this batch (and the cache)."""
        if cache is None or self.keys is None:
            return computed
        if self.miss_keys is not None and len(self.miss_keys):
            cache.put(self.miss_keys, computed)
        return cache.get(self.keys)

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.next_offsets.items()]


def coords(m: Message) -> tuple[str, int, int]:
    """topic, partition, offset of a consumed (non-error) message, which always has all three."""
    return cast(str, m.topic()), cast(int, m.partition()), cast(int, m.offset())


def prepare(msgs: list[Message], model: BundleModel, max_bytes: int, mem_total_gb: float | None,
            cache: ResponseCache | None = None) -> Batch:
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
    if batch.valid and cache is None:
        batch.encoded = model.encode([sample_text(s, model.template_version) for _, s in batch.valid])
    elif batch.valid and cache is not None:
        batch.keys = keys_of([s for _, s in batch.valid])
        batch.miss_keys, batch.cache_hits = cache.misses_of(batch.keys)
        if len(batch.miss_keys):
            batch.encoded = model.encode(texts_of(batch.miss_keys, model.template_version))
    return batch
