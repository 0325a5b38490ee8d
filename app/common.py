"""What several commands share: Kafka flags and the connection check, logging, stop-on-signal, speed."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable

from perfwatch.app.flags import add_settings_flags, settings_from_args
from perfwatch.app.preflight import check_broker
from perfwatch.settings import KafkaSettings

Adder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def add_kafka_flags(p: argparse.ArgumentParser) -> None:
    add_settings_flags(p, KafkaSettings)


def connect(a: argparse.Namespace) -> KafkaSettings:
    """Kafka settings from flags/env, and a one-line failure now if the broker cannot be used."""
    s = settings_from_args(KafkaSettings, a)
    check_broker(s.kafka_config())
    return s


def stop_on_signals() -> threading.Event:
    """An Event set by SIGTERM or SIGINT, for loops that should end cleanly (flush, close)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def parse_speed(value: str) -> float | None:
    """'max' = as fast as possible, '1' = real time, '10' = ten times faster."""
    if value in ("max", "0"):
        return None
    speed = float(value.removeprefix("x").removesuffix("x"))
    if speed <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0, or 'max'")
    return speed
