"""The model input templates: every version a setting offers renders, and keeps the label."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from perfwatch.labels import label_for
from perfwatch.template import render

pct = st.floats(min_value=0, max_value=100, allow_nan=False)


def test_every_template_a_setting_offers_is_one_the_runtime_renders() -> None:
    from typing import get_args

    from perfwatch.model_settings import TemplateVersion
    from perfwatch.template import KNOWN_TEMPLATE_VERSIONS

    assert set(get_args(TemplateVersion)) == set(KNOWN_TEMPLATE_VERSIONS)



@given(cpu=pct, mem=pct, disk=pct)
def test_v2_is_v1_without_the_names(cpu: float, mem: float, disk: float) -> None:
    c, m, d = (int(x) for x in render(cpu, mem, disk, "v2").split())
    assert label_for(c, m, d) == label_for(cpu, mem, disk)
    assert render(cpu, mem, disk, "v1").split()[1::2] == render(cpu, mem, disk, "v2").split()
    assert render(cpu, mem, disk, "v2").startswith(" ")  # every number the same token, whichever metric
