"""`perfwatch publish`, `replay`, `generate`: samples into the stream."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfwatch.app.common import (
    add_kafka_flags,
    connect,
    count,
    parse_speed,
    plural,
    positive,
    seconds,
    setup_logging,
    stop_on_signals,
    utc_time,
)
from perfwatch.app.flags import settings_from_args
from perfwatch.app.preflight import check_broker
from perfwatch.console import console
from perfwatch.settings import KafkaSettings

SPEED_HELP = "1 = real time, 10 or x10 = ten times faster, max = as fast as possible"


def _add_publish(sub: argparse._SubParsersAction) -> None:
    import socket

    p = sub.add_parser("publish", help="publish live CPU/memory/disk every interval: this host, or node_exporter hosts",
                       description="Without --node-exporter/--hosts-file: this host via psutil. With them: one "
                                   "sample per host from its node_exporter's /metrics (a silent host is retried). "
                                   "Until --duration or Ctrl+C.")
    p.add_argument("--run-id", required=True, metavar="ID", help="the load test's run id")
    p.add_argument("--host", default=socket.gethostname(), metavar="NAME",
                   help="host name in the samples (default: this host's name)")
    p.add_argument("--interval", type=seconds, default=1.0, metavar="S", help="seconds between samples (default: 1)")
    p.add_argument("--duration", type=seconds, metavar="S", help="stop after this many seconds (default: until Ctrl+C)")
    p.add_argument("--disk-path", default="/", metavar="PATH",
                   help="mount whose usage is disk %%, psutil only (default: /)")
    p.add_argument("--record", type=Path, metavar="PATH", help="also append every sample to this JSONL recording")
    ne = p.add_argument_group("node_exporter hosts")
    ne.add_argument("--node-exporter", nargs="+", default=[], metavar="[NAME=]URL",
                    help="node_exporter addresses (host:9100 or a /metrics URL); the host name is the URL's host "
                         "(with :port unless 9100) or NAME")
    ne.add_argument("--hosts-file", type=Path, metavar="PATH",
                    help="TOML file: [[hosts]] url = …, name = …; timeout_s, max_backoff_s")
    ne.add_argument("--scrape-timeout", type=seconds, metavar="S",
                    help="seconds to wait for one /metrics (default: 2)")
    ne.add_argument("--max-backoff", type=seconds, metavar="S",
                    help="longest wait between retries of a silent host (default: 30)")
    add_kafka_flags(p, "samples_topic")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.producer.live import host_samples, publish_live
        from perfwatch.producer.node_exporter import FleetSettings

        fleet = FleetSettings.load(a.hosts_file, a.node_exporter, timeout_s=a.scrape_timeout,
                                   max_backoff_s=a.max_backoff)  # a bad hosts file fails before Kafka is tried
        s = connect(a)
        hosts = ", ".join(t.name for t in fleet.targets()) or a.host
        console.print(f"publishing {hosts} every {a.interval}s to {s.samples_topic} as run {a.run_id} (Ctrl+C stops)")
        samples = host_samples(a.run_id, a.interval, a.duration, stop_on_signals(), host=a.host,
                               disk_path=a.disk_path, fleet=fleet)
        st = publish_live(s.kafka_config(), s.samples_topic, samples, a.record, echo=lambda x: console.print(
            f"{x.ts:%H:%M:%S} {x.host} cpu {x.cpu_pct:5.1f} mem {x.mem_pct:5.1f} disk {x.disk_pct:5.1f}"))
        errors = ", ".join(f"{k} {n}" for k, n in dict(st.errors).items())
        console.print(f"sent {st.sent}, delivered {st.delivered}, failed {st.failed}"
                      + (f" ({errors})" if errors else ""))
        return 0 if st.failed == 0 else 1

    p.set_defaults(func=run)


def _print_summary(summary: Any, total: int) -> None:
    from rich.markup import escape

    for r in summary.rejected[:20]:
        console.print(f"[yellow]rejected[/] {escape(str(r))}")
    if summary.rejected_count > 20:
        console.print(f"… and {summary.rejected_count - 20} more")
    reasons = ", ".join(f"{k} {n}" for k, n in summary.reasons.most_common())
    if summary.stopped:
        console.print(f"stopped: sent {summary.sent} of {plural(total, 'sample')} before Ctrl+C")
    console.print(f"sent {summary.sent} (delivered {summary.delivered}, failed {summary.failed}) in "
                  f"{summary.seconds:.1f} s; rejected {summary.rejected_count}" + (f" ({reasons})" if reasons else ""))


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-publish a recorded run (JSONL/CSV, Locust CSV, text lines, or a topic)",
                       description="SOURCE: a .jsonl/.csv recording, a Locust *_stats_history.csv (with "
                                   "--host-metrics), a text file of seed-style lines, or kafka:TOPIC with --from-run. "
                                   "Files are read and checked before any broker contact; Ctrl+C stops and says "
                                   "what was sent.")
    p.add_argument("source", metavar="SOURCE", help="recording file, or kafka:TOPIC")
    p.add_argument("--speed", type=parse_speed, default=1.0, metavar="X|max", help=f"{SPEED_HELP} (default: 1)")
    p.add_argument("--run-id", metavar="ID",
                   help="publish under this run id, to tell a replay apart from the original (default: the "
                        "recording's own)")
    p.add_argument("--host-metrics", type=Path, metavar="PATH",
                   help="host-metrics recording to join with a Locust CSV by time")
    p.add_argument("--from-run", metavar="ID", help="with kafka:TOPIC: the run id to read back")
    p.add_argument("--start", type=utc_time, metavar="TIME",
                   help="with kafka:TOPIC: only samples at or after this RFC 3339 time (no zone = UTC)")
    p.add_argument("--end", type=utc_time, metavar="TIME",
                   help="with kafka:TOPIC: only samples at or before this RFC 3339 time (no zone = UTC)")
    p.add_argument("--interval", type=seconds, default=1.0, metavar="S",
                   help="spacing of text lines, which carry no time (default: 1)")
    p.add_argument("--mem-total-gb", type=positive, metavar="GB",
                   help="total memory for text lines that give memory in GB")
    p.add_argument("--on-error", choices=["skip", "fail"], default="skip",
                   help="bad recording lines: report and send the rest (skip), or send nothing (fail) (default: skip)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_kafka_flags(p, "samples_topic")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.producer.ordering import Recording
        from perfwatch.producer.publisher import Publisher
        from perfwatch.producer.recordings import read_source
        from perfwatch.producer.replay import replay

        setup_logging(a.verbose)
        s = settings_from_args(KafkaSettings, a)

        def read(conf: dict[str, Any] | None) -> Recording:
            return Recording(read_source(
                a.source, host_metrics=a.host_metrics, run_id=a.run_id, mem_total_gb=a.mem_total_gb, conf=conf,
                from_run=a.from_run, start=a.start, end=a.end, interval_s=a.interval))

        from_topic = a.source.startswith("kafka:") and a.from_run
        recording = None if from_topic else read(None)  # local files are checked before any broker contact
        check_broker(s.kafka_config())
        if recording is None:
            recording = read(s.kafka_config())
        with recording:
            if recording.n_rejected and a.on_error == "fail":
                from rich.markup import escape

                for r in recording.rejected[:20]:
                    console.print(f"[red]bad line[/] {escape(str(r))}")
                console.print(f"[bold red]error:[/] {plural(recording.n_rejected, 'bad record')} in {a.source}; "
                              "nothing sent (--on-error fail)")
                return 2
            if recording.n_samples == 0:
                console.print(f"[bold red]error:[/] no valid samples in {a.source}")
                return 2
            _warn_if_run_exists(s.kafka_config(), s.samples_topic, recording.keys, a.run_id)
            summary = replay(recording, Publisher(s.kafka_config(), s.samples_topic), speed=a.speed,
                             new_run_id=a.run_id, show_progress=not a.no_progress, stop=stop_on_signals())
        _print_summary(summary, recording.n_samples)
        return 130 if summary.stopped else (0 if summary.failed == 0 else 1)

    p.set_defaults(func=run)


def _warn_if_run_exists(conf: dict[str, Any], topic: str, keys: set[tuple[str, str]], new_run_id: str | None) -> None:
    """Replaying into a run id that already has samples mixes two runs: say so, and how to keep them apart."""
    from perfwatch.producer.run_check import fresh_run_id, runs_already_on

    if new_run_id:
        keys = {(new_run_id, host) for _, host in keys}
    runs = sorted(runs_already_on(conf, topic, keys))
    if runs:
        console.print(f"[yellow]warning:[/] {topic} already has samples of run {', '.join(runs)}; this replay adds "
                      f"to {'it' if len(runs) == 1 else 'them'}, and reports and alerts will mix both. For a run of "
                      f"its own: --run-id {fresh_run_id(runs[0])}")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="publish synthetic load-test runs (ramp-up, spikes, soak, recovery)",
                       description="Publishes synthetic runs (ramp-up, spikes, soak, recovery) under fresh run ids "
                                   "(NAME-XXXXXX-NNNNN, XXXXXX random), printed at the start; Ctrl+C stops and says "
                                   "what was sent.")
    p.add_argument("--runs", type=count, default=1, metavar="N", help="runs to generate (default: 1)")
    p.add_argument("--hosts", type=count, default=3, metavar="N", help="hosts per run (default: 3)")
    p.add_argument("--samples", type=count, default=120, metavar="N", help="samples per host (default: 120)")
    p.add_argument("--interval", type=seconds, default=1.0, metavar="S",
                   help="seconds between a host's samples (default: 1)")
    p.add_argument("--speed", type=parse_speed, default=None, metavar="X|max", help=f"{SPEED_HELP} (default: max)")
    p.add_argument("--run-prefix", default="synth", metavar="NAME",
                   help="run ids are NAME-XXXXXX-NNNNN, XXXXXX fresh each time (default: synth)")
    p.add_argument("--seed", type=int, default=1, metavar="N", help="random seed of the runs' shapes (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_kafka_flags(p, "samples_topic")

    def run(a: argparse.Namespace) -> int:
        import secrets

        from perfwatch.producer.publisher import Publisher
        from perfwatch.producer.replay import replay
        from perfwatch.synthetic import generate_runs

        s = connect(a)
        prefix = f"{a.run_prefix}-{secrets.token_hex(3)}"
        items = list(generate_runs(a.runs, a.seed, prefix, hosts=a.hosts, samples_per_host=a.samples,
                                   interval_s=a.interval))
        run_ids = list(dict.fromkeys(i.run_id for i in items))
        console.print(f"run {'id' if len(run_ids) == 1 else 'ids'}: {', '.join(run_ids)}")
        summary = replay(items, Publisher(s.kafka_config(), s.samples_topic), speed=a.speed,
                         show_progress=not a.no_progress, stop=stop_on_signals())
        _print_summary(summary, len(items))
        return 130 if summary.stopped else (0 if summary.failed == 0 else 1)

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_publish, _add_replay, _add_generate):
        adder(sub)
