"""The one CLI. Thin: parse arguments, call a stage's library function. Stages are imported lazily
inside their command, so ``perfwatch consume`` or ``perfwatch alerts`` never loads torch."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence  # noqa: F401
from pathlib import Path

from perfwatch.console import console, fail
from perfwatch.errors import BundleError, ContractError

Handler = Callable[[argparse.Namespace], int]


def default_broker_dir() -> Path:
    return Path(os.environ.get("PERFWATCH_BROKER_DIR", ".cache/broker"))


# -- broker ------------------------------------------------------------------------------------
def _broker(args: argparse.Namespace) -> int:
    from perfwatch.broker import LocalKafka, SaslUser
    from perfwatch.broker.jars import ensure_jars, kafka_version

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


def _add_broker(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_broker)


def build_parser() -> argparse.ArgumentParser:
    from perfwatch import commands  # registers the stage commands; they import their stage lazily

    parser = argparse.ArgumentParser(
        prog="perfwatch", description="Live load alerts for performance tests, through Kafka and ONNX Runtime.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_broker, *commands.ALL):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.func
    try:
        return handler(args)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except (ContractError, BundleError, FileNotFoundError, ValueError) as exc:
        return fail(str(exc))
    except (RuntimeError, OSError) as exc:
        return fail(str(exc).strip().splitlines()[0] if isinstance(exc, OSError) else str(exc))


if __name__ == "__main__":
    sys.exit(main())
