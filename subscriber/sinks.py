"""HTTP sinks: Alertmanager's API v2 and a plain JSON webhook. ``send`` raises Unavailable for what a
retry may fix (connection refused, timeouts, 5xx, 408, 429) and Rejected for what it cannot (other 4xx)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import requests

from perfwatch.subscriber.payloads import SIGNATURE_HEADER, encode, signature


class Unavailable(Exception):
    pass


class Rejected(Exception):
    pass


def _post(session: requests.Session, url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    try:
        r = session.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=timeout)
    except requests.RequestException as exc:
        raise Unavailable(f"{url}: {type(exc).__name__}: {exc}") from None
    if r.status_code < 300:
        return
    detail = f"{url}: HTTP {r.status_code} {r.text.strip()[:300]}"
    if r.status_code >= 500 or r.status_code in (408, 429):
        raise Unavailable(detail)
    raise Rejected(detail)


class AlertmanagerSink:
    name = "alertmanager"

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/api/v2/alerts") else base + "/api/v2/alerts"
        self.timeout = timeout
        self.session = requests.Session()

    def send(self, alerts: list[dict[str, Any]]) -> None:
        """One POST for all alerts due (Alertmanager deduplicates by labels, so a re-send is harmless)."""
        _post(self.session, self.url, encode(alerts), {}, self.timeout)


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, secret: bytes | None = None, timeout: float = 10.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout
        self.session = requests.Session()

    def send(self, body: dict[str, Any]) -> None:
        data = encode(body)
        headers = {SIGNATURE_HEADER: signature(self.secret, data)} if self.secret else {}
        _post(self.session, self.url, data, headers, self.timeout)


def deliver(attempt: Callable[[], None], *, wait: Callable[[float], bool], max_backoff_s: float,
            on_retry: Callable[[Exception, float], None] | None = None, first_backoff_s: float = 0.5) -> bool:
    """Call ``attempt`` until it succeeds (True) or ``wait`` says to stop (False). Backoff doubles up to
    ``max_backoff_s`` with jitter, so many senders do not return to a restarted receiver at once.
    Rejected is not retried: it propagates."""
    backoff = first_backoff_s
    while True:
        try:
            attempt()
            return True
        except Unavailable as exc:
            delay = min(max_backoff_s, backoff) * random.uniform(0.8, 1.2)
            if on_retry:
                on_retry(exc, delay)
            backoff *= 2
            deadline = time.monotonic() + delay
            while (left := deadline - time.monotonic()) > 0:
                if not wait(min(left, 0.5)):
                    return False
