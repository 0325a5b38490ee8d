"""Before a replay: does the samples topic already hold samples of the run ids about to be sent? A replay
into such a run id mixes two runs in its report, its episodes and its alerts.

The check reads the tail of the partitions those samples' keys go to (where a replay of the same
recording a moment ago has landed) within a few seconds; it is a warning, so a topic too large or slow
to look through is passed over rather than waited on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException

from perfwatch.errors import InputError
from perfwatch.sample import message_key
from perfwatch.topicread import TopicReadTimeout, key_partition, partition_count, read_to_end

log = logging.getLogger("perfwatch.producer")

TAIL = 20_000  # records per partition looked at


def runs_already_on(conf: dict[str, Any], topic: str, keys: Iterable[tuple[str, str]], tail: int = TAIL,
                    deadline_s: float = 10.0) -> set[str]:
    """The run ids among ``keys`` ((run id, host) pairs) that have samples in the last ``tail`` records of
    the partitions their keys go to."""
    keys = set(keys)
    runs = {run for run, _ in keys}
    if not runs:
        return set()
    try:
        n = partition_count(conf, topic)
    except (InputError, KafkaException):
        return set()  # no such topic yet: nothing on it
    prefixes = {run: f"{run}/".encode() for run in runs}
    parts = {key_partition(message_key(run, host).encode(), n) for run, host in keys}
    found: set[str] = set()
    try:
        for m in read_to_end(conf, topic, partitions=parts, read_committed=False, deadline_s=deadline_s, tail=tail):
            key = m.key() or b""
            found.update(run for run, prefix in prefixes.items() if key.startswith(prefix))
            if found == runs:
                break
    except (TopicReadTimeout, KafkaException) as exc:
        log.info("could not finish checking %s for earlier samples of this run: %s", topic, exc)
    return found


def fresh_run_id(run: str) -> str:
    """A run id to suggest for a replay that should not add to ``run``."""
    return f"{run}-replay-{uuid.uuid4().hex[:6]}"
