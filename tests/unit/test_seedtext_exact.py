"""Seed-text numbers are exact (issue #21.4) and parsing is linear and bounded (issue #15.4)."""

from __future__ import annotations

import math
import resource
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfwatch.decoding import decode_sample
from perfwatch.errors import ContractError
from perfwatch.labels import label_for
from perfwatch.seedtext import MAX_LINE_CHARS, parse_line
from perfwatch.template import sample_text


def test_memory_at_a_threshold_is_not_bent_by_floats() -> None:
    """1.8 GB free of 12 GB is exactly 85 % used: HighLoad with CPU 82, as the JSON path says."""
    s = parse_line("CPU Load: 82%, Memory: 1.8GB/12GB, Disk: 10%").sample
    assert sample_text(s) == "cpu 82 mem 85 disk 10" and sample_text(s, "v2") == " 82 85 10"
    assert label_for(s.cpu_pct, s.mem_pct, s.disk_pct) == label_for(82, 85, 10) == "HighLoad"


def test_percent_text_just_below_an_integer_keeps_its_floor() -> None:
    s = parse_line("CPU Load: 84.99999999999999999%, Memory: 10%, Disk: 10%").sample
    assert sample_text(s) == "cpu 84 mem 10 disk 10"


_GB = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("4096"), places=3, allow_nan=False,
                  allow_infinity=False)


@given(total=_GB, share=st.fractions(min_value=0, max_value=1, max_denominator=10_000))
def test_parsed_whole_percent_is_the_floor_of_the_exact_used_share(total: Decimal, share: Fraction) -> None:
    free = (Decimal(share.numerator) * total / Decimal(share.denominator)).quantize(Decimal("0.001"),
                                                                                     rounding="ROUND_DOWN")
    for text in (f"Memory: {free}GB/{total}GB", f"Memory: {free} GB of {total} GB"):
        s = parse_line(f"CPU Load: 10%, {text}, Disk: 10%").sample
        used = 100 * (Fraction(total) - Fraction(free)) / Fraction(total)
        assert math.floor(s.mem_pct) == math.floor(used)
        assert sample_text(s).split()[3] == str(math.floor(used))


@given(total=_GB, used=st.fractions(min_value=0, max_value=100, max_denominator=1000))
def test_setting_total_is_exact_as_well(total: Decimal, used: Fraction) -> None:
    free = Fraction(total) * (100 - used) / 100
    text = f"{free.numerator / free.denominator!r}"
    exact_free = Fraction(Decimal(text))
    if exact_free > Fraction(total):
        return
    s = parse_line(f"CPU Load: 10%, Memory: {text}GB, Disk: 10%", mem_total_gb=float(total)).sample
    assert math.floor(s.mem_pct) == math.floor(100 * (Fraction(total) - exact_free) / Fraction(total))


@pytest.mark.parametrize("memory", ["4/16GB", "4 of 16 GB", "4GB/16", "4% of 16GB", "4 / 16"])
def test_a_memory_total_needs_units_on_both_numbers(memory: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_line(f"CPU Load: 10%, Memory: {memory}, Disk: 10%")
    assert err.value.reason == "unit_missing"


def test_a_line_over_the_limit_is_oversized() -> None:
    line = "CPU Load: 1%, Memory: 1%, Disk: 1%" + " " * MAX_LINE_CHARS
    with pytest.raises(ContractError) as err:
        parse_line(line)
    assert err.value.reason == "oversized"


_PATHOLOGICAL = """
import sys
from perfwatch.errors import ContractError
from perfwatch.decoding import decode_sample
from perfwatch.seedtext import MAX_LINE_CHARS, parse_line
heads = ["", "CPU Load: 1", "CPU Load: 1%, Memory: 1", "CPU Load: 1%, Memory: 1GB", "CPU Load: 1%, Memory: 1%, Disk: 1"]
reasons = []
for size in (64 * 1024, MAX_LINE_CHARS):
    for head in heads:
        for tail in ("x", "", ",", "%"):
            for fill in (" ", "\\t", "1", "1 "):
                line = (head + fill * size)[: size - len(tail)] + tail
                for _ in range(5 if size == MAX_LINE_CHARS else 1):
                    try:
                        parse_line(line)
                    except ContractError as exc:
                        reasons.append(exc.reason)
                if size > MAX_LINE_CHARS:
                    try:
                        decode_sample(line.encode(), max_bytes=1 << 20)
                    except ContractError as exc:
                        assert exc.reason in ("oversized", "unparseable_text"), exc
print(len(reasons), sorted(set(reasons)))
"""


def _cpu_limit() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (10, 10))


def test_pathological_lines_are_parsed_in_linear_time() -> None:
    """64 KB lines built to make a backtracking pattern go quadratic, and many at the length limit.

    No timed assertion: the parse runs in a subprocess limited to 10 s of CPU (RLIMIT_CPU, so a busy
    machine does not count), which the old pattern exceeded by far (a 4 KB line took ~1 s, a 64 KB one
    minutes); the linear parser needs under a second of CPU for all of them, imports included."""
    res = subprocess.run([sys.executable, "-c", _PATHOLOGICAL], capture_output=True, text=True, timeout=600,
                         check=False, preexec_fn=_cpu_limit)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "oversized" in res.stdout


def test_decode_sample_refuses_an_oversized_text_line_with_the_reason() -> None:
    with pytest.raises(ContractError) as err:
        decode_sample(b"CPU Load: 1%, Memory: 1" + b" " * 16_000 + b"x")
    assert err.value.reason == "oversized"

