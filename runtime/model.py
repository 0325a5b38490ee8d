"""Bundle inference on CPU with onnxruntime + tokenizers only (no torch, no transformers).

Used by the consumer, by export's parity check and by the benchmarks, so that all three run the
exact same tokenization, padding and softmax.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from perfwatch.bundle import TOKENIZER, Manifest, Precision, verify_bundle

# A micro-batch is a few hundred short texts: tokenizing them on a thread pool does not pay, and the
# pool's threads compete with ONNX Runtime and librdkafka for the cores (measured on 2 cores).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class Encoded:
    input_ids: np.ndarray
    attention_mask: np.ndarray

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def split(self, parts: int) -> list[Encoded]:
        """Row slices, in order, to run side by side."""
        return [Encoded(ids, mask) for ids, mask in zip(np.array_split(self.input_ids, parts),
                                                         np.array_split(self.attention_mask, parts), strict=True)]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class BundleModel:
    """A verified bundle, ready to classify batches of template texts."""

    def __init__(self, bundle_dir: Path, precision: Precision = "int8", threads: int = 0) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.precision: Precision = precision
        self.manifest: Manifest = verify_bundle(self.bundle_dir, only=precision)
        self.labels: tuple[str, ...] = tuple(self.manifest.labels)
        # The text template the model was trained on: the runtime renders that one, old bundles included.
        self.template_version = self.manifest.template_version
        self.model_path = self.manifest.model_path(self.bundle_dir, precision)
        self.tokenizer = Tokenizer.from_file(str(self.bundle_dir / TOKENIZER))
        # Right padding: GPT-2's ONNX graph numbers positions 0..n-1 and reads the last non-pad token,
        # so right padding leaves every real token where it was in training.
        self.tokenizer.enable_padding(direction="right", pad_id=self.manifest.pad_token_id)
        self.tokenizer.enable_truncation(self.manifest.max_tokens)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Spinning ORT threads keep both cores busy between batches and starve the Kafka and Python
        # threads on small machines (measured: median end-to-end latency at low load 116 → 65 ms).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self.session.get_inputs()}

    @property
    def model_id(self) -> str:
        return f"{self.manifest.bundle_id}:{self.precision}"

    def encode(self, texts: Sequence[str]) -> Encoded:
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return Encoded(ids, mask)

    def run(self, enc: Encoded) -> np.ndarray:
        """Class probabilities, one row per input (ORT releases the GIL while it runs)."""
        feeds = {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        (logits,) = self.session.run(["logits"], feeds)
        return softmax(logits.astype(np.float64))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels)))
        return self.run(self.encode(texts))

    def labels_of(self, probs: np.ndarray) -> list[str]:
        return [self.labels[i] for i in probs.argmax(axis=-1)]
