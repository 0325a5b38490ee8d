"""The one way a record of the samples topic becomes a Sample: its key, value and timestamp under the
consumer's rules (SampleSettings). The consumer, replay from a topic and the report all call
``decode_record``, so a sample the consumer classifies is a sample they see too.

This module joins the JSON contract (perfwatch.sample) and seed-style text (perfwatch.seedtext); neither
of those imports it, so the two stay free of each other's import.
"""

from __future__ import annotations

from datetime import UTC, datetime

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from perfwatch.errors import ContractError
from perfwatch.sample import DEFAULT_HOST, DEFAULT_MAX_BYTES, DEFAULT_RUN_ID, Sample, validate_json
from perfwatch.seedtext import parse_line
from perfwatch.settings import SampleSettings


def _looks_binary(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\t\r\n") or c == "\x7f" for c in text)


def identity_of(key: bytes | None) -> tuple[str, str]:
    """(run_id, host) from a message key ``run_id/host``; the defaults where the key says nothing."""
    if not key:
        return DEFAULT_RUN_ID, DEFAULT_HOST
    run_id, _, host = key.decode("utf-8", "replace").partition("/")
    return run_id, host or DEFAULT_HOST  # an empty run id fails validation: a bad key is bad input


def decode_sample(
    value: bytes | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    mem_total_gb: float | None = None,
    key: bytes | None = None,
    received_at: datetime | None = None,
) -> Sample:
    """Decode a message value (JSON or a seed-style text line) into a valid Sample.

    Identity missing from a text line is taken from the message key (``run_id/host``); a missing
    ``ts`` becomes ``received_at`` (now, when not given). Raises ContractError for anything else.
    """
    if not value:
        raise ContractError("empty", "empty message")
    if len(value) > max_bytes:
        raise ContractError("oversized", f"{len(value)} bytes > limit {max_bytes}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        sample = validate_json(value)
    else:
        if _looks_binary(stripped):
            raise ContractError("binary", "control bytes in a text message")
        run_id, host = identity_of(key)
        sample = parse_line(stripped, mem_total_gb=mem_total_gb, run_id=run_id, host=host).sample
    if sample.ts is None:
        sample = sample.model_copy(update={"ts": received_at or datetime.now(UTC)})
    return sample


def record_time(msg: Message) -> datetime | None:
    """The record's Kafka timestamp (create or log-append time), when the broker gave one. One no date can
    hold (past year 9999, possible on topics that allow it) is bad input, never a crash."""
    kind, ms = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise ContractError("bad_timestamp", f"record timestamp {ms} ms is not a date ({exc})") from exc


def decode_record(msg: Message, rules: SampleSettings) -> Sample:
    """A consumed record of the samples topic as the consumer reads it. Raises ContractError."""
    return decode_sample(msg.value(), max_bytes=rules.max_message_bytes, mem_total_gb=rules.mem_total_gb,
                         key=msg.key(), received_at=record_time(msg))
