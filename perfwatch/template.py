"""The text a sample becomes for the model: versioned templates, short because every token costs.

Metrics are floored to whole percents: all policy thresholds are integers, so flooring keeps every
label exactly while giving the tokenizer one token per number.

- ``v1`` ``cpu 91 mem 40 disk 12``: 6 tokens, three of them constant words.
- ``v2`` `` 91 40 12``: 3 tokens; the position says which metric a number is. Half the tokens, about
  twice the samples per core at the same model shape (measured in ``perfwatch bench``).

Training renders the current version; a bundle records the version it was trained on and the runtime
renders that one, so a bundle made for an older version keeps working.
"""

from __future__ import annotations

import math
from typing import Final, Protocol

_FORMATS: Final[dict[str, str]] = {
    "v1": "cpu {} mem {} disk {}",
    # The leading space makes every number the same token (" 91") whichever metric it is, as in v1: what the
    # model learns about 91 for cpu it knows for mem and disk (without it, tiny missed HighLoad at "0 95 7").
    "v2": " {} {} {}",
}
TEMPLATE_VERSION: Final = "v1"  # what training writes now
# The versions render() can produce: a bundle made for any other is refused, never run silently.
KNOWN_TEMPLATE_VERSIONS: Final = frozenset(_FORMATS)


# Whole percents 0..100 per metric: the model can only ever see SIDE³ distinct inputs (the response cache's
# table and the exhaustive policy check both range over them).
SIDE: Final = 101
INPUTS: Final = SIDE**3


class HasMetrics(Protocol):
    cpu_pct: float
    mem_pct: float
    disk_pct: float


def render(cpu_pct: float, mem_pct: float, disk_pct: float, version: str = TEMPLATE_VERSION) -> str:
    """The model input for the given metrics: `` 91 40 12`` (v2) or ``cpu 91 mem 40 disk 12`` (v1)."""
    return _FORMATS[version].format(math.floor(cpu_pct), math.floor(mem_pct), math.floor(disk_pct))


def sample_text(sample: HasMetrics, version: str = TEMPLATE_VERSION) -> str:
    return render(sample.cpu_pct, sample.mem_pct, sample.disk_pct, version)
