"""What `perfwatch train` writes beside a checkpoint (perfwatch_meta.json) and export reads: typed,
so a checkpoint without it, or made for a template this code cannot render, is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perfwatch.template import KNOWN_TEMPLATE_VERSIONS

META_FILE: Final = "perfwatch_meta.json"


class CheckpointMetaError(ValueError):
    pass


class CheckpointMeta(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    labels: list[str] = Field(min_length=2)
    template_version: str
    base_model: str
    data_hash: str
    max_tokens: int = Field(gt=0)
    shape: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    # How the checkpoint was made (the model card's "Reproduce"); optional, so export reads any checkpoint.
    data_summary: dict[str, dict[str, int]] = Field(default_factory=dict)
    seed: int | None = None
    lr: float | None = None
    config: dict[str, Any] = Field(default_factory=dict)


def write_checkpoint_meta(checkpoint: Path, meta: CheckpointMeta) -> Path:
    """Write ``checkpoint/perfwatch_meta.json`` whole (temp file + rename): a reader never sees half of it."""
    path = Path(checkpoint) / META_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(meta.model_dump_json(indent=2))
    tmp.replace(path)
    return path


def read_checkpoint_meta(checkpoint: Path) -> CheckpointMeta:
    path = Path(checkpoint) / META_FILE
    if not path.is_file():
        raise CheckpointMetaError(f"{path}: not found; without it the labels and the text template the model "
                                  "was trained for are unknown (export a checkpoint written by `perfwatch train`)")
    try:
        meta = CheckpointMeta.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise CheckpointMetaError(f"{path}: not valid checkpoint metadata: {exc}") from None
    if meta.template_version not in KNOWN_TEMPLATE_VERSIONS:
        raise CheckpointMetaError(f"{path}: trained for text template {meta.template_version!r}; this version "
                                  f"renders {', '.join(sorted(KNOWN_TEMPLATE_VERSIONS))} only")
    return meta
