"""`perfwatch consume`: one member of the stream processor's consumer group."""

from __future__ import annotations

import argparse

from perfwatch.app.common import add_verbose, plural, seconds, setup_logging
from perfwatch.app.flags import add_settings_flags, settings_from_args
from perfwatch.app.preflight import check_broker, prepare_topics
from perfwatch.console import console
from perfwatch.settings import ConsumerSettings


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "consume", help="run the stream processor (samples → ONNX verdicts → predictions/alerts/DLQ)",
        description="A consumer-group member: reads samples, classifies them in micro-batches with the bundle's "
                    "ONNX model and publishes verdicts, alerts and dead letters. Run several for more throughput: "
                    "they share the partitions. The bundle is checked before any broker contact.")
    add_settings_flags(p, ConsumerSettings)
    p.add_argument("--until-idle", type=seconds, metavar="S", help="exit after this many seconds without a message")
    p.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    add_verbose(p, "assignments, DLQ records, commits and librdkafka's own lines")

    def run(a: argparse.Namespace) -> int:
        setup_logging(a.verbose)
        s = settings_from_args(ConsumerSettings, a)
        from perfwatch.consumer.processor import StreamProcessor  # verifies the bundle before touching Kafka
        from perfwatch.runtime.model import BundleModel

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
                      f"{workers} in inference × {plural(threads, 'ORT thread')})")
        st = proc.run(max_idle_s=a.until_idle)
        labels = ", ".join(f"{label} {n:,}" for label, n in sorted(st.labels.items())) or "none"
        console.print(f"stopped: {st.consumed:,} consumed, {st.verdicts:,} verdicts ({labels}), {st.alerts:,} alerts, "
                      f"{st.dlq:,} to the DLQ, {st.batches:,} batches")
        return 0

    p.set_defaults(func=run)
