"""Export never destroys what it did not write, and replaces an old bundle atomically (issue #21.1);
a bundle states the template it was trained for and the runtime refuses one it does not know (#21.5).
These are about the output folder, not the label policy: exports here skip the policy check (by default a
tiny model gets the whole cube, about 90 s per export here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from perfwatch.bundle import read_manifest, verify_bundle
from perfwatch.export.bundle_writer import ExportError, export_bundle

pytestmark = pytest.mark.slow


def _user_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_out_that_is_not_a_bundle_is_refused_and_left_as_it_was(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    (out / "train").mkdir(parents=True)
    (out / "train" / "checkpoint.bin").write_bytes(b"weeks of training")
    (out / "notes.txt").write_text("mine")
    before = _user_files(out)
    with pytest.raises(ExportError, match="not a model bundle"):
        export_bundle(tiny_checkpoint, out, ("fp32",), parity_samples=50, policy=None)
    assert _user_files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts"]  # no staging left beside it


def test_cli_refuses_an_out_that_is_not_a_bundle(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    res = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", "export", str(tiny_checkpoint), "--out",
                          str(tmp_path), "--precision", "fp32", "--parity-samples", "50"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode != 0 and "not a model bundle" in res.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_staging_name_beside_out_is_never_deleted(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The old code staged in OUT.tmp after deleting whatever was there."""
    mine = tmp_path / "bundle.tmp"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    export_bundle(tiny_checkpoint, tmp_path / "bundle", ("fp32",), parity_samples=50, policy=None)
    assert (mine / "keep.txt").read_text() == "mine"
    verify_bundle(tmp_path / "bundle")


def test_a_crash_while_swapping_keeps_the_old_bundle(tiny_bundle: Path, tiny_checkpoint: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure at the moment the new bundle is moved into place (the old code had already deleted
    the old one) leaves the old bundle whole; the next export then replaces it."""
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    old_id = read_manifest(out).bundle_id

    def crash(*_: object) -> None:
        raise OSError("injected crash while swapping")

    import perfwatch.export.bundle_writer as bw

    targets = [n for n in ("swap_into_place",) if hasattr(bw, n)]
    for name in targets:
        monkeypatch.setattr(bw, name, crash)
    if not targets:  # today's code: the rename of OUT.tmp onto OUT
        real = Path.replace

        def replace(self: Path, target: Path) -> Path:
            if self.is_dir():
                crash()
            return real(self, target)

        monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(OSError, match="injected"):
        export_bundle(tiny_checkpoint, out, ("fp32",), parity_samples=50, policy=None)
    monkeypatch.undo()
    assert verify_bundle(out).bundle_id == old_id
    new = export_bundle(tiny_checkpoint, out, ("fp32",), parity_samples=50, policy=None)
    assert verify_bundle(out).bundle_id == new.bundle_id != old_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # the old bundle and staging are gone


def test_a_checkpoint_without_metadata_is_refused_not_labelled_v1(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    (ckpt / "perfwatch_meta.json").unlink()
    with pytest.raises(ExportError, match="perfwatch_meta.json"):
        export_bundle(ckpt, tmp_path / "b", ("fp32",), parity_samples=50, policy=None)
    assert not (tmp_path / "b").exists()


def test_a_checkpoint_with_an_unknown_template_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    meta = json.loads((ckpt / "perfwatch_meta.json").read_text())
    meta["template_version"] = "v0"
    (ckpt / "perfwatch_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="v0"):
        export_bundle(ckpt, tmp_path / "b", ("fp32",), parity_samples=50, policy=None)
