"""Swapping a new bundle into place (#21.1): the exchange and its fallback, on plain directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import perfwatch.export.bundle_install as bi
from perfwatch.export.bundle_install import ExportError, check_out, staging_dir, swap_into_place


def _bundle(path: Path, bundle_id: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "tokenizer.json").write_text(bundle_id)
    (path / "manifest.json").write_text(json.dumps({"bundle_id": bundle_id, "files": {}}))
    return path


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_the_new_bundle_replaces_the_old_and_the_old_is_left_to_delete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:
        monkeypatch.setattr(bi, "_exchange", lambda a, b: False)
    out = _bundle(tmp_path / "bundle", "old")
    staged = _bundle(staging_dir(out), "new")
    swap_into_place(staged, out)
    assert (out / "tokenizer.json").read_text() == "new"
    assert "old" in {p.read_text() for p in staged.rglob("tokenizer.json")}


def test_a_new_out_is_a_plain_rename(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "bundle"
    staged = _bundle(staging_dir(out), "new")
    swap_into_place(staged, out)
    assert (out / "tokenizer.json").read_text() == "new" and not staged.exists()


@pytest.mark.parametrize("extra", ["train/checkpoint.bin", "notes.txt"])
def test_out_with_anything_but_bundle_files_is_refused(tmp_path: Path, extra: str) -> None:
    out = _bundle(tmp_path / "bundle", "old")
    (out / extra).parent.mkdir(parents=True, exist_ok=True)
    (out / extra).write_text("mine")
    with pytest.raises(ExportError, match="not a model bundle"):
        check_out(out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a model bundle"):
        check_out(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty")


def test_a_policy_checked_bundle_can_be_replaced(tmp_path: Path) -> None:
    """The policy check writes its card and outputs into the bundle; a re-export must still accept it
    (it refused every gated bundle before, so a second `perfwatch export` into one --out failed)."""
    out = _bundle(tmp_path / "bundle", "old")
    (out / "model_card.md").write_text("# card")
    (out / "policy-check").mkdir()
    (out / "policy-check" / "summary.json").write_text("{}")
    check_out(out)  # no error
    (out / "keep.txt").write_text("not export's")
    with pytest.raises(ExportError):
        check_out(out)
