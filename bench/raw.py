"""Raw model throughput: samples/s of a bundle alone (fp32, int8) at several batch sizes, on the real
template's token lengths, with tokenization included and excluded, for two ways of using the cores:
one run at a time on every core, and the consumer's default plan: runs side by side on one session
(concurrent run() calls; on 2 cores, two single-threaded runs).

    python -m bench.raw --bundle artifacts/bundle
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from perfwatch.bundle import read_manifest
from perfwatch.runtime.model import BundleModel
from perfwatch.settings import inference_plan, usable_cores
from perfwatch.synthetic import generate_runs
from perfwatch.template import sample_text


def texts_for_bench(version: str, n: int = 4096, seed: int = 99) -> list[str]:
    return [sample_text(s, version) for s in generate_runs(max(1, n // 180 + 1), seed)][:n]


def measure(model: BundleModel, texts: list[str], batch: int, min_seconds: float = 2.0,
            include_tokenize: bool = True, runs: int = 1) -> float:
    """Samples per second over at least ``min_seconds`` (after one warm-up batch), with ``runs`` threads
    each running batches back to back (tokenizing holds the GIL; ORT does not)."""
    chunks = [texts[i: i + batch] for i in range(0, len(texts) - batch + 1, batch)] or [texts[:batch]]
    encoded = [model.encode(c) for c in chunks]
    model.run(encoded[0])
    done = [0] * runs
    t0 = time.perf_counter()

    def loop(r: int) -> None:
        i = r
        while True:
            if include_tokenize:
                model.run(model.encode(chunks[i % len(chunks)]))
            else:
                model.run(encoded[i % len(encoded)])
            done[r] += len(chunks[i % len(chunks)])
            i += runs
            if time.perf_counter() - t0 >= min_seconds and i >= 3 * runs:
                return

    threads = [threading.Thread(target=loop, args=(r,)) for r in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def plans(cores: int) -> list[tuple[int, int]]:
    """(runs side by side, ORT threads each): every core on one run, and the consumer's default plan."""
    default = inference_plan(cores=cores)
    return [(1, cores)] + ([default] if default != (1, cores) else [])


def raw_table(bundle: Path, batches: tuple[int, ...] = (1, 32, 128), cores: int | None = None,
              min_seconds: float = 2.0, precisions: tuple[str, ...] = ("fp32", "int8")) -> list[dict[str, Any]]:
    texts = texts_for_bench(read_manifest(bundle).template_version)
    rows = []
    for precision in precisions:
        for runs, threads in plans(cores or usable_cores()):
            model = BundleModel(bundle, precision, threads)  # type: ignore[arg-type]
            for b in batches:
                rows.append({"precision": precision, "batch": b, "runs": runs, "threads": threads,
                             "samples_per_s": measure(model, texts, b, min_seconds, True, runs),
                             "samples_per_s_no_tokenize": measure(model, texts, b, min_seconds, False, runs)})
    return rows


def reference(bundle: Path, batch: int, min_seconds: float, precision: str = "int8") -> dict[str, Any]:
    """The bundle alone at this batch size, tokenizing included, the fastest way the cores allow: the
    figure a pipeline measured right after it is compared with."""
    texts = texts_for_bench(read_manifest(bundle).template_version)
    rates = []
    for runs, threads in plans(usable_cores()):
        model = BundleModel(bundle, precision, threads)  # type: ignore[arg-type]
        rates.append({"runs": runs, "threads": threads,
                      "samples_per_s": measure(model, texts, batch, min_seconds, True, runs)})
    return max(rates, key=lambda r: r["samples_per_s"])


def best(rows: list[dict[str, Any]], precision: str, batch: int) -> dict[str, Any]:
    """The fastest way this machine runs the bundle alone at this precision and batch size."""
    return max((r for r in rows if r["precision"] == precision and r["batch"] == batch),
               key=lambda r: r["samples_per_s"])


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| precision | batch | runs side by side × ORT threads | samples/s (with tokenizing) | "
             "samples/s (model only) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['precision']} | {r['batch']} | {r['runs']} × {r['threads']} | {r['samples_per_s']:.0f} | "
              f"{r['samples_per_s_no_tokenize']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"))
    p.add_argument("--cores", type=int, help="cores to plan for (default: those this process may use)")
    p.add_argument("--seconds", type=float, default=2.0, help="minimum measuring time per cell")
    p.add_argument("--json", type=Path, help="also write the rows here")
    a = p.parse_args()
    rows = raw_table(a.bundle, cores=a.cores, min_seconds=a.seconds)
    print(markdown(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
