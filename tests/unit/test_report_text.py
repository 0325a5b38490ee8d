"""The report's text and JSON from a run in memory: episodes, one zone, no Python reprs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from perfwatch.subscriber.report import as_dict, summarize
from perfwatch.subscriber.rundata import RunData
from perfwatch.verdict import Alert, ModelRef, SourceRef, Verdict

T0 = datetime(2026, 3, 7, 2, 13, tzinfo=UTC)


def _v(i: int, label: str, host: str = "api-1", rps: float | None = 12.5) -> Verdict:
    ts = T0 + timedelta(seconds=i)
    return Verdict(run_id="r", host=host, ts=ts, label=label, confidence=0.9, scores={label: 0.9}, cpu_pct=91.4,
                   mem_pct=50, disk_pct=40, rps=rps, p95_ms=230, error_pct=0.0, model=ModelRef(id="m", sha256="0"),
                   source=SourceRef(topic="s", partition=0, offset=i), detected_at=ts)


def test_episodes_without_hysteresis_are_stretches_of_highload_verdicts() -> None:
    labels = ["LowLoad", "HighLoad", "HighLoad", "LowLoad", "LowLoad", "HighLoad", "MediumLoad"]
    vs = [_v(i, lab) for i, lab in enumerate(labels)]
    data = RunData("r", verdicts=vs, alerts=[Alert(**v.__dict__) for v in vs if v.label == "HighLoad"])
    eps = data.episodes()
    assert [(e.start, e.end) for e in eps] == [(vs[1].ts, vs[3].ts), (vs[5].ts, vs[6].ts)]
    assert eps[0].verdicts == 2 and eps[0].rps == 12.5


def test_summary_has_no_python_reprs_and_one_number_style() -> None:
    vs = [_v(i, "HighLoad" if i in (2, 3, 4) else "LowLoad") for i in range(8)]
    alerts = [Alert(**vs[2].__dict__, state="firing"), Alert(**vs[5].__dict__, state="resolved")]
    data = RunData("r", verdicts=vs, alerts=alerts)
    text = summarize(data)
    for repr_bit in ("{", "}", "(s)", "[", "None"):
        assert repr_bit not in text, text
    assert "LowLoad 5, MediumLoad 0, HighLoad 3" in text
    assert "episode 1: 2026-03-07 02:13:02 UTC → 2026-03-07 02:13:05 UTC (3 s)" in text
    assert "peak cpu 91 %, mem 50 %, disk 40 %; load at start: 12.5 RPS, p95 230 ms, errors 0.0 %" in text
    doc = json.loads(json.dumps(as_dict(data)))
    assert doc["episodes"][0]["start"] == "2026-03-07T02:13:02+00:00" and doc["labels"]["HighLoad"] == 3


def test_a_run_without_verdicts_says_why() -> None:
    data = RunData("r", why_no_verdicts="the consumer is behind")
    assert "no verdicts: the consumer is behind" in summarize(data)
