"""Errors of the contract. Every rejection carries a short machine-readable reason (used as a DLQ header)."""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "empty",
    "oversized",
    "binary",
    "not_utf8",
    "bad_json",
    "missing_field",
    "wrong_type",
    "not_finite",
    "out_of_range",
    "gb_without_total",
    "unit_missing",
    "unparseable_text",
    "unknown_label",
    "invalid",
    "bad_timestamp",  # the record's timestamp is outside what a date can hold (past year 9999)
    "undeliverable",  # the input's output could not be delivered after the retries
]


class PerfwatchError(Exception):
    """An expected failure: the user gets its message in one line and the exit code, never a traceback.
    Anything that is not a PerfwatchError is a bug, and `perfwatch` shows its traceback. Exit codes follow
    argparse: 2 (the default) for what the user typed or gave (flags, env, files, bundle); subclasses for
    failures at run time (broker unreachable, setup refused, delivery failed) set 1."""

    exit_code = 2


class UsageError(PerfwatchError, ValueError):
    """A flag or environment variable that cannot be used; the message names it."""

    exit_code = 2


class InputError(PerfwatchError, ValueError):
    """A local input (file, flag, recording) that cannot be used."""

    exit_code = 2


class KafkaSetupError(PerfwatchError, RuntimeError):
    """The cluster refused a setup step (creating a topic, say)."""

    exit_code = 1


class ContractError(PerfwatchError, ValueError):
    """Input that does not satisfy the perfwatch contract."""

    exit_code = 2

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: Reason = reason
        self.message = message


class BundleError(PerfwatchError, RuntimeError):
    """A model bundle that is missing, incomplete or does not match its manifest (a local input)."""

    exit_code = 2
