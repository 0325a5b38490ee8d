"""The alert lifecycle a sink needs, per (run_id, host): what fires, what resolved, what is due to be sent.

Alert records come in two kinds (perfwatch/verdict.py): with hysteresis each carries ``state``
(``firing`` / ``resolved``); without it every HighLoad verdict is an alert with no state, and the alert
fires on the first one and resolves once ``quiet_s`` passes with no new one. Alertmanager forgets an
alert whose ``endsAt`` passes, so firing alerts are re-sent every ``resend_s``; resolved ones are re-sent
for ``resolved_keep_s`` too (Alertmanager keeps no alerts across a restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from perfwatch.verdict import Alert

Status = Literal["firing", "resolved"]


@dataclass
class Tracked:
    key: str
    alert: Alert  # the latest record for the key (annotations: latest wins)
    partition: int
    status: Status
    starts_at: datetime
    ends_at: datetime | None = None  # set once resolved
    auto_resolve: bool = False  # no hysteresis: resolves after the quiet time
    last_high: float = 0.0  # wall time of the last HighLoad record (auto_resolve only)
    last_sent: float | None = None  # wall time Alertmanager last accepted it; None = changed since
    resolved_at: float = 0.0  # wall time it resolved here


@dataclass(frozen=True)
class Transition:
    """A change a person should hear about once: what webhooks are sent."""

    status: Status
    entry: Tracked


@dataclass
class AlertBook:
    resend_s: float
    quiet_s: float
    resolved_keep_s: float
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.entries: dict[str, Tracked] = {}

    def apply(self, alert: Alert, partition: int, at: float | None = None) -> Transition | None:
        """Take one alert record; return the transition it causes (None: an update of a firing alert).
        ``at``: when it was recorded (a restore passes the record's timestamp; default now)."""
        key = f"{alert.run_id}/{alert.host}"
        now = self.clock() if at is None else at
        cur = self.entries.get(key)
        firing = cur is not None and cur.status == "firing"
        if alert.state == "resolved":
            if cur is None or not firing:
                if cur is not None:  # a repeated resolve (a redelivery): nothing new
                    return None
                # Resolved with no firing seen here (state restored from an older window): still tell.
                cur = self.entries[key] = Tracked(key, alert, partition, "firing", alert.ts)
            cur.alert, cur.partition, cur.status = alert, partition, "resolved"
            cur.ends_at = min(max(alert.ts, cur.starts_at), datetime.fromtimestamp(now, UTC))
            cur.resolved_at, cur.last_sent = now, None
            return Transition("resolved", cur)
        # "firing", or a HighLoad verdict without hysteresis
        if firing and cur is not None:
            cur.alert, cur.partition = alert, partition
            cur.last_high = now
            return None  # annotations refresh on the next resend; a person hears nothing new
        entry = self.entries[key] = Tracked(key, alert, partition, "firing", alert.ts,
                                            auto_resolve=alert.state is None, last_high=now)
        return Transition("firing", entry)

    def expire(self) -> list[Transition]:
        """Resolve quiet alerts (no hysteresis) and forget resolved ones kept long enough."""
        now = self.clock()
        out: list[Transition] = []
        for key, e in list(self.entries.items()):
            if e.status == "firing" and e.auto_resolve and now - e.last_high >= self.quiet_s:
                e.status, e.resolved_at, e.last_sent = "resolved", now, None
                e.ends_at = max(e.starts_at, datetime.fromtimestamp(now, UTC))
                out.append(Transition("resolved", e))
            elif e.status == "resolved" and e.last_sent is not None and now - e.resolved_at >= self.resolved_keep_s:
                del self.entries[key]
        return out

    def due(self) -> list[Tracked]:
        """Entries to send to Alertmanager now: changed since the last send, or not sent for ``resend_s``."""
        now = self.clock()
        return [e for e in self.entries.values() if e.last_sent is None or now - e.last_sent >= self.resend_s]

    def mark_sent(self, entries: list[Tracked]) -> None:
        now = self.clock()
        for e in entries:
            e.last_sent = now

    def next_due_in(self) -> float:
        """Seconds until something is due (resend, quiet expiry or forgetting), for the poll timeout."""
        now = self.clock()
        waits = [self.resend_s]
        for e in self.entries.values():
            if e.last_sent is None:
                return 0.0
            waits.append(e.last_sent + self.resend_s - now)
            if e.status == "firing" and e.auto_resolve:
                waits.append(e.last_high + self.quiet_s - now)
        return max(0.0, min(waits))

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget keys of revoked partitions: their new owner restores and re-sends them."""
        for key in [k for k, e in self.entries.items() if e.partition in partitions]:
            del self.entries[key]

    def firing(self) -> list[Tracked]:
        return [e for e in self.entries.values() if e.status == "firing"]
