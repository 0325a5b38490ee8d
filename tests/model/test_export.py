"""Export: parity-checked bundle, tamper detection, and a runtime that never imports torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from perfwatch.bundle import read_manifest
from perfwatch.errors import BundleError
from perfwatch.runtime.model import BundleModel
from perfwatch.template import TEMPLATE_VERSION

pytestmark = pytest.mark.slow


def test_bundle_has_everything_and_parity(tiny_bundle: Path) -> None:
    m = read_manifest(tiny_bundle)
    assert set(m.files) == {"model.onnx", "model.int8.onnx", "tokenizer.json"}
    assert m.labels == ["LowLoad", "MediumLoad", "HighLoad"] and m.template_version == TEMPLATE_VERSION
    assert m.data_hash and m.metrics["slices"]["test"]["macro_f1"] >= 0.95
    for b in ("b1", "b64"):
        assert m.parity[f"fp32_{b}"]["label_agreement"] == 1.0
        assert m.parity[f"fp32_{b}"]["max_abs_dprob"] < 1e-4
        assert m.parity[f"int8_{b}"]["label_agreement"] >= 0.995
    assert m.parity["samples"] >= 500


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx", "tokenizer.json"])
def test_any_changed_byte_is_refused_naming_the_file(tiny_bundle: Path, tmp_path: Path, name: str) -> None:
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    precision = "fp32" if name == "model.onnx" else "int8"
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        BundleModel(copy, precision)  # type: ignore[arg-type]


def test_consumer_refuses_a_tampered_bundle(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    with (copy / "model.int8.onnx").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00")
    # An unreachable broker too: local faults are found first, and named the same way either way.
    res = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", "consume", "--bundle", str(copy),
                          "--bootstrap-servers", "127.0.0.1:1"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode != 0
    assert "model.int8.onnx" in res.stderr and "does not match the manifest" in res.stderr
    assert "127.0.0.1:1" not in res.stderr


def test_runtime_and_consumer_import_without_torch() -> None:
    code = ("import sys, perfwatch.consumer.processor, perfwatch.runtime.model, perfwatch.app.cli, "
            "perfwatch.subscriber.alerts, perfwatch.producer.replay;"
            "bad=[m for m in ('torch','transformers','optimum') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_rows_split_across_workers_give_the_same_scores(tiny_bundle: Path) -> None:
    """The consumer splits a batch's rows over idle workers and joins the parts: same rows, same order,
    same probabilities as one run (fp32; uneven parts; concurrent runs on one session)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from perfwatch.template import render

    model = BundleModel(tiny_bundle, "fp32", threads=1)
    texts = [render(float(i % 101), float(i * 7 % 101), float(i * 13 % 101)) for i in range(101)]
    enc = model.encode(texts)
    whole = model.run(enc)
    parts = enc.split(3)
    assert [len(p) for p in parts] == [34, 34, 33]
    with ThreadPoolExecutor(3) as pool:
        joined = np.concatenate(list(pool.map(model.run, parts)))
    assert joined.shape == whole.shape
    assert np.abs(joined - whole).max() < 1e-5


def test_export_of_a_non_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", "export", str(tmp_path), "--out",
                          str(tmp_path / "b")], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and "not a checkpoint" in res.stderr
    assert not (tmp_path / "b").exists()


def test_raw_bench_reports_positive_throughput(tiny_bundle: Path) -> None:
    from perfwatch.bench.raw import raw_table

    rows = raw_table(tiny_bundle, batches=(1, 32), cores=2, min_seconds=0.2)
    assert {(r["precision"], r["batch"], r["runs"], r["threads"]) for r in rows} == {
        (p, b, *plan) for p in ("fp32", "int8") for b in (1, 32) for plan in ((1, 2), (2, 1))}
    assert all(r["samples_per_s"] > 0 and r["samples_per_s_no_tokenize"] > 0 for r in rows)


def test_int8_is_under_30_percent_of_fp32_at_distilgpt2_shape(tmp_path: Path) -> None:
    """Size only: a randomly initialised DistilGPT-2-shape checkpoint through the real export functions."""
    from perfwatch.export.onnx_export import export_fp32, quantize_int8
    from perfwatch.training.data import seed_text_lines
    from perfwatch.training.model import from_scratch, train_tokenizer

    tok = train_tokenizer([line.split(" ->")[0] for line in seed_text_lines(2000, 5)])
    ckpt = tmp_path / "ckpt"
    from_scratch("distilgpt2", tok, ["LowLoad", "MediumLoad", "HighLoad"]).save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    fp32 = export_fp32(ckpt, tmp_path / "onnx")
    int8 = quantize_int8(tmp_path / "onnx", tmp_path / "onnx")
    ratio = int8.stat().st_size / fp32.stat().st_size
    print(json.dumps({"fp32_bytes": fp32.stat().st_size, "int8_bytes": int8.stat().st_size, "ratio": ratio}))
    assert ratio <= 0.30
