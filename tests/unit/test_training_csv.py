"""Labelled CSV for training: a spreadsheet's byte-order mark, and line numbers past quoted
multi-line fields and blank lines (#21.10)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from perfwatch.training.data import DataError, load_labelled


def test_a_labelled_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_bytes(codecs.BOM_UTF8 + b"label,cpu_pct,mem_pct,disk_pct\r\nHighLoad,95,10,10\r\nLowLoad,5,5,5\r\n")
    assert [e.label for e in load_labelled(p)] == ["HighLoad", "LowLoad"]


def test_a_bad_row_after_a_multiline_field_names_its_own_line(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text('label,cpu_pct,mem_pct,disk_pct,note\n'   # 1
                 'LowLoad,5,5,5,"two\nlines"\n'             # 2-3
                 '\n'                                       # 4
                 'LowLoad,500,5,5,x\n')                     # 5
    with pytest.raises(DataError, match=r"l\.csv:5: "):
        load_labelled(p)
