"""Fetch Apache Kafka's broker classpath from Maven Central once, into a cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from perfwatch.errors import PerfwatchError


class BrokerSetupError(PerfwatchError, RuntimeError):
    exit_code = 1


def cache_root() -> Path:
    return Path(os.environ.get("PERFWATCH_CACHE") or Path.home() / ".cache" / "perfwatch").expanduser().absolute()


def kafka_version() -> str:
    pom = resources.files("perfwatch.tooling").joinpath("pom.xml").read_text()
    m = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    if not m:
        raise BrokerSetupError("kafka.version not found in perfwatch/broker/pom.xml")
    return m.group(1)


def ensure_jars(verbose: bool = True) -> Path:
    """Return the lib/ folder with the broker's jars, resolving them with Maven the first time."""
    version = kafka_version()
    home = cache_root() / f"kafka-{version}"
    lib = home / "lib"
    done = home / ".complete"
    if done.exists():
        return lib
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise BrokerSetupError("the local broker needs Java 17+ and Maven (mvn) on PATH")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(resources.files("perfwatch.tooling").joinpath("pom.xml").read_text())
    if verbose:
        print(f"fetching Apache Kafka {version} jars from Maven Central into {lib} …", file=sys.stderr, flush=True)
    tmp = home / "lib.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise BrokerSetupError(f"mvn failed to fetch the Kafka jars:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    done.write_text(version)
    return lib


def log4j_config() -> Path:
    path = cache_root() / "log4j2.properties"
    text = resources.files("perfwatch.tooling").joinpath("log4j2.properties").read_text()
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path
