"""`perfwatch demo`, `bench`, `chaos`: the whole pipeline at once, measured or under faults."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfwatch.app.common import count, positive
from perfwatch.console import console


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="end to end: broker → train → export → consume → replay → alerts → report",
                       description="Runs the whole pipeline once on a fresh local broker of its own (in WORKDIR), "
                                   "with a small model trained from scratch.")
    p.add_argument("--workdir", type=Path, default=Path("artifacts/demo"), metavar="PATH",
                   help="where the demo's broker, model and report go (default: artifacts/demo)")
    p.add_argument("--speed", type=positive, default=10.0, metavar="X", help="replay speed, ×X (default: 10)")
    p.add_argument("--train-steps", type=count, default=400, metavar="N", help="training steps (default: 400)")
    p.add_argument("--keep-broker", action="store_true", help="leave the demo broker running")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.app.demo import run_demo

        return run_demo(a.workdir, a.speed, a.train_steps, a.keep_broker)

    p.set_defaults(func=run)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure raw model, pipeline, baseline, latency, memory, scale-out side by side",
                       description="Trains and exports a model of SHAPE, then measures it raw and through the "
                                   "pipeline; prints a Markdown table and writes the numbers as JSON.")
    p.add_argument("--shape", choices=["distilgpt2", "small", "tiny"], default="distilgpt2",
                   help="model shape (default: distilgpt2)")
    p.add_argument("--out", type=Path, metavar="PATH", help="JSON results (default: artifacts/bench/SHAPE.json)")
    p.add_argument("--bootstrap-servers", metavar="HOST:PORT",
                   help="use this broker (default: start a fresh local one)")
    p.add_argument("--only", choices=["cost"], help="cost: only the cost-per-host levers (template, response cache, "
                                                    "the loop's ceiling)")
    p.add_argument("--template-bundle", type=Path, action="append", default=[], metavar="PATH",
                   help="a trained bundle of another text template, measured in the template rows with its "
                        "accuracy (repeatable; default: one of the shape trained 80 steps, for its speed only)")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.bench.run import markdown, run

        suffix = f"-{a.only}" if a.only else ""
        result = run(a.shape, a.out or Path(f"artifacts/bench/{a.shape}{suffix}.json"), a.bootstrap_servers,
                     only=a.only, template_bundles=a.template_bundle)
        print(markdown(result))
        console.print(f"bench finished in {result['seconds']:.0f}s")
        return 0

    p.set_defaults(func=run)


def _add_chaos(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chaos", help="reliability scenarios with exact lost/duplicated/DLQ counts",
                       description="Crashes consumers, restarts brokers, loses a node, scales in and out, feeds bad "
                                   "input; counts what was lost, duplicated or dead-lettered. Exit 1 if any failed.")
    p.add_argument("--short", action="store_true", help="the CI-sized version")
    p.add_argument("--out", type=Path, default=Path("artifacts/chaos.json"), metavar="PATH",
                   help="JSON results (default: artifacts/chaos.json)")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.bench.chaos import run_and_save, table

        results = run_and_save(long=not a.short, out=a.out)
        print(table(results))
        return 0 if all(r.ok for r in results) else 1

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_demo, _add_bench, _add_chaos):
        adder(sub)
