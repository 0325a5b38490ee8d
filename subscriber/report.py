"""A run's report: what happened to each host and at what load. A text summary with one line per alert
episode, the same as JSON, and the figure (producer/report_figure.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perfwatch.labels import LABELS
from perfwatch.settings import KafkaSettings, SampleSettings
from perfwatch.subscriber.episodes import Episode
from perfwatch.subscriber.report_figure import build_figure, draw
from perfwatch.subscriber.rundata import RunData, collect, plural

__all__ = ["Report", "RunData", "as_dict", "build_figure", "collect", "draw", "report_run", "summarize"]


@dataclass(frozen=True)
class Report:
    data: RunData
    png: Path | None  # None when the run has no samples or verdicts (nothing to draw)


def report_run(s: KafkaSettings, run_id: str, out: Path | None, *, group_id: str,
               rules: SampleSettings) -> Report:
    """Read the run from the topics of ``s`` and draw its figure to ``out`` (default
    artifacts/report-RUN.png)."""
    data = collect(s.kafka_config(), run_id, s.samples_topic, s.predictions_topic, s.alerts_topic,
                   group_id=group_id, rules=rules)
    if not data.samples and not data.verdicts:
        return Report(data, None)
    return Report(data, draw(data, out or Path(f"artifacts/report-{run_id}.png")))

def when(t: datetime | None) -> str:
    """One zone, with the date, for every time the report prints."""
    return "still firing" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(x: float | None, unit: str = "", digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def _load(e: Episode) -> str:
    if e.rps is None and e.p95_ms is None and e.error_pct is None:
        return "no load data"
    return f"{_num(e.rps, ' RPS', 1)}, p95 {_num(e.p95_ms, ' ms')}, errors {_num(e.error_pct, ' %', 1)}"


def _duration(e: Episode) -> str:
    s = e.seconds
    return "open" if s is None else (f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")


def summarize(data: RunData) -> str:
    labels = Counter(v.label for v in data.verdicts)
    episodes = data.episodes()
    counts = ", ".join(f"{lab} {labels.get(lab, 0)}" for lab in (*LABELS, *sorted(set(labels) - set(LABELS))))
    lines = [f"run {data.run_id}: {plural(len(data.samples), 'sample')}, {plural(len(data.verdicts), 'verdict')}"
             + (f" ({counts})" if data.verdicts else "")
             + f", {plural(len(episodes), 'alert episode')}; hosts {', '.join(data.hosts) or 'none'}"]
    if data.why_no_verdicts:
        lines.append(f"  no verdicts: {data.why_no_verdicts}")
    elif len(data.verdicts) < len(data.samples):
        lines.append(f"  {len(data.samples) - len(data.verdicts)} samples have no verdict yet (the consumer may be "
                     "behind; run the report again later)")
    if data.duplicates:
        lines.append(f"  {data.duplicates} redelivered verdicts/alerts counted once")
    if data.unreadable:
        lines.append(f"  {data.unreadable} records on the output topics were not verdicts and were skipped")
    for h in data.hosts:
        mine = [e for e in episodes if e.host == h]
        vs = data.host_verdicts(h)
        lines.append(f"  {h}: {plural(len(vs), 'verdict')}, {plural(len(mine), 'HighLoad episode')}")
        for i, e in enumerate(mine, start=1):
            lines.append(
                f"    episode {i}: {when(e.start)} → {when(e.end)} ({_duration(e)}); peak cpu "
                f"{_num(e.peak_cpu_pct, ' %')}, mem {_num(e.peak_mem_pct, ' %')}, disk {_num(e.peak_disk_pct, ' %')}; "
                f"load at start: {_load(e)}")
    return "\n".join(lines)


def as_dict(data: RunData) -> dict[str, Any]:
    """The summary as data (``perfwatch report RUN --json``)."""
    labels = Counter(v.label for v in data.verdicts)
    return {
        "run_id": data.run_id, "samples": len(data.samples), "verdicts": len(data.verdicts),
        "labels": {lab: labels.get(lab, 0) for lab in (*LABELS, *sorted(set(labels) - set(LABELS)))},
        "alerts": len(data.alerts), "duplicates_skipped": data.duplicates, "unreadable_skipped": data.unreadable,
        "hosts": data.hosts, "why_no_verdicts": data.why_no_verdicts,
        "episodes": [{"host": e.host, "start": e.start.astimezone(UTC).isoformat(),
                      "end": e.end.astimezone(UTC).isoformat() if e.end else None, "seconds": e.seconds,
                      "verdicts": e.verdicts, "peak": {"cpu_pct": e.peak_cpu_pct, "mem_pct": e.peak_mem_pct,
                                                       "disk_pct": e.peak_disk_pct},
                      "load_at_start": {"rps": e.rps, "p95_ms": e.p95_ms, "error_pct": e.error_pct}}
                     for e in data.episodes()],
    }

