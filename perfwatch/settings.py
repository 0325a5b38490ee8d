"""Settings shared by every command: env ``PERFWATCH_…``, overridden by CLI flags (init kwargs win)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from perfwatch.errors import InputError
from perfwatch.kafkalog import kafka_logging

SAMPLES_TOPIC = "perf.samples"
PREDICTIONS_TOPIC = "perf.predictions"
ALERTS_TOPIC = "perf.alerts"
DLQ_TOPIC = "perf.samples.dlq"
BUNDLE_DIR = Path("artifacts/bundle")

Guarantee = Literal["at-least-once", "exactly-once"]


def usable_cores() -> int:
    """Cores this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def inference_plan(workers: int = 0, threads: int = 0, cores: int | None = None) -> tuple[int, int]:
    """(batches in inference at once, ORT threads each); 0 = choose. Two single-threaded runs side by side
    beat one two-threaded run on 2 cores (measured +6-15 % at batch 128, more at small batches): no
    fork/join of threads inside every operator."""
    cores = cores or usable_cores()
    workers = workers or (2 if cores >= 2 else 1)
    return workers, threads or max(1, cores // workers)


class KafkaSettings(BaseSettings):
    """Connection and topic names: what producer, consumer and alerts commands all need."""

    model_config = SettingsConfigDict(env_prefix="PERFWATCH_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    samples_topic: str = Field(SAMPLES_TOPIC, description="topic of incoming samples")
    predictions_topic: str = Field(PREDICTIONS_TOPIC, description="topic of every verdict")
    alerts_topic: str = Field(ALERTS_TOPIC, description="topic of HighLoad alerts")
    dlq_topic: str = Field(DLQ_TOPIC, description="dead-letter topic for bad input")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka security.protocol"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism"
    )
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged)")
    ssl_ca_location: Path | None = Field(None, description="CA file for SSL")

    @field_validator("bootstrap_servers")
    @classmethod
    def _bootstrap_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty: give the broker's HOST:PORT (`perfwatch broker start` prints the local one's)")
        return value.strip()

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka's dotted keys for the connection settings; its log lines go through ``logging``
        (perfwatch.kafkalog), collapsed to one line per broker state change."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            **kafka_logging(),
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location is not None:
            conf["ssl.ca.location"] = str(self.ssl_ca_location)
        return conf


class SampleSettings(BaseSettings):
    """How a record of the samples topic becomes a Sample: the consumer's rules, which every reader of that
    topic (replay from a topic, the report) applies too, so that they all see the samples it accepts."""

    model_config = SettingsConfigDict(env_prefix="PERFWATCH_", frozen=True, extra="ignore")

    max_message_bytes: int = Field(64 * 1024, ge=64, description="larger samples go to the DLQ")
    mem_total_gb: float | None = Field(None, gt=0, description="total memory for seed lines given in GB")


class ConsumerSettings(SampleSettings, KafkaSettings):
    """The stream processor's settings (``perfwatch consume --help`` lists each with its env var)."""

    bundle: Path = Field(BUNDLE_DIR, description="model bundle directory")
    precision: Literal["fp32", "int8"] = Field("int8", description="which model file of the bundle to run")
    group_id: str = Field("perfwatch-consumer", description="consumer group id")
    batch_size: int = Field(64, ge=1, le=4096, description="most samples per micro-batch")
    max_wait_ms: int = Field(50, ge=1, le=60_000, description="longest wait to fill a micro-batch")
    inference_workers: int = Field(0, ge=0, le=64,
                                   description="micro-batches in inference at once (0 = 2 on 2+ cores, else 1)")
    threads: int = Field(0, ge=0, le=256, description="ONNX Runtime intra-op threads per batch (0 = cores / workers)")
    guarantee: Guarantee = Field("at-least-once", description="delivery guarantee")
    emit_predictions: bool = Field(True, description="publish every verdict to the predictions topic")
    hysteresis: str | None = Field(None, description="'N/M': fire after N of the last M samples are HighLoad")
    changelog_topic: str | None = Field(
        None, description="compacted topic backing the hysteresis state (default: <samples topic>.alert-state)")
    state_expiry_s: float = Field(3600.0, gt=0, description="forget a key's hysteresis window after this many "
                                  "seconds (wall clock) without a sample; a firing key resolves first")
    checkpoint_ms: int = Field(100, ge=0, le=5000, description="how often input offsets are committed: exactly-once, "
                               "the longest a transaction stays open collecting micro-batches (the most a "
                               "read_committed reader waits); at-least-once, between asynchronous commits of "
                               "acknowledged batches (0 = every batch, synchronously)")
    checkpoint_inputs: int = Field(10_000, ge=1, description="exactly-once: a transaction closes once it holds "
                                   "this many inputs (the batches held while one commits join the next whole, "
                                   "so it may hold more); more held than this pauses the partitions")
    response_cache: bool = Field(True, description="reuse the model's answer for an input seen before (a 13 MB table "
                                 "over all 1,030,301 inputs)")
    max_pending_batches: int = Field(16, ge=1, description="at-least-once: pause partitions when more batches await "
                                     "acks (a pause drops what the client already fetched for them: too low a bound "
                                     "throttles)")
    gc_gen0: int = Field(10_000, ge=0, description="while the loop runs: Python's startup heap frozen and a young "
                         "garbage collection every N allocations (0 = Python's defaults; else at least 700)")
    output_attempts: int = Field(3, ge=1, le=20,
                                 description="tries of an input's output before the input goes to the DLQ")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus port (off when unset)")
    transactional_id: str | None = Field(
        None, description="exactly-once transactional.id (default: perfwatch-<group>-<instance-id>)")
    instance_id: str | None = Field(
        None, description="this member's stable name, e.g. a pod name (default: the host name); a restarted "
                          "member with the same name fences its stuck predecessor at once")
    liveness_s: float = Field(120.0, gt=0, description="/healthz fails when the loop has made no progress for "
                                                       "this long while work waits")
    auto_offset_reset: Literal["earliest", "latest"] = Field("earliest", description="where a new group starts")

    @field_validator("gc_gen0")
    @classmethod
    def _gc_gen0(cls, v: int) -> int:
        if 0 < v < 700:
            raise ValueError("0 (Python's defaults) or at least 700 (Python's own threshold): a lower one only "
                             "collects more often")
        return v

    def state_changelog_topic(self) -> str:
        return self.changelog_topic or f"{self.samples_topic}.alert-state"

    def inference_plan(self) -> tuple[int, int]:
        """(batches in inference at once, ORT threads each)."""
        return inference_plan(self.inference_workers, self.threads)


class NotifySettings(KafkaSettings):
    """The alert sinks' settings (``perfwatch notify --help``): Alertmanager and/or a webhook."""

    alertmanager: str | None = Field(None, description="Alertmanager base URL, e.g. http://127.0.0.1:9093")
    webhook: str | None = Field(None, description="URL that gets each alert transition as JSON")
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for the X-Perfwatch-Signature header (environment only)")
    webhook_text: bool = Field(False, description="add a Slack-compatible 'text' field to webhook posts")
    # Not group_id: PERFWATCH_GROUP_ID is the stream processor's, and the two must never share a group.
    notify_group_id: str = Field("perfwatch-notify", description="consumer group id of the notifiers")
    alertname: str = Field("PerfwatchHighLoad", description="Alertmanager alertname label")
    severity: str = Field("critical", description="severity label")
    labels: str | None = Field(None, description="static labels added to every alert: 'k=v,k2=v2'")
    generator_url: str | None = Field(None, description="link shown with each alert (e.g. a Grafana dashboard)")
    resend_interval_s: float = Field(60.0, gt=0, description="re-send firing alerts this often")
    quiet_s: float = Field(300.0, gt=0, description="without hysteresis: resolve after this long with no HighLoad")
    resolved_keep_s: float = Field(300.0, ge=0, description="keep re-sending resolved alerts this long")
    max_backoff_s: float = Field(30.0, gt=0, description="longest wait between delivery retries")
    http_timeout_s: float = Field(10.0, gt=0, description="timeout of one HTTP request")
    restore_hours: float = Field(24.0, ge=0, description="on assignment, rebuild state from this much history")
    auto_offset_reset: Literal["earliest", "latest"] = Field("latest", description="where a new group starts")

    def check(self) -> None:
        """Raise a one-line ValueError for settings that cannot work (before touching Kafka)."""
        if not self.alertmanager and not self.webhook:
            raise InputError("notify needs --alertmanager URL and/or --webhook URL")
        self.static_labels()

    def static_labels(self) -> dict[str, str]:
        """``labels`` parsed; a malformed pair is a ValueError naming it."""
        out: dict[str, str] = {}
        for pair in (self.labels or "").split(","):
            if not pair.strip():
                continue
            name, sep, value = pair.partition("=")
            if not sep or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name.strip()):
                raise InputError(f"label {pair.strip()!r}: expected name=value with a Prometheus label name")
            out[name.strip()] = value.strip()
        return out
