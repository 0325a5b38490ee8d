"""Write bitcoin-api-host-metrics.jsonl: SYNTHETIC host metrics for the two hosts behind the real Locust
run in examples/locust-bitcoin-api (that run recorded no CPU/memory/disk). Aligned to its
timestamps: ramp-up while users join, a saturated phase, then relief once the API's rate limiter
(HTTP 429s) sheds most requests. Deterministic: python examples/make_host_metrics.py"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from perfwatch.sample import Sample

START, END = 1772849612 - 5, 1772849668 + 5  # Locust's first and last row, with a margin


def main() -> None:
    rng = np.random.default_rng(20260307)
    rows = []
    for t in range(START, END + 1):
        x = t - 1772849612
        load = np.clip(x / 12, 0, 1) if x < 30 else np.clip(1 - (x - 30) / 12, 0.15, 1)
        api = Sample(run_id="bitcoin-api-2026-03-07", host="api-1", ts=datetime.fromtimestamp(t, UTC),
                     cpu_pct=round(float(np.clip(12 + 84 * load + rng.normal(0, 2.5), 0, 100)), 1),
                     mem_pct=round(float(np.clip(41 + 47 * load + rng.normal(0, 1.0), 0, 100)), 1),
                     disk_pct=round(float(np.clip(37 + 0.05 * max(x, 0) + rng.normal(0, 0.2), 0, 100)), 1))
        db = Sample(run_id="bitcoin-api-2026-03-07", host="db-1", ts=datetime.fromtimestamp(t, UTC),
                    cpu_pct=round(float(np.clip(8 + 55 * load + rng.normal(0, 2.0), 0, 100)), 1),
                    mem_pct=round(float(np.clip(62 + 10 * load + rng.normal(0, 0.5), 0, 100)), 1),
                    disk_pct=round(float(np.clip(58 + 0.1 * max(x, 0) + rng.normal(0, 0.2), 0, 100)), 1))
        rows += [api, db]
    out = Path(__file__).with_name("bitcoin-api-host-metrics.jsonl")
    out.write_text("".join(s.model_dump_json(exclude_none=True) + "\n" for s in rows))
    print(f"{len(rows)} samples → {out}")


if __name__ == "__main__":
    main()
