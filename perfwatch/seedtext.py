"""Seed-style text lines: ``CPU Load: 90%, Memory: 95%, Disk: 95%`` with an optional ``-> Label: X``.

Memory given in GB is *free* memory; it becomes ``mem_pct`` with the host's total memory, taken from
the line (``Memory: 1GB/16GB`` or ``Memory: 1GB of 16GB``) or from the caller (a setting). Without a
total the line is rejected with reason ``gb_without_total``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from perfwatch.errors import ContractError
from perfwatch.sample import DEFAULT_HOST, DEFAULT_RUN_ID, Sample, validate_obj

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf|infinity)"
_LINE = re.compile(
    rf"""^\s*cpu(?:\s+load)?\s*:\s*(?P<cpu>{_NUM})\s*%?\s*,
        \s*mem(?:ory)?\s*:\s*(?P<mem>{_NUM})\s*(?P<unit>%|gb)?
        (?:\s*(?:/|of)\s*(?P<total>{_NUM})\s*gb)?\s*,
        \s*disk(?:\s+usage)?\s*:\s*(?P<disk>{_NUM})\s*%?\s*
        (?:->\s*label\s*:\s*(?P<label>[A-Za-z_]+)\s*)?$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class SeedLine:
    sample: Sample
    label: str | None


def _num(text: str, field: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ContractError("not_finite", f"{field}: {text} is not a finite number")
    return value


def parse_line(
    line: str,
    *,
    mem_total_gb: float | None = None,
    run_id: str = DEFAULT_RUN_ID,
    host: str = DEFAULT_HOST,
) -> SeedLine:
    """Parse one seed-style line into a validated Sample (and its label, when present)."""
    m = _LINE.match(line)
    if m is None:
        raise ContractError("unparseable_text", f"not a sample line: {line[:80]!r}")
    cpu = _num(m["cpu"], "cpu_pct")
    disk = _num(m["disk"], "disk_pct")
    mem = _num(m["mem"], "mem_pct")
    mem_free_gb: float | None = None
    if (m["unit"] or "%").lower() == "gb":
        total = _num(m["total"], "mem_total_gb") if m["total"] else mem_total_gb
        if total is None:
            raise ContractError("gb_without_total", "memory given in GB without the host's total memory")
        if total <= 0 or mem < 0 or mem > total:
            raise ContractError("out_of_range", f"free memory {mem}GB not within total {total}GB")
        mem_free_gb = mem
        mem = 100.0 * (total - mem) / total
    sample = validate_obj(
        {"cpu_pct": cpu, "mem_pct": mem, "disk_pct": disk, "mem_free_gb": mem_free_gb,
         "run_id": run_id, "host": host}
    )
    return SeedLine(sample=sample, label=m["label"])


def _fmt(x: float) -> str:
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def format_line(cpu_pct: float, mem_pct: float, disk_pct: float, label: str | None = None) -> str:
    """The inverse of parse_line for percent memory (used by tests and data export)."""
    line = f"CPU Load: {_fmt(cpu_pct)}%, Memory: {_fmt(mem_pct)}%, Disk: {_fmt(disk_pct)}%"
    return f"{line} -> Label: {label}" if label else line
