"""`perfwatch data`, `train`, `export`: the model's life before the stream."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfwatch.app.common import count, fraction, positive, size
from perfwatch.console import console, out

TRAIN_DIR = Path("artifacts/train")
BUNDLE_DIR = Path("artifacts/bundle")


def _labels(value: str | None) -> list[str] | None:
    from perfwatch.labels import LABELS

    if value is None:
        return list(LABELS)
    return None if value == "auto" else [v.strip() for v in value.split(",") if v.strip()]


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="write the labelled dataset (synthetic runs + seed lines + your files)",
                       description="Writes the labelled dataset that `perfwatch train` builds, as train/val/test "
                                   "JSONL, and prints its hash and label counts.")
    p.add_argument("--out", type=Path, default=Path("artifacts/data"), metavar="PATH",
                   help="folder for train/val/test JSONL (default: artifacts/data)")
    p.add_argument("--seed", type=int, default=7, metavar="N", help="random seed (default: 7)")
    p.add_argument("--synthetic-runs", type=size, default=400, metavar="N",
                   help="synthetic runs, 3 hosts × 60 samples each (default: 400)")
    p.add_argument("--seed-lines", type=size, default=4000, metavar="N",
                   help="seed-style text lines (default: 4000)")
    p.add_argument("--coverage", type=size, default=30_000, metavar="N",
                   help="examples drawn over the label policy's regions, weighted near thresholds (default: 30000)")
    p.add_argument("--data", type=Path, action="append", default=[], metavar="PATH",
                   help="labelled CSV/JSONL/text file (repeatable)")
    p.add_argument("--labels", metavar="A,B,…", help="comma-separated label set, or 'auto' to take it from the data")
    p.add_argument("--mem-total-gb", type=positive, metavar="GB",
                   help="total memory for text lines that give memory in GB")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.training.data import build_dataset, write_dataset

        ds = build_dataset(seed=a.seed, synthetic_runs=a.synthetic_runs, seed_lines=a.seed_lines, coverage=a.coverage,
                           user_files=a.data, labels=_labels(a.labels), mem_total_gb=a.mem_total_gb)
        write_dataset(ds, a.out)
        console.print(f"dataset {ds.hash} → {a.out}")
        out.print_json(data={"hash": ds.hash, "labels": ds.labels, "splits": ds.summary()})
        return 0

    p.set_defaults(func=run)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune DistilGPT-2 (or its shape from scratch) to label samples",
                       description="Writes OUT/model (checkpoint + tokenizer), OUT/plots/*.png, OUT/model_card.md.")
    p.add_argument("--out", type=Path, default=TRAIN_DIR, metavar="PATH", help=f"output folder (default: {TRAIN_DIR})")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--base-model", default="distilgpt2", metavar="NAME|PATH",
                     help="hub id or local checkpoint dir (default: distilgpt2)")
    src.add_argument("--from-scratch", choices=["distilgpt2", "small", "tiny"],
                     help="same architecture, random init, tokenizer trained on the data (no hub needed)")
    p.add_argument("--seed", type=int, default=7, metavar="N", help="random seed (default: 7)")
    p.add_argument("--synthetic-runs", type=size, default=400, metavar="N",
                   help="synthetic runs, 3 hosts × 60 samples each (default: 400)")
    p.add_argument("--seed-lines", type=size, default=4000, metavar="N",
                   help="seed-style text lines in the data (default: 4000)")
    p.add_argument("--coverage", type=size, default=30_000, metavar="N",
                   help="examples drawn over the label policy's regions, weighted near thresholds (default: 30000)")
    p.add_argument("--data", type=Path, action="append", default=[], metavar="PATH",
                   help="your labelled CSV/JSONL/text file (repeatable)")
    p.add_argument("--labels", metavar="A,B,…",
                   help="comma-separated label set, or 'auto' (default: the built-in three)")
    p.add_argument("--mem-total-gb", type=positive, metavar="GB",
                   help="total memory for text lines that give memory in GB")
    p.add_argument("--batch-size", type=count, default=64, metavar="N", help="examples per step (default: 64)")
    p.add_argument("--lr", type=positive, metavar="RATE", help="peak learning rate (default: by shape)")
    p.add_argument("--max-steps", type=count, default=3000, metavar="N", help="most training steps (default: 3000)")
    p.add_argument("--max-minutes", type=positive, metavar="MIN", help="stop after this much training time")
    p.add_argument("--eval-every", type=count, default=100, metavar="N",
                   help="steps between evaluations (default: 100)")
    p.add_argument("--patience", type=count, default=6, metavar="N",
                   help="evaluations without improvement before stopping (default: 6)")
    p.add_argument("--threads", type=count, metavar="N", help="torch threads (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state")
    p.add_argument("--report-to", choices=["none", "wandb"], default="none",
                   help="experiment tracking, wandb offline (default: none)")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.training.train import TrainConfig, train

        cfg = TrainConfig(out=a.out, from_scratch=a.from_scratch, base_model=a.base_model, seed=a.seed,
                          synthetic_runs=a.synthetic_runs, seed_lines=a.seed_lines, coverage=a.coverage,
                          user_files=a.data,
                          labels=_labels(a.labels), mem_total_gb=a.mem_total_gb, batch_size=a.batch_size, lr=a.lr,
                          max_steps=a.max_steps, max_minutes=a.max_minutes, eval_every=a.eval_every,
                          patience=a.patience, threads=a.threads, resume=a.resume, report_to=a.report_to)
        meta = train(cfg)
        sl = meta["metrics"]["slices"]
        console.print("macro-F1: " + ", ".join(f"{k} {v['macro_f1']:.4f} (n={v['n']})" for k, v in sl.items()))
        console.print(f"model → {a.out / 'model'}; plots → {a.out / 'plots'}; card → {a.out / 'model_card.md'}")
        return 0

    p.set_defaults(func=run)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to a verified ONNX bundle (fp32 + int8)",
                       description="Exports a checkpoint to ONNX (fp32, and int8 by dynamic quantization), checks "
                                   "its labels against PyTorch's and writes the bundle with its manifest.")
    p.add_argument("checkpoint", type=Path, nargs="?", default=TRAIN_DIR / "model", metavar="CHECKPOINT",
                   help=f"checkpoint dir from `perfwatch train` (default: {TRAIN_DIR / 'model'})")
    p.add_argument("--out", type=Path, default=BUNDLE_DIR, metavar="PATH", help=f"bundle dir (default: {BUNDLE_DIR})")
    p.add_argument("--precision", choices=["both", "fp32", "int8"], default="both",
                   help="which model files to write (default: both)")
    p.add_argument("--min-int8-agreement", type=fraction, default=0.995, metavar="FRACTION",
                   help="refuse an int8 model whose labels agree with fp32 less often (default: 0.995)")
    p.add_argument("--parity-samples", type=count, default=2000, metavar="N",
                   help="samples for the parity check (default: 2000)")
    p.add_argument("--policy-check", choices=["auto", "cube", "surface"], default="auto",
                   help="inputs to check against the label policy before writing: the whole cube, the HighLoad "
                        "surface ±3 + a uniform sample, or auto: the cube when it takes ≤ --policy-check-max-seconds "
                        "(default: auto)")
    p.add_argument("--policy-check-sample", type=size, default=20_000, metavar="N",
                   help="uniform inputs added to the surface (default: 20000)")
    p.add_argument("--policy-check-max-seconds", type=positive, default=150.0, metavar="S",
                   help="longest whole-cube check that auto still chooses (default: 150)")
    p.add_argument("--allow-missed-highload", action="store_true",
                   help="write the bundle even when it misses HighLoad where the policy fires (a warning)")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.export.bundle_writer import export_bundle
        from perfwatch.export.policy_gate import GateSettings

        precisions = ("fp32", "int8") if a.precision == "both" else (a.precision,)
        gate = GateSettings(a.policy_check, a.policy_check_sample, a.policy_check_max_seconds, a.allow_missed_highload)
        m = export_bundle(a.checkpoint, a.out, precisions, a.min_int8_agreement, a.parity_samples, gate)
        for key, r in m.parity.items():
            if isinstance(r, dict) and "label_agreement" in r:
                console.print(f"{key}: label agreement {r['label_agreement'] * 100:.2f}%, max |Δp| "
                              f"{r['max_abs_dprob']:.2e}")
        if "int8_size_ratio" in m.parity:
            console.print(f"int8 size {m.parity['int8_size_ratio'] * 100:.1f}% of fp32")
        console.print(f"bundle {m.bundle_id} → {a.out}")
        return 0

    p.set_defaults(func=run)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="check a bundle against the label policy (--exhaustive: all 101³ inputs)",
                       description="Writes BUNDLE/policy-check/ (summary JSON, every disagreeing input as CSV, a "
                                   "picture) and records the result in the manifest and BUNDLE/model_card.md. Exit 1 "
                                   "when the bundle misses HighLoad anywhere it was checked.")
    p.add_argument("bundle", type=Path, nargs="?", default=BUNDLE_DIR, metavar="BUNDLE",
                   help=f"bundle dir (default: {BUNDLE_DIR})")
    p.add_argument("--exhaustive", action="store_true",
                   help="all 1,030,301 whole-percent inputs (default: the HighLoad surface ±3 + a uniform sample)")
    p.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="which model file (default: int8)")
    p.add_argument("--sample", type=size, default=20_000, metavar="N",
                   help="uniform inputs added to the surface when not exhaustive (default: 20000)")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.export.evaluate import format_check
        from perfwatch.export.policy_gate import check_bundle

        check = check_bundle(a.bundle, a.precision, a.exhaustive, a.sample)
        for line in format_check(check):
            console.print(line)
        console.print(f"every disagreeing input and a picture → {a.bundle / 'policy-check'}; manifest and "
                      f"{a.bundle / 'model_card.md'} updated")
        return 1 if check.missed_high else 0

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_data, _add_train, _add_export, _add_evaluate):
        adder(sub)
