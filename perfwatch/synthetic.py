"""Synthetic performance-test runs: hosts going through ramp-up, steady state, spikes, soak and
recovery, with correlated CPU / memory / disk, noise and drift, and a share of samples placed near
every policy threshold. Shared by training (labelled data) and producer (``perfwatch generate``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from perfwatch.labels import THRESHOLDS
from perfwatch.sample import Sample

PHASES = ("ramp_up", "steady", "spike", "soak", "recovery")


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    hosts: int = 3
    samples_per_host: int = 120
    interval_s: float = 1.0
    boundary_share: float = 0.25
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)


def _phase_plan(rng: np.random.Generator, n: int) -> list[tuple[str, int]]:
    weights = rng.dirichlet([2, 3, 1, 3, 2])
    lengths = np.maximum(1, np.round(weights * n)).astype(int)
    lengths[-1] = max(1, n - int(lengths[:-1].sum()))
    return list(zip(PHASES, lengths.tolist(), strict=True))


def _intensity(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Load intensity in [0, ~1.6] over the run, and a soak indicator (where memory leaks)."""
    target = rng.uniform(0.2, 1.15)
    parts, soak = [], []
    level = rng.uniform(0.0, 0.15)
    for phase, length in _phase_plan(rng, n):
        if phase == "ramp_up":
            seg = np.linspace(level, target, length)
        elif phase == "steady":
            seg = np.full(length, target)
        elif phase == "spike":
            seg = target + rng.uniform(0.2, 0.7) * np.hanning(length + 2)[1:-1]
        elif phase == "soak":
            seg = np.full(length, target * rng.uniform(0.7, 1.0))
        else:
            seg = np.linspace(target, rng.uniform(0.0, 0.2), length)
        parts.append(seg)
        soak.append(np.full(length, phase == "soak"))
    return np.concatenate(parts)[:n], np.concatenate(soak)[:n]


def host_series(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """One host's metrics over ``n`` samples."""
    load, soak = _intensity(rng, n)
    cpu_base, mem_base, disk_base = rng.uniform(2, 35), rng.uniform(15, 60), rng.uniform(5, 65)
    cpu_gain, mem_gain, disk_gain = rng.uniform(45, 85), rng.uniform(5, 35), rng.uniform(0, 25)
    leak = np.cumsum(soak) * rng.uniform(0.0, 0.25)  # memory creeping up while soaking
    log_growth = np.arange(n) * rng.uniform(0.0, 0.05)  # disk filling with logs
    cpu = cpu_base + cpu_gain * load + rng.normal(0, 4, n)
    mem = mem_base + mem_gain * load + leak + rng.normal(0, 1.5, n)
    disk = disk_base + disk_gain * load + log_growth + rng.normal(0, 1.0, n)
    rps = np.maximum(0, 400 * load + rng.normal(0, 10, n))
    p95 = np.maximum(1, 40 + 900 * np.maximum(0, load - 0.8) ** 2 + rng.normal(0, 5, n))
    err = np.clip(20 * np.maximum(0, load - 1.0) + rng.normal(0, 0.3, n), 0, 100)
    return {
        "cpu_pct": np.clip(cpu, 0, 100), "mem_pct": np.clip(mem, 0, 100), "disk_pct": np.clip(disk, 0, 100),
        "rps": rps, "p95_ms": p95, "error_pct": err,
    }


def nudge_to_boundaries(rng: np.random.Generator, series: dict[str, np.ndarray], share: float) -> None:
    """Move a share of samples so that one metric sits within ±3 of a policy threshold."""
    n = len(series["cpu_pct"])
    for i in np.flatnonzero(rng.random(n) < share):
        name, t = THRESHOLDS[rng.integers(len(THRESHOLDS))]
        series[name][i] = float(np.clip(t + rng.uniform(-3, 3), 0, 100))


def generate_run(spec: RunSpec, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    for h in range(spec.hosts):
        s = host_series(rng, spec.samples_per_host)
        nudge_to_boundaries(rng, s, spec.boundary_share)
        for i in range(spec.samples_per_host):
            out.append(Sample(
                run_id=spec.run_id, host=f"host-{h + 1:02d}",
                ts=spec.start + timedelta(seconds=i * spec.interval_s),
                cpu_pct=round(float(s["cpu_pct"][i]), 2), mem_pct=round(float(s["mem_pct"][i]), 2),
                disk_pct=round(float(s["disk_pct"][i]), 2), rps=round(float(s["rps"][i]), 1),
                p95_ms=round(float(s["p95_ms"][i]), 1), error_pct=round(float(s["error_pct"][i]), 2),
            ))
    out.sort(key=lambda x: (x.ts, x.host))
    return out


def generate_runs(n_runs: int, seed: int, prefix: str = "synth", **spec_kw: object) -> Iterator[Sample]:
    """``n_runs`` independent runs with ids ``{prefix}-{i:05d}``; deterministic for a seed."""
    seeds = np.random.SeedSequence(seed).spawn(n_runs)
    for i, ss in enumerate(seeds):
        spec = RunSpec(run_id=f"{prefix}-{i:05d}", **spec_kw)  # type: ignore[arg-type]
        yield from generate_run(spec, int(ss.generate_state(1)[0]))
