"""A past run read back from the samples topic, for ``replay kafka:TOPIC --from-run RUN``."""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any

from perfwatch.decoding import decode_record
from perfwatch.errors import ContractError
from perfwatch.sample import Sample
from perfwatch.settings import SampleSettings
from perfwatch.topicread import read_to_end

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def read_topic_run(conf: dict[str, Any], topic: str, run_id: str, start: datetime | None = None,
                   end: datetime | None = None, *, rules: SampleSettings | None = None,
                   deadline_s: float = 300.0) -> list[Sample]:
    """The run's samples up to the end offsets seen at the start, decoded as the consumer decodes them
    (``rules``: its max size and memory total; from the environment when not given). Partition streams
    are merged by time; each host's samples keep their offset order."""
    rules = rules or SampleSettings()  # type: ignore[call-arg]  # from the environment
    streams: dict[int, list[Sample]] = {}
    for m in read_to_end(conf, topic, deadline_s=deadline_s):
        try:
            s = decode_record(m, rules)
        except ContractError:
            continue  # bad input was dead-lettered the first time; a replay re-sends valid samples
        if s.run_id == run_id and (start is None or s.ts >= start) and (end is None or s.ts <= end):  # type: ignore[operator]
            streams.setdefault(m.partition() or 0, []).append(s)
    return list(heapq.merge(*streams.values(), key=lambda s: s.ts or _EPOCH))
