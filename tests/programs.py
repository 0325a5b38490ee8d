"""Real Alertmanager and Prometheus for tests (Debian's pinned binaries, perfwatch/broker/programs.py), on
free loopback ports, plus a webhook receiver served by the test. Every process is stopped at teardown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from perfwatch.tooling.programs import ensure_program


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Any, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return bool(pred())


def metric_total(url: str, sample: str, **labels: str) -> float:
    """A real program's own metric from its /metrics (prometheus_client's exposition parser): the sum of
    ``sample`` over the series whose labels include ``labels``; 0 while the program cannot answer."""
    try:
        text = requests.get(f"{url}/metrics", timeout=5).text
    except requests.RequestException:
        return 0.0
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == sample and labels.items() <= s.labels.items())


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    """An HTTP endpoint that records every POST (Alertmanager's webhook receiver, or perfwatch's webhook)."""

    posts: list[Post] = field(default_factory=list)
    status: int = 200  # what it answers; a test can make it fail

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with recv._lock:
                    status = recv.status
                    if status < 300:
                        recv.posts.append(Post(self.path, dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[Any]:
        with self._lock:
            return [p.json for p in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Program:
    """One real program on loopback; ``stop`` sends SIGTERM (a graceful stop) and waits."""

    def __init__(self, argv: list[str], log: Path, ready_url: str, cwd: Path | None = None) -> None:
        self.argv, self.log, self.ready_url, self.cwd = argv, log, ready_url, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd)

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                return requests.get(self.ready_url, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        assert wait_until(ready, timeout), f"{self.argv[0]} not ready:\n{self.log.read_text()[-2000:]}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def alertmanager_config(webhook_url: str, group_wait: str = "1s", group_interval: str = "1s",
                        repeat_interval: str = "1h") -> dict[str, Any]:
    return {
        "route": {"receiver": "test", "group_by": ["alertname", "run_id", "host"], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval},
        "receivers": [{"name": "test", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }


DEBIAN_AM_SHARE = b"/usr/share/prometheus/alertmanager"
RELATIVE_AM_SHARE = b"./" * 11 + b"alertmanager"  # the same length, so the Go string headers stay valid


def relocatable_alertmanager() -> tuple[Path, Path]:
    """Debian's Alertmanager reads its default.tmpl and UI from /usr/share/prometheus/alertmanager (a
    path compiled in by Debian's patch) and exits without them. An unpacked package has them elsewhere,
    so the tests run a copy of the binary whose path is relative (``alertmanager`` in its working
    directory): returns (binary, share dir to link there as ``alertmanager``)."""
    binary = ensure_program("alertmanager")
    share = binary.parents[1] / "share" / "prometheus" / "alertmanager"
    copy = binary.with_name("alertmanager-relocatable")
    if not copy.exists():
        data = binary.read_bytes()
        assert len(RELATIVE_AM_SHARE) == len(DEBIAN_AM_SHARE) and data.count(DEBIAN_AM_SHARE) >= 1
        tmp = copy.with_suffix(".tmp")
        tmp.write_bytes(data.replace(DEBIAN_AM_SHARE, RELATIVE_AM_SHARE))
        tmp.chmod(0o755)
        tmp.rename(copy)
    return copy, share


@contextmanager
def alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[tuple[Program, str]]:
    """A real Alertmanager on a free loopback port, gossip off, storage in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    binary, share = relocatable_alertmanager()
    if not (workdir / "alertmanager").exists():
        (workdir / "alertmanager").symlink_to(share)
    prog = Program([str(binary), f"--config.file={workdir / 'alertmanager.yml'}",
                    f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=", "--log.level=debug"],
                   workdir / "alertmanager.log", f"{url}/-/ready", cwd=workdir)
    prog.start()
    try:
        yield prog, url
    finally:
        prog.stop()


@contextmanager
def prometheus(workdir: Path, scrape_target: str, rules: Path | None = None,
               scrape_interval: str = "1s") -> Iterator[str]:
    """A real Prometheus on a free loopback port scraping ``scrape_target`` (host:port); yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": "perfwatch", "static_configs": [{"targets": [scrape_target]}]}],
    }
    if rules is not None:
        cfg["rule_files"] = [str(rules)]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    prog = Program([str(ensure_program("prometheus")), f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                   workdir / "prometheus.log", f"{url}/-/ready")
    prog.start(timeout=60)
    try:
        yield url
    finally:
        prog.stop()


def environ_with_cache() -> dict[str, str]:
    return {**os.environ, "PERFWATCH_CACHE": os.environ.get("PERFWATCH_CACHE", ".cache")}
