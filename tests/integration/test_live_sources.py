"""Live sources with the real programs, on loopback: node_exporter scraped by `perfwatch publish
--node-exporter`, and Locust runs (standalone, and master + worker) with the perfwatch plugin."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from perfwatch.consumer.processor import StreamProcessor
from perfwatch.decoding import decode_sample
from perfwatch.kafkaio import read_topic
from perfwatch.sample import Sample
from perfwatch.settings import ConsumerSettings, usable_cores
from tests.kafka_fixtures import Broker
from tests.live_helpers import CPU_BURNER, LOCUSTFILE, ROOT, Lines, Processes, free_port, project_env
from tests.streams import make_topics, run_in_thread, total, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def messages(kafka: Broker, topic: str) -> list[bytes]:
    """Every message of the topic: read until the count its end offsets give (a loaded machine can take
    longer than any idle time to deliver the first fetch)."""
    n, got = total(kafka.conf, topic), []
    if n:
        for m in read_topic(kafka.conf, topic, idle_s=30):
            got.append(m.value())
            if len(got) == n:
                break
    return got


def samples_in(kafka: Broker, topic: str) -> list[Sample]:
    return sorted((decode_sample(v) for v in messages(kafka, topic)), key=lambda s: (s.host, s.ts))


def publish_cli(procs: Processes, kafka: Broker, topic: str, *args: str) -> tuple[subprocess.Popen[str], Lines]:
    p = procs.start([sys.executable, "-m", "perfwatch.app.cli", "publish", *args,
                     "--bootstrap-servers", kafka.bootstrap,
                     "--samples-topic", topic], cwd=ROOT, env=project_env(), stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
    return p, Lines(p.stderr)


def test_node_exporter_cpu_follows_a_cpu_burner(kafka: Broker, topic_factory, start_exporter: Callable[[int], str],
                                                procs: Processes) -> None:
    topic = topic_factory("ne-cpu", partitions=1)
    url = start_exporter(free_port())
    pub, out = publish_cli(procs, kafka, topic, "--run-id", "ne-cpu", "--node-exporter", url, "--interval", "1",
                           "--duration", "22")
    assert wait_for(lambda: len(out.having(" cpu ")) >= 5, timeout=90), out.lines
    # One busy loop per usable core, 8 s; each prints its own start and end (wall clock, as the samples' ts).
    burners = [procs.start([sys.executable, "-c", "import time; print(time.time(), flush=True)\n" + CPU_BURNER
                            + "print(time.time())", "8"], stdout=subprocess.PIPE) for _ in range(usable_cores())]
    stamps = [[float(x) for x in b.communicate(timeout=60)[0].split()] for b in burners]
    start, end = max(s[0] for s in stamps), min(s[1] for s in stamps)
    assert pub.wait(90) == 0, out.lines
    got = samples_in(kafka, topic)
    assert {s.host for s in got} == {url.split("//")[1].removesuffix("/metrics")} and len(got) == 22
    before = [s.cpu_pct for s in got if s.ts is not None and s.ts.timestamp() <= start]
    # A sample covers the second before its ts: only samples wholly inside the burn count as "during".
    during = [s.cpu_pct for s in got if s.ts is not None and start <= s.ts.timestamp() - 1.0 <= end - 1.0]
    mb, md = statistics.mean(before), statistics.mean(during)
    print(f"node_exporter CPU %: before {mb:.1f} (n={len(before)}), during burn {md:.1f} (n={len(during)})")
    assert len(before) >= 4 and len(during) >= 4, (before, during)
    # The machine is shared, so "before" is whatever the others run. Two busy loops on two cores leave no idle
    # time: during ≥ 85 %, and the burner closes at least half of the idle gap there was before (less 5 points).
    assert md >= 85 and md >= mb + 0.5 * (100 - mb) - 5, (before, during)


def test_silent_exporter_logged_once_others_flow_and_it_resumes(kafka: Broker, topic_factory, tmp_path: Path,
                                                               start_exporter: Callable[[int], str],
                                                               procs: Processes) -> None:
    topic = topic_factory("ne-down", partitions=1)
    up = start_exporter(free_port())
    late_port = free_port()  # nothing listens yet: connections are refused
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(f'max_backoff_s = 2\n[[hosts]]\nname = "up"\nurl = "{up}"\n')
    pub, out = publish_cli(procs, kafka, topic, "--run-id", "ne-down", "--hosts-file", str(hosts),
                           "--node-exporter", f"late=127.0.0.1:{late_port}", "--interval", "0.5", "--duration", "18")
    # Let the silent host fail for a while (at least 5 s of "up" samples), then start its exporter.
    assert wait_for(lambda: len(out.having(" up cpu")) >= 10, timeout=90), out.lines
    started = time.time()
    start_exporter(late_port)
    assert pub.wait(90) == 0, out.lines
    out.join()
    got = samples_in(kafka, topic)
    up_s, late_s = [s for s in got if s.host == "up"], [s for s in got if s.host == "late"]
    assert len(up_s) == 36  # a sample every tick, baseline scrape excluded: none lost during the outage
    assert len(late_s) >= 3 and all(s.ts is not None and s.ts.timestamp() > started for s in late_s)
    down, back = out.having("not answering"), out.having("answers again")
    assert len(down) == 1 and "late" in down[0] and "Connection refused" in down[0], out.lines
    assert len(back) == 1 and "late" in back[0], out.lines


def locust_cmd(locustfile: Path, target: str, kafka: Broker, topic: str, run_id: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(locustfile), "--host", target, "--perfwatch-bootstrap",
            kafka.bootstrap, "--perfwatch-run-id", run_id, "--perfwatch-interval", "2", "--perfwatch-topic", topic,
            "--loglevel", "INFO", *extra]


def phases(samples: list[Sample]) -> Counter[tuple[str, str]]:
    return Counter((s.host, s.tags.get("phase", "")) for s in samples)


def test_locust_run_streams_load_context_and_gets_verdicts(kafka: Broker, topic_factory, group_factory,
                                                          tiny_bundle: Path, tmp_path: Path, burn_service: str,
                                                          start_exporter: Callable[[int], str]) -> None:
    topics = make_topics(topic_factory)
    exporter = start_exporter(free_port())
    (lf := tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    res = subprocess.run(locust_cmd(lf, burn_service, kafka, topics.samples, "locust-local", "--headless", "-u", "4",
                                    "-r", "4", "-t", "22s", "--perfwatch-hosts", f"target={exporter}"),
                         cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "perfwatch: publishing target every 2.0s" in res.stderr
    got = samples_in(kafka, topics.samples)
    assert {s.run_id for s in got} == {"locust-local"} and {s.host for s in got} == {"target"}
    p = phases(got)
    assert p[("target", "start")] == 1 and p[("target", "stop")] == 1 and p[("target", "running")] >= 7, p
    assert max(s.rps or 0 for s in got) > 0 and all(s.tags["source"] == "locust" for s in got)
    assert any(s.p95_ms for s in got) and all(s.error_pct == 0 for s in got)  # the service never fails
    print(f"locust local: {len(got)} samples, rps max {max(s.rps or 0 for s in got):.1f}, "
          f"p95 max {max(s.p95_ms or 0 for s in got):.0f} ms")

    proc = StreamProcessor(ConsumerSettings(bootstrap_servers=kafka.bootstrap, bundle=tiny_bundle,
                                            group_id=group_factory(), **topics.settings()))
    run_in_thread(proc, max_idle_s=3).join(120)
    verdicts = [json.loads(v) for v in messages(kafka, topics.predictions)]
    assert len(verdicts) == len(got) and {v["run_id"] for v in verdicts} == {"locust-local"}
    assert sorted(v["rps"] or 0 for v in verdicts) == sorted(s.rps or 0 for s in got)  # the load rode along

    png = tmp_path / "report.png"
    rep = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", "report", "locust-local", "--out", str(png),
                          "--bootstrap-servers", kafka.bootstrap, "--samples-topic", topics.samples,
                          "--predictions-topic", topics.predictions, "--alerts-topic", topics.alerts],
                         cwd=ROOT, env=project_env(), capture_output=True, text=True, timeout=180, check=False)
    assert rep.returncode == 0, rep.stderr
    assert f"run locust-local: {len(got)} samples, {len(got)} verdicts" in rep.stdout and "hosts target" in rep.stdout
    assert png.stat().st_size > 10_000


def test_locust_master_and_worker_publish_once_per_interval(kafka: Broker, topic_factory, tmp_path: Path,
                                                            burn_service: str, procs: Processes) -> None:
    topic = topic_factory("locust-dist", partitions=1)
    (lf := tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    port = free_port()
    # Both get the perfwatch options (as a shared config would give them): only the master may publish.
    logs = {n: (tmp_path / f"{n}.log").open("w") for n in ("master", "worker")}
    master = procs.start(locust_cmd(lf, burn_service, kafka, topic, "locust-dist", "--master", "--headless",
                                    "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                                    "--expect-workers", "1", "-u", "4", "-r", "4", "-t", "22s"),
                         cwd=ROOT, env=project_env(), stdout=logs["master"], stderr=subprocess.STDOUT)
    worker = procs.start(locust_cmd(lf, burn_service, kafka, topic, "locust-dist", "--worker", "--master-host",
                                    "127.0.0.1", "--master-port", str(port)),
                         cwd=ROOT, env=project_env(), stdout=logs["worker"], stderr=subprocess.STDOUT)
    rc = master.wait(240)
    worker.wait(60)
    master_log, worker_log = ((tmp_path / f"{n}.log").read_text() for n in ("master", "worker"))
    assert rc == 0, master_log[-3000:]
    assert "perfwatch: publishing" in master_log and "perfwatch: publishing" not in worker_log
    got = samples_in(kafka, topic)
    me = socket.gethostname()  # no --perfwatch-hosts: the load generator itself (psutil), same name on both
    assert {s.host for s in got} == {me} and {s.run_id for s in got} == {"locust-dist"}
    p = phases(got)
    assert p[(me, "start")] == 1 and p[(me, "stop")] == 1, p
    ticks = [s for s in got if s.tags["phase"] != "stop"]
    assert 7 <= len(ticks) <= 22 // 2 + 1, len(ticks)  # one per 2 s interval of a 22 s run (+ start-up slack)
    gaps = [(b.ts - a.ts).total_seconds() for a, b in zip(ticks, ticks[1:], strict=False)]  # type: ignore[operator]
    assert min(gaps) > 1.0, gaps  # a second publisher would put samples between the ticks
    assert max(s.rps or 0 for s in got) > 0  # the master's stats aggregate the worker's requests
    print(f"locust master+worker: {len(got)} samples, gaps {min(gaps):.2f}-{max(gaps):.2f} s, "
          f"rps max {max(s.rps or 0 for s in got):.1f}; {json.dumps(dict(Counter(s.tags['phase'] for s in got)))}")
