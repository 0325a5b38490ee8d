"""Alert episodes of a run: each time a host went HighLoad, from firing to resolved.

With hysteresis the alerts topic says when an alert fires and resolves; without it every HighLoad verdict
is an alert, and an episode is a stretch of consecutive HighLoad verdicts of one host. Either way two
spikes an hour apart are two episodes, not one hour of HighLoad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from perfwatch.labels import HIGH
from perfwatch.verdict import Alert, Verdict


@dataclass(frozen=True)
class Episode:
    host: str
    start: datetime
    end: datetime | None  # None: still firing at the last verdict read
    verdicts: int  # verdicts of the host within the episode
    peak_cpu_pct: float | None
    peak_mem_pct: float | None
    peak_disk_pct: float | None
    rps: float | None  # the load when it started
    p95_ms: float | None
    error_pct: float | None

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


def _spans_from_states(alerts: Sequence[Alert]) -> list[tuple[datetime, datetime | None]]:
    spans: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = None
    for a in sorted(alerts, key=lambda a: a.ts):
        if a.state == "firing" and start is None:
            start = a.ts
        elif a.state == "resolved" and start is not None:
            spans.append((start, a.ts))
            start = None
    if start is not None:
        spans.append((start, None))
    return spans


def _spans_from_verdicts(verdicts: Sequence[Verdict]) -> list[tuple[datetime, datetime | None]]:
    spans: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = None
    last_high: datetime | None = None
    for v in verdicts:
        if v.label == HIGH:
            start = start or v.ts
            last_high = v.ts
        elif start is not None:
            spans.append((start, v.ts))  # resolved by the first verdict that is not HighLoad
            start = None
    if start is not None:
        spans.append((start, None if last_high == verdicts[-1].ts else last_high))
    return spans


def host_episodes(host: str, verdicts: Sequence[Verdict], alerts: Sequence[Alert]) -> list[Episode]:
    """Episodes of one host from its verdicts (in time order) and its alerts."""
    stateful = [a for a in alerts if a.state is not None]
    spans = _spans_from_states(stateful) if stateful else _spans_from_verdicts(verdicts)
    out = []
    for start, end in spans:
        # [start, end): the verdict that resolves an episode is not part of it
        inside = [v for v in verdicts if v.ts >= start and (end is None or v.ts < end)]
        first = next((v for v in verdicts if v.ts >= start), None)
        out.append(Episode(
            host=host, start=start, end=end, verdicts=len(inside),
            peak_cpu_pct=max((v.cpu_pct for v in inside), default=None),
            peak_mem_pct=max((v.mem_pct for v in inside), default=None),
            peak_disk_pct=max((v.disk_pct for v in inside), default=None),
            rps=first.rps if first else None, p95_ms=first.p95_ms if first else None,
            error_pct=first.error_pct if first else None))
    return out
