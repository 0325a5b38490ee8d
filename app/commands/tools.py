"""`perfwatch demo`, `bench`, `chaos`: the whole pipeline at once, measured or under faults."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfwatch.console import console


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="end to end: broker → train → export → consume → replay → alerts → report")
    p.add_argument("--workdir", type=Path, default=Path("artifacts/demo"))
    p.add_argument("--speed", type=float, default=10.0, help="replay speed (×N)")
    p.add_argument("--train-steps", type=int, default=400)
    p.add_argument("--keep-broker", action="store_true", help="leave the demo broker running")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.app.demo import run_demo

        return run_demo(a.workdir, a.speed, a.train_steps, a.keep_broker)

    p.set_defaults(func=run)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure raw model, pipeline, baseline, latency, memory, scale-out side by side")
    p.add_argument("--shape", choices=["distilgpt2", "small", "tiny"], default="distilgpt2")
    p.add_argument("--out", type=Path, help="JSON results [default artifacts/bench/SHAPE.json]")
    p.add_argument("--bootstrap-servers", help="use this broker (default: start a fresh local one)")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.bench.run import markdown, run

        result = run(a.shape, a.out or Path(f"artifacts/bench/{a.shape}.json"), a.bootstrap_servers)
        print(markdown(result))
        console.print(f"bench finished in {result['seconds']:.0f}s")
        return 0

    p.set_defaults(func=run)


def _add_chaos(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chaos", help="reliability scenarios with exact lost/duplicated/DLQ counts")
    p.add_argument("--short", action="store_true", help="the CI-sized version")
    p.add_argument("--out", type=Path, default=Path("artifacts/chaos.json"))

    def run(a: argparse.Namespace) -> int:
        from perfwatch.bench.chaos import run_and_save, table

        results = run_and_save(long=not a.short, out=a.out)
        print(table(results))
        return 0 if all(r.ok for r in results) else 1

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_demo, _add_bench, _add_chaos):
        adder(sub)
