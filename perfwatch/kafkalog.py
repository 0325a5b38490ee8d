"""librdkafka's log lines through Python ``logging``, collapsed to one line per state change.

Without this, librdkafka writes every failed reconnect of every client to stderr (hundreds of lines in a
short broker outage). Here each client reports "broker down" once and "broker back after N s" once; other
warnings are rate-limited per facility. Every raw line still goes to the ``librdkafka`` logger at INFO,
which ``--verbose`` shows. Lines and statistics are served by the client's poll()/consume(), like any
callback: a client that is never polled says nothing.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("perfwatch.kafka")
raw = logging.getLogger("librdkafka")

# Facilities and words of librdkafka's lines that mean "cannot talk to a broker".
_DOWN_FACILITIES = {"FAIL", "BROKERFAIL", "ALL_BROKERS_DOWN"}
_DOWN_WORDS = ("Connection refused", "brokers are down", "Connect to", "timed out", "Disconnected",
               "Broker transport failure", "Name or service not known", "Failed to resolve")
_THREAD = re.compile(r"^\[thrd:[^\]]*\]: ")
RATE_LIMIT_S = 60.0
STATS_INTERVAL_MS = 1000


@dataclass
class _ClientState:
    down_since: float | None = None
    last_said: dict[str, float] = field(default_factory=dict)  # facility -> when last shown
    held_back: dict[str, int] = field(default_factory=dict)  # facility -> lines not shown since


class KafkaLog:
    """The ``logger`` (and ``stats_cb``) for librdkafka clients; one object serves every client of the
    process and keeps state per client name (``perfwatch#consumer-1``…)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._clients: dict[str, _ClientState] = {}
        self._lock = threading.Lock()  # clients are polled from several threads

    def _state(self, name: str) -> _ClientState:
        return self._clients.setdefault(name, _ClientState())

    # confluent-kafka calls logger.log(level, "%s [%s] %s", facility, client name, text)
    def log(self, level: int, fmt: str, *args: Any) -> None:
        fac, name, text = (str(a) for a in (args + ("", "", ""))[:3])
        text = _THREAD.sub("", text)
        raw.info("%s [%s] %s", fac, name, text)
        if level < logging.WARNING:
            return
        now = self._clock()
        with self._lock:
            st = self._state(name)
            if fac in _DOWN_FACILITIES or any(w in text for w in _DOWN_WORDS):
                if st.down_since is None:
                    st.down_since = now
                    log.warning("%s: broker down (%s)", name, text)
                return
            if st.down_since is not None:  # a consequence of the outage already reported
                return
            last = st.last_said.get(fac)
            if last is not None and now - last < RATE_LIMIT_S:
                st.held_back[fac] = st.held_back.get(fac, 0) + 1
                return
            st.last_said[fac] = now
            more = st.held_back.pop(fac, 0)
            held = f" (+{more} like it in the last {RATE_LIMIT_S:.0f} s)" if more else ""
            log.log(level, "%s: %s%s", name, text, held)

    def stats(self, stats_json: str) -> None:
        """stats_cb: a client whose brokers are all UP again is back."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        name = str(stats.get("name", ""))
        with self._lock:
            st = self._clients.get(name)
            if st is None or st.down_since is None:
                return
            brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
            if brokers and all(b.get("state") == "UP" for b in brokers):
                log.warning("%s: broker back after %.0f s", name, self._clock() - st.down_since)
                st.down_since = None


_shared = KafkaLog()


def kafka_logging() -> dict[str, Any]:
    """The librdkafka config entries that route a client's logs through :class:`KafkaLog`."""
    return {"client.id": "perfwatch", "logger": _shared, "stats_cb": _shared.stats,
            "statistics.interval.ms": STATS_INTERVAL_MS}
