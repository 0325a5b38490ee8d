"""`perfwatch broker`: the local Apache Kafka for tests and the demo."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from perfwatch.console import console


def default_broker_dir() -> Path:
    return Path(os.environ.get("PERFWATCH_BROKER_DIR", ".cache/broker"))


def _run(args: argparse.Namespace) -> int:
    from perfwatch.tooling import LocalKafka, SaslUser
    from perfwatch.tooling.jars import ensure_jars, kafka_version

    users = [SaslUser(*u.split(":", 1)) for u in (args.sasl_user or [])]
    kafka = LocalKafka(args.data_dir, nodes=args.nodes, sasl_users=users, heap_mb=args.heap_mb)
    if args.action == "fetch":
        console.print(f"Apache Kafka {kafka_version()} jars in {ensure_jars()}")
        return 0
    if args.action == "start":
        state = kafka.start(timeout=args.timeout)
        console.print(f"Apache Kafka {state.kafka_version} ({len(state.nodes)} node(s)) ready; data in {args.data_dir}")
        if line := kafka.broker_version_line():
            console.print(f"broker log: {line}")
        if state.sasl_bootstrap:
            console.print(f"SASL_PLAINTEXT (PLAIN) bootstrap: {state.sasl_bootstrap}")
        print(state.bootstrap)  # stdout: the bootstrap address alone, for scripts
        return 0
    if args.action == "stop":
        kafka.stop()
        console.print("broker stopped")
        return 0
    status = kafka.status()
    print(json.dumps(status, indent=2))
    return 0 if status["running"] else 1


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="run a local Apache Kafka (KRaft) from Maven Central jars",
                       description="Start/stop/inspect a real Apache Kafka on loopback (data survives restarts).")
    p.add_argument("action", choices=["start", "stop", "status", "fetch"])
    p.add_argument("--data-dir", type=Path, default=default_broker_dir(),
                   help="cluster state and data [env PERFWATCH_BROKER_DIR; default .cache/broker]")
    p.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="1 node, or 3 for fault tests")
    p.add_argument("--sasl-user", action="append", metavar="USER:PASSWORD",
                   help="also open a SASL_PLAINTEXT (PLAIN) listener with this user (repeatable)")
    p.add_argument("--heap-mb", type=int, default=512, help="JVM heap per node")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    p.set_defaults(func=_run)
