"""Seed-style text lines: ``CPU Load: 90%, Memory: 95%, Disk: 95%`` with an optional ``-> Label: X``.

Memory given in GB is *free* memory; it becomes ``mem_pct`` with the host's total memory, taken from
the line (``Memory: 1GB/16GB`` or ``Memory: 1GB of 16GB``) or from the caller (a setting). Without a
total the line is rejected with reason ``gb_without_total``; a total needs GB on both numbers
(``4/16GB`` is ``unit_missing``, not 4 %).

Numbers are exact: the text's decimals are read as fractions, so ``1.8GB/12GB`` is 85 % used, not
84.999…, and the float a percent becomes never crosses a whole percent (the template floors them).
Parsing is linear in the line and bounded: a line over ``MAX_LINE_CHARS`` is ``oversized``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from perfwatch.errors import ContractError
from perfwatch.sample import DEFAULT_HOST, DEFAULT_RUN_ID, Sample, validate_obj

MAX_LINE_CHARS = 1024  # seed lines are ~60 characters; anything longer is not one
_MAX_EXPONENT = 400  # beyond any float (1e±308); bounds the exact arithmetic on hostile exponents

# The pattern runs on the line with whitespace collapsed to single spaces, so every " ?" matches at
# most one character and no two quantifiers can trade a run of characters between them: the old
# pattern's adjacent \s* made a 16 KB line of spaces take seconds (issue #15.4).
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|[-+]?(?:nan|inf|infinity)"
_S = r"\ ?"  # one optional space (the pattern is VERBOSE, where a bare space means nothing)
_LINE = re.compile(
    rf"""cpu(?:\ load)?{_S}:{_S}(?P<cpu>{_NUM}){_S}%?{_S},
        {_S}mem(?:ory)?{_S}:{_S}(?P<mem>{_NUM}){_S}(?P<unit>%|gb)?
        (?:{_S}(?:/|of){_S}(?P<total>{_NUM}){_S}(?P<total_unit>%|gb)?)?{_S},
        {_S}disk(?:\ usage)?{_S}:{_S}(?P<disk>{_NUM}){_S}%?
        (?:{_S}->{_S}label{_S}:{_S}(?P<label>[a-z_]+))?""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class SeedLine:
    sample: Sample
    label: str | None


def _exact(text: str, field: str) -> Fraction:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ContractError("unparseable_text", f"{field}: {text!r} is not a number") from None
    if not d.is_finite():
        raise ContractError("not_finite", f"{field}: {text} is not a finite number")
    if d and abs(d.adjusted()) > _MAX_EXPONENT:
        raise ContractError("out_of_range", f"{field}: {text} is out of range")
    return Fraction(d)


def _float(q: Fraction) -> float:
    """The nearest float, except never one that floors to a higher whole number than ``q`` does."""
    f = float(q)
    if Fraction(f) > q and math.floor(f) > math.floor(q):
        f = math.nextafter(f, -math.inf)
    return f


def parse_line(
    line: str,
    *,
    mem_total_gb: float | None = None,
    run_id: str = DEFAULT_RUN_ID,
    host: str = DEFAULT_HOST,
) -> SeedLine:
    """Parse one seed-style line into a validated Sample (and its label, when present)."""
    if len(line) > MAX_LINE_CHARS:
        raise ContractError("oversized", f"a text line of {len(line)} characters > limit {MAX_LINE_CHARS}")
    m = _LINE.fullmatch(" ".join(line.split()))
    if m is None:
        raise ContractError("unparseable_text", f"not a sample line: {line[:80]!r}")
    cpu = _exact(m["cpu"], "cpu_pct")
    disk = _exact(m["disk"], "disk_pct")
    mem = _exact(m["mem"], "mem_pct")
    unit = (m["unit"] or "").lower()
    mem_free_gb: Fraction | None = None
    if m["total"] is not None and (unit != "gb" or (m["total_unit"] or "").lower() != "gb"):
        raise ContractError("unit_missing", f"memory {m['mem']}{m['unit'] or ''} of {m['total']}"
                            f"{m['total_unit'] or ''}: give both in GB (free/total, e.g. 1.8GB/12GB)")
    if unit == "gb":
        if m["total"] is not None:
            total = _exact(m["total"], "mem_total_gb")
        elif mem_total_gb is not None:
            total = Fraction(Decimal(repr(float(mem_total_gb))))  # the setting's decimal text, exactly
        else:
            raise ContractError("gb_without_total", "memory given in GB without the host's total memory")
        if total <= 0 or mem < 0 or mem > total:
            raise ContractError("out_of_range", f"free memory {m['mem']}GB not within total {total}GB")
        mem_free_gb = mem
        mem = 100 * (total - mem) / total
    sample = validate_obj(
        {"cpu_pct": _float(cpu), "mem_pct": _float(mem), "disk_pct": _float(disk),
         "mem_free_gb": None if mem_free_gb is None else float(mem_free_gb), "run_id": run_id, "host": host}
    )
    return SeedLine(sample=sample, label=m["label"])


def _fmt(x: float) -> str:
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def format_line(cpu_pct: float, mem_pct: float, disk_pct: float, label: str | None = None) -> str:
    """The inverse of parse_line for percent memory (used by tests and data export)."""
    line = f"CPU Load: {_fmt(cpu_pct)}%, Memory: {_fmt(mem_pct)}%, Disk: {_fmt(disk_pct)}%"
    return f"{line} -> Label: {label}" if label else line
