"""`perfwatch bench`: raw model, pipeline (at-least-once and exactly-once), naive baseline, latency at
fixed loads, consumer memory and scale-out, measured side by side in one run. Prints a markdown table
with the goals and writes JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from perfwatch.console import console

BATCH = 128


def machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def run(shape: str, out: Path, bootstrap: str | None = None, quick: bool | None = None) -> dict[str, Any]:
    from bench.bundle import ensure_bench_artifacts
    from bench.naive import naive_throughput
    from bench.pipeline import consumer_processes, latency, throughput
    from bench.raw import raw_table
    from perfwatch.bundle import read_manifest

    quick = shape == "tiny" if quick is None else quick
    t_start = time.monotonic()
    bundle, checkpoint = ensure_bench_artifacts(shape)
    secs = 5.0 if quick else 15.0
    result: dict[str, Any] = {"shape": shape, "machine": machine(), "bundle": read_manifest(bundle).bundle_id,
                              "batch": BATCH, "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with ExitStack() as stack:
        if bootstrap is None:
            from bench.chaos import local_broker

            kafka = stack.enter_context(local_broker(1))
            st = kafka.load_state()
            assert st is not None  # noqa: S101
            bootstrap = st.bootstrap
        conf = {"bootstrap.servers": bootstrap}
        console.print("raw model …")
        result["raw"] = raw_table(bundle, min_seconds=0.5 if quick else 2.0)
        raw = {(r["precision"], r["batch"]): r for r in result["raw"]}
        n = int(min(30_000, max(2_000, raw[("int8", BATCH)]["samples_per_s"] * secs)))
        console.print(f"pipeline (at-least-once, exactly-once; {n} samples each) …")
        result["pipeline"] = [
            throughput(conf, bundle, n, guarantee="at-least-once", precision="int8", batch=BATCH),
            throughput(conf, bundle, n, guarantee="exactly-once", precision="int8", batch=BATCH)]
        console.print("naive baseline (transformers pipeline on torch, one message at a time) …")
        result["naive"] = naive_throughput(conf, checkpoint, 1000 if quick else 300)
        alo = result["pipeline"][0]["samples_per_s"]
        console.print("latency at 25/50/75 % of the measured maximum …")
        result["latency"] = [latency(conf, bundle, alo * f, secs, precision="int8", batch=BATCH, max_wait_ms=50)
                             for f in (0.25, 0.5, 0.75)]
        console.print("consumer processes: 1 vs 2 in one group (peak RSS of each) …")
        result["processes"] = [consumer_processes(conf, bundle, n, k, precision="int8", batch=BATCH) for k in (1, 2)]
    result["goals"] = goals(result)
    result["seconds"] = round(time.monotonic() - t_start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    raw = {(x["precision"], x["batch"]): x for x in r["raw"]}
    alo, eos = r["pipeline"][0]["samples_per_s"], r["pipeline"][1]["samples_per_s"]
    raw_rate = raw[("int8", r["batch"])]["samples_per_s"]
    batch_s = r["batch"] / raw[("int8", r["batch"])]["samples_per_s_no_tokenize"]
    p99_50 = r["latency"][1]["p99_ms"]
    bound = 50 + 3 * batch_s * 1000
    rss = r["processes"][0]["peak_rss_mib"][0]
    naive = r["naive"]["samples_per_s"]
    return [
        {"goal": "pipeline ≥ 0.9 × raw model (int8, batch 128)", "value": alo / raw_rate,
         "met": alo / raw_rate >= 0.9,
         "figure": f"{alo:.0f} / {raw_rate:.0f} samples/s = {alo / raw_rate:.2f}×"},
        {"goal": "pipeline ≥ 10 × naive per-message torch", "value": alo / naive, "met": alo / naive >= 10,
         "figure": f"{alo:.0f} / {naive:.1f} samples/s = {alo / naive:.1f}×"},
        {"goal": "p99 at 50 % load ≤ max_wait + 3 × batch inference", "value": p99_50, "met": p99_50 <= bound,
         "figure": f"{p99_50:.0f} ms ≤ {bound:.0f} ms (50 + 3 × {batch_s * 1000:.0f})"},
        {"goal": "exactly-once costs ≤ 15 % of at-least-once", "value": 1 - eos / alo, "met": eos >= 0.85 * alo,
         "figure": f"{eos:.0f} vs {alo:.0f} samples/s = {(1 - eos / alo) * 100:.1f} % cost"},
        {"goal": "consumer peak RSS ≤ 1 GiB (int8)", "value": rss, "met": rss <= 1024, "figure": f"{rss:.0f} MiB"},
    ]


def markdown(r: dict[str, Any]) -> str:
    from bench.raw import markdown as raw_md

    m = r["machine"]
    lines = [f"`perfwatch bench --shape {r['shape']}` on {m['cores']} cores ({m['cpu']}), {r['when']}, "
             f"bundle `{r['bundle']}`, batch {r['batch']}:", "", "**Raw model**", "", raw_md(r["raw"]), "",
             "**Pipeline and baselines** (int8; rates from the broker's append times of the verdicts)", "",
             "| measurement | samples/s | notes |", "| --- | --- | --- |"]
    for p in r["pipeline"]:
        lines.append(f"| pipeline, {p['guarantee']} | {p['samples_per_s']:.0f} | {p['verdicts']} verdicts, "
                     f"{p['commits']} commits, inference {p['inference_share'] * 100:.0f} % of the time |")
    lines.append(f"| naive: transformers pipeline on torch, per message | {r['naive']['samples_per_s']:.1f} | "
                 f"{r['naive']['samples']} samples |")
    for p in r["processes"]:
        lines.append(f"| {p['processes']} consumer process(es), {p['threads_each']} ORT thread(s) each | "
                     f"{p['samples_per_s']:.0f} | peak RSS {', '.join(f'{x:.0f}' for x in p['peak_rss_mib'])} MiB |")
    lines += ["", "**End-to-end latency** (input produced → verdict appended), max_wait 50 ms", "",
              "| offered load | samples/s | p50 ms | p95 ms | p99 ms |", "| --- | --- | --- | --- | --- |"]
    for f, x in zip(("25 %", "50 %", "75 %"), r["latency"], strict=True):
        lines.append(f"| {f} | {x['offered_per_s']:.0f} | {x['p50_ms']:.0f} | {x['p95_ms']:.0f} | {x['p99_ms']:.0f} |")
    lines += ["", "**Goals**", "", "| goal | figure | met |", "| --- | --- | --- |"]
    lines += [f"| {g['goal']} | {g['figure']} | {'yes' if g['met'] else 'no'} |" for g in r["goals"]]
    return "\n".join(lines)
