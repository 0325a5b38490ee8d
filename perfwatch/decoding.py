"""Decoding a samples-topic record (JSON or a seed-style text line) into a Sample: the one path that every
reader of the samples topic uses. It needs both the sample model and the seed-text parser, so it lives
beside them rather than in either (seedtext imports the sample model)."""

from __future__ import annotations

from datetime import UTC, datetime

from perfwatch.errors import ContractError
from perfwatch.sample import DEFAULT_HOST, DEFAULT_MAX_BYTES, DEFAULT_RUN_ID, Sample, validate_json
from perfwatch.seedtext import parse_line


def _looks_binary(text: str) -> bool:
    return any((ord(c) < 32 and c not in "\t\r\n") or c == "\x7f" for c in text)


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
    ``ts`` becomes ``received_at``. Raises ContractError for anything else.
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
        run_id, host = DEFAULT_RUN_ID, DEFAULT_HOST
        if key:
            k = key.decode("utf-8", "replace")
            run_id, _, host = k.partition("/")
            host = host or DEFAULT_HOST
        sample = parse_line(stripped, mem_total_gb=mem_total_gb, run_id=run_id, host=host).sample
    if sample.ts is None:
        sample = sample.model_copy(update={"ts": received_at or datetime.now(UTC)})
    return sample
