"""The loop writes verdicts and alerts from a dict of their fields, not from the pydantic models: the bytes
must be the ones the models themselves write, so the contract (perfwatch/verdict.py) stays the one place
that says what a verdict is."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic_core import to_json

from perfwatch.decoding import decode_sample
from perfwatch.verdict import Alert, ModelRef, Verdict, verdict_fields

MODEL = ModelRef(id="bundle-x", sha256="ab" * 32)
SAMPLES = [
    b'{"cpu_pct": 91, "mem_pct": 40, "disk_pct": 12.5, "run_id": "r1", "host": "web-1",'
    b' "ts": "2026-11-26T03:00:00.123456Z"}',
    b'{"cpu_pct": 0, "mem_pct": 100, "disk_pct": 0.001, "run_id": "r\\u00e9/\\"q\\"", "host": "h\\u4e2d",'
    b' "ts": "2026-11-26T05:00:00+02:00", "rps": 1234.5, "p95_ms": 0, "error_pct": 99.9}',
    b"CPU Load: 85%, Memory: 86%, Disk: 87%",
]


@pytest.mark.parametrize("raw", SAMPLES)
def test_a_verdict_from_its_fields_is_the_models_own_json(raw: bytes) -> None:
    s = decode_sample(raw, key=b"run-7/db-2", received_at=datetime(2026, 11, 26, 3, tzinfo=UTC))
    scores = {"LowLoad": 0.1, "MediumLoad": 0.2, "HighLoad": 0.7000000000000001}
    now = datetime.now(UTC)
    fields = verdict_fields(s, "HighLoad", scores["HighLoad"], scores, {"id": MODEL.id, "sha256": MODEL.sha256},
                            "perf.samples", 3, 1_234_567_890_123, now)
    assert list(fields) == list(Verdict.model_fields)  # every field, in the contract's order
    assert to_json(fields) == Verdict(**fields).model_dump_json().encode()
    for state in ("firing", "resolved"):
        alert = to_json({**fields, "state": state})
        assert alert == Alert(**fields, state=state).model_dump_json().encode()
        assert Alert.model_validate_json(alert).state == state
    assert json.loads(to_json(fields))["source"] == {"topic": "perf.samples", "partition": 3,
                                                     "offset": 1_234_567_890_123}
