"""A performance-test sample: the message on the samples topic, validated at the edge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from perfwatch.errors import ContractError, Reason

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, strict=True)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
Name = Annotated[str, Field(min_length=1, max_length=200, strict=True)]

DEFAULT_RUN_ID = "adhoc"
DEFAULT_HOST = "unknown"
DEFAULT_MAX_BYTES = 64 * 1024


class Sample(BaseModel):
    """One reading of one host during one test run."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    cpu_pct: Percent
    mem_pct: Percent
    disk_pct: Percent
    run_id: Name = DEFAULT_RUN_ID
    host: Name = DEFAULT_HOST
    ts: datetime | None = None
    rps: NonNegative | None = None
    p95_ms: NonNegative | None = None
    error_pct: Percent | None = None
    mem_free_gb: NonNegative | None = None
    tags: dict[str, str] = Field(default_factory=dict, max_length=32)

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        # Naive timestamps are taken as UTC so that every ts on the wire is RFC 3339 with an offset.
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v

    @property
    def key(self) -> str:
        return message_key(self.run_id, self.host)


def message_key(run_id: str, host: str) -> str:
    """The Kafka key of DESIGN.md: keeps one host's samples of one run in one partition, in order."""
    return f"{run_id}/{host}"


# pydantic error types -> contract reasons; the first error of a validation decides.
_REASONS: dict[str, Reason] = {
    "missing": "missing_field",
    "finite_number": "not_finite",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "json_invalid": "bad_json",
    "json_type": "bad_json",
    "too_long": "out_of_range",
    "too_short": "wrong_type",
}


def reason_of(exc: ValidationError) -> tuple[Reason, str]:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "sample"
    reason = _REASONS.get(err["type"], "wrong_type")
    return reason, f"{loc}: {err['msg']}"


def validate_json(raw: bytes | str) -> Sample:
    """Parse and validate one JSON sample, raising ContractError with a reason."""
    try:
        return Sample.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(*reason_of(exc)) from None


def validate_obj(obj: dict[str, Any]) -> Sample:
    try:
        return Sample.model_validate(obj)
    except ValidationError as exc:
        raise ContractError(*reason_of(exc)) from None
