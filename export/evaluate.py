"""A bundle against the label policy on the inputs the model can see.

A sample reaches the model as whole percents (template v1 floors each metric), so there are exactly
101³ = 1,030,301 distinct inputs. ``evaluate_points`` runs the bundle over any set of them (the whole
cube, or the points near the policy's decision surface plus a uniform sample) and compares with the
policy: agreement, confusion matrix, disagreements per policy region, and the disagreeing inputs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from perfwatch.bundle import Precision
from perfwatch.console import console
from perfwatch.errors import InputError
from perfwatch.labels import (
    HIGH,
    HIGH_ANY,
    HIGH_PAIR_CPU,
    HIGH_PAIR_DISK,
    HIGH_PAIR_MEM,
    LABELS,
    MEDIUM_CPU,
    MEDIUM_DISK,
    MEDIUM_MEM,
    policy_indices,
)
from perfwatch.runtime.model import BundleModel
from perfwatch.settings import inference_plan
from perfwatch.template import SIDE, render

MARGIN = 3  # "near the decision surface": the policy's label changes within ±3 along one axis


def cube_points() -> np.ndarray:
    """All 1,030,301 whole-percent inputs, (cpu, mem, disk), cpu slowest."""
    v = np.arange(SIDE, dtype=np.int16)
    return np.stack([a.ravel() for a in np.meshgrid(v, v, v, indexing="ij")], axis=1)


def surface_points(margin: int = MARGIN) -> np.ndarray:
    """Every input whose HighLoad verdict changes when one metric moves by at most ``margin``: the inputs
    within ±margin of a threshold where that threshold decides HighLoad (138,201 of the cube for ±3)."""
    pts = cube_points()
    h = LABELS.index(HIGH)
    high = policy_indices(pts[:, 0], pts[:, 1], pts[:, 2]) == h
    near = np.zeros(len(pts), bool)
    for axis in range(3):
        for step in (*range(-margin, 0), *range(1, margin + 1)):
            moved = pts.copy()
            moved[:, axis] = np.clip(moved[:, axis] + step, 0, 100)
            near |= (policy_indices(moved[:, 0], moved[:, 1], moved[:, 2]) == h) != high
    return pts[near]


def uniform_points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 101, size=(n, 3)).astype(np.int16)


def stratified_points(n: int, seed: int = 0) -> np.ndarray:
    """``n`` inputs spread evenly over the policy's regions (a region smaller than its share gives all it
    has and the rest share what it leaves): the rare regions, where a model trained on real-looking runs is
    weakest, weigh as much as LowLoad."""
    pts = cube_points()
    reg = regions(pts)
    rng = np.random.default_rng(seed)
    members = sorted((np.flatnonzero(reg == name) for name in set(reg.tolist())), key=len)
    parts, left = [], n
    for i, idx in enumerate(members):
        share = left // (len(members) - i)
        take = idx if len(idx) <= share else rng.choice(idx, share, replace=False)
        parts.append(pts[take])
        left -= len(take)
    return np.concatenate(parts)


def read_disagreements(path: Path) -> np.ndarray:
    """The inputs of a disagreements CSV written by write_outputs (empty when there is none)."""
    if not path.is_file():
        return np.zeros((0, 3), dtype=np.int16)
    rows = [line.split(",")[:3] for line in path.read_text().splitlines()[1:] if line]
    return np.array(rows, dtype=np.int16).reshape(-1, 3)


def gate_points(uniform: int, seed: int = 0, margin: int = MARGIN) -> np.ndarray:
    """The HighLoad decision surface (±margin) plus ``uniform`` inputs drawn uniformly from the cube."""
    return np.unique(np.concatenate([surface_points(margin), uniform_points(uniform, seed)]), axis=0)


def regions(pts: np.ndarray) -> np.ndarray:
    """The policy rule that decides each input, as a name (one place for the region names)."""
    cpu, mem, disk = (pts[:, i] for i in range(3))
    any90 = np.stack([cpu >= HIGH_ANY, mem >= HIGH_ANY, disk >= HIGH_ANY], axis=1)
    pair = np.stack([cpu >= HIGH_PAIR_CPU, mem >= HIGH_PAIR_MEM, disk >= HIGH_PAIR_DISK], axis=1)
    med = np.stack([cpu >= MEDIUM_CPU, mem >= MEDIUM_MEM, disk >= MEDIUM_DISK], axis=1)
    names = np.array(["cpu", "mem", "disk"])
    out = np.full(len(pts), "low", dtype=object)
    n_med = med.sum(1)
    for i in range(3):
        out[(n_med == 1) & med[:, i]] = f"medium: {names[i]} alone"
    out[n_med >= 2] = "medium: several causes"
    n_pair = pair.sum(1)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        out[(n_pair == 2) & pair[:, i] & pair[:, j]] = f"high: {names[i]}+{names[j]} pair"
    out[n_pair == 3] = "high: all three at pair level"
    n_any = any90.sum(1)
    for i in range(3):
        out[(n_any == 1) & any90[:, i]] = f"high: {names[i]}>=90"
    out[n_any >= 2] = "high: several >=90"
    return out


@dataclass
class PolicyCheck:
    """The bundle's verdicts on a set of inputs against the policy's."""

    precision: str
    scope: str  # cube | surface+uniform
    n: int
    agreement: float
    labels: list[str]
    confusion: list[list[int]]  # rows: policy, columns: model
    missed_high: int  # policy HighLoad, model not
    false_high: int  # model HighLoad, policy not
    by_region: dict[str, dict[str, int]]  # region -> n, disagree, missed_high
    seconds: float
    samples_per_s: float
    disagreements: np.ndarray = field(repr=False)  # rows: cpu, mem, disk, policy index, model index

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("disagreements")
        d["disagreement_count"] = int(len(self.disagreements))
        return d

    def missed_high_inputs(self) -> list[tuple[int, int, int]]:
        h = self.labels.index(HIGH)
        rows = self.disagreements[self.disagreements[:, 3] == h]
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]


def _predict_all(model: BundleModel, pts: np.ndarray, batch: int, workers: int, label: str) -> np.ndarray:
    out = np.empty(len(pts), dtype=np.int64)
    starts = list(range(0, len(pts), batch))

    def one(start: int) -> tuple[int, np.ndarray]:
        chunk = pts[start: start + batch]
        texts = [render(int(c), int(m), int(d), model.template_version) for c, m, d in chunk.tolist()]
        return start, model.predict(texts).argmax(-1)

    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    t0 = time.monotonic()
    with Progress(*columns, console=console, transient=not console.is_terminal) as bar, \
            ThreadPoolExecutor(workers) as pool:
        task = bar.add_task(label, total=len(pts), rate="-")
        for start, pred in pool.map(one, starts):
            out[start: start + len(pred)] = pred
            done = start + len(pred)
            bar.update(task, completed=done, rate=f"{done / max(1e-9, time.monotonic() - t0):,.0f}")
    return out


def evaluate_points(bundle: Path, pts: np.ndarray, precision: Precision = "int8", scope: str = "cube",
                    batch: int = 512, workers: int = 0, threads: int = 0) -> PolicyCheck:
    """Run the bundle over ``pts`` (whole percents) and compare every verdict with the policy."""
    workers, threads = inference_plan(workers, threads)
    model = BundleModel(bundle, precision, threads)
    if tuple(model.labels) != LABELS:
        raise InputError(f"{bundle}: labels {model.labels} are not the policy's {LABELS}; "
                         "only a model of the built-in policy can be checked against it")
    t0 = time.monotonic()
    pred = _predict_all(model, pts, batch, workers, f"{precision} {scope}")
    seconds = time.monotonic() - t0
    truth = policy_indices(pts[:, 0], pts[:, 1], pts[:, 2])
    k = len(LABELS)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (truth, pred), 1)
    wrong = truth != pred
    h = LABELS.index(HIGH)
    missed = (truth == h) & (pred != h)
    reg = regions(pts)
    by_region = {}
    for name in sorted(set(reg.tolist())):
        m = reg == name
        by_region[name] = {"n": int(m.sum()), "disagree": int((wrong & m).sum()),
                           "missed_high": int((missed & m).sum())}
    dis = np.concatenate([pts[wrong].astype(np.int64), truth[wrong, None], pred[wrong, None]], axis=1)
    return PolicyCheck(
        precision=precision, scope=scope, n=len(pts), agreement=float(1 - wrong.mean()) if len(pts) else 1.0,
        labels=list(LABELS), confusion=cm.tolist(), missed_high=int(missed.sum()),
        false_high=int(((pred == h) & (truth != h)).sum()), by_region=by_region, seconds=round(seconds, 1),
        samples_per_s=round(len(pts) / max(seconds, 1e-9), 1), disagreements=dis)


def measure_rate(bundle: Path, precision: Precision = "int8", n: int = 2048, batch: int = 512) -> float:
    """Inputs per second of this bundle on this machine (a quick timing on a uniform sample)."""
    return evaluate_points(bundle, uniform_points(n, 1), precision, "timing", batch).samples_per_s


def write_outputs(check: PolicyCheck, out_dir: Path) -> dict[str, Path]:
    """``policy-check-PRECISION.json`` (summary), ``…-disagreements.csv`` (every disagreeing input)
    and ``…-disagreements.png`` (where they are)."""
    from perfwatch.export.evaluate_plot import plot_disagreements

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"policy-check-{check.precision}"
    paths = {"summary": out_dir / f"{stem}.json", "disagreements": out_dir / f"{stem}-disagreements.csv",
             "picture": out_dir / f"{stem}-disagreements.png"}
    paths["summary"].write_text(json.dumps(check.summary(), indent=2))
    with paths["disagreements"].open("w") as f:
        f.write("cpu,mem,disk,policy,model\n")
        for c, m, d, t, p in check.disagreements.tolist():
            f.write(f"{c},{m},{d},{LABELS[t]},{LABELS[p]}\n")
    plot_disagreements(check, paths["picture"])
    return paths


def format_check(check: PolicyCheck, limit: int = 10) -> list[str]:
    """Lines for a terminal or a card: agreement, missed / false HighLoad, the worst regions."""
    lines = [f"{check.precision} over {check.n:,} inputs ({check.scope}): agreement {check.agreement * 100:.4f} %, "
             f"{check.missed_high:,} missed HighLoad, {check.false_high:,} false HighLoad, "
             f"{len(check.disagreements):,} disagreements ({check.samples_per_s:,.0f} inputs/s)"]
    worst = sorted(((r["disagree"], name) for name, r in check.by_region.items() if r["disagree"]), reverse=True)
    lines += [f"  {name}: {n:,} of {check.by_region[name]['n']:,}" for n, name in worst[:limit]]
    return lines


def card_section(check: PolicyCheck, picture: str | None = None) -> str:
    """The model card's section for this check (markdown)."""
    rows = "\n".join(f"| {name} | {r['n']:,} | {r['disagree']:,} | {r['missed_high']:,} |"
                     for name, r in check.by_region.items())
    cm = "\n".join(f"| {LABELS[i]} | " + " | ".join(f"{v:,}" for v in row) + " |"
                   for i, row in enumerate(check.confusion))
    what = {"cube": "all 1,030,301 whole-percent inputs",
            "surface+uniform": f"{check.n:,} inputs: every input within ±{MARGIN} of the policy's HighLoad decision "
                               "surface plus a uniform sample",
            "disagreements+uniform": f"{check.n:,} inputs: the other precision's disagreements plus a uniform "
                                     "sample",
            "stratified+disagreements": f"{check.n:,} inputs: a sample spread evenly over the policy's regions "
                                        "plus the other precision's disagreements",
            }.get(check.scope, f"{check.n:,} inputs ({check.scope})")
    missed = check.missed_high_inputs()
    listing = ", ".join(f"`cpu {c} mem {m} disk {d}`" for c, m, d in missed[:20])
    more = f" … and {len(missed) - 20:,} more" if len(missed) > 20 else ""
    return f"""### Against the label policy: {check.precision}, {check.scope}

Over {what}: agreement **{check.agreement * 100:.4f} %**, **{check.missed_high:,} missed HighLoad**,
{check.false_high:,} false HighLoad ({check.seconds:,.0f} s, {check.samples_per_s:,.0f} inputs/s).
{f"Missed HighLoad: {listing}{more}." if missed else ""}

| policy \\ model | {' | '.join(LABELS)} |
| --- | {' | '.join('---' for _ in LABELS)} |
{cm}

| policy region | inputs | disagreements | missed HighLoad |
| --- | --- | --- | --- |
{rows}
{f"{chr(10)}![where the model disagrees with the policy]({picture}){chr(10)}" if picture else ""}"""


def precisions_of(bundle: Path) -> Sequence[Precision]:
    from perfwatch.bundle import MODEL_FILES, read_manifest

    files = read_manifest(bundle).files
    return [p for p in ("int8", "fp32") if MODEL_FILES[p] in files]  # type: ignore[misc]
