"""The model bundle: written by export/, read by consumer/ and bench/. One directory:

``model.onnx`` and/or ``model.int8.onnx``, ``tokenizer.json`` and ``manifest.json`` (labels, max
tokens, template version, base model, data hash, metrics, and the sha256 of every other file).
Loading verifies every hash first and refuses a bundle that does not match. The manifest carries
``manifest_sha256``, the sha256 of its own canonical JSON without that field, so a hand-edited
manifest (swapped labels, another pad id) is refused as well; so is a bundle made for a format or a
text template this runtime does not know.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from perfwatch.errors import BundleError
from perfwatch.template import KNOWN_TEMPLATE_VERSIONS

FORMAT_VERSION: Final = 2  # 2: manifest_sha256 covers the manifest itself
MANIFEST: Final = "manifest.json"
TOKENIZER: Final = "tokenizer.json"
MODEL_FILES: Final[dict[str, str]] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
# Written into a bundle after its manifest, by the policy check (export's gate, `perfwatch evaluate`): part
# of a bundle, so that a re-export may replace it.
CARD: Final = "model_card.md"
CHECK_DIR: Final = "policy-check"
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
    manifest_sha256: str = Field(default="", description="sha256 of this manifest's canonical JSON without it")

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


def _canonical_sha256(obj: dict[str, Any]) -> str:
    """Key order and whitespace do not count; every value does."""
    body = {k: v for k, v in obj.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Manifest:
    """Hash every bundle file present and write manifest.json last (its presence marks a full bundle)."""
    names = [n for n in (*MODEL_FILES.values(), TOKENIZER) if (bundle_dir / n).exists()]
    if TOKENIZER not in names or not any(n in names for n in MODEL_FILES.values()):
        raise BundleError(f"bundle {bundle_dir} needs {TOKENIZER} and at least one model file")
    manifest = manifest.model_copy(update={"files": {n: file_sha256(bundle_dir / n) for n in names}})
    obj = json.loads(manifest.model_dump_json())
    manifest = manifest.model_copy(update={"manifest_sha256": _canonical_sha256(obj)})
    tmp = bundle_dir / (MANIFEST + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2))
    tmp.replace(bundle_dir / MANIFEST)
    return manifest


def is_bundle_dir(path: Path) -> bool:
    """A directory holding only bundle files and a manifest.json object: what export may replace."""
    known = {*MODEL_FILES.values(), TOKENIZER, MANIFEST, MANIFEST + ".tmp", CARD, CHECK_DIR}
    try:
        names = {p.name for p in path.iterdir()}
        obj = json.loads((path / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return False
    return names <= known and isinstance(obj, dict) and {"bundle_id", "files"} <= obj.keys()


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"no model bundle at {bundle_dir}: {MANIFEST} not found (run `perfwatch export`)")
    try:
        obj = json.loads(path.read_bytes())
        if not isinstance(obj, dict):
            raise BundleError(f"{path}: not a valid manifest: not a JSON object")
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(f"{path}: bundle format {version!r}, this runtime reads format {FORMAT_VERSION} "
                              "only; export the checkpoint again with this version (`perfwatch export`)")
        if obj.get("manifest_sha256") != _canonical_sha256(obj):
            raise BundleError(f"{path}: the manifest does not match its manifest_sha256; it was changed "
                              "after export or is corrupt, refusing to load the bundle")
        manifest = Manifest.model_validate(obj)
    except (ValidationError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BundleError(f"{path}: not a valid manifest: {exc}") from None
    if manifest.template_version not in KNOWN_TEMPLATE_VERSIONS:
        raise BundleError(f"{path}: bundle made for text template {manifest.template_version!r}, this runtime "
                          f"renders {', '.join(sorted(KNOWN_TEMPLATE_VERSIONS))}; train and export it again")
    return manifest


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
