"""The text a sample becomes for the model: one versioned template, short because every token costs.

Metrics are floored to whole percents: all policy thresholds are integers, so flooring keeps every
label exactly while giving the tokenizer one token per number.
"""

from __future__ import annotations

import math
from typing import Final, Protocol

TEMPLATE_VERSION: Final = "v1"
# The versions render() can produce: a bundle made for any other is refused, never run silently.
KNOWN_TEMPLATE_VERSIONS: Final = frozenset({TEMPLATE_VERSION})


class HasMetrics(Protocol):
    cpu_pct: float
    mem_pct: float
    disk_pct: float


def render(cpu_pct: float, mem_pct: float, disk_pct: float) -> str:
    """``cpu 91 mem 40 disk 12`` for the given metrics (template v1)."""
    return f"cpu {math.floor(cpu_pct)} mem {math.floor(mem_pct)} disk {math.floor(disk_pct)}"


def sample_text(sample: HasMetrics) -> str:
    return render(sample.cpu_pct, sample.mem_pct, sample.disk_pct)
