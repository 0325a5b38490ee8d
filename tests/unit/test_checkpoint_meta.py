"""perfwatch_meta.json: what training writes is what export reads, field for field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfwatch.checkpoint_meta import (
    META_FILE,
    CheckpointMeta,
    CheckpointMetaError,
    read_checkpoint_meta,
    write_checkpoint_meta,
)
from perfwatch.labels import LABELS
from perfwatch.template import TEMPLATE_VERSION


def _meta(**changes: object) -> CheckpointMeta:
    meta = CheckpointMeta(
        labels=list(LABELS), template_version=TEMPLATE_VERSION, base_model="scratch:tiny", data_hash="ab12",
        max_tokens=16, shape={"n_layer": 2, "parameters": 1234},
        metrics={"slices": {"test": {"macro_f1": 0.97, "n": 10}}, "steps": 40},
        data_summary={"train": {label: 3 for label in LABELS}}, seed=7, lr=2e-3,
        config={"from_scratch": "tiny", "data": ["a.csv"], "max_minutes": None},
    )
    return meta.model_copy(update=changes)


def test_write_then_read_gives_the_same_meta(tmp_path: Path) -> None:
    meta = _meta()
    path = write_checkpoint_meta(tmp_path, meta)
    assert path == tmp_path / META_FILE
    assert read_checkpoint_meta(tmp_path) == meta
    assert [p.name for p in tmp_path.iterdir()] == [META_FILE]  # no temp file left behind


def test_rewrite_replaces_the_file(tmp_path: Path) -> None:
    write_checkpoint_meta(tmp_path, _meta(max_tokens=16))
    write_checkpoint_meta(tmp_path, _meta(max_tokens=32))
    assert read_checkpoint_meta(tmp_path).max_tokens == 32


def test_meta_without_the_optional_fields_still_reads(tmp_path: Path) -> None:
    """Checkpoints written before training recorded seed, lr and config export as before."""
    minimal = {"labels": list(LABELS), "template_version": TEMPLATE_VERSION, "base_model": "distilgpt2",
               "data_hash": "ab12", "max_tokens": 16}
    (tmp_path / META_FILE).write_text(json.dumps(minimal))
    meta = read_checkpoint_meta(tmp_path)
    assert (meta.seed, meta.lr, meta.config, meta.data_summary) == (None, None, {}, {})


def test_unknown_template_version_is_refused_by_name(tmp_path: Path) -> None:
    write_checkpoint_meta(tmp_path, _meta(template_version="v0"))
    with pytest.raises(CheckpointMetaError, match="'v0'"):
        read_checkpoint_meta(tmp_path)
