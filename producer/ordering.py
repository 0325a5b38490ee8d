"""A recording in time order, in bounded memory (issues #21.6 and #21.9).

Pacing needs the samples by time, but recordings are often ordered by host (one host's whole run,
then the next). The source is read once, as a stream: rejected lines are counted by reason (the first
``KEEP_REJECTED`` kept to show), samples are sorted by ``(ts, position in the file)`` in chunks of
``chunk`` and each chunk is spilled to a temporary file; iterating merges the chunks (heapq.merge).
Equal times keep the file's order, so each host's samples stay in their recorded order.

Memory: one chunk of samples while reading, then one sample and one file buffer per chunk while
merging (chunks are merged into one when ``MAX_RUNS`` pile up, so open files stay bounded): it does
not grow with the file. A source that fits in one chunk is never spilled.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from perfwatch.producer.recordings import Item, Rejected
from perfwatch.sample import Sample

CHUNK = 20_000  # samples held at once while reading (~1-2 KB each as Python objects) …
CHUNK_BYTES = 64 << 20  # … or fewer when their tags are long (estimated size of the held objects)
MAX_RUNS = 128  # spilled runs merged at once; more are first merged into one
KEEP_REJECTED = 1000
MAX_KEYS = 10_000  # (run id, host) pairs remembered for the replay's run check
_NO_TIME = datetime.min.replace(tzinfo=UTC)

Keyed = tuple[datetime, int, Sample]


def _write_run(path: Path, run: Iterable[Keyed]) -> None:
    with path.open("wb") as f:
        for entry in run:
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)


def _read_run(path: Path) -> Iterator[Keyed]:
    f: IO[bytes]
    with path.open("rb", buffering=1 << 16) as f:
        while True:
            try:
                yield pickle.load(f)  # noqa: S301 - our own spill file, written just before
            except EOFError:
                return


def _size(sample: Sample) -> int:
    """Rough bytes a Sample holds in memory: the fixed part, and its tags' strings with their overhead."""
    return 1500 + sum(len(k) + len(v) + 120 for k, v in sample.tags.items())


def _key(entry: Keyed) -> tuple[datetime, int]:
    return entry[0], entry[1]


class Recording:
    """The items of one recording; iterating gives the samples in time order (see the module doc)."""

    def __init__(self, items: Iterable[Item], chunk: int = CHUNK) -> None:
        self.rejected: list[Rejected] = []
        self.reasons: Counter[str] = Counter()
        self.n_samples = 0
        # (run id, host) of the samples, for the check that a replay does not add to a run already on the
        # topic; bounded, since a recording may hold any number of hosts.
        self.keys: set[tuple[str, str]] = set()
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._runs: list[Path] = []
        self._files = 0
        self._memory: list[Keyed] = []
        buf: list[Keyed] = []
        held = 0
        for item in items:
            if isinstance(item, Rejected):
                self.reasons[item.reason] += 1
                if len(self.rejected) < KEEP_REJECTED:
                    self.rejected.append(item)
                continue
            buf.append((item.ts or _NO_TIME, self.n_samples, item))
            self.n_samples += 1
            if len(self.keys) < MAX_KEYS:
                self.keys.add((item.run_id, item.host))
            held += _size(item)
            if len(buf) >= chunk or held >= CHUNK_BYTES:
                self._spill(buf)
                buf, held = [], 0
        buf.sort(key=_key)
        if self._runs:
            self._spill(buf)
        else:
            self._memory = buf

    @property
    def n_rejected(self) -> int:
        return sum(self.reasons.values())

    def _spill(self, buf: list[Keyed]) -> None:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="perfwatch-replay-")
        buf.sort(key=_key)
        self._runs.append(self._write(buf))
        if len(self._runs) >= MAX_RUNS:
            merged = self._write(heapq.merge(*(_read_run(p) for p in self._runs), key=_key))
            for p in self._runs:
                p.unlink()
            self._runs = [merged]

    def _write(self, run: Iterable[Keyed]) -> Path:
        assert self._dir is not None  # noqa: S101
        self._files += 1
        path = Path(self._dir.name) / f"run-{self._files:06d}"
        _write_run(path, run)
        return path

    def samples(self) -> Iterator[Sample]:
        entries = heapq.merge(*(_read_run(p) for p in self._runs), key=_key) if self._runs else iter(self._memory)
        for _, _, sample in entries:
            yield sample

    def __iter__(self) -> Iterator[Item]:
        """The kept rejected lines, then every sample in time order."""
        yield from self.rejected
        yield from self.samples()

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
