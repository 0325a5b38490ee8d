"""`perfwatch broker`: the local Apache Kafka for tests and the demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from perfwatch.app.common import count, seconds
from perfwatch.console import console, fail


def _run(args: argparse.Namespace) -> int:
    from perfwatch.tooling import LocalKafka, SaslUser, default_data_dir
    from perfwatch.tooling.jars import ensure_jars, kafka_version

    users = [SaslUser(*u.split(":", 1)) for u in (args.sasl_user or [])]
    args.data_dir = args.data_dir or default_data_dir()
    kafka = LocalKafka(args.data_dir, nodes=args.nodes, sasl_users=users, heap_mb=args.heap_mb)
    if args.action == "fetch":
        console.print(f"Apache Kafka {kafka_version()} jars in {ensure_jars()}")
        return 0
    if args.action == "start":
        state = kafka.start(timeout=args.timeout)
        nodes = f"{len(state.nodes)} node" + ("" if len(state.nodes) == 1 else "s")
        console.print(f"Apache Kafka {state.kafka_version} ({nodes}) ready; data in {args.data_dir}")
        if line := kafka.broker_version_line():
            console.print(f"broker log: {line}")
        if state.sasl_bootstrap:
            console.print(f"SASL_PLAINTEXT (PLAIN) bootstrap: {state.sasl_bootstrap}")
        print(state.bootstrap)  # stdout: the bootstrap address alone, for scripts
        return 0
    if args.action == "stop":
        if not kafka.stop():
            return fail(f"no broker running in {args.data_dir} (give --data-dir or PERFWATCH_BROKER_DIR for "
                        "another one; `perfwatch broker status` shows it)", 1)
        console.print(f"broker in {args.data_dir} stopped")
        return 0
    status = kafka.status()
    print(json.dumps(status, indent=2))
    return 0 if status["running"] else 1


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="run a local Apache Kafka (KRaft) from Maven Central jars",
                       description="Start, stop or inspect a real Apache Kafka on loopback (its data survives "
                                   "restarts), or fetch its jars. The same broker is found from any directory: "
                                   "its data lives in the user's cache unless --data-dir says otherwise.")
    p.add_argument("action", choices=["start", "stop", "status", "fetch"], help="what to do")
    p.add_argument("--data-dir", type=Path, metavar="PATH",
                   help="cluster state and data (default: $PERFWATCH_CACHE/broker, else ~/.cache/perfwatch/broker; "
                        "env PERFWATCH_BROKER_DIR)")
    p.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="1 node, or 3 for fault tests (default: 1)")
    p.add_argument("--sasl-user", action="append", metavar="USER:PASSWORD",
                   help="also open a SASL_PLAINTEXT (PLAIN) listener with this user (repeatable)")
    p.add_argument("--heap-mb", type=count, default=512, metavar="MB", help="JVM heap per node (default: 512)")
    p.add_argument("--timeout", type=seconds, default=120.0, metavar="S",
                   help="seconds to wait for readiness (default: 120)")
    p.set_defaults(func=_run)
