"""Raw model throughput: samples/s of a bundle alone (fp32, int8) at several batch sizes, on the real
template's token lengths, with tokenization included and excluded.

    python -m bench.raw --bundle artifacts/bundle
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from perfwatch.runtime import BundleModel
from perfwatch.synthetic import generate_runs
from perfwatch.template import sample_text


def texts_for_bench(n: int = 4096, seed: int = 99) -> list[str]:
    return [sample_text(s) for s in generate_runs(max(1, n // 180 + 1), seed)][:n]


def measure(model: BundleModel, texts: list[str], batch: int, min_seconds: float = 2.0,
            include_tokenize: bool = True) -> float:
    """Samples per second over at least ``min_seconds`` (after one warm-up batch)."""
    chunks = [texts[i: i + batch] for i in range(0, len(texts) - batch + 1, batch)] or [texts[:batch]]
    encoded = [model.encode(c) for c in chunks]
    model.run(encoded[0])
    done, t0, i = 0, time.perf_counter(), 0
    while True:
        if include_tokenize:
            model.run(model.encode(chunks[i % len(chunks)]))
        else:
            model.run(encoded[i % len(encoded)])
        done += len(chunks[i % len(chunks)])
        i += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds and i >= 3:
            return done / elapsed


def raw_table(bundle: Path, batches: tuple[int, ...] = (1, 32, 128), threads: int = 0,
              min_seconds: float = 2.0, precisions: tuple[str, ...] = ("fp32", "int8")) -> list[dict[str, Any]]:
    texts = texts_for_bench()
    rows = []
    for precision in precisions:
        model = BundleModel(bundle, precision, threads)  # type: ignore[arg-type]
        for b in batches:
            rows.append({"precision": precision, "batch": b,
                         "samples_per_s": measure(model, texts, b, min_seconds, True),
                         "samples_per_s_no_tokenize": measure(model, texts, b, min_seconds, False)})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| precision | batch | samples/s (with tokenizing) | samples/s (model only) |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {r['precision']} | {r['batch']} | {r['samples_per_s']:.0f} | {r['samples_per_s_no_tokenize']:.0f} |"
              for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seconds", type=float, default=2.0, help="minimum measuring time per cell")
    p.add_argument("--json", type=Path, help="also write the rows here")
    a = p.parse_args()
    rows = raw_table(a.bundle, threads=a.threads, min_seconds=a.seconds)
    print(markdown(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
