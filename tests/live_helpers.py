"""Real programs for the live-source tests: node_exporter (Debian's package, from the cache), a small HTTP
service with one CPU-burning endpoint, and Locust. Every process started here is killed at teardown."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.streams import wait_for

ROOT = Path(__file__).resolve().parents[1]

BURN_SERVICE = '''
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/burn"):
            end = time.process_time() + 0.02  # 20 ms of CPU per request
            n = 0
            while time.process_time() < end:
                n += 1
            body = str(n).encode()
            self.send_response(200)
        else:
            body = b"no such page"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''

LOCUSTFILE = '''
import perfwatch.producer.locust_plugin  # noqa: F401  (the one line a user adds)
from locust import HttpUser, constant, task


class Burner(HttpUser):
    wait_time = constant(0.1)

    @task
    def burn(self):
        self.client.get("/burn")
'''

CPU_BURNER = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:
        return False


class Processes:
    """Processes a test starts; all killed (and reaped) at teardown, whatever happened."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], **kw: object) -> subprocess.Popen[str]:
        p: subprocess.Popen[str] = subprocess.Popen(args, text=True, **kw)  # type: ignore[call-overload]
        self.procs.append(p)
        return p

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def procs() -> Iterator[Processes]:
    ps = Processes()
    try:
        yield ps
    finally:
        ps.kill_all()


@pytest.fixture(scope="session")
def node_exporter_bin() -> Path:
    """Debian's prometheus-node-exporter, fetched once into $PERFWATCH_CACHE by the project's own tooling."""
    from perfwatch.tooling.programs import ensure_program

    return ensure_program("node_exporter")


@pytest.fixture
def start_exporter(node_exporter_bin: Path, procs: Processes) -> Callable[[int], str]:
    """Start a real node_exporter on 127.0.0.1:PORT (cpu, meminfo, filesystem collectors) and wait until it answers."""
    def start(port: int) -> str:
        url = f"http://127.0.0.1:{port}/metrics"
        procs.start([str(node_exporter_bin), f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                     "--collector.cpu", "--collector.meminfo", "--collector.filesystem"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: answers(url), timeout=30), f"node_exporter on {port} did not answer"
        return url
    return start


@pytest.fixture
def burn_service(tmp_path: Path, procs: Processes) -> str:
    """The load test's target: http://127.0.0.1:PORT/burn burns 20 ms of CPU per request."""
    script = tmp_path / "burn_service.py"
    script.write_text(BURN_SERVICE)
    port = free_port()
    procs.start([sys.executable, str(script), str(port)])
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: answers(base + "/burn"), timeout=30)
    return base


def project_env() -> dict[str, str]:
    """Environment for child processes that import this worktree's packages (a locustfile's one-line import)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


class Lines:
    """Collects a process's output lines in a thread, so a test can wait for one without blocking."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._t.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def having(self, text: str) -> list[str]:
        return [x for x in list(self.lines) if text in x]

    def join(self, timeout: float = 10) -> None:
        self._t.join(timeout)
