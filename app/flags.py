"""Flags generated from a settings model: each field becomes ``--flag`` documenting its env var.

Only flags the user gave are passed on, so pydantic-settings applies: CLI flag > env > default.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


def _base_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return annotation


def add_settings_flags(parser: argparse.ArgumentParser, model: type[BaseSettings],
                       skip: tuple[str, ...] = ()) -> None:
    prefix = model.model_config.get("env_prefix", "")
    group = parser.add_argument_group(f"settings (env {prefix}<NAME> also works; a flag wins)")
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        env = f"{prefix}{name.upper()}"
        typ = _base_type(info.annotation)
        default = info.default
        shown = "unset" if default is None else ("***" if typ is SecretStr else default)
        help_text = f"{info.description or name} [env {env}; default {shown}]"
        dest = f"setting__{name}"
        if typ is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(typ) is typing.Literal:
            group.add_argument(flag, dest=dest, choices=[str(c) for c in typing.get_args(typ)], default=None,
                               help=help_text)
        else:
            conv = {int: int, float: float, Path: Path}.get(typ, str)
            group.add_argument(flag, dest=dest, type=conv, default=None, help=help_text)


def settings_from_args(model: type[S], args: argparse.Namespace, **extra: Any) -> S:
    given = {k.removeprefix("setting__"): v for k, v in vars(args).items()
             if k.startswith("setting__") and v is not None}
    given.update({k: v for k, v in extra.items() if v is not None})
    return model(**given)
