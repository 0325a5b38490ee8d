"""Settings of `perfwatch train` and `perfwatch export`: env ``PERFWATCH_TRAIN_…`` / ``PERFWATCH_EXPORT_…``,
overridden by CLI flags (init kwargs win). Their own prefixes, so that ``--out``, ``--threads`` or
``--precision`` of one command never read another command's variable.

Defaults are given as ``default=``: mypy reads these models as dataclasses and knows only that keyword."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from perfwatch.labels import LABELS
from perfwatch.settings import BUNDLE_DIR
from perfwatch.template import TEMPLATE_VERSION

TRAIN_DIR = Path("artifacts/train")
DATA_DIR = Path("artifacts/data")

Shape = Literal["distilgpt2", "small", "tiny"]
Scope = Literal["auto", "cube", "surface"]
TemplateVersion = Literal["v1", "v2"]  # perfwatch/template.py renders each (a unit test keeps the two in step)


def label_set(value: str | None) -> list[str] | None:
    """``--labels`` as the data builder takes it: unset → the built-in three, 'auto' → None (from the data)."""
    if value is None:
        return list(LABELS)
    return None if value == "auto" else [v.strip() for v in value.split(",") if v.strip()]


class DataSettings(BaseSettings):
    """What `perfwatch data` builds; `perfwatch train` builds the same dataset from the same fields."""

    model_config = SettingsConfigDict(env_prefix="PERFWATCH_DATA_", frozen=True, extra="ignore")

    out: Path = Field(default=DATA_DIR, description="folder for train/val/test JSONL")
    seed: int = Field(default=7, description="random seed")
    synthetic_runs: int = Field(default=400, ge=0, description="synthetic runs, 3 hosts × 60 samples each")
    seed_lines: int = Field(default=4000, ge=0, description="seed-style text lines in the data")
    coverage: int = Field(
        default=30_000, ge=0, description="examples drawn over the label policy's regions, weighted near thresholds")
    data: tuple[Path, ...] = Field(default=(), description="your labelled CSV/JSONL/text file")
    labels: str | None = Field(
        default=None,
        description="comma-separated label set, or 'auto' to take it from the data; unset: the built-in three")
    mem_total_gb: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                       description="total memory for text lines that give memory in GB")
    template: TemplateVersion = Field(
        default=TEMPLATE_VERSION,
        description="model input text: v1 'cpu 91 mem 40 disk 12' (6 tokens), v2 ' 91 40 12' (3 tokens)")

    def label_set(self) -> list[str] | None:
        """The labels to train on; None: the ones the data has."""
        return label_set(self.labels)


class TrainSettings(DataSettings):
    """What `perfwatch train` does (``perfwatch train --help`` lists each with its env var)."""

    model_config = SettingsConfigDict(env_prefix="PERFWATCH_TRAIN_", frozen=True, extra="ignore")

    out: Path = Field(default=TRAIN_DIR, description="output folder")
    base_model: str = Field(default="distilgpt2", description="hub id or local checkpoint dir")
    from_scratch: Shape | None = Field(
        default=None, description="same architecture, random init, tokenizer trained on the data; no hub needed")
    batch_size: int = Field(default=64, ge=1, description="examples per step")
    lr: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="peak learning rate; unset: by shape")
    max_steps: int = Field(default=3000, ge=1, description="most training steps")
    max_minutes: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                      description="stop after this much training time (the learning rate "
                                                  "decays to 0 by then)")
    eval_every: int = Field(default=100, ge=1, description="steps between evaluations")
    eval_sample: int = Field(default=2000, ge=0,
                             description="validation examples scored at each evaluation while training (0: all); "
                                         "the final report scores every split whole")
    patience: int = Field(default=6, ge=1, description="evaluations without improvement before stopping")
    threads: int | None = Field(default=None, ge=1, description="torch threads; unset: all cores")
    resume: bool = Field(default=False, description="continue from OUT/state")
    report_to: Literal["none", "wandb"] = Field(default="none", description="experiment tracking, wandb offline")

    @model_validator(mode="after")
    def _one_source(self) -> TrainSettings:
        # base_model has a default, so "given" means set by a flag, the env or a caller.
        if self.from_scratch is not None and "base_model" in self.model_fields_set:
            raise ValueError("--from-scratch and --base-model exclude each other: a model trained from scratch has "
                             "no base (give one of them, by flag or env)")
        return self


class FixedTrainSettings(TrainSettings):
    """TrainSettings from the caller's arguments alone: the demo, the bench and the tests train what their
    code says, whatever PERFWATCH_TRAIN_* variables the user has set for `perfwatch train`."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class ExportSettings(BaseSettings):
    """What `perfwatch export` does (``perfwatch export --help`` lists each with its env var)."""

    model_config = SettingsConfigDict(env_prefix="PERFWATCH_EXPORT_", frozen=True, extra="ignore")

    # A positional argument of `perfwatch export`, not a flag.
    checkpoint: Path = Field(default=TRAIN_DIR / "model", description="checkpoint dir from `perfwatch train`")
    out: Path = Field(default=BUNDLE_DIR, description="bundle dir")
    precision: Literal["both", "fp32", "int8"] = Field(default="both", description="which model files to write")
    min_int8_agreement: float = Field(default=0.995, ge=0, le=1, allow_inf_nan=False,
                                      description="refuse an int8 model whose labels agree with fp32 less often")
    parity_samples: int = Field(default=2000, ge=1, description="samples for the parity check")
    policy_check: Scope = Field(
        default="auto", description="inputs to check against the label policy before writing: the whole cube, the "
                                    "HighLoad surface ±3 + a uniform sample, or auto: the cube when it takes ≤ "
                                    "--policy-check-max-seconds")
    policy_check_sample: int = Field(default=20_000, ge=0, description="uniform inputs added to the surface")
    policy_check_max_seconds: float = Field(default=150.0, gt=0, allow_inf_nan=False,
                                            description="longest whole-cube check that auto still chooses")
    allow_missed_highload: bool = Field(
        default=False,
        description="write the bundle even when it misses HighLoad where the policy fires, with a warning")

    def precisions(self) -> tuple[str, ...]:
        """The model files to write, int8's last (it is checked against fp32)."""
        return ("fp32", "int8") if self.precision == "both" else (self.precision,)
