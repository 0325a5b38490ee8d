"""What the user reads when something is wrong: one line that names the flag or variable and says what
to do; exit 2 for usage and input, 1 for failures at run time, 130 for Ctrl+C; never a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perfwatch.bench.harness import wait_until
from perfwatch.decoding import decode_sample
from perfwatch.kafkaio import end_offsets, read_topic
from perfwatch.sample import Sample
from tests.kafka_fixtures import Broker
from tests.streams import produce

pytestmark = pytest.mark.integration
NOBODY = "127.0.0.1:1"  # no broker listens here


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perfwatch.app.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd, env={**os.environ, "COLUMNS": "200", **(env or {})})


def one_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    """The error line, after checking the exit code and that no traceback was printed."""
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1, res.stderr
    return lines[0]


# -- item 4: validation errors name the flag or the env var -------------------------------------------------
def test_a_flag_out_of_range_is_named_with_its_bound(tmp_path: Path) -> None:
    line = one_error(cli("consume", "--batch-size", "0", "--bundle", str(tmp_path)), 2)
    assert "--batch-size must be ≥ 1 (got 0)" in line


def test_an_env_var_out_of_choices_is_named_as_the_env_var() -> None:
    line = one_error(cli("alerts", "--bootstrap-servers", NOBODY, env={"PERFWATCH_SECURITY_PROTOCOL": "TLS"}), 2)
    assert "PERFWATCH_SECURITY_PROTOCOL: TLS is not one of PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL" in line


def test_an_env_var_out_of_range_is_named_as_the_env_var(tmp_path: Path) -> None:
    line = one_error(cli("consume", "--bundle", str(tmp_path), env={"PERFWATCH_MAX_WAIT_MS": "0"}), 2)
    assert "PERFWATCH_MAX_WAIT_MS must be ≥ 1 (got 0)" in line


def test_an_empty_bootstrap_address_is_its_own_error() -> None:
    line = one_error(cli("alerts", "--bootstrap-servers", ""), 2)
    assert "--bootstrap-servers is empty" in line and "perfwatch broker start" in line
    line = one_error(cli("generate", env={"PERFWATCH_BOOTSTRAP_SERVERS": " "}), 2)
    assert "PERFWATCH_BOOTSTRAP_SERVERS is empty" in line


@pytest.mark.slow
def test_an_unreachable_broker_says_how_to_start_or_set_one() -> None:
    line = one_error(cli("alerts", "--bootstrap-servers", NOBODY), 1)
    assert f"cannot reach Kafka at {NOBODY}" in line
    assert "perfwatch broker start" in line and "--bootstrap-servers" in line and "PERFWATCH_BOOTSTRAP_SERVERS" in line


def test_a_missing_recording_is_named_before_any_broker_contact(tmp_path: Path) -> None:
    # With an unreachable broker, the broker check would take 10 s and exit 1: the file comes first.
    line = one_error(cli("replay", str(tmp_path / "nope.jsonl"), "--bootstrap-servers", NOBODY), 2)
    assert "nope.jsonl: no such recording" in line


def test_a_topic_replay_without_a_run_id_is_refused_before_any_broker_contact() -> None:
    line = one_error(cli("replay", "kafka:perf.samples", "--bootstrap-servers", NOBODY), 2)
    assert "--from-run" in line


def test_a_time_that_is_not_a_time_is_refused() -> None:
    res = cli("replay", "kafka:perf.samples", "--from-run", "r", "--start", "yesterday")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "argument --start: 'yesterday' is not a time like 2024-05-01T12:00:00Z" in res.stderr


def test_a_start_time_without_a_zone_is_utc(kafka: Broker, topic_factory) -> None:
    """Was a traceback (can't compare offset-naive and offset-aware datetimes)."""
    src, dst = topic_factory("naive-src"), topic_factory("naive-dst")
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    items = []
    for i in range(20):
        s = Sample(run_id="naive", host="h1", ts=t0 + timedelta(seconds=i), cpu_pct=10.0, mem_pct=10.0,
                   disk_pct=10.0, tags={"i": str(i)})
        items.append((s.key.encode(), s.model_dump_json().encode()))
    produce(kafka.conf, src, items)
    res = cli("replay", f"kafka:{src}", "--from-run", "naive", "--start", "2024-05-01T12:00:10", "--speed", "max",
              "--bootstrap-servers", kafka.bootstrap, "--samples-topic", dst, "--no-progress")
    assert res.returncode == 0, res.stderr
    sent = sorted(int(decode_sample(m.value()).tags["i"]) for m in read_topic(kafka.conf, dst, idle_s=2))
    assert sent == list(range(10, 20))


# -- item 5: values that make no sense are refused by argparse, exit 2 --------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (("generate", "--runs", "0"), "argument --runs: must be ≥ 1 (got 0)"),
    (("generate", "--hosts", "-2"), "argument --hosts: must be ≥ 1 (got -2)"),
    (("generate", "--samples", "many"), "argument --samples: 'many' is not a whole number"),
    (("generate", "--interval", "0"), "argument --interval: must be > 0 seconds (got 0)"),
    (("generate", "--speed", "0"), "argument --speed: must be > 0, or 'max' for as fast as possible (got 0)"),
    (("replay", "x.jsonl", "--speed", "-1"), "argument --speed: must be > 0"),
    (("replay", "x.jsonl", "--interval", "0"), "argument --interval: must be > 0 seconds"),
    (("publish", "--run-id", "r", "--interval", "0"), "argument --interval: must be > 0 seconds"),
    (("publish", "--run-id", "r", "--duration", "-5"), "argument --duration: must be > 0 seconds"),
    (("consume", "--until-idle", "0"), "argument --until-idle: must be > 0 seconds"),
    (("alerts", "--until-idle", "nan"), "argument --until-idle: must be > 0 seconds"),
    (("data", "--synthetic-runs", "-1"), "--synthetic-runs must be ≥ 0 (got -1)"),
    (("data", "--synthetic-runs", "many"), "argument --synthetic-runs: 'many' is not a whole number"),
    (("train", "--lr", "fast"), "argument --lr: 'fast' is not a number"),
    (("train", "--max-steps", "0"), "--max-steps must be ≥ 1 (got 0)"),
    (("export", "--min-int8-agreement", "2"), "--min-int8-agreement must be ≤ 1.0 (got 2.0)"),
    (("broker", "status", "--timeout", "0"), "argument --timeout: must be > 0 seconds"),
])
def test_a_value_that_makes_no_sense_is_refused(args: tuple[str, ...], message: str) -> None:
    res = cli(*args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr


# -- item 5: generate's run ids, Ctrl+C in replay ----------------------------------------------------------
def test_generate_prints_fresh_run_ids_each_time(kafka: Broker, topic_factory) -> None:
    topic = topic_factory("gen")
    ids = []
    for _ in range(2):
        res = cli("generate", "--runs", "2", "--hosts", "1", "--samples", "3", "--bootstrap-servers", kafka.bootstrap,
                  "--samples-topic", topic, "--no-progress")
        assert res.returncode == 0, res.stderr
        line = next(ln for ln in res.stderr.splitlines() if ln.startswith(("run id: ", "run ids: ")))
        ids.append(line.split(": ", 1)[1].split(", "))
    assert len(ids[0]) == len(ids[1]) == 2 and not set(ids[0]) & set(ids[1])
    on_topic = {decode_sample(m.value()).run_id for m in read_topic(kafka.conf, topic, idle_s=2)}
    assert on_topic == set(ids[0]) | set(ids[1])


def test_replaying_into_a_run_id_that_has_samples_warns_and_says_how_to_start_a_fresh_one(
        kafka: Broker, topic_factory, tmp_path: Path) -> None:
    topic = topic_factory("again")
    run = f"again-{uuid.uuid4().hex[:6]}"
    rec = tmp_path / "run.jsonl"
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    rec.write_text("".join(Sample(run_id=run, host=f"h{i % 3}", ts=t0 + timedelta(seconds=i), cpu_pct=50.0,
                                  mem_pct=40.0, disk_pct=30.0).model_dump_json() + "\n" for i in range(30)))

    def replay(*extra: str) -> subprocess.CompletedProcess[str]:
        res = cli("replay", str(rec), "--speed", "max", "--bootstrap-servers", kafka.bootstrap, "--samples-topic",
                  topic, "--no-progress", *extra)
        assert res.returncode == 0, res.stderr  # a warning, not a refusal
        return res

    assert "already has samples" not in replay().stderr
    warned = replay().stderr
    assert f"already has samples of run {run};" in warned, warned
    fresh = re.search(r"--run-id (\S+)", warned)
    assert fresh is not None and fresh.group(1).startswith(f"{run}-replay-")
    assert "already has samples" not in replay("--run-id", fresh.group(1)).stderr
    runs = Counter(decode_sample(m.value()).run_id for m in read_topic(kafka.conf, topic, idle_s=2))
    assert runs == {run: 60, fresh.group(1): 30}


@pytest.mark.slow
def test_ctrl_c_in_replay_says_what_was_sent(kafka: Broker, topic_factory, tmp_path: Path) -> None:
    topic = topic_factory("ctrl-c")
    rec = tmp_path / "run.jsonl"
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    rec.write_text("".join(Sample(run_id="slow", host="h1", ts=t0 + timedelta(seconds=i), cpu_pct=1.0, mem_pct=1.0,
                                  disk_pct=1.0).model_dump_json() + "\n" for i in range(600)))
    proc = subprocess.Popen([sys.executable, "-m", "perfwatch.app.cli", "replay", str(rec), "--speed", "5",
                             "--bootstrap-servers", kafka.bootstrap, "--samples-topic", topic, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The topic's end offsets, not a read: a fresh reader's join and first fetch can take longer than a short
    # read's max_s, and then it saw nothing until the 60 s deadline (this test took 63 s every time).
    assert wait_until(lambda: sum(end_offsets(kafka.conf, topic).values()) >= 5, 60)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    stopped = next(ln for ln in err.splitlines() if ln.startswith("stopped: sent "))
    sent = int(stopped.split()[2])
    assert 5 <= sent < 600 and stopped.endswith("of 600 samples before Ctrl+C")
    assert sum(1 for _ in read_topic(kafka.conf, topic, idle_s=2)) == sent  # all sent were delivered


# -- item 6: the local broker from anywhere ---------------------------------------------------------------
def test_broker_dir_is_in_the_users_cache_from_any_directory(tmp_path: Path) -> None:
    env = {"PERFWATCH_CACHE": str(tmp_path / "cache")}
    env_no_dir = {k: v for k, v in os.environ.items() if k != "PERFWATCH_BROKER_DIR"}
    for cwd in (tmp_path, Path("/")):
        res = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", "broker", "status"], capture_output=True,
                             text=True, cwd=cwd, env={**env_no_dir, **env}, timeout=60, check=False)
        assert res.returncode == 1  # not running
        assert json.loads(res.stdout)["data_dir"] == str(tmp_path / "cache" / "broker")


def test_broker_stop_with_nothing_to_stop_says_so(tmp_path: Path) -> None:
    line = one_error(cli("broker", "stop", "--data-dir", str(tmp_path / "none")), 1)
    assert f"no broker running in {tmp_path / 'none'}" in line
