"""Subcommands of the stages. Each handler imports its stage inside the function (lazily)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

ALL: list[Callable[[argparse._SubParsersAction], None]] = []
