"""The runtime refuses a bundle made for a template it does not know, and a changed manifest (#21.5)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from perfwatch.errors import BundleError
from perfwatch.runtime.model import BundleModel

pytestmark = pytest.mark.slow


def _edit_manifest(bundle: Path, tmp_path: Path, reseal: bool = False, **changes: object) -> Path:
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    m = json.loads((copy / "manifest.json").read_text())
    assert all(m[k] != v for k, v in changes.items())
    m.update(changes)
    if reseal:  # as export would have written it: manifest_sha256 over the canonical JSON without it
        body = {k: v for k, v in m.items() if k != "manifest_sha256"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        m["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(m, indent=2))
    return copy


def test_a_bundle_for_an_unknown_template_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    """A bundle sealed by an export that rendered another template (not a tampered one)."""
    old = _edit_manifest(tiny_bundle, tmp_path, reseal=True, template_version="v0")
    with pytest.raises(BundleError, match="template"):
        BundleModel(old, "fp32")


@pytest.mark.parametrize("change", [{"labels": ["HighLoad", "MediumLoad", "LowLoad"]}, {"max_tokens": 4},
                                    {"pad_token_id": 12345}])
def test_a_changed_manifest_is_refused(tiny_bundle: Path, tmp_path: Path, change: dict[str, object]) -> None:
    """Swapping two labels in manifest.json would flip every verdict; no file hash covers it today."""
    changed = _edit_manifest(tiny_bundle, tmp_path, **change)
    with pytest.raises(BundleError, match="manifest"):
        BundleModel(changed, "fp32")
