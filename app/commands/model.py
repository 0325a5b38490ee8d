"""`perfwatch data`, `train`, `export`: the model's life before the stream."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfwatch.app.common import size
from perfwatch.app.flags import add_settings_flags, env_name, settings_from_args
from perfwatch.console import console, out
from perfwatch.model_settings import DataSettings, ExportSettings, TrainSettings
from perfwatch.settings import BUNDLE_DIR


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="write the labelled dataset (synthetic runs + seed lines + your files)",
                       description="Writes the labelled dataset that `perfwatch train` builds, as train/val/test "
                                   "JSONL, and prints its hash and label counts.")
    add_settings_flags(p, DataSettings, title="dataset")

    def run(a: argparse.Namespace) -> int:
        s = settings_from_args(DataSettings, a)
        from perfwatch.training.data import build_dataset, write_dataset

        ds = build_dataset(seed=s.seed, synthetic_runs=s.synthetic_runs, seed_lines=s.seed_lines, coverage=s.coverage,
                           user_files=s.data, labels=s.label_set(), mem_total_gb=s.mem_total_gb,
                           template=s.template)
        write_dataset(ds, s.out)
        console.print(f"dataset {ds.hash} → {s.out}")
        out.print_json(data={"hash": ds.hash, "labels": ds.labels, "splits": ds.summary()})
        return 0

    p.set_defaults(func=run)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune DistilGPT-2 (or its shape from scratch) to label samples",
                       description="Writes OUT/model (checkpoint + tokenizer), OUT/plots/*.png, OUT/model_card.md.")
    add_settings_flags(p, TrainSettings, title="training")

    def run(a: argparse.Namespace) -> int:
        s = settings_from_args(TrainSettings, a)
        from perfwatch.training.train import train

        meta = train(s)
        sl = meta.metrics["slices"]
        console.print("macro-F1: " + ", ".join(f"{k} {v['macro_f1']:.4f} (n={v['n']})" for k, v in sl.items()))
        console.print(f"model → {s.out / 'model'}; plots → {s.out / 'plots'}; card → {s.out / 'model_card.md'}")
        return 0

    p.set_defaults(func=run)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to a verified ONNX bundle (fp32 + int8)",
                       description="Exports a checkpoint to ONNX (fp32, and int8 by dynamic quantization), checks "
                                   "its labels against PyTorch's and writes the bundle with its manifest.")
    field = ExportSettings.model_fields["checkpoint"]
    # Positional, so not generated; no argparse default, so that the env var applies when it is left out.
    p.add_argument("checkpoint", type=Path, nargs="?", metavar="CHECKPOINT",
                   help=f"{field.description} (default: {field.default}; env {env_name(ExportSettings, 'checkpoint')})")
    add_settings_flags(p, ExportSettings, skip=("checkpoint",), title="export")

    def run(a: argparse.Namespace) -> int:
        s = settings_from_args(ExportSettings, a, checkpoint=a.checkpoint)
        from perfwatch.export.bundle_writer import export_bundle
        from perfwatch.export.policy_gate import GateSettings

        gate = GateSettings(s.policy_check, s.policy_check_sample, s.policy_check_max_seconds, s.allow_missed_highload)
        m = export_bundle(s.checkpoint, s.out, s.precisions(), s.min_int8_agreement, s.parity_samples, gate)
        for key, r in m.parity.items():
            if isinstance(r, dict) and "label_agreement" in r:
                console.print(f"{key}: label agreement {r['label_agreement'] * 100:.2f}%, max |Δp| "
                              f"{r['max_abs_dprob']:.2e}")
        if "int8_size_ratio" in m.parity:
            console.print(f"int8 size {m.parity['int8_size_ratio'] * 100:.1f}% of fp32")
        console.print(f"bundle {m.bundle_id} → {s.out}")
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
    p.add_argument("--stratified", type=size, default=None, metavar="N",
                   help="instead: N inputs spread evenly over the policy's regions, plus every input the other "
                        "precision's last check disagreed on (e.g. --precision fp32 after an int8 --exhaustive)")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.export.evaluate import format_check
        from perfwatch.export.policy_gate import check_bundle

        check = check_bundle(a.bundle, a.precision, a.exhaustive, a.sample, stratified=a.stratified)
        for line in format_check(check):
            console.print(line)
        console.print(f"every disagreeing input and a picture → {a.bundle / 'policy-check'}; manifest and "
                      f"{a.bundle / 'model_card.md'} updated")
        return 1 if check.missed_high else 0

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_data, _add_train, _add_export, _add_evaluate):
        adder(sub)
