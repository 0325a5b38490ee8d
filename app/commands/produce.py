"""`perfwatch publish`, `replay`, `generate`: samples into the stream."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfwatch.app.common import add_kafka_flags, connect, parse_speed, setup_logging, stop_on_signals
from perfwatch.console import console


def _add_publish(sub: argparse._SubParsersAction) -> None:
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
    add_kafka_flags(p)

    def run(a: argparse.Namespace) -> int:
        from perfwatch.producer.live import host_samples, publish_live
        from perfwatch.producer.node_exporter import FleetSettings

        fleet = FleetSettings.load(a.hosts_file, a.node_exporter, timeout_s=a.scrape_timeout,
                                   max_backoff_s=a.max_backoff)  # a bad hosts file fails before Kafka is tried
        s = connect(a)
        setup_logging(verbose=False)
        hosts = ", ".join(t.name for t in fleet.targets()) or a.host
        console.print(f"publishing {hosts} every {a.interval}s to {s.samples_topic} as run {a.run_id} (Ctrl+C stops)")
        samples = host_samples(a.run_id, a.interval, a.duration, stop_on_signals(), host=a.host,
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
    if summary.rejected_count > 20:
        console.print(f"… and {summary.rejected_count - 20} more")
    reasons = ", ".join(f"{k} {n}" for k, n in summary.reasons.most_common()) or "none"
    console.print(f"sent {summary.sent} (delivered {summary.delivered}, failed {summary.failed}) in "
                  f"{summary.seconds:.1f}s; rejected {summary.rejected_count} ({reasons})")


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-publish a recorded run (JSONL/CSV, Locust CSV, text lines, or a topic)",
                       description="SOURCE: a .jsonl/.csv recording, a Locust *_stats_history.csv (with "
                                   "--host-metrics), a text file of seed-style lines, or kafka:TOPIC with --from-run.")
    p.add_argument("source")
    p.add_argument("--speed", type=parse_speed, default=1.0, help="1 = real time, 10 = ×10, max = as fast as possible")
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
    add_kafka_flags(p)

    def run(a: argparse.Namespace) -> int:
        from datetime import datetime

        from perfwatch.producer.ordering import Recording
        from perfwatch.producer.publisher import Publisher
        from perfwatch.producer.recordings import read_source
        from perfwatch.producer.replay import replay

        s = connect(a)
        recording = Recording(read_source(
            a.source, host_metrics=a.host_metrics, run_id=a.run_id, mem_total_gb=a.mem_total_gb,
            conf=s.kafka_config(), from_run=a.from_run, start=datetime.fromisoformat(a.start) if a.start else None,
            end=datetime.fromisoformat(a.end) if a.end else None, interval_s=a.interval))
        if recording.n_rejected and a.on_error == "fail":
            from rich.markup import escape

            for r in recording.rejected[:20]:
                console.print(f"[red]bad line[/] {escape(str(r))}")
            console.print(f"[bold red]error:[/] {recording.n_rejected} bad record(s) in {a.source}; nothing sent "
                          "(--on-error fail)")
            return 2
        if recording.n_samples == 0:
            console.print(f"[bold red]error:[/] no valid samples in {a.source}")
            return 2
        summary = replay(recording, Publisher(s.kafka_config(), s.samples_topic), speed=a.speed,
                         new_run_id=a.run_id, show_progress=not a.no_progress)
        _print_summary(summary, a.on_error)
        return 0 if summary.failed == 0 else 1

    p.set_defaults(func=run)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="publish synthetic load-test runs (ramp-up, spikes, soak, recovery)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--samples", type=int, default=120, help="samples per host")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between a host's samples")
    p.add_argument("--speed", type=parse_speed, default=None, help="1 = real time … max = as fast as possible [max]")
    p.add_argument("--run-prefix", default="synth")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    add_kafka_flags(p)

    def run(a: argparse.Namespace) -> int:
        from perfwatch.producer.publisher import Publisher
        from perfwatch.producer.replay import replay
        from perfwatch.synthetic import generate_runs

        s = connect(a)
        items = list(generate_runs(a.runs, a.seed, a.run_prefix, hosts=a.hosts, samples_per_host=a.samples,
                                   interval_s=a.interval))
        summary = replay(items, Publisher(s.kafka_config(), s.samples_topic), speed=a.speed,
                         show_progress=not a.no_progress)
        _print_summary(summary, "skip")
        return 0 if summary.failed == 0 else 1

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_publish, _add_replay, _add_generate):
        adder(sub)
