"""Training: the tiny shape learns the policy; a local base checkpoint works; bad input fails clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perfwatch.app.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})}, check=False)


def test_tiny_shape_reaches_095_macro_f1(tiny_checkpoint: Path) -> None:
    meta = json.loads((tiny_checkpoint / "perfwatch_meta.json").read_text())
    slices = meta["metrics"]["slices"]
    assert slices["test"]["macro_f1"] >= 0.95
    assert slices["boundary"]["n"] > 0 and slices["seed_text"]["n"] > 0
    assert meta["metrics"]["tokens_per_sample"]["max"] <= 8  # the template stays short
    # No test text occurs in training, and the lookup baseline is reported beside the model.
    assert meta["metrics"]["texts_shared_with_train"] == {"val": 0, "test": 0}
    assert 0 < slices["boundary"]["lookup_baseline"]["macro_f1"] <= 1
    out = tiny_checkpoint.parent
    for png in ("training_curves.png", "resources.png", "confusion_matrix.png"):
        assert (out / "plots" / png).stat().st_size > 5_000
    card = (out / "model_card.md").read_text()
    assert "tokens per sample" in card and meta["data_hash"] in card


def _small_gpt2_checkpoint(path: Path) -> Path:
    """What a user with the hub has: a saved GPT-2 checkpoint with its tokenizer (here: made locally)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from perfwatch.training.data import seed_text_lines
    from perfwatch.training.model import train_tokenizer

    tok = train_tokenizer([line.split(" ->")[0] for line in seed_text_lines(500, 3)], vocab_size=300)
    tok.pad_token = None  # like the real GPT-2 tokenizer: no pad token, the loader must set one
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=64, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_fine_tunes_from_a_local_base_checkpoint(tmp_path: Path) -> None:
    base = _small_gpt2_checkpoint(tmp_path / "gpt2-small-local")
    out = tmp_path / "ft"
    res = _cli("train", "--base-model", str(base), "--out", str(out), "--synthetic-runs", "30", "--seed-lines", "200",
               "--coverage", "500",
               "--max-steps", "40", "--eval-every", "20", "--lr", "1e-3")
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((out / "model" / "perfwatch_meta.json").read_text())
    assert meta["base_model"] == str(base)
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["architectures"] == ["GPT2ForSequenceClassification"]
    assert config["pad_token_id"] is not None


def test_hub_unreachable_names_both_ways_out(tmp_path: Path) -> None:
    res = _cli("train", "--base-model", "distilgpt2", "--out", str(tmp_path / "x"), "--synthetic-runs", "5",
               "--seed-lines", "50", "--coverage", "0", env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode != 0
    assert "--from-scratch" in res.stderr and "--base-model" in res.stderr
    assert not (tmp_path / "x" / "model").exists()


@pytest.mark.parametrize(("name", "content", "expect"), [
    ("bad_label.csv", "cpu_pct,mem_pct,disk_pct,label\n10,10,10,LowLoad\n95,10,10,Overloaded\n", ":3: unknown label"),
    ("bad_row.jsonl", '{"cpu_pct": 1, "mem_pct": 1, "disk_pct": 1, "label": "LowLoad"}\n{"cpu_pct": 1,\n',
     ":2: not JSON"),
    ("range.csv", "cpu_pct,mem_pct,disk_pct,label\n10,10,10,LowLoad\n10,300,10,HighLoad\n", ":3: out_of_range"),
    ("empty.txt", "\n\n", "empty file"),
    ("nolabel.txt", "CPU Load: 90%, Memory: 95%, Disk: 95%\n", ":1: no '-> Label"),
])
def test_bad_training_input_fails_with_file_and_line(tmp_path: Path, name: str, content: str, expect: str) -> None:
    f = tmp_path / name
    f.write_text(content)
    out = tmp_path / "out"
    res = _cli("train", "--from-scratch", "tiny", "--data", str(f), "--out", str(out), "--synthetic-runs", "0",
               "--seed-lines", "0", "--coverage", "0")
    assert res.returncode == 2
    assert str(f) in res.stderr and expect in res.stderr
    assert not (out / "model").exists()


def test_user_labels_auto_and_resume(tmp_path: Path) -> None:
    from perfwatch.model_settings import FixedTrainSettings
    from perfwatch.training.train import train

    # 600 distinct texts: evaluation splits never share a model input text with training, so repeated
    # lines would leave nothing to validate on.
    lines = [f"CPU Load: {c}%, Memory: {10 + k}%, Disk: 10% -> Label: {'Hot' if c >= 50 else 'Cold'}"
             for k in range(6) for c in range(100)]
    f = tmp_path / "mine.txt"
    f.write_text("\n".join(lines))
    cfg = FixedTrainSettings(out=tmp_path / "o", from_scratch="tiny", synthetic_runs=0, seed_lines=0, coverage=0,
                        data=[f], labels="auto", max_steps=40, eval_every=20, patience=100)
    first = train(cfg)
    assert first.labels == ["Cold", "Hot"]
    assert first.metrics["steps"] == 40
    second = train(cfg.model_copy(update={"max_steps": 60, "resume": True}))
    history = json.loads((tmp_path / "o" / "history.json").read_text())
    assert history[0]["step"] == 1 and history[39]["step"] == 40  # the first run's steps were kept …
    assert 40 < second.metrics["steps"] <= 60  # … and training continued after step 40, not from zero


def test_a_time_budget_runs_its_schedule_down_to_a_rate_of_zero(tmp_path: Path) -> None:
    """--max-minutes: the learning rate decays to about 0 by the end (of the budget, or of max_steps if that
    comes first), and a perfect validation score does not end the run early: the DistilGPT-2 shape stopped
    at 1.0 with the rate at 40 % of its peak and missed HighLoad."""
    from perfwatch.model_settings import FixedTrainSettings
    from perfwatch.training.train import train

    lines = [f"CPU Load: {c}%, Memory: {10 + k}%, Disk: 10% -> Label: {'Hot' if c >= 50 else 'Cold'}"
             for k in range(6) for c in range(100)]  # learnt to 1.0 within seconds
    f = tmp_path / "mine.txt"
    f.write_text("\n".join(lines))
    train(FixedTrainSettings(out=tmp_path / "o", from_scratch="tiny", synthetic_runs=0, seed_lines=0, coverage=0,
                             data=[f], labels="auto", max_steps=1000, max_minutes=20 / 60, eval_every=10,
                             patience=1000))
    history = json.loads((tmp_path / "o" / "history.json").read_text())
    peak = max(r["lr"] for r in history)
    evals = [r for r in history if "val_macro_f1" in r]
    perfect = [i for i, r in enumerate(evals) if r["val_macro_f1"] == 1.0]
    assert history[-1]["elapsed_s"] >= 20 or history[-1]["step"] == 1000  # ran its whole budget …
    assert history[-1]["lr"] < 0.05 * peak  # … down to a rate of about 0 (the rate the optimizer used)
    assert not perfect or len(evals) - perfect[0] >= 2  # a perfect score did not end it


def test_evaluations_while_training_score_a_fixed_validation_sample(tmp_path: Path) -> None:
    """--eval-sample: each evaluation during training scores that many validation examples (at the
    DistilGPT-2 shape the whole split cost a quarter of a 28-minute budget); 0 scores all of them."""
    from perfwatch.model_settings import FixedTrainSettings
    from perfwatch.training.train import train

    lines = [f"CPU Load: {c}%, Memory: {10 + k}%, Disk: 10% -> Label: {'Hot' if c >= 50 else 'Cold'}"
             for k in range(6) for c in range(100)]
    f = tmp_path / "mine.txt"
    f.write_text("\n".join(lines))
    cfg = FixedTrainSettings(out=tmp_path / "o", from_scratch="tiny", synthetic_runs=0, seed_lines=0, coverage=0,
                             data=[f], labels="auto", max_steps=20, eval_every=10, patience=100, eval_sample=25)
    train(cfg)
    sampled = [r["val_n"] for r in json.loads((tmp_path / "o" / "history.json").read_text()) if "val_n" in r]
    train(cfg.model_copy(update={"eval_sample": 0, "out": tmp_path / "all"}))
    whole = [r["val_n"] for r in json.loads((tmp_path / "all" / "history.json").read_text()) if "val_n" in r]
    assert sampled == [25, 25] and len(set(whole)) == 1 and whole[0] > 25
