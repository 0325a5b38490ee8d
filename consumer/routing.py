"""What a batch becomes on the output topics: verdicts, alerts, and dead letters with their reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from confluent_kafka import Message
from pydantic_core import to_json

from perfwatch.consumer.batch import Batch, coords
from perfwatch.consumer.hysteresis import Hysteresis
from perfwatch.consumer.state import Changes
from perfwatch.errors import ContractError
from perfwatch.labels import ALERT_LABEL
from perfwatch.verdict import Alert, AlertState, ModelRef, verdict_fields

Header = tuple[str, str | bytes | None]


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__, 3× slower to build
class Record:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (changelog)
    headers: list[Header] | None = None
    state: str | None = None  # for alerts: "high" (every HighLoad verdict), "firing" or "resolved"
    source: tuple[str, int, int] | None = None  # the input it came from (topic, partition, offset)
    reason: str | None = None  # for dead letters: why
    partition: int | None = None  # set for changelog records (partition i ↔ input partition i)


def dlq_headers(msg: Message, exc: ContractError, truncated_from: int | None) -> list[Header]:
    topic, partition, offset = coords(msg)
    h: list[Header] = [
        ("perfwatch.error.reason", exc.reason.encode()),
        ("perfwatch.error.class", type(exc).__name__.encode()),
        ("perfwatch.error.message", exc.message[:500].encode()),
        ("perfwatch.source.topic", topic.encode()),
        ("perfwatch.source.partition", str(partition).encode()),
        ("perfwatch.source.offset", str(offset).encode()),
    ]
    if truncated_from is not None:
        h.append(("perfwatch.original.size", str(truncated_from).encode()))
    original = msg.headers() or []
    return h + (list(original.items()) if isinstance(original, dict) else list(original))


def route(batch: Batch, probs: np.ndarray, labels: tuple[str, ...], model: ModelRef, *, predictions_topic: str,
          alerts_topic: str, dlq_topic: str, emit_predictions: bool, hysteresis: Hysteresis | None,
          dlq_max_bytes: int, undeliverable: dict[tuple[str, int, int], str] | None = None,
          changes: Changes | None = None) -> tuple[list[Record], list[str]]:
    """The batch's records and the label of each verdict. ``undeliverable``: inputs whose output failed every
    try (with the error): they go to the DLQ. With ``hysteresis``, window and alert state are read and staged
    in ``changes``.

    A verdict is written as the JSON of :class:`perfwatch.verdict.Verdict` (an alert: of ``Alert``) without
    building the model: its fields come from a validated sample, the model's labels and Kafka's coordinates,
    so there is nothing to validate, and pydantic's own serializer writes the same bytes from a dict of them
    (a unit test holds the two equal). Building two pydantic models per verdict was the loop's largest cost."""
    now = datetime.now(UTC)
    records: list[Record] = []
    verdict_labels: list[str] = []
    best = probs.argmax(axis=-1) if len(probs) else np.zeros(0, dtype=int)
    model_fields = {"id": model.id, "sha256": model.sha256}

    def dead_letter(msg: Message, exc: ContractError) -> Record:
        value = msg.value() or b""
        truncated = len(value) if len(value) > dlq_max_bytes else None
        return Record(dlq_topic, msg.key(), value[:dlq_max_bytes], dlq_headers(msg, exc, truncated),
                      source=coords(msg), reason=exc.reason)

    for (msg, s), row, i in zip(batch.valid, probs, best, strict=True):
        label = labels[int(i)]
        topic, partition, offset = coords(msg)
        if undeliverable and (error := undeliverable.get((topic, partition, offset))) is not None:
            records.append(dead_letter(msg, ContractError("undeliverable", f"output not delivered: {error}")))
            continue
        scores = row.tolist()
        fields = verdict_fields(s, label, scores[int(i)], dict(zip(labels, scores, strict=True)), model_fields,
                                topic, partition, offset, now)
        verdict_labels.append(label)
        key = msg.key()
        high = label == ALERT_LABEL
        # Serialized once: without hysteresis an alert is the verdict itself (an Alert with no state).
        value = to_json(fields) if emit_predictions or (high and hysteresis is None) else b""
        src = (topic, partition, offset)
        if emit_predictions:
            records.append(Record(predictions_topic, key, value, source=src))
        if hysteresis is None:
            if high:
                records.append(Record(alerts_topic, key, value, state="high", source=src))
        else:
            assert changes is not None  # noqa: S101 - hysteresis state lives in the batch's changes

            def render(st: AlertState, fields: dict[str, Any] = fields) -> str:
                return to_json({**fields, "state": st}).decode()

            if state := hysteresis.observe(changes, partition, offset, s.key, high, now.timestamp(), render):
                records.append(Record(alerts_topic, key, render(state).encode(), state=state, source=src))
    records.extend(dead_letter(msg, exc) for msg, exc in batch.invalid)
    return records, verdict_labels


def expiry_alerts(changes: Changes, alerts_topic: str) -> list[Record]:
    """A `resolved` for each expired key that was still firing, copied from its `firing` alert."""
    now = datetime.now(UTC)
    records = []
    for _partition, key, st in changes.expired:
        if st.firing and st.alert is not None:
            resolved = Alert.model_validate_json(st.alert).model_copy(update={"state": "resolved", "detected_at": now})
            records.append(Record(alerts_topic, key.encode(), resolved.model_dump_json().encode(),
                                  [("perfwatch.alert.reason", b"expired")], state="resolved"))
    return records
