"""Verdicts (one per valid sample) and alerts (HighLoad verdicts, or firing/resolved events)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


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
