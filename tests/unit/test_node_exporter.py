"""node_exporter as a source: parsing, the CPU/memory/disk rules, host names, hosts files, backoff. No process
is started (the backoff test connects to a closed loopback port)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from perfwatch.producer.node_exporter import (
    Fleet,
    FleetSettings,
    ScrapeError,
    Target,
    cpu_pct,
    parse_metrics,
    target,
)

ROOT = Path(__file__).resolve().parents[2]


def exposition(idle: float = 100, iowait: float = 10, user: float = 50, system: float = 20, steal: float = 0,
               extra_fs: str = "") -> str:
    """A node_exporter 1.5 exposition (same HELP/TYPE lines and labels), two CPUs splitting the time evenly."""
    cpu = "\n".join(f'node_cpu_seconds_total{{cpu="{c}",mode="{m}"}} {v / 2}'
                    for c in (0, 1) for m, v in (("idle", idle), ("iowait", iowait), ("irq", 0), ("nice", 0),
                                                 ("softirq", 0), ("steal", steal), ("system", system),
                                                 ("user", user)))
    return f"""# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
{cpu}
# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 2.5e+09
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 1e+10
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{{device="/dev/vda1",fstype="ext4",mountpoint="/"}} 6e+10
node_filesystem_avail_bytes{{device="/dev/vdb",fstype="xfs",mountpoint="/data"}} 2e+10
node_filesystem_avail_bytes{{device="tmpfs",fstype="tmpfs",mountpoint="/run/user/0"}} 1e+06
node_filesystem_avail_bytes{{device="/dev/loop0",fstype="squashfs",mountpoint="/snap/core/1"}} 0
node_filesystem_avail_bytes{{device="srv:/x",fstype="nfs4",mountpoint="/mnt/share"}} 1e+09
node_filesystem_avail_bytes{{device="/dev/vdc",fstype="ext4",mountpoint="/media/usb"}} 0
node_filesystem_avail_bytes{{device="/dev/vdd",fstype="ext4",mountpoint="/srv/ro"}} 0
{extra_fs}
# HELP node_filesystem_readonly Filesystem read-only status.
# TYPE node_filesystem_readonly gauge
node_filesystem_readonly{{device="/dev/vdd",fstype="ext4",mountpoint="/srv/ro"}} 1
# HELP node_filesystem_size_bytes Filesystem size in bytes.
# TYPE node_filesystem_size_bytes gauge
node_filesystem_size_bytes{{device="/dev/vda1",fstype="ext4",mountpoint="/"}} 1e+11
node_filesystem_size_bytes{{device="/dev/vdb",fstype="xfs",mountpoint="/data"}} 1e+11
node_filesystem_size_bytes{{device="tmpfs",fstype="tmpfs",mountpoint="/run/user/0"}} 1e+08
node_filesystem_size_bytes{{device="/dev/loop0",fstype="squashfs",mountpoint="/snap/core/1"}} 1e+08
node_filesystem_size_bytes{{device="srv:/x",fstype="nfs4",mountpoint="/mnt/share"}} 1e+11
node_filesystem_size_bytes{{device="/dev/vdc",fstype="ext4",mountpoint="/media/usb"}} 1e+09
node_filesystem_size_bytes{{device="/dev/vdd",fstype="ext4",mountpoint="/srv/ro"}} 1e+09
"""


def test_memory_and_the_fullest_real_filesystem() -> None:
    r = parse_metrics(exposition())
    assert r.mem_pct == 75.0 and r.mem_free_gb == pytest.approx(2.328, abs=1e-3)
    # /data is 80 % full; the fuller tmpfs, squashfs image, NFS share, read-only and /media mounts do not count.
    assert (r.disk_pct, r.disk_mount) == (80.0, "/data")


def test_cpu_is_busy_share_of_all_modes_with_iowait_idle() -> None:
    a = parse_metrics(exposition(idle=100, iowait=10, user=50, system=20, steal=0))
    b = parse_metrics(exposition(idle=130, iowait=30, user=80, system=40, steal=10))
    # Δbusy = 30 user + 20 system + 10 steal = 60; Δall = 60 + 30 idle + 20 iowait = 110.
    assert cpu_pct(a, b) == pytest.approx(100 * 60 / 110, abs=0.01)
    assert cpu_pct(a, a) is None  # no time passed: no rate
    assert cpu_pct(b, a) is None  # counters went backwards (a reboot): a new baseline, not a negative %


def test_idle_counter_stepping_back_on_a_saturated_host_reads_100_not_a_lost_sample() -> None:
    # Seen with the real node_exporter under two busy loops: iowait stepped back while idle stood still.
    a = parse_metrics(exposition(idle=100, iowait=10.04, user=50, system=20))
    b = parse_metrics(exposition(idle=100, iowait=10.00, user=51.8, system=20.2))
    assert cpu_pct(a, b) == 100.0


def test_no_real_filesystem_or_missing_collectors_are_scrape_errors() -> None:
    only_tmpfs = "\n".join(line for line in exposition().splitlines()
                           if "node_filesystem" not in line or "tmpfs" in line or line.startswith("#"))
    with pytest.raises(ScrapeError, match="no real filesystem"):
        parse_metrics(only_tmpfs)
    with pytest.raises(ScrapeError, match="node_cpu_seconds_total"):
        parse_metrics("node_memory_MemTotal_bytes 1\n")
    with pytest.raises(ScrapeError, match="not a Prometheus exposition"):
        parse_metrics("<html>502 Bad Gateway</html>\n")


@pytest.mark.parametrize("spec, name, url", [
    ("api-1:9100", "api-1", "http://api-1:9100/metrics"),
    ("http://10.0.0.5:9100/", "10.0.0.5", "http://10.0.0.5:9100/metrics"),
    ("http://127.0.0.1:19100", "127.0.0.1:19100", "http://127.0.0.1:19100/metrics"),
    ("db-1=https://db.example/node/metrics", "db-1", "https://db.example/node/metrics"),
])
def test_host_name_and_url(spec: str, name: str, url: str) -> None:
    assert target(spec) == Target(name, url)


def test_hosts_file_with_flags_winning(tmp_path: Path) -> None:
    f = tmp_path / "hosts.toml"
    f.write_text('timeout_s = 5\nmax_backoff_s = 60\n[[hosts]]\nname = "api-1"\nurl = "10.0.0.5:9100"\n'
                 '[[hosts]]\nurl = "http://db-1:9100/metrics"\n')
    s = FleetSettings.load(f, ["cache=10.0.0.9:9100"], max_backoff_s=10.0, timeout_s=None)
    assert s.timeout_s == 5 and s.max_backoff_s == 10
    assert [t.name for t in s.targets()] == ["api-1", "db-1", "cache"]
    f.write_text('[[hosts]]\nadress = "typo:9100"\n')
    with pytest.raises(ValueError, match=r"hosts.toml: hosts.0.*"):
        FleetSettings.load(f)
    f.write_text("[[hosts]\n")
    with pytest.raises(ValueError, match="hosts.toml"):
        FleetSettings.load(f)
    with pytest.raises(ValueError, match="no such hosts file"):
        FleetSettings.load(tmp_path / "missing.toml")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_silent_host_logs_once_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    fleet = Fleet([target(f"http://127.0.0.1:{_closed_port()}")], interval_s=1.0, max_backoff_s=8.0,
                  clock=lambda: now[0])
    tries = []
    with caplog.at_level(logging.WARNING, logger="perfwatch.node_exporter"):
        for t in range(60):  # 60 s of ticks, one a second
            now[0] = float(t)
            if fleet.hosts[0].next_try <= now[0]:
                tries.append(t)
            assert fleet.poll("r") == []
    fleet.close()
    assert tries[:6] == [0, 1, 3, 7, 15, 23]  # waits 1, 2, 4, 8, then capped at 8
    assert len(tries) == 6 + (59 - 23) // 8
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "not answering" in lines[0] and "Connection refused" in lines[0]


def test_perfwatch_code_paths_do_not_load_gevent() -> None:
    """Locust monkey-patches the process on import: nothing but the plugin may import it."""
    code = ("import sys, perfwatch.app.cli, perfwatch.app.commands, perfwatch.producer.live, "
            "perfwatch.producer.node_exporter, perfwatch.producer.publisher;"
            "import perfwatch.consumer.processor; bad = [m for m in ('gevent', 'locust') if m in sys.modules];"
            "assert not bad, bad; import socket; assert socket.socket.__module__ == 'socket', socket.socket")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_bad_hosts_file_is_one_clear_line_before_any_connection(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from perfwatch.app.cli import main

    bad = tmp_path / "fleet.toml"
    bad.write_text('[[hosts]]\nadress = "api-1:9100"\n')
    assert main(["publish", "--run-id", "r", "--hosts-file", str(bad), "--bootstrap-servers", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fleet.toml: hosts.0" in err and "Kafka" not in err, err
