"""Settings shared by every command: env ``PERFWATCH_…``, overridden by CLI flags (init kwargs win)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from perfwatch.kafkalog import kafka_logging

SAMPLES_TOPIC = "perf.samples"
PREDICTIONS_TOPIC = "perf.predictions"
ALERTS_TOPIC = "perf.alerts"
DLQ_TOPIC = "perf.samples.dlq"

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


class ConsumerSettings(KafkaSettings):
    """The stream processor's settings (``perfwatch consume --help`` lists each with its env var)."""

    bundle: Path = Field(Path("artifacts/bundle"), description="model bundle directory")
    precision: Literal["fp32", "int8"] = Field("int8", description="which model file of the bundle to run")
    group_id: str = Field("perfwatch-consumer", description="consumer group id")
    batch_size: int = Field(64, ge=1, le=4096, description="most samples per micro-batch")
    max_wait_ms: int = Field(50, ge=1, le=60_000, description="longest wait to fill a micro-batch")
    inference_workers: int = Field(0, ge=0, le=64,
                                   description="micro-batches in inference at once (0 = 2 on 2+ cores, else 1)")
    threads: int = Field(0, ge=0, le=256, description="ONNX Runtime intra-op threads per batch (0 = cores / workers)")
    guarantee: Guarantee = Field("at-least-once", description="delivery guarantee")
    emit_predictions: bool = Field(True, description="publish every verdict to the predictions topic")
    max_message_bytes: int = Field(64 * 1024, ge=64, description="larger samples go to the DLQ")
    mem_total_gb: float | None = Field(None, gt=0, description="total memory for seed lines given in GB")
    hysteresis: str | None = Field(None, description="'N/M': fire after N of the last M samples are HighLoad")
    max_pending_batches: int = Field(4, ge=1, description="pause partitions when more batches await acks")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus port (off when unset)")
    transactional_id: str | None = Field(None, description="exactly-once transactional.id (default: group-host-pid)")
    auto_offset_reset: Literal["earliest", "latest"] = Field("earliest", description="where a new group starts")

    def inference_plan(self) -> tuple[int, int]:
        """(batches in inference at once, ORT threads each)."""
        return inference_plan(self.inference_workers, self.threads)
