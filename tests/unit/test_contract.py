"""Property tests of the sample model, the seed-text parser and the template."""

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfwatch.decoding import decode_sample
from perfwatch.errors import ContractError
from perfwatch.labels import label_for
from perfwatch.sample import Sample, validate_json
from perfwatch.seedtext import format_line, parse_line
from perfwatch.template import render

pct = st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False)
name = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@given(cpu=pct, mem=pct, disk=pct, run_id=name, host=name)
def test_valid_json_sample_round_trips(cpu: float, mem: float, disk: float, run_id: str, host: str) -> None:
    s = Sample(cpu_pct=cpu, mem_pct=mem, disk_pct=disk, run_id=run_id, host=host, ts=datetime.now(UTC))
    back = decode_sample(s.model_dump_json().encode())
    assert back == s


@given(cpu=pct, mem=pct, disk=pct)
def test_seed_line_round_trips(cpu: float, mem: float, disk: float) -> None:
    line = format_line(cpu, mem, disk, label=label_for(cpu, mem, disk))
    parsed = parse_line(line)
    assert (parsed.sample.cpu_pct, parsed.sample.mem_pct, parsed.sample.disk_pct) == (cpu, mem, disk)
    assert parsed.label == label_for(cpu, mem, disk)


@given(cpu=pct, mem=pct, disk=pct)
def test_template_floor_keeps_the_label(cpu: float, mem: float, disk: float) -> None:
    c, m, d = (int(x) for x in render(cpu, mem, disk).split()[1::2])
    assert label_for(c, m, d) == label_for(cpu, mem, disk)


@given(bad=st.sampled_from([math.nan, math.inf, -math.inf]), field=st.sampled_from(["cpu_pct", "mem_pct", "disk_pct"]))
def test_non_finite_rejected(bad: float, field: str) -> None:
    obj = {"cpu_pct": 1.0, "mem_pct": 1.0, "disk_pct": 1.0, field: bad}
    raw = json.dumps(obj)  # writes NaN / Infinity, as sloppy producers do
    with pytest.raises(ContractError) as err:
        decode_sample(raw.encode())
    assert err.value.reason in {"not_finite", "bad_json"}


@given(value=st.one_of(st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
                       st.floats(min_value=100.000001, allow_nan=False, allow_infinity=False)),
       field=st.sampled_from(["cpu_pct", "mem_pct", "disk_pct"]))
def test_out_of_range_rejected(value: float, field: str) -> None:
    obj = {"cpu_pct": 1.0, "mem_pct": 1.0, "disk_pct": 1.0, field: value}
    with pytest.raises(ContractError) as err:
        validate_json(json.dumps(obj))
    assert err.value.reason == "out_of_range"


@pytest.mark.parametrize("field", ["cpu_pct", "mem_pct", "disk_pct"])
def test_missing_field(field: str) -> None:
    obj = {"cpu_pct": 1.0, "mem_pct": 1.0, "disk_pct": 1.0}
    del obj[field]
    with pytest.raises(ContractError) as err:
        validate_json(json.dumps(obj))
    assert err.value.reason == "missing_field"
    assert field in err.value.message


@pytest.mark.parametrize("value", ['"90"', "true", "null", "[1]", '{"a": 1}'])
def test_wrong_type(value: str) -> None:
    with pytest.raises(ContractError) as err:
        validate_json(f'{{"cpu_pct": {value}, "mem_pct": 1, "disk_pct": 1}}')
    assert err.value.reason == "wrong_type"


@given(junk=st.text(max_size=200))
def test_junk_text_is_rejected_with_a_reason_or_parses(junk: str) -> None:
    try:
        s = decode_sample(junk.encode())
    except ContractError as exc:
        assert exc.reason
        assert str(exc).startswith(exc.reason)
    else:
        assert 0 <= s.cpu_pct <= 100


@given(blob=st.binary(max_size=300))
def test_any_bytes_either_decode_or_raise_contract_error(blob: bytes) -> None:
    try:
        decode_sample(blob)
    except ContractError as exc:
        assert exc.reason in {"empty", "binary", "not_utf8", "bad_json", "unparseable_text", "wrong_type",
                              "missing_field", "not_finite", "out_of_range", "gb_without_total",
                              "unit_missing", "oversized"}


def test_gb_memory_needs_a_total() -> None:
    with pytest.raises(ContractError) as err:
        parse_line("CPU Load: 50%, Memory: 1GB, Disk: 10%")
    assert err.value.reason == "gb_without_total"
    with_setting = parse_line("CPU Load: 50%, Memory: 1GB, Disk: 10%", mem_total_gb=4)
    assert with_setting.sample.mem_pct == pytest.approx(75.0)
    assert with_setting.sample.mem_free_gb == 1
    in_line = parse_line("CPU Load: 50%, Memory: 2GB/16GB, Disk: 10%")
    assert in_line.sample.mem_pct == pytest.approx(87.5)


def test_gb_free_above_total_rejected() -> None:
    with pytest.raises(ContractError) as err:
        parse_line("CPU Load: 50%, Memory: 20GB of 16GB, Disk: 10%")
    assert err.value.reason == "out_of_range"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "empty"), (b"\x00\x01\x02", "binary"), (b"\xff\xfe", "not_utf8"), (b"{not json", "bad_json"),
    (b"x" * 70_000, "oversized"), (b"CPU Load: nan%, Memory: 1%, Disk: 1%", "not_finite"),
    (b"CPU Load: 120%, Memory: 1%, Disk: 1%", "out_of_range"), (b"hello", "unparseable_text"),
])
def test_decode_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as err:
        decode_sample(raw)
    assert err.value.reason == reason


def test_text_line_takes_identity_from_key_and_ts_from_receive_time() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    s = decode_sample(b"CPU Load: 91%, Memory: 10%, Disk: 10%", key=b"run-7/web-1", received_at=at)
    assert (s.run_id, s.host, s.ts) == ("run-7", "web-1", at)


def test_unknown_fields_are_ignored_but_context_is_kept() -> None:
    s = validate_json('{"cpu_pct": 1, "mem_pct": 2, "disk_pct": 3, "rps": 120.5, "p95_ms": 80, "x": 1}')
    assert (s.rps, s.p95_ms) == (120.5, 80)
