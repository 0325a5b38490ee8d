"""Verdicts (one per valid sample) and alerts (HighLoad verdicts, or firing/resolved events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from perfwatch.sample import Sample


class ModelRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    sha256: str


class SourceRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    topic: str
    partition: int
    offset: int


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    host: str
    ts: datetime
    label: str
    confidence: float
    scores: dict[str, float]
    cpu_pct: float
    mem_pct: float
    disk_pct: float
    rps: float | None = None
    p95_ms: float | None = None
    error_pct: float | None = None
    model: ModelRef
    source: SourceRef
    detected_at: datetime


AlertState = Literal["firing", "resolved"]


class Alert(Verdict):
    """A HighLoad verdict; with hysteresis on, ``state`` says whether the alert fires or resolves."""

    state: AlertState | None = None


def verdict_fields(s: Sample, label: str, confidence: float, scores: dict[str, float], model: dict[str, str],
                   topic: str, partition: int, offset: int, detected_at: datetime) -> dict[str, Any]:
    """A :class:`Verdict`'s fields in its declared order, as plain values: the consumer's loop serializes
    this dict (pydantic_core.to_json) instead of building the model per sample; a unit test holds the bytes
    equal to ``Verdict.model_dump_json()``."""
    return {"run_id": s.run_id, "host": s.host, "ts": s.ts, "label": label, "confidence": confidence,
            "scores": scores, "cpu_pct": s.cpu_pct, "mem_pct": s.mem_pct, "disk_pct": s.disk_pct, "rps": s.rps,
            "p95_ms": s.p95_ms, "error_pct": s.error_pct, "model": model,
            "source": {"topic": topic, "partition": partition, "offset": offset}, "detected_at": detected_at}
