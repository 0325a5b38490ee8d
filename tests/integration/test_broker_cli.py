"""`perfwatch broker start|status|stop` from a shell: a real process, and none left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perfwatch.app.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=180, check=False)


def _java_pids(data_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True, check=False).stdout
    return [int(x) for x in out.split()]


def test_help_lists_the_subcommands() -> None:
    res = _cli("--help")
    assert res.returncode == 0
    for cmd in ("broker", "data", "train", "export", "consume", "publish", "replay", "generate", "alerts",
                "report", "demo", "bench"):
        assert cmd in res.stdout, cmd


def test_broker_start_status_stop(tmp_path: Path) -> None:
    d = tmp_path / "b"
    start = _cli("broker", "start", "--data-dir", str(d))
    try:
        assert start.returncode == 0, start.stderr
        bootstrap = start.stdout.strip()
        assert bootstrap.startswith("127.0.0.1:")  # stdout is the address alone, for scripts
        assert "Kafka version" in start.stderr
        status = _cli("broker", "status", "--data-dir", str(d))
        assert status.returncode == 0
        info = json.loads(status.stdout)
        assert info["running"] and info["bootstrap"] == bootstrap
        assert _java_pids(d)
    finally:
        stop = _cli("broker", "stop", "--data-dir", str(d))  # never leave a broker behind, pass or fail
    assert stop.returncode == 0
    assert _java_pids(d) == []
    after = _cli("broker", "status", "--data-dir", str(d))
    assert after.returncode == 1 and not json.loads(after.stdout)["running"]
