"""The model bundle: written by export/, read by consumer/ and bench/. One directory:

``model.onnx`` and/or ``model.int8.onnx``, ``tokenizer.json`` and ``manifest.json`` (labels, max
tokens, template version, base model, data hash, metrics, and the sha256 of every other file).
Loading verifies every hash first and refuses a bundle that does not match.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perfwatch.errors import BundleError

FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
TOKENIZER: Final = "tokenizer.json"
MODEL_FILES: Final[dict[str, str]] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
Precision = Literal["fp32", "int8"]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = FORMAT_VERSION
    bundle_id: str
    labels: list[str] = Field(min_length=2)
    max_tokens: int = Field(gt=0)
    pad_token_id: int = Field(ge=0)
    template_version: str
    base_model: str
    shape: dict[str, int] = Field(default_factory=dict)
    data_hash: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    metrics: dict[str, Any] = Field(default_factory=dict)
    parity: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict, description="file name -> sha256")

    def model_path(self, bundle_dir: Path, precision: Precision) -> Path:
        name = MODEL_FILES[precision]
        if name not in self.files:
            raise BundleError(f"bundle {bundle_dir} has no {precision} model ({name})")
        return bundle_dir / name

    @property
    def sha256(self) -> str:
        """One digest for the whole bundle: the hash of the sorted file hashes."""
        joined = "".join(f"{k}={v};" for k, v in sorted(self.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Manifest:
    """Hash every bundle file present and write manifest.json last (its presence marks a full bundle)."""
    names = [n for n in (*MODEL_FILES.values(), TOKENIZER) if (bundle_dir / n).exists()]
    if TOKENIZER not in names or not any(n in names for n in MODEL_FILES.values()):
        raise BundleError(f"bundle {bundle_dir} needs {TOKENIZER} and at least one model file")
    manifest = manifest.model_copy(update={"files": {n: file_sha256(bundle_dir / n) for n in names}})
    tmp = bundle_dir / (MANIFEST + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2))
    tmp.replace(bundle_dir / MANIFEST)
    return manifest


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"no model bundle at {bundle_dir}: {MANIFEST} not found (run `perfwatch export`)")
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except (ValidationError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not a valid manifest: {exc}") from None


def verify_bundle(bundle_dir: Path, only: Precision | None = None) -> Manifest:
    """Check every file's sha256 against the manifest (only one model file when ``only`` is given)."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    skip = {MODEL_FILES[p] for p in MODEL_FILES if only is not None and p != only}
    for name, expected in manifest.files.items():
        if name in skip:
            continue
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in the manifest but missing")
        actual = file_sha256(path)
        if actual != expected:
            raise BundleError(
                f"{path}: sha256 {actual[:16]}… does not match the manifest ({expected[:16]}…); "
                "the bundle was changed or is corrupt, refusing to load it"
            )
    return manifest
