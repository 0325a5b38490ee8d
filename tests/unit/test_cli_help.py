"""`perfwatch COMMAND --help` reads like the field's tools: kinds as metavars, one help line per option
with its default, a description per command, only the settings a command uses. No broker, no process."""

from __future__ import annotations

import argparse
import re

import pytest

from perfwatch.app.cli import build_parser, main


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
