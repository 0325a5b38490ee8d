"""Write a verified bundle: ONNX fp32 + int8, tokenizer.json, manifest.json (format in perfwatch/bundle.py)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from export.policy_gate import GateSettings
from perfwatch.bundle import MODEL_FILES, TOKENIZER, Manifest, read_manifest, write_manifest
from perfwatch.console import console
from perfwatch.labels import LABELS

DEFAULT_GATE = GateSettings()


class ExportError(RuntimeError):
    pass


def export_bundle(checkpoint: Path, out: Path, precisions: tuple[str, ...] = ("fp32", "int8"),
                  min_int8_agreement: float = 0.995, parity_samples: int = 2000,
                  policy: GateSettings | None = DEFAULT_GATE) -> Manifest:
    """Export, check parity with torch and (``policy``) check the bundle against the label policy; by
    default a bundle that misses HighLoad is refused: nothing is left at ``out``, and the check's
    outputs (every disagreeing input, a picture) are kept in ``OUT.policy-check/``."""
    from export.onnx_export import export_fp32, quantize_int8
    from export.parity import ParityError, check, heldout_texts
    from export.policy_gate import CARD, CHECK_DIR, MissedHighLoad, gate

    checkpoint, out = Path(checkpoint), Path(out)
    meta_path = checkpoint / "perfwatch_meta.json"
    if not (checkpoint / "config.json").is_file():
        raise ExportError(f"{checkpoint}: not a checkpoint (no config.json); run `perfwatch train` first")
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    config = json.loads((checkpoint / "config.json").read_text())
    labels = meta.get("labels") or [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
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
        bundle_id=f"perfwatch-{meta.get('data_hash', 'unknown')[:8]}-{int(time.time())}",
        labels=labels, max_tokens=int(meta.get("max_tokens", 32)), pad_token_id=int(config["pad_token_id"]),
        template_version=meta.get("template_version", "v1"), base_model=meta.get("base_model", "unknown"),
        shape={k: v for k, v in meta.get("shape", {}).items() if isinstance(v, int)},
        data_hash=meta.get("data_hash", "unknown"), metrics=meta.get("metrics", {}),
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
    write_manifest(tmp, manifest.model_copy(update={"parity": parity}))
    if policy is not None and set(labels) == set(LABELS):
        kept = out.with_name(out.name + ".policy-check")
        shutil.rmtree(kept, ignore_errors=True)
        try:
            gate(tmp, policy)
        except MissedHighLoad as exc:
            shutil.move(tmp / CHECK_DIR, kept)
            shutil.rmtree(tmp)
            raise ExportError(f"policy check failed, no bundle written: {exc} (see {kept})") from None
    final = read_manifest(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return final
