"""`perfwatch demo`: broker → train → export → consume → replay a recorded run → alerts → report.

Part of the CLI layer (like cli.py and commands.py): it wires the stages together, importing each
inside the function that needs it."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from rich.markup import escape

from perfwatch.console import console, out

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def locust_recording() -> Path:
    """The real Locust run vendored in the repository (licence and source in its NOTICE)."""
    return EXAMPLES / "locust-bitcoin-api" / "results_stats_history.csv"


def run_demo(workdir: Path, speed: float = 10.0, train_steps: int = 400, keep_broker: bool = False) -> int:
    from perfwatch.consumer.processor import StreamProcessor
    from perfwatch.export.bundle_writer import export_bundle
    from perfwatch.export.policy_gate import GateSettings
    from perfwatch.kafkaio import ensure_topics
    from perfwatch.model_settings import FixedTrainSettings
    from perfwatch.producer.publisher import Publisher
    from perfwatch.producer.recordings import read_source
    from perfwatch.producer.replay import replay
    from perfwatch.settings import ConsumerSettings
    from perfwatch.subscriber.alerts import AlertFilter, follow, format_alert
    from perfwatch.subscriber.report import collect, draw, summarize
    from perfwatch.tooling import LocalKafka
    from perfwatch.training.train import train

    t_start = time.monotonic()
    recording = locust_recording()
    host_metrics = EXAMPLES / "bitcoin-api-host-metrics.jsonl"
    if not recording.is_file():
        console.print(f"[bold red]error:[/] recorded run not found at {recording} (the demo runs from a clone of "
                      "the repository, where examples/ holds it)")
        return 2
    shutil.rmtree(workdir / "broker", ignore_errors=True)
    kafka = LocalKafka(workdir / "broker")
    console.rule("1/6 broker")
    state = kafka.start()
    console.print(f"Apache Kafka {state.kafka_version} on {state.bootstrap}")
    try:
        console.rule("2/6 train (tiny GPT-2 shape from scratch; the full DistilGPT-2 shape: `perfwatch train`)")
        train(FixedTrainSettings(out=workdir / "train", from_scratch="tiny", synthetic_runs=150, seed_lines=1500,
                            max_steps=train_steps, eval_every=50, patience=4))
        console.rule("3/6 export (ONNX fp32 + int8, parity-checked bundle)")
        # The demo's short-trained model shows the pipeline: the policy check (HighLoad surface ±3) warns
        # rather than stopping the demo; `perfwatch export` refuses such a bundle by default.
        manifest = export_bundle(workdir / "train" / "model", workdir / "bundle", parity_samples=500,
                                 policy=GateSettings(scope="surface", allow_missed_high=True))
        console.print(f"bundle {manifest.bundle_id}: int8 agreement "
                      f"{manifest.parity['int8_b64']['label_agreement'] * 100:.2f}%")
        console.rule("4/6 consumer (int8, hysteresis 3/5) and alerts subscriber")
        s = ConsumerSettings(bootstrap_servers=state.bootstrap, bundle=workdir / "bundle", group_id="demo",
                             hysteresis="3/5", max_wait_ms=100, _env_file=None)  # type: ignore[call-arg]
        conf = s.kafka_config()
        ensure_topics(conf, [s.samples_topic, s.predictions_topic, s.alerts_topic, s.dlq_topic], partitions=3)
        proc = StreamProcessor(s)
        consumer_thread = threading.Thread(target=proc.run, daemon=True)
        consumer_thread.start()
        stop_alerts, alerts_ready = threading.Event(), threading.Event()
        seen: list[str] = []

        def show(a) -> None:  # type: ignore[no-untyped-def]
            line = escape(format_alert(a))
            seen.append(line)
            out.print(("[bold red]ALERT " if a.state != "resolved" else "[green]ALERT ") + line + "[/]")

        alert_thread = threading.Thread(
            target=follow, args=(conf, s.alerts_topic, show),
            kwargs={"from_beginning": True, "flt": AlertFilter(), "stop": stop_alerts, "ready": alerts_ready},
            daemon=True)
        alert_thread.start()
        proc.ready.wait(30)
        alerts_ready.wait(30)
        run_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        console.rule(f"5/6 replay the real Locust run (joined with host metrics) at ×{speed:g} as {run_id}")
        items = read_source(str(recording), host_metrics=host_metrics, run_id=run_id)
        summary = replay(items, Publisher(conf, s.samples_topic), speed=speed, new_run_id=run_id)
        console.print(f"replayed {summary.sent} samples in {summary.seconds:.1f}s, rejected {summary.rejected_count}")
        deadline = time.monotonic() + 60
        while proc.stats.consumed < summary.sent and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # let the last alerts arrive
        stop_alerts.set()
        alert_thread.join(10)
        proc.stop()
        consumer_thread.join(30)
        console.rule("6/6 report")
        data = collect(conf, run_id, s.samples_topic, s.predictions_topic, s.alerts_topic)
        png = draw(data, workdir / f"report-{run_id}.png")
        print(summarize(data))
        labels = ", ".join(f"{label} {n}" for label, n in sorted(proc.stats.labels.items())) or "none"
        console.print(f"{len(seen)} alerts printed; verdicts: {labels}; report → {png}")
        console.print(f"demo finished in {time.monotonic() - t_start:.0f}s")
        return 0 if seen else 1
    finally:
        if not keep_broker:
            kafka.stop()
