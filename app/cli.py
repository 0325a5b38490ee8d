"""The one CLI, `perfwatch`: builds the parser from the command groups and maps expected failures
(:class:`PerfwatchError`) to a one-line message and exit code, in this one place."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence  # noqa: F401

from perfwatch.console import console, fail
from perfwatch.errors import PerfwatchError

Handler = Callable[[argparse.Namespace], int]


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("perfwatch")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from perfwatch.app.commands import GROUPS

    parser = argparse.ArgumentParser(
        prog="perfwatch", description="Live load alerts for performance tests, through Kafka and ONNX Runtime.",
        epilog="`perfwatch COMMAND --help` describes each command. Exit codes: 0 ok, 1 failure at run time, "
               "2 bad usage or input, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"perfwatch {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.func
    try:
        return handler(args)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except PerfwatchError as exc:  # expected failures, one line each; anything else is a bug (traceback)
        return fail(str(exc), exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
