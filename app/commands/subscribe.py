"""`perfwatch alerts`, `report`: what reads the outputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from perfwatch.app.common import add_kafka_flags, connect, seconds, setup_logging, stop_on_signals
from perfwatch.app.flags import add_settings_flags, settings_from_args
from perfwatch.app.preflight import check_broker
from perfwatch.console import console, out
from perfwatch.settings import NotifySettings, SampleSettings


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

        res = follow(s.kafka_config(), s.alerts_topic, show, from_beginning=a.from_beginning,
                     flt=AlertFilter(a.run_id, a.host, a.state), until_idle_s=a.until_idle, stop=stop)
        skipped = f"; {res.skipped} unreadable records skipped" if res.skipped else ""
        console.print(f"{res.matched} {'alert' if res.matched == 1 else 'alerts'}{skipped}")
        return 1 if a.fail_on_alert and res.matched else 0

    p.set_defaults(func=run)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="draw a run's load, metrics, verdicts and alert episodes (PNG) and summarize it",
                       description="Reads the run's samples, verdicts and alerts up to the topics' end offsets. "
                                   "Exit 2 when the run has no samples or verdicts.")
    p.add_argument("run_id", metavar="RUN_ID", help="the run to report on")
    p.add_argument("--out", type=Path, metavar="PATH", help="figure path (default: artifacts/report-RUN_ID.png)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--group-id", default="perfwatch-consumer", metavar="GROUP",
                   help="the consumer's group, to tell why a run has no verdicts (default: perfwatch-consumer)")
    add_kafka_flags(p, "samples_topic", "predictions_topic", "alerts_topic")
    add_settings_flags(p, SampleSettings)

    def run(a: argparse.Namespace) -> int:
        from perfwatch.subscriber.report import as_dict, report_run, summarize

        rep = report_run(connect(a), a.run_id, a.out, group_id=a.group_id,
                         rules=settings_from_args(SampleSettings, a))
        if rep.png is None:
            console.print(f"[bold red]error:[/] no samples or verdicts for run {a.run_id!r}")
            return 2
        print(json.dumps(as_dict(rep.data)) if a.json else summarize(rep.data))
        console.print(f"report → {rep.png}")
        return 0

    p.set_defaults(func=run)


def _add_notify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notify", help="deliver alerts to Alertmanager and/or a webhook (a consumer group)",
                       description="Reads the alerts topic and posts to Alertmanager's API v2 (--alertmanager) "
                                   "and/or a JSON webhook (--webhook); commits only what the sinks accepted. "
                                   "The webhook's HMAC key comes from the environment: PERFWATCH_WEBHOOK_SECRET.")
    add_settings_flags(p, NotifySettings, skip=("webhook_secret",))
    p.add_argument("-v", "--verbose", action="store_true", help="log assignments, retries, commits")

    def run(a: argparse.Namespace) -> int:
        from perfwatch.subscriber.notify import notify

        setup_logging(a.verbose)
        s = settings_from_args(NotifySettings, a)
        s.check()  # no sink, or a malformed --labels: one clear line now
        check_broker(s.kafka_config())
        sinks = " and ".join(x for x in (s.alertmanager and f"Alertmanager {s.alertmanager}",
                                         s.webhook and f"webhook {s.webhook}") if x)
        console.print(f"notifying {sinks} from {s.alerts_topic} as group {s.notify_group_id}")
        st = notify(s)
        console.print(f"stopped: {st.consumed} records, {st.firing} firing, {st.resolved} resolved, "
                      f"{st.alertmanager_posts} Alertmanager posts, {st.webhook_posts} webhook posts, "
                      f"{st.retries} retries")
        return 0

    p.set_defaults(func=run)


def add(sub: argparse._SubParsersAction) -> None:
    for adder in (_add_alerts, _add_report, _add_notify):
        adder(sub)
