"""What the sinks send: Alertmanager API v2 alerts and the webhook's JSON (shape in docs/alert-sinks.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from perfwatch.subscriber.book import Tracked, Transition

WEBHOOK_VERSION = "1"
SIGNATURE_HEADER = "X-Perfwatch-Signature"


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class AlertShape:
    """The labels every alert gets (from the notify settings)."""

    alertname: str = "PerfwatchHighLoad"
    severity: str = "critical"
    static_labels: dict[str, str] = field(default_factory=dict)
    generator_url: str | None = None

    def labels(self, e: Tracked) -> dict[str, str]:
        # Static labels first: the identifying ones must not be overridden by a user's label.
        return {**self.static_labels, "alertname": self.alertname, "run_id": e.alert.run_id,
                "host": e.alert.host, "severity": self.severity}

    def annotations(self, e: Tracked) -> dict[str, str]:
        a = e.alert
        extra = {k: f"{v:g}" for k, v in (("rps", a.rps), ("p95_ms", a.p95_ms), ("error_pct", a.error_pct))
                 if v is not None}
        return {
            "summary": summary(e),
            "cpu_pct": f"{a.cpu_pct:g}", "mem_pct": f"{a.mem_pct:g}", "disk_pct": f"{a.disk_pct:g}", **extra,
            "label": a.label, "confidence": f"{a.confidence:.3f}", "model_id": a.model.id,
            "sample_ts": _rfc3339(a.ts),
            "source": f"{a.source.topic}[{a.source.partition}]@{a.source.offset}",
        }

    def alertmanager(self, e: Tracked, now: datetime, resend_s: float) -> dict[str, Any]:
        """One alert of ``POST /api/v2/alerts``. A firing alert ends 4 resend intervals from now, so a
        missed resend does not resolve it, while a dead sender's alerts still resolve on their own."""
        ends = e.ends_at if e.status == "resolved" and e.ends_at else now + timedelta(seconds=4 * resend_s)
        out: dict[str, Any] = {"labels": self.labels(e), "annotations": self.annotations(e),
                               "startsAt": _rfc3339(e.starts_at), "endsAt": _rfc3339(max(ends, e.starts_at))}
        if self.generator_url:
            out["generatorURL"] = self.generator_url
        return out

    def webhook(self, t: Transition, with_text: bool) -> dict[str, Any]:
        e = t.entry
        body: dict[str, Any] = {
            "version": WEBHOOK_VERSION,
            "id": hashlib.sha256(f"{e.key}|{t.status}|{_rfc3339(e.starts_at)}".encode()).hexdigest()[:24],
            "status": t.status,
            "labels": self.labels(e),
            "annotations": self.annotations(e),
            "startsAt": _rfc3339(e.starts_at),
            "endsAt": _rfc3339(e.ends_at) if e.ends_at else None,
            "alert": e.alert.model_dump(mode="json"),
        }
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        if with_text:
            body["text"] = slack_text(t)
        return body


def summary(e: Tracked) -> str:
    a = e.alert
    return (f"{a.label} on {a.run_id}/{a.host}: cpu {a.cpu_pct:.0f}% mem {a.mem_pct:.0f}% "
            f"disk {a.disk_pct:.0f}% (confidence {a.confidence:.2f})")


def slack_text(t: Transition) -> str:
    """Slack's incoming-webhook ``text`` (mrkdwn)."""
    icon = ":rotating_light:" if t.status == "firing" else ":white_check_mark:"
    return f"{icon} *{t.status.upper()}* {summary(t.entry)}"


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: bytes, payload: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over the exact body bytes (verify with hmac.compare_digest)."""
    return "sha256=" + hmac.new(secret, payload, hashlib.sha256).hexdigest()
