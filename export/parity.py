"""Parity at export time: the ONNX bundle against the torch checkpoint on held-out samples.

Labels must agree on 100 % for fp32 (export fails otherwise); int8 must reach ``min_int8_agreement``.
Each precision is checked at batch 1 and at batch 64 with mixed lengths: held-out texts are batched
with longer padding probes, so every held-out text is right-padded, and its verdict must not move.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import GPT2ForSequenceClassification, PreTrainedTokenizerFast

from perfwatch.errors import PerfwatchError
from perfwatch.runtime.model import BundleModel, softmax

PROBES = ("cpu 91 mem 40 disk 12 cpu 5 mem 5 disk 5 cpu 7", "cpu 1 mem 2 disk 3 load spike on host web-01")


class ParityError(PerfwatchError, RuntimeError):
    pass


@torch.no_grad()
def torch_probs(checkpoint: Path, texts: Sequence[str]) -> np.ndarray:
    """The reference: the torch checkpoint, one unpadded sample at a time."""
    tok = PreTrainedTokenizerFast.from_pretrained(checkpoint)
    model = GPT2ForSequenceClassification.from_pretrained(checkpoint).eval()
    out = []
    for e in tok.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False):
        ids = torch.tensor([e.ids])
        out.append(softmax(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.numpy().astype(np.float64)))
    return np.concatenate(out)


def _batched_with_probes(model: BundleModel, texts: Sequence[str], batch: int) -> np.ndarray:
    per = batch - len(PROBES)
    rows = []
    for i in range(0, len(texts), per):
        chunk = list(texts[i: i + per])
        probs = model.predict(chunk + list(PROBES))
        rows.append(probs[: len(chunk)])
    return np.concatenate(rows)


def check(bundle_dir: Path, checkpoint: Path, texts: Sequence[str], precisions: Sequence[str],
          min_int8_agreement: float = 0.995) -> dict[str, Any]:
    ref = torch_probs(checkpoint, texts)
    ref_labels = ref.argmax(-1)
    report: dict[str, Any] = {"samples": len(texts)}
    for precision in precisions:
        model = BundleModel(bundle_dir, precision=precision)  # type: ignore[arg-type]
        n_out = model.session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != ref.shape[1]:
            raise ParityError(f"{model.model_path.name}: {n_out} logits but {ref.shape[1]} labels (shape mismatch)")
        for batch in (1, 64):
            if batch == 1:
                probs = np.concatenate([model.predict([t]) for t in texts])
            else:
                probs = _batched_with_probes(model, texts, batch)
            if probs.shape != ref.shape:
                raise ParityError(f"{precision} batch {batch}: output shape {probs.shape} != torch {ref.shape}")
            agree = float((probs.argmax(-1) == ref_labels).mean())
            report[f"{precision}_b{batch}"] = {"label_agreement": agree,
                                               "max_abs_dprob": float(np.abs(probs - ref).max())}
    for key, r in report.items():
        if key.startswith("fp32") and r["label_agreement"] < 1.0:
            raise ParityError(f"fp32 ONNX disagrees with torch on {(1 - r['label_agreement']) * 100:.2f}% of "
                              f"held-out labels ({key}, max |Δp| {r['max_abs_dprob']:.2e})")
        if key.startswith("int8") and r["label_agreement"] < min_int8_agreement:
            raise ParityError(f"int8 agreement {r['label_agreement']:.4f} < {min_int8_agreement} ({key}, "
                              f"max |Δp| {r['max_abs_dprob']:.3f})")
    return report


def heldout_texts(checkpoint: Path, limit: int = 2000, seed: int = 12345) -> list[str]:
    """Held-out texts written by training; or fresh synthetic runs with a seed training never used."""
    import json

    path = checkpoint / "heldout.jsonl"
    if path.exists():
        return [json.loads(line)["text"] for line in path.read_text().splitlines()[:limit]]
    from perfwatch.synthetic import generate_runs
    from perfwatch.template import sample_text

    return [sample_text(s) for s in generate_runs(12, seed)][:limit]


