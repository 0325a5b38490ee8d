"""The other real programs that tests and the demo start: node_exporter, Alertmanager, Prometheus.

Each comes from Debian's own package, pinned to one version and unpacked once into the cache
(``$PERFWATCH_CACHE/programs/PACKAGE-VERSION/``). Debian's packages were chosen over building the
Go modules: a download of seconds instead of minutes of compiling (Prometheus pulls in hundreds of
modules), the same signed archive the user's distribution installs from, and no toolchain needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from perfwatch.tooling.jars import BrokerSetupError, cache_root


@dataclass(frozen=True)
class Program:
    package: str  # Debian package name
    version: str  # pinned Debian version (bookworm)
    path: str  # the binary inside the package


PROGRAMS: dict[str, Program] = {
    "node_exporter": Program("prometheus-node-exporter", "1.5.0-1+b6", "usr/bin/prometheus-node-exporter"),
    "alertmanager": Program("prometheus-alertmanager", "0.25.0-1+b4", "usr/bin/prometheus-alertmanager"),
    "amtool": Program("prometheus-alertmanager", "0.25.0-1+b4", "usr/bin/amtool"),
    "prometheus": Program("prometheus", "2.42.0+ds-5+deb12u1", "usr/bin/prometheus"),
    "promtool": Program("prometheus", "2.42.0+ds-5+deb12u1", "usr/bin/promtool"),
}


def _download(spec: str, into: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["apt-get", "download", spec], cwd=into, capture_output=True, text=True, check=False)


def ensure_program(name: str, verbose: bool = True) -> Path:
    """Return the path of the pinned program's binary, downloading and unpacking its package the first time."""
    if name not in PROGRAMS:
        raise BrokerSetupError(f"unknown program {name!r}; known: {', '.join(sorted(PROGRAMS))}")
    prog = PROGRAMS[name]
    home = cache_root() / "programs" / f"{prog.package}-{prog.version}"
    binary = home / prog.path
    if (home / ".complete").exists() and binary.exists():
        return binary
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise BrokerSetupError(f"{name} comes from Debian's package {prog.package}={prog.version}: "
                               "this needs apt-get and dpkg-deb (a Debian or Ubuntu machine)")
    if verbose:
        print(f"fetching {prog.package} {prog.version} (Debian) into {home} …", file=sys.stderr, flush=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
        spec = f"{prog.package}={prog.version}"
        got = _download(spec, Path(tmp))
        if got.returncode != 0 and shutil.which("apt-get"):
            # A fresh machine has no package lists yet: fetch them once and try again.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, check=False)
            got = _download(spec, Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not debs:
            raise BrokerSetupError(f"apt-get download {spec} failed: {(got.stderr or got.stdout).strip()[-500:]}")
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
        (unpacked / ".complete").write_text(spec)
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)
    return binary
