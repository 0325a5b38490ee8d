"""The runtime refuses a bundle made for a template it does not know, and a changed manifest (#21.5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from perfwatch.errors import BundleError
from perfwatch.runtime.model import BundleModel

pytestmark = pytest.mark.slow


def _edit_manifest(bundle: Path, tmp_path: Path, **changes: object) -> Path:
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m.update(changes)
    (copy / "manifest.json").write_text(json.dumps(m, indent=2))
    return copy


def test_a_bundle_for_an_unknown_template_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    old = _edit_manifest(tiny_bundle, tmp_path, template_version="v0")
    with pytest.raises(BundleError, match="template"):
        BundleModel(old, "fp32")


@pytest.mark.parametrize("change", [{"labels": ["HighLoad", "MediumLoad", "LowLoad"]}, {"max_tokens": 4},
                                    {"pad_token_id": 1}])
def test_a_changed_manifest_is_refused(tiny_bundle: Path, tmp_path: Path, change: dict[str, object]) -> None:
    """Swapping two labels in manifest.json would flip every verdict; no file hash covers it today."""
    changed = _edit_manifest(tiny_bundle, tmp_path, **change)
    with pytest.raises(BundleError, match="manifest"):
        BundleModel(changed, "fp32")
