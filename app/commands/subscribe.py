"""`perfwatch alerts`, `report`: what reads the outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfwatch.app.common import add_kafka_flags, connect, seconds, stop_on_signals
from perfwatch.console import console, out


def _add_alerts(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="subscribe to HighLoad alerts (live or from the beginning)",
                       description="Prints HighLoad alerts (firing and resolved) as they arrive. Exit codes with "
                                   "--fail-on-alert: 1 if any matching alert arrived, else 0.")
    p.add_argument("--from-beginning", action="store_true", help="read the whole topic, not only new alerts")
    p.add_argument("--run-id", metavar="ID", help="only this run's alerts")
    p.add_argument("--host", metavar="NAME", help="only this host's alerts")
    p.add_argument("--state", choices=["firing", "resolved"], help="only alerts in this state")
    p.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    p.add_argument("--until-idle", type=seconds, metavar="S", help="exit after this many seconds without a new alert")
    p.add_argument("--fail-on-alert", action="store_true", help="exit 1 when a matching alert occurred")
    add_kafka_flags(p, "alerts_topic")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.subscriber.alerts import AlertFilter, as_json, follow, format_alert

        s = connect(a)
        stop = stop_on_signals()

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


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="draw a run's metrics, verdicts and alerts (PNG) and summarize it",
                       description="Reads one run's samples, verdicts and alerts back from their topics, draws them "
                                   "as a PNG and prints a summary.")
    p.add_argument("run_id", metavar="RUN_ID", help="the run to report on")
    p.add_argument("--out", type=Path, metavar="PATH", help="PNG path (default: artifacts/report-RUN_ID.png)")
    add_kafka_flags(p, "samples_topic", "predictions_topic", "alerts_topic")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.subscriber.report import collect, draw, summarize

        s = connect(a)
        data = collect(s.kafka_config(), a.run_id, s.samples_topic, s.predictions_topic, s.alerts_topic)
        if not data.samples and not data.verdicts:
            console.print(f"[bold red]error:[/] no samples or verdicts for run {a.run_id!r}")
            return 2
        path = draw(data, a.out or Path(f"artifacts/report-{a.run_id}.png"))
        print(summarize(data))
        console.print(f"report → {path}")
        return 0

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_alerts, _add_report):
        adder(sub)
