"""Labelled examples: synthetic runs labelled by the policy, seed-style text lines, and user data
(CSV / JSONL with a ``label`` column, or ``-> Label: X`` text lines). Splits never share a run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from perfwatch.csvtable import csv_table
from perfwatch.errors import ContractError, PerfwatchError
from perfwatch.labels import LABELS, label_for, near_boundary
from perfwatch.sample import validate_obj
from perfwatch.seedtext import format_line, parse_line
from perfwatch.synthetic import generate_runs
from perfwatch.template import TEMPLATE_VERSION, render, sample_text

SPLITS = ("train", "val", "test")
COVERAGE = 30_000  # examples drawn over the policy's regions (training/coverage.py)


class DataError(PerfwatchError, ValueError):
    """Bad training input; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    run_id: str
    source: str  # synthetic | coverage | seed | user
    boundary: bool
    metrics: tuple[float, float, float]


@dataclass
class Dataset:
    labels: tuple[str, ...]
    splits: dict[str, list[Example]]
    # Evaluation examples dropped because their model input text also occurs in training, per split.
    dropped_shared_text: dict[str, int] = field(default_factory=dict)
    template: str = TEMPLATE_VERSION

    def shared_texts(self, split: str) -> int:
        """How many of the split's examples have a text that occurs in training (0 by construction)."""
        train = {e.text for e in self.splits["train"]}
        return sum(e.text in train for e in self.splits[split])

    @property
    def hash(self) -> str:
        h = hashlib.sha256(f"template={self.template};labels={','.join(self.labels)}\n".encode())
        for split in SPLITS:
            for e in self.splits[split]:
                h.update(f"{split}\t{e.run_id}\t{e.label}\t{e.text}\n".encode())
        return h.hexdigest()

    def summary(self) -> dict[str, dict[str, int]]:
        return {s: {lab: sum(e.label == lab for e in ex) for lab in self.labels} for s, ex in self.splits.items()}


def write_dataset(ds: Dataset, out: Path) -> Path:
    """Write each split as OUT/SPLIT.jsonl (text, label, run, source, boundary flag, metrics)."""
    out.mkdir(parents=True, exist_ok=True)
    for split, examples in ds.splits.items():
        with (out / f"{split}.jsonl").open("w") as f:
            for e in examples:
                f.write(json.dumps({"text": e.text, "label": e.label, "run_id": e.run_id, "source": e.source,
                                    "boundary": e.boundary, "cpu_pct": e.metrics[0], "mem_pct": e.metrics[1],
                                    "disk_pct": e.metrics[2]}) + "\n")
    return out


def _example(sample_like: object, label: str, run_id: str, source: str) -> Example:
    s = sample_like
    cpu, mem, disk = s.cpu_pct, s.mem_pct, s.disk_pct  # type: ignore[attr-defined]
    return Example(sample_text(s), label, run_id, source, near_boundary(cpu, mem, disk), (cpu, mem, disk))  # type: ignore[arg-type]


def synthetic_examples(n_runs: int, seed: int, samples_per_host: int = 60, hosts: int = 3) -> list[Example]:
    return [
        _example(s, label_for(s.cpu_pct, s.mem_pct, s.disk_pct), s.run_id, "synthetic")
        for s in generate_runs(n_runs, seed, samples_per_host=samples_per_host, hosts=hosts)
    ]


def _seed_line(rng: np.random.Generator, cpu: int, mem: int, disk: int) -> str:
    """One of the forms users paste: percent memory (whole or decimal), or free memory in GB of a
    total ("2GB/16GB", "2GB of 16GB"); "CPU Load"/"cpu", "Disk"/"disk usage"."""
    form = rng.random()
    cpu_name, disk_name = ("CPU Load", "Disk") if rng.random() < 0.7 else ("cpu", "disk usage")
    if form < 0.3:  # memory in GB: free memory of a total
        total = int(rng.choice([4, 8, 16, 32, 64, 128]))
        free = round(total * (100 - mem - rng.random()) / 100, 2)
        free = min(max(free, 0.0), float(total))
        sep = "/" if rng.random() < 0.6 else " of "
        return f"{cpu_name}: {cpu}%, Memory: {free:g}GB{sep}{total}GB, {disk_name}: {disk}%"
    if form < 0.5:  # decimal percents
        c, m, d = (min(100.0, round(v + rng.random(), 1)) for v in (cpu, mem, disk))
        return f"{cpu_name}: {c:g}%, Memory: {m:g}%, {disk_name}: {d:g}%"
    if cpu_name == "cpu":
        return f"cpu: {cpu}%, mem: {mem}%, disk usage: {disk}%"
    return format_line(cpu, mem, disk)


def seed_text_lines(n: int, seed: int) -> list[str]:
    """Seed-style lines like the ones users paste, in all their forms, labelled by the policy.

    The label is the policy's verdict on the line as parsed (the very sample the model sees)."""
    from perfwatch.labels import THRESHOLDS

    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        cpu, mem, disk = (int(x) for x in rng.integers(0, 101, 3))
        if rng.random() < 0.3:  # near a threshold
            name, t = THRESHOLDS[rng.integers(len(THRESHOLDS))]
            v = int(np.clip(t + rng.integers(-3, 4), 0, 100))
            metrics = dict(zip(("cpu_pct", "mem_pct", "disk_pct"), (cpu, mem, disk), strict=True))
            metrics[name] = v
            cpu, mem, disk = metrics["cpu_pct"], metrics["mem_pct"], metrics["disk_pct"]
        line = _seed_line(rng, cpu, mem, disk)
        s = parse_line(line).sample
        lines.append(f"{line} -> Label: {label_for(s.cpu_pct, s.mem_pct, s.disk_pct)}")
    return lines


def coverage_examples(n: int, seed: int, per_run: int = 50) -> list[Example]:
    """Examples over every region of the policy (training/coverage.py), in groups of ``per_run`` that
    split like runs."""
    from perfwatch.training.coverage import coverage_points

    out: list[Example] = []
    for _name, pts in coverage_points(n, seed):
        for cpu, mem, disk in pts.tolist():
            out.append(Example(render(cpu, mem, disk), label_for(cpu, mem, disk), f"cover-{len(out) // per_run:05d}",
                               "coverage", near_boundary(cpu, mem, disk), (float(cpu), float(mem), float(disk))))
    return out


def seed_examples(lines: Sequence[str], source: str = "seed", origin: str = "seed", per_run: int = 50,
                  mem_total_gb: float | None = None, labels: Sequence[str] | None = None) -> list[Example]:
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            parsed = parse_line(line, mem_total_gb=mem_total_gb)
        except ContractError as exc:
            raise DataError(f"{origin}:{i + 1}: {exc}") from None
        if parsed.label is None:
            raise DataError(f"{origin}:{i + 1}: no '-> Label: X' on a training line")
        _check_label(parsed.label, labels, origin, i + 1)
        out.append(_example(parsed.sample, parsed.label, f"{source}-{i // per_run:05d}", source))
    return out


def _check_label(label: str, labels: Sequence[str] | None, origin: str, line: int) -> None:
    if labels is not None and label not in labels:
        raise DataError(f"{origin}:{line}: unknown label {label!r} (known: {', '.join(labels)}; "
                        "pass --labels auto to take the label set from the data)")


BLOCK = 50  # samples per time block of user data without a run id

NUMERIC = {"cpu_pct", "mem_pct", "disk_pct", "rps", "p95_ms", "error_pct", "mem_free_gb"}


def _number(v: str) -> float | str:
    """CSV cells are text; numbers become floats, anything else stays text for the model to reject."""
    try:
        return float(v)
    except ValueError:
        return v


def load_labelled(path: Path, labels: Sequence[str] | None = LABELS,
                  mem_total_gb: float | None = None) -> list[Example]:
    """Read user-labelled data; every problem is reported as ``file:line: what``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8", errors="strict").removeprefix("\ufeff")  # spreadsheets' BOM
    if not text.strip():
        raise DataError(f"{path}: empty file, no training examples")
    suffix = path.suffix.lower()
    rows: Iterable[tuple[int, dict[str, object]]]
    if suffix == ".csv":
        header, table = csv_table(line.rstrip("\r") for line in text.split("\n"))
        if "label" not in header:
            raise DataError(f"{path}:1: CSV needs a 'label' column (has {header})")
        rows = ((n, {str(k): v for k, v in r.items()}) for n, r in table if r is not None)
    elif suffix in (".jsonl", ".json"):
        parsed_rows = []
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{i + 1}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{i + 1}: expected a JSON object")
            parsed_rows.append((i + 1, obj))
        rows = parsed_rows
    else:
        return seed_examples(text.splitlines(), source="user", origin=str(path), mem_total_gb=mem_total_gb,
                             labels=labels)
    out = []
    undated: list[tuple[datetime | None, int, Example]] = []  # rows without a run id, blocked by time below
    for lineno, row in rows:
        label = str(row.pop("label", "") or "").strip()
        if not label:
            raise DataError(f"{path}:{lineno}: missing label")
        _check_label(label, labels, str(path), lineno)
        obj = {k: v for k, v in row.items() if v not in ("", None)}
        try:
            sample = validate_obj({k: _number(v) if k in NUMERIC and isinstance(v, str) else v for k, v in obj.items()})
        except ContractError as exc:
            raise DataError(f"{path}:{lineno}: {exc}") from None
        if row.get("run_id"):
            out.append(_example(sample, label, str(row["run_id"]), "user"))
        else:
            undated.append((sample.ts, lineno, _example(sample, label, "", "user")))
    out += time_blocks(undated, path.stem)
    if not out:
        raise DataError(f"{path}: no training examples")
    return out


def time_blocks(rows: list[tuple[datetime | None, int, Example]], name: str, per_block: int = BLOCK) -> list[Example]:
    """Samples without a run id, in time order, cut into contiguous blocks that split like runs: a
    sample's neighbours in time (nearly the same metrics) stay in its split. Ties keep file order."""
    rows = sorted(rows, key=lambda r: (r[0] is None, r[0].timestamp() if r[0] else 0.0, r[1]))
    return [replace(e, run_id=f"user-{name}-t{i // per_block:05d}") for i, (_ts, _line, e) in enumerate(rows)]


def split_of(run_id: str, seed: int, val: float = 0.1, test: float = 0.1) -> str:
    u = int.from_bytes(hashlib.sha256(f"{seed}:{run_id}".encode()).digest()[:8], "big") / 2**64
    return "test" if u < test else "val" if u < test + val else "train"


def build_dataset(
    *, seed: int = 7, synthetic_runs: int = 400, samples_per_host: int = 60, seed_lines: int = 4000,
    coverage: int = COVERAGE, user_files: Sequence[Path] = (), labels: Sequence[str] | None = LABELS,
    mem_total_gb: float | None = None, template: str = TEMPLATE_VERSION,
) -> Dataset:
    """Splits never share a run, and evaluation splits never share a model input text with training:
    an evaluation example whose text occurs in training is dropped (counted in ``dropped_shared_text``)."""
    examples: list[Example] = []
    if synthetic_runs:
        examples += synthetic_examples(synthetic_runs, seed, samples_per_host)
    if coverage:
        examples += coverage_examples(coverage, seed + 2)
    if seed_lines:
        examples += seed_examples(seed_text_lines(seed_lines, seed + 1))
    for f in user_files:
        examples += load_labelled(f, labels, mem_total_gb)
    if not examples:
        raise DataError("no training examples (no synthetic runs, seed lines or user files)")
    # Every source renders through one place: the chosen template, from the metrics the label was given for.
    examples = [replace(e, text=render(*e.metrics, template)) for e in examples]
    label_set = tuple(labels) if labels is not None else tuple(sorted({e.label for e in examples}))
    if labels is None and set(label_set) <= set(LABELS):
        label_set = tuple(lab for lab in LABELS if lab in label_set)
    splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for e in examples:
        splits[split_of(e.run_id, seed)].append(e)
    train_texts = {e.text for e in splits["train"]}
    dropped = {}
    for s in ("val", "test"):
        kept = [e for e in splits[s] if e.text not in train_texts]
        dropped[s] = len(splits[s]) - len(kept)
        splits[s] = kept
    for s in SPLITS:
        if not splits[s]:
            raise DataError(f"the {s} split is empty: give more runs or files")
    return Dataset(label_set, splits, dropped, template)
