"""Flags generated from a settings model: each field becomes ``--flag KIND`` with one help line that names
its default and env var.

Only flags the user gave are passed on, so pydantic-settings applies: CLI flag > env > default. A value
that the model refuses becomes one line naming the flag (or the env var, when the value came from there).
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsError

from perfwatch.errors import UsageError

S = TypeVar("S", bound=BaseSettings)
DEST_PREFIX = "setting__"

# The kind of value a field takes, where its name or type does not say it plainly ("Model.field" for a
# name that means different things in different models).
METAVARS = {
    "bootstrap_servers": "HOST:PORT[,…]",
    "sasl_username": "USER",
    "sasl_password": "PASSWORD",
    "hysteresis": "N/M",
    "metrics_port": "PORT",
    "transactional_id": "ID",
    "group_id": "NAME",
    "base_model": "NAME|PATH",
    "DataSettings.labels": "A,B,…",
    "lr": "RATE",
}
SUFFIXES = (("_ms", "MS"), ("_seconds", "S"), ("_s", "S"), ("_minutes", "MIN"), ("_gb", "GB"), ("_bytes", "BYTES"),
            ("_topic", "TOPIC"))


def _base_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return annotation


def _item_type(typ: Any) -> Any | None:
    """The element type of a list or tuple field (a repeatable flag), else None."""
    if typing.get_origin(typ) in (list, tuple):
        return typing.get_args(typ)[0]
    return None


def _is_fraction(info: FieldInfo | None) -> bool:
    """Bounded by ge=0 and le=1."""
    meta = info.metadata if info else []
    return any(getattr(m, "ge", None) == 0 for m in meta) and any(getattr(m, "le", None) == 1 for m in meta)


def metavar(name: str, typ: Any, info: FieldInfo | None = None, model: type[BaseSettings] | None = None) -> str:
    """HOST:PORT, PATH, MS, S, MIN, GB, N, X, FRACTION, TOPIC, NAME: what to type, not where it is stored."""
    owners = [c.__name__ for c in model.__mro__] if model else []  # a subclass shares its base's fields
    for key in [f"{owner}.{name}" for owner in owners] + [name]:
        if key in METAVARS:
            return METAVARS[key]
    if typ is Path:
        return "PATH"
    for suffix, kind in SUFFIXES:
        if name.endswith(suffix):
            return kind
    if typ is float and _is_fraction(info):
        return "FRACTION"
    return {int: "N", float: "X"}.get(typ, "NAME")


def env_name(model: type[BaseSettings], name: str) -> str:
    return f"{model.model_config.get('env_prefix', '')}{name.upper()}"


def add_settings_flags(parser: argparse.ArgumentParser, model: type[BaseSettings],
                       skip: tuple[str, ...] = (), title: str | None = None) -> None:
    """One flag per field of ``model`` (but ``skip``: positionals and the like, which the command adds)."""
    prefix = model.model_config.get("env_prefix", "")
    group = parser.add_argument_group(title or "settings", f"each also read from env {prefix}<NAME>; a flag wins")
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        typ = _base_type(info.annotation)
        item = _item_type(typ)
        default = info.default
        shown = "***" if typ is SecretStr and default is not None else default
        if typ is bool:
            shown = "on" if default else "off"
        env = f"env {env_name(model, name)}"
        if item is not None:  # empty by default; the env var holds a JSON list
            tail = f"repeatable; {env} as a JSON list"
        else:
            tail = env if default is None else f"default: {shown}; {env}"
        help_text = f"{info.description or name} ({tail})"
        dest = DEST_PREFIX + name
        if typ is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(typ) is typing.Literal:
            group.add_argument(flag, dest=dest, choices=[str(c) for c in typing.get_args(typ)], default=None,
                               help=help_text)
        elif item is not None:
            group.add_argument(flag, dest=dest, action="append", type=_converter(item), default=None,
                               help=help_text, metavar=metavar(name, item, info, model))
        else:
            group.add_argument(flag, dest=dest, type=_converter(typ), default=None, help=help_text,
                               metavar=metavar(name, typ, info, model))


def number(kind: type[int] | type[float], value: str) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {'a whole number' if kind is int else 'a number'}") \
            from None


def _whole(value: str) -> int:
    return int(number(int, value))


def _real(value: str) -> float:
    return float(number(float, value))


def _converter(typ: Any) -> Any:
    """Parses the value's kind (`'many' is not a whole number`); the model checks its range."""
    return {int: _whole, float: _real, Path: Path}.get(typ, str)


def explain(model: type[BaseSettings], exc: ValidationError, from_flag: set[str]) -> str:
    """One line per refused value: `--batch-size must be ≥ 1 (got 0)`, `PERFWATCH_X: TLS is not one of …`."""
    lines = []
    for err in exc.errors():
        if not err["loc"]:  # a model validator: its message names the flags itself
            lines.append(str((err.get("ctx") or {}).get("error", err["msg"])))
            continue
        field = str(err["loc"][0])
        who = "--" + field.replace("_", "-") if field in from_flag else env_name(model, field)
        got = err.get("input")
        ctx = err.get("ctx") or {}
        kind = err["type"]
        bounds = {"greater_than_equal": ("≥", "ge"), "less_than_equal": ("≤", "le"),
                  "greater_than": (">", "gt"), "less_than": ("<", "lt")}
        if kind in bounds:
            sign, key = bounds[kind]
            lines.append(f"{who} must be {sign} {ctx.get(key)} (got {got})")
        elif kind == "literal_error":
            lines.append(f"{who}: {got} is not one of {ctx.get('expected', '').replace(chr(39), '')}")
        elif kind == "value_error":
            lines.append(f"{who} {str(ctx.get('error', err['msg']))}")
        else:
            lines.append(f"{who}: {err['msg'].lower()} (got {got!r})")
    return "; ".join(lines)


def settings_from_args(model: type[S], args: argparse.Namespace, **extra: Any) -> S:
    given = {k.removeprefix(DEST_PREFIX): v for k, v in vars(args).items()
             if k.startswith(DEST_PREFIX) and v is not None}
    given.update({k: v for k, v in extra.items() if v is not None})
    try:
        return model(**given)
    except ValidationError as exc:
        raise UsageError(explain(model, exc, set(given))) from None
    except SettingsError as exc:  # an env value pydantic-settings cannot even parse, e.g. a list that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        who = env_name(model, field.group(1)) if field else "an environment variable"
        raise UsageError(f"{who}: cannot be read ({exc.__cause__ or exc}); a list is JSON, e.g. '[\"a.csv\"]'") \
            from None
