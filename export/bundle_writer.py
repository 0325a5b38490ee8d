"""Write a verified bundle: ONNX fp32 + int8, tokenizer.json, manifest.json (format in perfwatch/bundle.py)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from perfwatch.bundle import MODEL_FILES, TOKENIZER, Manifest, read_manifest, write_manifest
from perfwatch.checkpoint_meta import CheckpointMeta, CheckpointMetaError, read_checkpoint_meta
from perfwatch.console import console
from perfwatch.export.bundle_install import ExportError, check_out, staging_dir, swap_into_place
from perfwatch.export.policy_gate import GateSettings
from perfwatch.labels import LABELS

__all__ = ["ExportError", "export_bundle"]

DEFAULT_GATE = GateSettings()


def export_bundle(checkpoint: Path, out: Path, precisions: tuple[str, ...] = ("fp32", "int8"),
                  min_int8_agreement: float = 0.995, parity_samples: int = 2000,
                  policy: GateSettings | None = DEFAULT_GATE) -> Manifest:
    """Build the bundle beside ``out``, check parity with torch and (``policy``) check it against the label
    policy, then swap it in atomically. ``out`` may only be absent, empty or a bundle (anything else is
    refused before any work), and nothing else is ever deleted. By default a bundle that misses HighLoad is
    refused: nothing is written at ``out``, and the check's outputs (every disagreeing input, a picture)
    are kept in ``OUT.policy-check/``."""
    from perfwatch.export.policy_gate import CHECK_DIR, MissedHighLoad, gate

    checkpoint, out = Path(checkpoint), Path(out)
    if not (checkpoint / "config.json").is_file():
        raise ExportError(f"{checkpoint}: not a checkpoint (no config.json); run `perfwatch train` first")
    check_out(out)
    try:
        meta = read_checkpoint_meta(checkpoint)
    except CheckpointMetaError as exc:
        raise ExportError(str(exc)) from None
    tmp = staging_dir(out)
    try:
        _build(checkpoint, tmp, meta, precisions, min_int8_agreement, parity_samples)
        if policy is not None and set(meta.labels) == set(LABELS):
            kept = out.with_name(out.name + ".policy-check")
            shutil.rmtree(kept, ignore_errors=True)
            try:
                gate(tmp, policy)
            except MissedHighLoad as exc:
                shutil.move(tmp / CHECK_DIR, kept)
                raise ExportError(f"policy check failed, no bundle written: {exc} (see {kept})") from None
        final = read_manifest(tmp)
        swap_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the partial new bundle, or the old one after the swap
    return final


def _build(checkpoint: Path, tmp: Path, meta: CheckpointMeta, precisions: tuple[str, ...],
           min_int8_agreement: float, parity_samples: int) -> Manifest:
    from perfwatch.export.onnx_export import export_fp32, quantize_int8
    from perfwatch.export.parity import ParityError, check, heldout_texts
    from perfwatch.export.policy_gate import CARD

    config = json.loads((checkpoint / "config.json").read_text())
    work = tmp / "_onnx"
    t0 = time.monotonic()
    console.print(f"exporting {checkpoint} to ONNX with Optimum …")
    export_fp32(checkpoint, work)
    shutil.copy(work / "model.onnx", tmp / MODEL_FILES["fp32"])
    if "int8" in precisions:
        console.print("quantizing to int8 (dynamic, AVX2, per-channel, reduce_range) …")
        quantize_int8(work, work)
        shutil.copy(work / MODEL_FILES["int8"], tmp / MODEL_FILES["int8"])
    shutil.copy(checkpoint / TOKENIZER, tmp / TOKENIZER)
    if (checkpoint / "README.md").exists():  # the training card; the policy check adds its section
        shutil.copy(checkpoint / "README.md", tmp / CARD)
    shutil.rmtree(work)
    if "fp32" not in precisions:
        (tmp / MODEL_FILES["fp32"]).unlink()
    manifest = Manifest(
        bundle_id=f"perfwatch-{meta.data_hash[:8]}-{int(time.time())}",
        labels=meta.labels, max_tokens=meta.max_tokens, pad_token_id=int(config["pad_token_id"]),
        template_version=meta.template_version, base_model=meta.base_model,
        shape={k: v for k, v in meta.shape.items() if isinstance(v, int)},
        data_hash=meta.data_hash, metrics=meta.metrics,
    )
    write_manifest(tmp, manifest)  # hashes first, so the parity check loads the bundle the consumer will
    texts = heldout_texts(checkpoint, parity_samples)
    console.print(f"parity check on {len(texts)} held-out samples (batch 1 and 64, fp32 and int8) …")
    try:
        parity = check(tmp, checkpoint, texts, [p for p in ("fp32", "int8") if p in precisions], min_int8_agreement)
    except ParityError as exc:
        raise ExportError(f"parity check failed, no bundle written: {exc}") from None
    sizes = {p: (tmp / MODEL_FILES[p]).stat().st_size for p in precisions}
    parity["sizes_bytes"] = sizes
    if "int8" in sizes and "fp32" in sizes:
        parity["int8_size_ratio"] = sizes["int8"] / sizes["fp32"]
    parity["export_seconds"] = round(time.monotonic() - t0, 1)
    return write_manifest(tmp, manifest.model_copy(update={"parity": parity}))
