"""`perfwatch COMMAND --help` reads like the field's tools: kinds as metavars, one help line per option
with its default, a description per command, only the settings a command uses. No broker, no process."""

from __future__ import annotations

import argparse
import os
import re
import shlex
from pathlib import Path

import pytest

from perfwatch.app.cli import build_parser, main
from perfwatch.app.flags import settings_from_args
from perfwatch.errors import UsageError
from perfwatch.model_settings import ExportSettings, FixedTrainSettings, TrainSettings


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = _commands()


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description(name: str) -> None:
    assert (COMMANDS[name].description or "").strip(), f"{name} has no description"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_no_metavar_leaks_internals(name: str) -> None:
    p = COMMANDS[name]
    text = p.format_help()
    assert "SETTING__" not in text and "setting__" not in text, text
    for a in _options(p):
        assert (a.help or "").strip(), f"{name} {a.option_strings} has no help"
        assert a.help is not None and "\n" not in a.help
        if a.nargs != 0:  # flags that take a value show the value's kind, not the dest
            shown = p._get_formatter()._metavar_formatter(a, a.dest.upper())(1)[0]
            assert a.dest.upper() != shown or a.choices, f"{name} {a.option_strings} metavar is its dest"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_defaults_are_shown_in_one_style(name: str) -> None:
    for a in _options(COMMANDS[name]):
        assert "[default" not in (a.help or ""), f"{name} {a.option_strings}: old default style: {a.help}"
        if a.default not in (None, False, argparse.SUPPRESS) and a.default != [] and a.nargs != 0:
            assert "(default: " in (a.help or ""), f"{name} {a.option_strings}: default not shown: {a.help}"


def _flags(name: str) -> set[str]:
    return {s for a in _options(COMMANDS[name]) for s in a.option_strings}


def test_each_command_lists_only_the_topics_it_uses() -> None:
    assert {"--samples-topic"} == {f for f in _flags("publish") if f.endswith("-topic")}
    assert {"--alerts-topic"} == {f for f in _flags("alerts") if f.endswith("-topic")}
    assert {"--samples-topic", "--predictions-topic", "--alerts-topic", "--dlq-topic"} <= _flags("consume")
    assert {"--samples-topic", "--predictions-topic", "--alerts-topic"} == {
        f for f in _flags("report") if f.endswith("-topic")}


def test_kafka_flags_have_kinds_as_metavars() -> None:
    text = COMMANDS["publish"].format_help()
    assert "--bootstrap-servers HOST:PORT" in text
    assert re.search(r"--interval S\b", text)
    assert re.search(r"--batch-size N\b", COMMANDS["consume"].format_help())
    assert re.search(r"--max-wait-ms MS\b", COMMANDS["consume"].format_help())
    assert re.search(r"--bundle PATH\b", COMMANDS["consume"].format_help())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert re.match(r"perfwatch \d+\.\d+", capsys.readouterr().out)


# -- train and export: flags generated from TrainSettings / ExportSettings ----------------------------------
# Every flag users and the README type today; generation must never rename or drop one.
TRAIN_FLAGS = {"--out", "--base-model", "--from-scratch", "--seed", "--synthetic-runs", "--seed-lines", "--coverage",
               "--data", "--labels", "--mem-total-gb", "--batch-size", "--lr", "--max-steps", "--max-minutes",
               "--eval-every", "--patience", "--threads", "--resume", "--report-to"}
DATA_FLAGS = {"--out", "--seed", "--synthetic-runs", "--seed-lines", "--coverage", "--data", "--labels",
              "--mem-total-gb"}
EXPORT_FLAGS = {"--out", "--precision", "--min-int8-agreement", "--parity-samples", "--policy-check",
                "--policy-check-sample", "--policy-check-max-seconds", "--allow-missed-highload"}


@pytest.fixture
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("PERFWATCH_DATA_", "PERFWATCH_TRAIN_", "PERFWATCH_EXPORT_")):
            monkeypatch.delenv(name)
    return monkeypatch


def test_train_and_export_keep_every_flag() -> None:
    assert DATA_FLAGS <= _flags("data"), sorted(DATA_FLAGS - _flags("data"))
    assert TRAIN_FLAGS <= _flags("train"), sorted(TRAIN_FLAGS - _flags("train"))
    assert EXPORT_FLAGS <= _flags("export"), sorted(EXPORT_FLAGS - _flags("export"))
    positionals = [a.metavar for a in COMMANDS["export"]._actions if not a.option_strings]
    assert positionals == ["CHECKPOINT"]


def test_train_and_export_flags_show_kinds() -> None:
    train, export = COMMANDS["train"].format_help(), COMMANDS["export"].format_help()
    for shown in ("--out PATH", "--data PATH", "--lr RATE", "--max-minutes MIN", "--mem-total-gb GB",
                  "--base-model NAME|PATH", "--labels A,B,…", "--max-steps N"):
        assert re.search(re.escape(shown) + r"(\s|$)", train), shown
    for shown in ("--min-int8-agreement FRACTION", "--policy-check-max-seconds S", "--parity-samples N"):
        assert re.search(re.escape(shown) + r"(\s|$)", export), shown


def _parsed(command: str, *argv: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *argv])


def test_train_setting_precedence_flag_over_env_over_default(no_model_env: pytest.MonkeyPatch) -> None:
    assert settings_from_args(TrainSettings, _parsed("train")).max_steps == 3000
    no_model_env.setenv("PERFWATCH_TRAIN_MAX_STEPS", "9")
    assert settings_from_args(TrainSettings, _parsed("train")).max_steps == 9
    assert settings_from_args(TrainSettings, _parsed("train", "--max-steps", "5")).max_steps == 5
    # A repeatable flag collects every value; the env var holds a JSON list.
    no_model_env.setenv("PERFWATCH_TRAIN_DATA", '["env.csv"]')
    assert settings_from_args(TrainSettings, _parsed("train")).data == (Path("env.csv"),)
    s = settings_from_args(TrainSettings, _parsed("train", "--data", "a.csv", "--data", "b.txt"))
    assert s.data == (Path("a.csv"), Path("b.txt"))


def test_an_env_list_that_is_not_json_is_one_line_not_a_traceback(no_model_env: pytest.MonkeyPatch) -> None:
    no_model_env.setenv("PERFWATCH_TRAIN_DATA", "mine.csv")
    with pytest.raises(UsageError, match="PERFWATCH_TRAIN_DATA"):
        settings_from_args(TrainSettings, _parsed("train"))


def test_the_demo_bench_and_tests_train_what_their_code_says(no_model_env: pytest.MonkeyPatch) -> None:
    """A user's variables for `perfwatch train` neither change nor break the trainings the code asks for."""
    no_model_env.setenv("PERFWATCH_TRAIN_MAX_STEPS", "9")
    no_model_env.setenv("PERFWATCH_TRAIN_BASE_MODEL", "gpt2")
    s = FixedTrainSettings(from_scratch="tiny")
    assert (s.max_steps, s.base_model, s.from_scratch) == (3000, "distilgpt2", "tiny")
    assert settings_from_args(TrainSettings, _parsed("train")).max_steps == 9


def test_export_setting_precedence_flag_over_env_over_default(no_model_env: pytest.MonkeyPatch) -> None:
    def export(*argv: str) -> ExportSettings:
        a = _parsed("export", *argv)
        return settings_from_args(ExportSettings, a, checkpoint=a.checkpoint)

    assert (export().parity_samples, export().checkpoint) == (2000, Path("artifacts/train/model"))
    no_model_env.setenv("PERFWATCH_EXPORT_PARITY_SAMPLES", "300")
    no_model_env.setenv("PERFWATCH_EXPORT_CHECKPOINT", "env/model")
    assert (export().parity_samples, export().checkpoint) == (300, Path("env/model"))
    s = export("flag/model", "--parity-samples", "50")
    assert (s.parity_samples, s.checkpoint) == (50, Path("flag/model"))
    # Other commands' variables with the same field name are not read (the consumer's PERFWATCH_PRECISION).
    no_model_env.setenv("PERFWATCH_PRECISION", "fp32")
    assert export().precision == "both"


def test_from_scratch_and_base_model_are_refused_together_in_one_line(no_model_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError) as exc:
        settings_from_args(TrainSettings, _parsed("train", "--from-scratch", "tiny", "--base-model", "x"))
    message = str(exc.value)
    assert "--from-scratch" in message and "--base-model" in message and "\n" not in message
    assert main(["train", "--from-scratch", "tiny", "--base-model", "x"]) == 2  # before any training starts
    assert settings_from_args(TrainSettings, _parsed("train", "--from-scratch", "tiny")).from_scratch == "tiny"


def test_a_refused_train_or_export_value_names_its_flag_or_env(no_model_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match=r"^--max-steps must be ≥ 1 \(got 0\)$"):
        settings_from_args(TrainSettings, _parsed("train", "--max-steps", "0"))
    no_model_env.setenv("PERFWATCH_EXPORT_MIN_INT8_AGREEMENT", "2")
    with pytest.raises(UsageError, match=r"^PERFWATCH_EXPORT_MIN_INT8_AGREEMENT must be ≤ 1"):
        settings_from_args(ExportSettings, _parsed("export"))


def _documented(command: str) -> list[list[str]]:
    """``perfwatch COMMAND ARGS`` as README.md and docs/ write it (ARGS: flags and paths only)."""
    root = Path(__file__).resolve().parents[2]
    texts = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    found = re.findall(rf"perfwatch {command}((?: +(?:--?[\w-]+|[\w./-]+))*)",
                       "\n".join(p.read_text() for p in texts if p.is_file()))
    return [shlex.split(args) for args in found]


@pytest.mark.parametrize("command", ["train", "export"])
def test_documented_invocations_still_parse(command: str) -> None:
    documented = _documented(command)
    assert any(documented), f"no `perfwatch {command} …` with arguments found in README.md or docs/"
    for argv in documented:
        build_parser().parse_args([command, *argv])  # argparse exits 2 on an unknown or renamed flag


def test_a_model_cards_reproduce_line_parses_back_to_the_settings_it_was_trained_with(
        no_model_env: pytest.MonkeyPatch) -> None:
    from perfwatch.training.card import reproduce_command

    trained = TrainSettings(from_scratch="distilgpt2", template="v2", coverage=60_000, max_minutes=12.3456789,
                            lr=1.2345678e-4, data=(Path("my runs/a.csv"), Path("b.jsonl")), labels="Idle,Busy",
                            seed_lines=0, eval_sample=0, out=Path("elsewhere"), threads=1)
    line = reproduce_command(trained.model_dump(mode="json"))
    assert line.startswith("perfwatch train --from-scratch=distilgpt2") and "--template=v2" in line
    learned = set(TrainSettings.model_fields) - {"out", "threads", "resume", "report_to"}

    def parsed(line: str) -> TrainSettings:
        return settings_from_args(TrainSettings, _parsed(*shlex.split(line)[1:]))

    assert parsed(line).model_dump(include=learned) == trained.model_dump(include=learned)
    # Defaults are written out too (a later default must not change what the line trains), and a learning
    # rate left to the shape is written as the one used.
    by_shape = reproduce_command(TrainSettings(from_scratch="tiny").model_dump(mode="json"), lr=3e-3)
    assert "--template=v1" in by_shape and parsed(by_shape).lr == 3e-3
