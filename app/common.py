"""What several commands share: Kafka flags and the connection check, logging, stop-on-signal, and the
argparse types that refuse values that make no sense (exit 2, one line)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from perfwatch.app.flags import add_settings_flags, number, settings_from_args
from perfwatch.app.preflight import check_broker
from perfwatch.settings import KafkaSettings

Adder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
TOPICS = ("samples_topic", "predictions_topic", "alerts_topic", "dlq_topic")


def setup_logging(verbose: bool) -> None:
    """WARNING and up (librdkafka's collapsed "broker down/back" lines included); --verbose: everything at
    INFO, librdkafka's raw lines too."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def add_verbose(p: argparse.ArgumentParser, what: str = "librdkafka's own log lines") -> None:
    p.add_argument("-v", "--verbose", action="store_true", help=f"log more: {what}")


def add_kafka_flags(p: argparse.ArgumentParser, *topics: str) -> None:
    """The connection flags, and only the topics this command uses (``"samples_topic"``…)."""
    add_settings_flags(p, KafkaSettings, skip=tuple(t for t in TOPICS if t not in topics), title="Kafka")
    add_verbose(p)


def connect(a: argparse.Namespace) -> KafkaSettings:
    """Kafka settings from flags/env, and a one-line failure now if the broker cannot be used."""
    setup_logging(getattr(a, "verbose", False))
    s = settings_from_args(KafkaSettings, a)
    check_broker(s.kafka_config())
    return s


def stop_on_signals() -> threading.Event:
    """An Event set by SIGTERM or SIGINT, for loops that should end cleanly (flush, close)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def count(value: str) -> int:
    """N ≥ 1."""
    n = int(number(int, value))
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1 (got {value})")
    return n


def size(value: str) -> int:
    """N ≥ 0."""
    n = int(number(int, value))
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0 (got {value})")
    return n


def seconds(value: str) -> float:
    """S > 0."""
    x = float(number(float, value))
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 seconds (got {value})")
    return x


def positive(value: str) -> float:
    """X > 0."""
    x = float(number(float, value))
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 (got {value})")
    return x


def fraction(value: str) -> float:
    """0 ≤ X ≤ 1."""
    x = float(number(float, value))
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (got {value})")
    return x


def parse_speed(value: str) -> float | None:
    """'max' = as fast as possible, '1' = real time, '10' or 'x10' = ten times faster."""
    if value == "max":
        return None
    try:
        speed = float(value.removeprefix("x").removesuffix("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number or 'max'") from None
    if not speed > 0 or speed == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, or 'max' for as fast as possible (got {value})")
    return speed


def utc_time(value: str) -> datetime:
    """An RFC 3339 / ISO 8601 time; one without a zone is UTC."""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a time like 2024-05-01T12:00:00Z") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def plural(n: int, word: str) -> str:
    """``1 sample``, ``2 samples``: summaries read as sentences, not ``sample(s)``."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")
