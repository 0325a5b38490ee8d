"""Subcommands of the stages. Each handler imports its stage inside the function (lazily), so a
command never loads more than it needs (``consume`` and ``alerts`` never import torch)."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from perfwatch.console import console, out

if TYPE_CHECKING:
    from perfwatch.settings import KafkaSettings

Adder = Callable[[argparse._SubParsersAction], None]
ALL: list[Adder] = []

TRAIN_DIR = Path("artifacts/train")
BUNDLE_DIR = Path("artifacts/bundle")


def command(fn: Adder) -> Adder:
    ALL.append(fn)
    return fn


def _labels(value: str | None) -> list[str] | None:
    from perfwatch.labels import LABELS

    if value is None:
        return list(LABELS)
    return None if value == "auto" else [v.strip() for v in value.split(",") if v.strip()]


# -- data / train ------------------------------------------------------------------------------
@command
def _data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="write the labelled dataset (synthetic runs + seed lines + your files)")
    p.add_argument("--out", type=Path, default=Path("artifacts/data"), help="folder for train/val/test JSONL")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--synthetic-runs", type=int, default=400)
    p.add_argument("--seed-lines", type=int, default=4000)
    p.add_argument("--data", type=Path, action="append", default=[], help="labelled CSV/JSONL/text file (repeatable)")
    p.add_argument("--labels", help="comma-separated label set, or 'auto' to take it from the data")
    p.add_argument("--mem-total-gb", type=float, help="total memory for text lines that give memory in GB")

    def run(a: argparse.Namespace) -> int:
        from training.data import build_dataset

        ds = build_dataset(seed=a.seed, synthetic_runs=a.synthetic_runs, seed_lines=a.seed_lines,
                           user_files=a.data, labels=_labels(a.labels), mem_total_gb=a.mem_total_gb)
        a.out.mkdir(parents=True, exist_ok=True)
        for split, examples in ds.splits.items():
            with (a.out / f"{split}.jsonl").open("w") as f:
                for e in examples:
                    f.write(json.dumps({"text": e.text, "label": e.label, "run_id": e.run_id, "source": e.source,
                                        "boundary": e.boundary, "cpu_pct": e.metrics[0], "mem_pct": e.metrics[1],
                                        "disk_pct": e.metrics[2]}) + "\n")
        console.print(f"dataset {ds.hash} → {a.out}")
        out.print_json(data={"hash": ds.hash, "labels": ds.labels, "splits": ds.summary()})
        return 0

    p.set_defaults(func=run)


@command
def _train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune DistilGPT-2 (or its shape from scratch) to label samples",
                       description="Writes OUT/model (checkpoint + tokenizer), OUT/plots/*.png, OUT/model_card.md.")
    p.add_argument("--out", type=Path, default=TRAIN_DIR, help=f"output folder [default {TRAIN_DIR}]")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--base-model", default="distilgpt2", help="hub id or local checkpoint dir [default distilgpt2]")
    src.add_argument("--from-scratch", choices=["distilgpt2", "small", "tiny"],
                     help="same architecture, random init, tokenizer trained on the data (no hub needed)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--synthetic-runs", type=int, default=400, help="synthetic runs (3 hosts × 60 samples each)")
    p.add_argument("--seed-lines", type=int, default=4000, help="seed-style text lines in the data")
    p.add_argument("--data", type=Path, action="append", default=[], help="your labelled CSV/JSONL/text file")
    p.add_argument("--labels", help="comma-separated label set, or 'auto' (default: the built-in three)")
    p.add_argument("--mem-total-gb", type=float, help="total memory for text lines that give memory in GB")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, help="peak learning rate (default by shape)")
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--max-minutes", type=float, help="stop after this much training time")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=6, help="evaluations without improvement before stopping")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state")
    p.add_argument("--report-to", choices=["none", "wandb"], default="none", help="experiment tracking (wandb offline)")

    def run(a: argparse.Namespace) -> int:
        from training.data import DataError
        from training.model import BaseModelError
        from training.train import TrainConfig, train

        cfg = TrainConfig(out=a.out, from_scratch=a.from_scratch, base_model=a.base_model, seed=a.seed,
                          synthetic_runs=a.synthetic_runs, seed_lines=a.seed_lines, user_files=a.data,
                          labels=_labels(a.labels), mem_total_gb=a.mem_total_gb, batch_size=a.batch_size, lr=a.lr,
                          max_steps=a.max_steps, max_minutes=a.max_minutes, eval_every=a.eval_every,
                          patience=a.patience, threads=a.threads, resume=a.resume, report_to=a.report_to)
        try:
            meta = train(cfg)
        except (DataError, BaseModelError) as exc:
            console.print(f"[bold red]error:[/] {exc}")
            return 2
        sl = meta["metrics"]["slices"]
        console.print("macro-F1: " + ", ".join(f"{k} {v['macro_f1']:.4f} (n={v['n']})" for k, v in sl.items()))
        console.print(f"model → {a.out / 'model'}; plots → {a.out / 'plots'}; card → {a.out / 'model_card.md'}")
        return 0

    p.set_defaults(func=run)


# -- export ------------------------------------------------------------------------------------
@command
def _export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to a verified ONNX bundle (fp32 + int8)")
    p.add_argument("checkpoint", type=Path, nargs="?", default=TRAIN_DIR / "model",
                   help=f"checkpoint dir from `perfwatch train` [default {TRAIN_DIR / 'model'}]")
    p.add_argument("--out", type=Path, default=BUNDLE_DIR, help=f"bundle dir [default {BUNDLE_DIR}]")
    p.add_argument("--precision", choices=["both", "fp32", "int8"], default="both")
    p.add_argument("--min-int8-agreement", type=float, default=0.995)
    p.add_argument("--parity-samples", type=int, default=2000)

    def run(a: argparse.Namespace) -> int:
        from export.bundle_writer import export_bundle

        precisions = ("fp32", "int8") if a.precision == "both" else (a.precision,)
        m = export_bundle(a.checkpoint, a.out, precisions, a.min_int8_agreement, a.parity_samples)
        for key, r in m.parity.items():
            if isinstance(r, dict) and "label_agreement" in r:
                console.print(f"{key}: label agreement {r['label_agreement'] * 100:.2f}%, max |Δp| "
                              f"{r['max_abs_dprob']:.2e}")
        if "int8_size_ratio" in m.parity:
            console.print(f"int8 size {m.parity['int8_size_ratio'] * 100:.1f}% of fp32")
        console.print(f"bundle {m.bundle_id} → {a.out}")
        return 0

    p.set_defaults(func=run)


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


# -- consume -----------------------------------------------------------------------------------
@command
def _consume(sub: argparse._SubParsersAction) -> None:
    from perfwatch.cliargs import add_settings_flags
    from perfwatch.settings import ConsumerSettings

    p = sub.add_parser(
        "consume", help="run the stream processor (samples → ONNX verdicts → predictions/alerts/DLQ)",
        description="A consumer-group member. Run several for more throughput: they share the partitions.")
    add_settings_flags(p, ConsumerSettings)
    p.add_argument("--until-idle", type=float, help="exit after this many seconds without a message")
    p.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    p.add_argument("-v", "--verbose", action="store_true", help="log assignments, DLQ records, commits")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.cliargs import settings_from_args
        from perfwatch.preflight import check_broker, prepare_topics

        _logging(a.verbose)
        s = settings_from_args(ConsumerSettings, a)
        from consumer.processor import StreamProcessor  # verifies the bundle before touching Kafka
        from perfwatch.runtime import BundleModel

        workers, threads = s.inference_plan()
        model = BundleModel(s.bundle, s.precision, threads)
        conf = s.kafka_config()
        check_broker(conf)
        if not a.no_create_topics:
            prepare_topics(conf, s.samples_topic, [s.predictions_topic, s.alerts_topic, s.dlq_topic])
        proc = StreamProcessor(s, model)
        proc.install_signal_handlers()
        console.print(f"consuming {s.samples_topic} as group {s.group_id} ({s.guarantee}, bundle "
                      f"{model.model_id}, batch ≤{s.batch_size} / {s.max_wait_ms} ms, "
                      f"{workers} in inference × {threads} ORT thread(s))")
        st = proc.run(max_idle_s=a.until_idle)
        console.print(f"stopped: {st.consumed} consumed, {st.verdicts} verdicts {st.labels}, {st.alerts} alerts, "
                      f"{st.dlq} to DLQ, {st.batches} batches")
        return 0

    p.set_defaults(func=run)


# -- producer side -----------------------------------------------------------------------------
def _kafka_settings(p: argparse.ArgumentParser) -> None:
    from perfwatch.cliargs import add_settings_flags
    from perfwatch.settings import KafkaSettings

    add_settings_flags(p, KafkaSettings)


def _connect(a: argparse.Namespace) -> KafkaSettings:
    """Kafka settings from flags/env, and a one-line failure now if the broker cannot be used."""
    from perfwatch.cliargs import settings_from_args
    from perfwatch.preflight import check_broker
    from perfwatch.settings import KafkaSettings as Settings

    s = settings_from_args(Settings, a)
    check_broker(s.kafka_config())
    return s


def _stop_on_signals() -> threading.Event:
    """An Event set by SIGTERM or SIGINT, for loops that should end cleanly (flush, close)."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _speed(value: str) -> float | None:
    """'max' = as fast as possible, '1' = real time, '10' = ten times faster."""
    if value in ("max", "0"):
        return None
    speed = float(value.removeprefix("x").removesuffix("x"))
    if speed <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0, or 'max'")
    return speed


@command
def _publish(sub: argparse._SubParsersAction) -> None:
    import socket

    p = sub.add_parser("publish", help="publish live CPU/memory/disk every interval: this host, or node_exporter hosts",
                       description="Without --node-exporter/--hosts-file: this host via psutil. With them: one "
                                   "sample per host from its node_exporter's /metrics (a silent host is retried).")
    p.add_argument("--run-id", required=True, help="the load test's run id")
    p.add_argument("--host", default=socket.gethostname(), help="host name in the samples [default: hostname]")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl+C)")
    p.add_argument("--disk-path", default="/", help="mount whose usage is disk %% (psutil only)")
    p.add_argument("--record", type=Path, help="also append every sample to this JSONL recording")
    ne = p.add_argument_group("node_exporter hosts")
    ne.add_argument("--node-exporter", nargs="+", default=[], metavar="[NAME=]URL",
                    help="node_exporter addresses (host:9100 or a /metrics URL); the host name is the URL's host "
                         "(with :port unless 9100) or NAME")
    ne.add_argument("--hosts-file", type=Path, help="TOML file: [[hosts]] url = …, name = …; timeout_s, max_backoff_s")
    ne.add_argument("--scrape-timeout", type=float, help="seconds to wait for one /metrics [default 2]")
    ne.add_argument("--max-backoff", type=float, help="longest wait between retries of a silent host [default 30]")
    _kafka_settings(p)

    def run(a: argparse.Namespace) -> int:
        from producer.live import host_samples, publish_live
        from producer.node_exporter import FleetSettings

        fleet = FleetSettings.load(a.hosts_file, a.node_exporter, timeout_s=a.scrape_timeout,
                                   max_backoff_s=a.max_backoff)  # a bad hosts file fails before Kafka is tried
        s = _connect(a)
        _logging(verbose=False)
        hosts = ", ".join(t.name for t in fleet.targets()) or a.host
        console.print(f"publishing {hosts} every {a.interval}s to {s.samples_topic} as run {a.run_id} (Ctrl+C stops)")
        samples = host_samples(a.run_id, a.interval, a.duration, _stop_on_signals(), host=a.host,
                               disk_path=a.disk_path, fleet=fleet)
        st = publish_live(s.kafka_config(), s.samples_topic, samples, a.record, echo=lambda x: console.print(
            f"{x.ts:%H:%M:%S} {x.host} cpu {x.cpu_pct:5.1f} mem {x.mem_pct:5.1f} disk {x.disk_pct:5.1f}"))
        console.print(f"sent {st.sent}, delivered {st.delivered}, failed {st.failed} {dict(st.errors)}")
        return 0 if st.failed == 0 else 1

    p.set_defaults(func=run)


def _print_summary(summary, on_error: str) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape

    for r in summary.rejected[:20]:
        console.print(f"[yellow]rejected[/] {escape(str(r))}")
    if len(summary.rejected) > 20:
        console.print(f"… and {len(summary.rejected) - 20} more")
    reasons = ", ".join(f"{k} {n}" for k, n in summary.reasons.most_common()) or "none"
    console.print(f"sent {summary.sent} (delivered {summary.delivered}, failed {summary.failed}) in "
                  f"{summary.seconds:.1f}s; rejected {len(summary.rejected)} ({reasons})")


@command
def _replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-publish a recorded run (JSONL/CSV, Locust CSV, text lines, or a topic)",
                       description="SOURCE: a .jsonl/.csv recording, a Locust *_stats_history.csv (with "
                                   "--host-metrics), a text file of seed-style lines, or kafka:TOPIC with --from-run.")
    p.add_argument("source")
    p.add_argument("--speed", type=_speed, default=1.0, help="1 = real time, 10 = ×10, max = as fast as possible")
    p.add_argument("--run-id", help="publish under this run id (tells a replay apart from the original)")
    p.add_argument("--host-metrics", type=Path, help="host-metrics recording to join with a Locust CSV by time")
    p.add_argument("--from-run", help="with kafka:TOPIC: the run id to read back")
    p.add_argument("--start", help="with kafka:TOPIC: only samples at or after this RFC 3339 time")
    p.add_argument("--end", help="with kafka:TOPIC: only samples at or before this RFC 3339 time")
    p.add_argument("--interval", type=float, default=1.0, help="spacing of text lines, which carry no time")
    p.add_argument("--mem-total-gb", type=float, help="total memory for text lines that give memory in GB")
    p.add_argument("--on-error", choices=["skip", "fail"], default="skip",
                   help="bad recording lines: report and send the rest (skip), or send nothing (fail)")
    p.add_argument("--no-progress", action="store_true")
    _kafka_settings(p)

    def run(a: argparse.Namespace) -> int:
        from datetime import datetime

        from producer.publisher import Publisher
        from producer.recordings import Rejected, read_source
        from producer.replay import replay

        s = _connect(a)
        items = read_source(a.source, host_metrics=a.host_metrics, run_id=a.run_id, mem_total_gb=a.mem_total_gb,
                            conf=s.kafka_config(), from_run=a.from_run,
                            start=datetime.fromisoformat(a.start) if a.start else None,
                            end=datetime.fromisoformat(a.end) if a.end else None, interval_s=a.interval)
        bad = [i for i in items if isinstance(i, Rejected)]
        if bad and a.on_error == "fail":
            from rich.markup import escape

            for r in bad[:20]:
                console.print(f"[red]bad line[/] {escape(str(r))}")
            console.print(f"[bold red]error:[/] {len(bad)} bad record(s) in {a.source}; nothing sent (--on-error fail)")
            return 2
        if len(items) == len(bad):
            console.print(f"[bold red]error:[/] no valid samples in {a.source}")
            return 2
        summary = replay(items, Publisher(s.kafka_config(), s.samples_topic), speed=a.speed, new_run_id=a.run_id,
                         show_progress=not a.no_progress)
        _print_summary(summary, a.on_error)
        return 0 if summary.failed == 0 else 1

    p.set_defaults(func=run)


@command
def _generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="publish synthetic load-test runs (ramp-up, spikes, soak, recovery)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--samples", type=int, default=120, help="samples per host")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between a host's samples")
    p.add_argument("--speed", type=_speed, default=None, help="1 = real time … max = as fast as possible [max]")
    p.add_argument("--run-prefix", default="synth")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    _kafka_settings(p)

    def run(a: argparse.Namespace) -> int:
        from perfwatch.synthetic import generate_runs
        from producer.publisher import Publisher
        from producer.replay import replay

        s = _connect(a)
        items = list(generate_runs(a.runs, a.seed, a.run_prefix, hosts=a.hosts, samples_per_host=a.samples,
                                   interval_s=a.interval))
        summary = replay(items, Publisher(s.kafka_config(), s.samples_topic), speed=a.speed,
                         show_progress=not a.no_progress)
        _print_summary(summary, "skip")
        return 0 if summary.failed == 0 else 1

    p.set_defaults(func=run)


@command
def _alerts(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="subscribe to HighLoad alerts (live or from the beginning)",
                       description="Exit codes with --fail-on-alert: 1 if any matching alert arrived, else 0.")
    p.add_argument("--from-beginning", action="store_true", help="read the whole topic, not only new alerts")
    p.add_argument("--run-id")
    p.add_argument("--host")
    p.add_argument("--state", choices=["firing", "resolved"])
    p.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    p.add_argument("--until-idle", type=float, help="exit after this many seconds without a new alert")
    p.add_argument("--fail-on-alert", action="store_true", help="exit 1 when a matching alert occurred")
    _kafka_settings(p)

    def run(a: argparse.Namespace) -> int:
        from producer.alerts import AlertFilter, as_json, follow, format_alert

        s = _connect(a)
        stop = _stop_on_signals()

        def show(alert):  # type: ignore[no-untyped-def]
            if a.json:
                print(as_json(alert), flush=True)
            else:
                from rich.markup import escape

                style = "[bold red]" if alert.state != "resolved" else "[green]"
                out.print(style + escape(format_alert(alert)) + "[/]")

        n = follow(s.kafka_config(), s.alerts_topic, show, from_beginning=a.from_beginning,
                   flt=AlertFilter(a.run_id, a.host, a.state), until_idle_s=a.until_idle, stop=stop)
        console.print(f"{n} alert(s)")
        return 1 if a.fail_on_alert and n else 0

    p.set_defaults(func=run)


@command
def _report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="draw a run's metrics, verdicts and alerts (PNG) and summarize it")
    p.add_argument("run_id")
    p.add_argument("--out", type=Path, help="PNG path [default artifacts/report-RUN_ID.png]")
    _kafka_settings(p)

    def run(a: argparse.Namespace) -> int:
        from producer.report import collect, draw, summarize

        s = _connect(a)
        data = collect(s.kafka_config(), a.run_id, s.samples_topic, s.predictions_topic, s.alerts_topic)
        if not data.samples and not data.verdicts:
            console.print(f"[bold red]error:[/] no samples or verdicts for run {a.run_id!r}")
            return 2
        path = draw(data, a.out or Path(f"artifacts/report-{a.run_id}.png"))
        print(summarize(data))
        console.print(f"report → {path}")
        return 0

    p.set_defaults(func=run)


@command
def _demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="end to end: broker → train → export → consume → replay → alerts → report")
    p.add_argument("--workdir", type=Path, default=Path("artifacts/demo"))
    p.add_argument("--speed", type=float, default=10.0, help="replay speed (×N)")
    p.add_argument("--train-steps", type=int, default=400)
    p.add_argument("--keep-broker", action="store_true", help="leave the demo broker running")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.demo import run_demo

        return run_demo(a.workdir, a.speed, a.train_steps, a.keep_broker)

    p.set_defaults(func=run)


@command
def _bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure raw model, pipeline, baseline, latency, memory, scale-out side by side")
    p.add_argument("--shape", choices=["distilgpt2", "small", "tiny"], default="distilgpt2")
    p.add_argument("--out", type=Path, help="JSON results [default artifacts/bench/SHAPE.json]")
    p.add_argument("--bootstrap-servers", help="use this broker (default: start a fresh local one)")

    def run(a: argparse.Namespace) -> int:
        from bench.run import markdown, run

        result = run(a.shape, a.out or Path(f"artifacts/bench/{a.shape}.json"), a.bootstrap_servers)
        print(markdown(result))
        console.print(f"bench finished in {result['seconds']:.0f}s")
        return 0

    p.set_defaults(func=run)


@command
def _chaos(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chaos", help="reliability scenarios with exact lost/duplicated/DLQ counts")
    p.add_argument("--short", action="store_true", help="the CI-sized version")
    p.add_argument("--out", type=Path, default=Path("artifacts/chaos.json"))

    def run(a: argparse.Namespace) -> int:
        from bench.chaos import run_all, table, to_json

        results = run_all(long=not a.short)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(to_json(results))
        print(table(results))
        return 0 if all(r.ok for r in results) else 1

    p.set_defaults(func=run)
