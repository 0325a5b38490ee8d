"""Readers for recorded runs. Every reader yields, per record, either a valid Sample or a Rejected
with ``file:line`` and the reason, so a replay can report bad lines and still send the rest.

Sources: our JSONL / CSV recordings, Locust's ``*_stats_history.csv`` (joined with a host-metrics
recording, since Locust has no CPU/memory/disk), seed-style text lines, and a past run read back
from a Kafka topic (``kafka:TOPIC``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from perfwatch.csvtable import Row, csv_table
from perfwatch.decoding import decode_sample
from perfwatch.errors import ContractError, InputError
from perfwatch.producer.fromtopic import read_topic_run
from perfwatch.sample import Sample, validate_obj
from perfwatch.seedtext import parse_line
from perfwatch.settings import SampleSettings

NUMERIC = {"cpu_pct", "mem_pct", "disk_pct", "rps", "p95_ms", "error_pct", "mem_free_gb"}
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rejected:
    origin: str  # file:line, or topic[partition]@offset
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason}: {self.message}"


Item = Sample | Rejected


MAX_LINE_BYTES = 1 << 20  # a longer physical line is rejected (``oversized``) without being held whole


def _physical_lines(path: Path) -> Iterator[str | None]:
    """Every physical line (split on \\n only, so numbers match an editor's), streamed; a UTF-8
    byte-order mark is dropped and \\r\\r\\n endings (Locust on Windows) tolerated. A line over
    MAX_LINE_BYTES is None: it is skipped in bounded memory and reported by the caller."""
    with path.open("rb") as f:
        first = True
        while raw := f.readline(MAX_LINE_BYTES + 1):
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                first = False
                yield None
                continue
            text = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            yield text


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """Non-empty lines with their 1-based line numbers (None for an oversized line)."""
    for i, line in enumerate(_physical_lines(path), start=1):
        if line is None:
            yield i, None
        elif line := line.strip():
            yield i, line


def _oversized(path: Path, n: int) -> Rejected:
    return Rejected(f"{path}:{n}", "oversized", f"a line over {MAX_LINE_BYTES} bytes")


def read_jsonl(path: Path) -> Iterator[Item]:
    for n, line in _lines(path):
        if line is None:
            yield _oversized(path, n)
            continue
        try:
            yield decode_sample(line.encode(), max_bytes=1 << 20)
        except ContractError as exc:
            yield Rejected(f"{path}:{n}", exc.reason, exc.message)


def _csv_rows(path: Path) -> Iterator[tuple[int, Row | None]]:
    """Rows with the line each record starts on, streamed (None: a row holding an oversized line)."""
    return csv_table(_physical_lines(path))[1]


def read_csv(path: Path) -> Iterator[Item]:
    for n, row in _csv_rows(path):
        if row is None:
            yield _oversized(path, n)
            continue
        obj: dict[str, Any] = {}
        for k, v in row.items():
            if k is None or v in (None, "", "N/A"):
                continue
            if k in NUMERIC:
                try:
                    obj[k] = float(v)
                except ValueError:
                    obj[k] = v
            else:
                obj[k] = v
        try:
            yield validate_obj(obj)
        except ContractError as exc:
            yield Rejected(f"{path}:{n}", exc.reason, exc.message)


def read_text_lines(path: Path, mem_total_gb: float | None, run_id: str, host: str,
                    interval_s: float = 1.0, start: datetime = DEFAULT_START) -> Iterator[Item]:
    """Seed-style lines carry no time: they are spaced ``interval_s`` apart."""
    for i, (n, line) in enumerate(_lines(path)):
        if line is None:
            yield _oversized(path, n)
            continue
        try:
            s = parse_line(line, mem_total_gb=mem_total_gb, run_id=run_id, host=host).sample
            yield s.model_copy(update={"ts": start + timedelta(seconds=i * interval_s)})
        except ContractError as exc:
            yield Rejected(f"{path}:{n}", exc.reason, exc.message)


def is_locust(path: Path) -> bool:
    first = next(_lines(path), (0, ""))[1] or ""
    return "Requests/s" in first and "Timestamp" in first


def _float(v: str | None) -> float | None:
    if v in (None, "", "N/A"):
        return None
    return float(v)  # type: ignore[arg-type]


def read_locust(path: Path, host_metrics: list[Sample] | None, run_id: str | None,
                tolerance_s: float = 5.0) -> Iterator[Item]:
    """Locust's stats history joined, per host, with the host-metrics sample nearest in time."""
    if not host_metrics:
        raise InputError(f"{path}: Locust CSV has RPS and percentiles but no CPU/memory/disk; "
                         "give the host metrics of the same run with --host-metrics FILE")
    by_host: dict[str, list[Sample]] = {}
    for s in host_metrics:
        by_host.setdefault(s.host, []).append(s)
    times = {h: [x.ts.timestamp() for x in v] for h, v in by_host.items() if all(x.ts for x in v)}  # type: ignore[union-attr]
    for h in by_host:
        order = sorted(range(len(by_host[h])), key=lambda i, h=h: times[h][i])  # type: ignore[misc]
        by_host[h] = [by_host[h][i] for i in order]
        times[h] = [times[h][i] for i in order]
    for n, row in _csv_rows(path):
        if row is None:
            yield _oversized(path, n)
            continue
        if row.get("Name") not in (None, "Aggregated"):
            continue  # per-endpoint rows; the aggregate is the run's load
        try:
            t = int(float(row["Timestamp"] or ""))
            rps = _float(row.get("Requests/s")) or 0.0
            failures = _float(row.get("Failures/s")) or 0.0
            p95 = _float(row.get("95%"))
        except (KeyError, ValueError) as exc:
            yield Rejected(f"{path}:{n}", "bad_locust_row", str(exc))
            continue
        ts = datetime.fromtimestamp(t, UTC)
        for host, series in by_host.items():
            ts_list = times[host]
            i = bisect.bisect_left(ts_list, t)
            near = min((j for j in (i - 1, i) if 0 <= j < len(ts_list)), key=lambda j: abs(ts_list[j] - t))
            if abs(ts_list[near] - t) > tolerance_s:
                yield Rejected(f"{path}:{n}", "no_host_metrics",
                               f"no {host} metrics within {tolerance_s:.0f}s of {ts.isoformat()}")
                continue
            hm = series[near]
            obj = {"run_id": run_id or hm.run_id, "host": host, "ts": ts, "cpu_pct": hm.cpu_pct,
                   "mem_pct": hm.mem_pct, "disk_pct": hm.disk_pct, "mem_free_gb": hm.mem_free_gb, "rps": rps,
                   "p95_ms": p95, "error_pct": min(100.0, 100.0 * failures / rps) if rps > 0 else None,
                   "tags": {"users": row.get("User Count", ""), "source": "locust"}}
            try:
                yield validate_obj(obj)
            except ContractError as exc:
                yield Rejected(f"{path}:{n}", exc.reason, exc.message)


def load_samples(path: Path) -> list[Sample]:
    """A host-metrics recording (JSONL or CSV) as samples; any bad line is an error here."""
    items = list(read_csv(path) if path.suffix.lower() == ".csv" else read_jsonl(path))
    bad = [i for i in items if isinstance(i, Rejected)]
    if bad:
        raise InputError(f"host metrics {bad[0]}")
    return [i for i in items if isinstance(i, Sample)]


def read_source(source: str, *, host_metrics: Path | None = None, run_id: str | None = None,
                mem_total_gb: float | None = None, conf: dict[str, Any] | None = None,
                from_run: str | None = None, start: datetime | None = None, end: datetime | None = None,
                interval_s: float = 1.0) -> Iterable[Item]:
    """A file source is a lazy stream of items, in file order (replay puts them in time order, see
    producer/ordering.py); nothing holds the whole file."""
    if source.startswith("kafka:"):
        if not from_run:
            raise InputError("replaying from a topic needs --from-run RUN_ID")
        rules = SampleSettings(mem_total_gb=mem_total_gb) if mem_total_gb else SampleSettings()  # type: ignore[call-arg]
        return list(read_topic_run(conf or {}, source.removeprefix("kafka:"), from_run, start, end, rules=rules))
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{path}: no such recording")
    suffix = path.suffix.lower()
    if suffix == ".csv" and is_locust(path):
        return read_locust(path, load_samples(host_metrics) if host_metrics else None, run_id)
    if suffix == ".csv":
        return read_csv(path)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path)
    return read_text_lines(path, mem_total_gb, run_id or path.stem, "replay", interval_s)


