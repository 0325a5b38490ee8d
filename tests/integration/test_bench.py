"""`perfwatch bench --shape tiny` runs whole and produces a sane table (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perfwatch.bench.raw import plans
from perfwatch.settings import usable_cores
from tests.kafka_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _positive_numbers(obj: object) -> list[float]:
    if isinstance(obj, dict):
        # Not figures: goal flags, and counts that are 0 by design (no prefill, no cache hits).
        return [x for k, v in obj.items() if k not in ("met", "value", "prefilled", "hit_rate")
                for x in _positive_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _positive_numbers(v)]
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return [float(obj)]
    return []


def test_bench_tiny_produces_a_sane_table(kafka: Broker, tmp_path: Path) -> None:
    out = tmp_path / "tiny.json"
    res = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", "bench", "--shape", "tiny", "--out", str(out),
                          "--bootstrap-servers", kafka.bootstrap], capture_output=True, text=True, timeout=900,
                         check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    for heading in ("**Raw model**", "**Pipeline vs raw model, alternating**", "**Pipeline and baselines**",
                    "**End-to-end latency**", "**Goals**"):
        assert heading in res.stdout
    r = json.loads(out.read_text())
    assert len(r["raw"]) == 6 * len(plans(usable_cores()))  # fp32/int8 × 3 batch sizes × ways to use the cores
    assert len(r["rounds"]) == 1 and len(r["pipeline"]) == 2 and len(r["latency"]) == 3 and len(r["processes"]) == 2
    figures = _positive_numbers({k: r[k] for k in ("raw", "rounds", "warm_up", "pipeline", "naive", "latency",
                                                   "processes")})
    assert figures and all(x > 0 for x in figures)
    assert all(p["verdicts"] == p["samples"] for p in r["pipeline"])  # every sample got its verdict
    assert [g["goal"] for g in r["goals"]][0].startswith("pipeline ≥ 0.9 × raw")
    # Cost per host: each template measured; each cache row answered every sample at about the hit rate it
    # was built for; the ceiling's samples were all hits.
    c = r["cost"]
    assert "**The loop's ceiling**" in res.stdout and "cache hits ≥ 2 × raw model" in res.stdout
    assert {t["template"] for t in c["templates"]} == {"v1", "v2"}
    assert all(t["samples_per_s"] > 0 for t in c["templates"])
    rows = {h["case"]: h for h in c["hit_rates"]}
    assert all(h["verdicts"] == h["samples"] for h in c["hit_rates"] + c["ceiling"])
    assert rows["cache off"]["hit_rate"] == 0 and rows["0 %"]["hit_rate"] == 0
    # A repeat read while its input's first batch is still in inference is a second miss, so the consumer
    # may measure a little less than the payloads hold (repeats lag REPEAT_LAG samples to keep that small).
    assert -0.08 < rows["50 %"]["hit_rate"] - 0.5 < 0.03 and -0.08 < rows["90 %"]["hit_rate"] - 0.9 < 0.03
    assert all(x["hit_rate"] == 1.0 for x in c["ceiling"]) and c["profile"]
    # the reference under the ceiling: the same clients with nothing else to do answered every sample
    assert c["kafka_only"]["verdicts"] == c["kafka_only"]["samples"] and c["kafka_only"]["commits"] > 0
