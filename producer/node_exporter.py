"""Host samples from Prometheus node_exporter: scrape each host's /metrics, parse it with prometheus_client's
parser, and derive the sample's CPU %, memory % and disk %.

- CPU % = busy share of ``node_cpu_seconds_total`` between two scrapes, summed over every CPU and mode.
  ``idle`` and ``iowait`` count as idle (a CPU waiting on I/O runs nothing; psutil, which ``perfwatch
  publish`` uses without node_exporter, counts it the same way), every other mode (user, nice, system,
  irq, softirq, steal) as busy. A host's first scrape is only a baseline: its first sample comes one
  interval later. A total that went backwards (the host rebooted) starts a new baseline.
- memory % = 1 − ``node_memory_MemAvailable_bytes`` / ``node_memory_MemTotal_bytes``.
- disk % = 1 − ``node_filesystem_avail_bytes`` / ``node_filesystem_size_bytes`` of the fullest *real*
  filesystem: see ``real_filesystem``.

A host that does not answer is logged once (one warning line), retried with exponential backoff
(interval × 2^k, capped), and logged once more when it answers again; the other hosts go on meanwhile.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

from perfwatch.errors import InputError
from perfwatch.producer.schedule import ticks
from perfwatch.sample import Sample

log = logging.getLogger("perfwatch.node_exporter")

DEFAULT_PORT = 9100  # node_exporter's own default
IDLE_MODES = frozenset({"idle", "iowait"})
# Filesystems that hold no host data or are full by design (read-only images), and network mounts (another
# host's disk). node_exporter's defaults already drop most of these; a differently configured exporter may not.
NOT_REAL_FS_TYPES = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs", "efivarfs",
    "fuse.lxcfs", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "overlay", "proc", "procfs", "pstore",
    "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs",
    "nfs", "nfs4", "cifs", "smbfs", "fuse.sshfs", "9p",
})
# node_exporter's default mount exclusions (removable and temporary mounts under /mnt and /media too), plus snaps
# and container storage.
NOT_REAL_MOUNTS = re.compile(r"^/(dev|proc|run|sys|mnt|media|snap|var/lib/docker|var/lib/containers|var/lib/kubelet)"
                             r"(/|$)")


class ScrapeError(Exception):
    """A host's /metrics could not be fetched or lacks what a sample needs."""


@dataclass(frozen=True)
class Target:
    name: str  # the sample's host
    url: str  # full /metrics URL


def metrics_url(url: str) -> str:
    """``host:9100`` or ``http://host:9100`` → ``http://host:9100/metrics``; a given path is kept."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if not parts.hostname:
        raise InputError(f"not a node_exporter URL: {url!r}")
    return url if parts.path not in ("", "/") else f"{parts.scheme}://{parts.netloc}/metrics"


def target(spec: str, name: str | None = None) -> Target:
    """``URL`` or ``NAME=URL``. Without a name the host is the URL's host name, with ``:port`` unless the
    port is node_exporter's default 9100 (so two exporters on one machine stay two hosts)."""
    if name is None and "=" in spec.split("://", 1)[0]:
        name, spec = spec.split("=", 1)
    url = metrics_url(spec)
    if not name:
        parts = urlsplit(url)
        name = parts.hostname or url
        if parts.port not in (None, DEFAULT_PORT):
            name = f"{name}:{parts.port}"
    return Target(name, url)


# -- one scrape -> one reading -----------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    cpu_busy_s: float
    cpu_all_s: float
    mem_pct: float
    mem_free_gb: float
    disk_pct: float
    disk_mount: str


def real_filesystem(labels: dict[str, str], readonly: bool) -> bool:
    """Counts for disk %: a writable local filesystem (not virtual, not an image, not a network mount) that is
    not mounted under /dev, /proc, /run, /sys, /mnt, /media, /snap or a container runtime's storage."""
    return (not readonly and labels.get("fstype", "") not in NOT_REAL_FS_TYPES
            and not NOT_REAL_MOUNTS.match(labels.get("mountpoint", "")))


def parse_metrics(text: str) -> Reading:
    """A Reading from one node_exporter exposition (raises ScrapeError when something a sample needs is absent)."""
    busy = total = 0.0
    mem: dict[str, float] = {}
    fs: dict[tuple[str, str], dict[str, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "node_cpu_seconds_total":
                    total += s.value
                    if s.labels.get("mode") not in IDLE_MODES:
                        busy += s.value
                elif s.name in ("node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"):
                    mem[s.name] = s.value
                elif s.name in ("node_filesystem_avail_bytes", "node_filesystem_size_bytes",
                                "node_filesystem_readonly"):
                    key = (s.labels.get("mountpoint", ""), s.labels.get("fstype", ""))
                    fs.setdefault(key, {})[s.name] = s.value
    except ValueError as exc:  # the parser's error for a malformed exposition
        raise ScrapeError(f"not a Prometheus exposition: {exc}") from None
    if total <= 0:
        raise ScrapeError("no node_cpu_seconds_total (is the cpu collector off?)")
    mem_total = mem.get("node_memory_MemTotal_bytes", 0.0)
    if mem_total <= 0 or "node_memory_MemAvailable_bytes" not in mem:
        raise ScrapeError("no node_memory_MemAvailable_bytes/MemTotal_bytes (is the meminfo collector off?)")
    avail = mem["node_memory_MemAvailable_bytes"]
    disks = []
    for (mount, fstype), v in fs.items():
        size, free = v.get("node_filesystem_size_bytes", 0.0), v.get("node_filesystem_avail_bytes")
        if size > 0 and free is not None and real_filesystem({"mountpoint": mount, "fstype": fstype},
                                                             v.get("node_filesystem_readonly", 0.0) == 1.0):
            disks.append((_pct(1 - free / size), mount))
    if not disks:
        raise ScrapeError("no real filesystem in node_filesystem_* (is the filesystem collector off?)")
    disk_pct, mount = max(disks)
    return Reading(busy, total, _pct(1 - avail / mem_total), round(avail / 2**30, 3), disk_pct, mount)


def _pct(share: float) -> float:
    return round(min(100.0, max(0.0, 100 * share)), 2)


def cpu_pct(prev: Reading, cur: Reading) -> float | None:
    """Busy % between two readings; None when no CPU time passed or the total went backwards (a reboot).

    Linux's idle and iowait counters can step back slightly (iowait is not monotonic, see proc(5)); on a saturated
    host that would read as a negative idle time, so idle time is clamped at zero instead of dropping the sample."""
    d_all = cur.cpu_all_s - prev.cpu_all_s
    if d_all <= 0:
        return None
    d_idle = (cur.cpu_all_s - cur.cpu_busy_s) - (prev.cpu_all_s - prev.cpu_busy_s)
    return _pct(1 - max(0.0, d_idle) / d_all)


def scrape(url: str, timeout_s: float) -> Reading:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (http(s) URLs the user gave)
            text = resp.read().decode("utf-8", "replace")
    except OSError as exc:  # refused, unreachable, timeout, HTTP error (URLError and HTTPError are OSErrors)
        raise ScrapeError(str(getattr(exc, "reason", None) or exc)) from None
    return parse_metrics(text)


# -- a fleet of hosts --------------------------------------------------------------------------
Mapper = Callable[[Callable[[Target], Any], Sequence[Target]], Iterable[Any]]


@dataclass
class _Host:
    target: Target
    prev: Reading | None = None
    failures: int = 0
    down_since: float = 0.0
    next_try: float = 0.0


class Fleet:
    """Scrapes every host that is due, concurrently, and turns two successive readings into a sample."""

    def __init__(self, targets: Sequence[Target], interval_s: float, timeout_s: float = 2.0,
                 max_backoff_s: float = 30.0, mapper: Mapper | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not targets:
            raise InputError("no node_exporter hosts given")
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise InputError(f"two node_exporter hosts share a name: {sorted(n for n in names if names.count(n) > 1)}")
        self.hosts = [_Host(t) for t in targets]
        self.interval_s, self.timeout_s, self.max_backoff_s = interval_s, timeout_s, max_backoff_s
        self._pool: ThreadPoolExecutor | None = None
        if mapper is None:
            self._pool = ThreadPoolExecutor(max_workers=min(32, len(targets)), thread_name_prefix="scrape")
            mapper = self._pool.map
        self._map = mapper
        self._clock = clock

    def _scrape(self, t: Target) -> Reading | ScrapeError:
        try:
            return scrape(t.url, self.timeout_s)
        except ScrapeError as exc:
            return exc

    def poll(self, run_id: str) -> list[Sample]:
        """Scrape the due hosts; a sample for each that answered and has a previous reading."""
        now = self._clock()
        due = [h for h in self.hosts if h.next_try <= now]
        out = []
        for host, got in zip(due, self._map(self._scrape, [h.target for h in due]), strict=True):
            if isinstance(got, ScrapeError):
                self._failed(host, got, now)
                continue
            if host.failures:
                log.warning("node_exporter %s (%s) answers again after %d failed scrape(s) in %.0fs",
                            host.target.name, host.target.url, host.failures, now - host.down_since)
                host.failures, host.prev = 0, None  # a rate across the outage would be an average: start afresh
            cpu = cpu_pct(host.prev, got) if host.prev else None
            host.prev, host.next_try = got, 0.0
            if cpu is not None:
                out.append(Sample(run_id=run_id, host=host.target.name, ts=datetime.now(UTC), cpu_pct=cpu,
                                  mem_pct=got.mem_pct, disk_pct=got.disk_pct, mem_free_gb=got.mem_free_gb))
        return out

    def _failed(self, host: _Host, err: ScrapeError, now: float) -> None:
        host.failures += 1
        backoff = min(self.max_backoff_s, self.interval_s * 2 ** (host.failures - 1))
        host.next_try = now + backoff
        if host.failures == 1:
            host.down_since = now
            log.warning("node_exporter %s (%s) not answering: %s; retrying with backoff (up to every %.0fs), "
                        "the other hosts go on", host.target.name, host.target.url, err, self.max_backoff_s)
        else:
            log.debug("node_exporter %s still not answering (%d): %s; next try in %.1fs",
                      host.target.name, host.failures, err, backoff)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def fleet_samples(fleet: Fleet, run_id: str, interval_s: float, duration_s: float | None = None,
                  stop: threading.Event | None = None) -> Iterator[Sample]:
    """Every interval, one sample per answering host (the first scrape, at once, is the CPU baseline)."""
    try:
        fleet.poll(run_id)
        for _ in ticks(interval_s, duration_s, stop):
            yield from fleet.poll(run_id)
    finally:
        fleet.close()


# -- many hosts from a settings file -----------------------------------------------------------
class HostEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="node_exporter address: host:port or a /metrics URL")
    name: str | None = Field(None, min_length=1, max_length=200, description="host name in the samples")


class FleetSettings(BaseSettings):
    """``perfwatch publish --hosts-file hosts.toml``: many hosts, and how to scrape them. Env
    ``PERFWATCH_NODE_EXPORTER_<NAME>`` works for the scalar settings; flags win over both."""

    model_config = SettingsConfigDict(env_prefix="PERFWATCH_NODE_EXPORTER_", extra="forbid")

    hosts: list[HostEntry] = Field(default_factory=list)
    timeout_s: float = Field(2.0, gt=0, description="seconds to wait for one /metrics")
    max_backoff_s: float = Field(30.0, gt=0, description="longest wait between retries of a silent host")

    def targets(self) -> list[Target]:
        return [target(h.url, h.name) for h in self.hosts]

    @classmethod
    def load(cls, path: Path | None = None, urls: Sequence[str] = (), **overrides: Any) -> FleetSettings:
        """From a TOML file (optional), then env, with ``overrides`` (flags that were given) winning; ``urls``
        (``[NAME=]URL``) are hosts added to the file's."""
        if path is not None and not path.is_file():
            raise InputError(f"{path}: no such hosts file")
        try:
            data = TomlConfigSettingsSource(cls, toml_file=path)() if path else {}
            data["hosts"] = [*data.get("hosts", []), *({"url": u} for u in urls)]
            return cls(**{**data, **{k: v for k, v in overrides.items() if v is not None}})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(f"{path or 'settings'}: {where}: {err['msg']}") from None
        except ValueError as exc:  # tomllib.TOMLDecodeError: one line, with the file
            raise InputError(f"{path}: {exc}") from None
