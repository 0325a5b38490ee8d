"""Reading recordings: a spreadsheet's byte-order mark, quoted multi-line fields and their line
numbers (#21.10), and timestamps out of order (#21.6). Files only, no broker."""

from __future__ import annotations

import codecs
from pathlib import Path

from perfwatch.producer.ordering import Recording
from perfwatch.producer.recordings import Rejected, read_csv, read_jsonl, read_source
from perfwatch.sample import Sample


def _csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode())
    return path


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Spreadsheet programs save UTF-8 CSV with a BOM; the first header became '\\ufeffcpu_pct'."""
    p = _csv(tmp_path / "run.csv", "cpu_pct,mem_pct,disk_pct,run_id,host\n10,20,30,r,h1\n40,50,60,r,h2\n", bom=True)
    items = list(read_csv(p))
    assert [type(i) for i in items] == [Sample, Sample], items
    assert [(s.cpu_pct, s.host) for s in items if isinstance(s, Sample)] == [(10.0, "h1"), (40.0, "h2")]


def test_quoted_multiline_fields_keep_line_numbers(tmp_path: Path) -> None:
    text = ('cpu_pct,mem_pct,disk_pct,run_id,host,note\n'         # line 1
            '10,20,30,r,h1,"first\nsecond\nthird"\n'               # lines 2-4
            '\n'                                                    # line 5 (blank)
            '40,50,60,r,h2,plain\n'                                 # line 6
            '500,50,60,r,h3,"bad, and\non two lines"\n'            # lines 7-8
            '70,80,90,r,h4,ok\n')                                   # line 9
    items = list(read_csv(_csv(tmp_path / "run.csv", text)))
    assert [i.host if isinstance(i, Sample) else None for i in items] == ["h1", "h2", None, "h4"]
    bad = [i for i in items if isinstance(i, Rejected)]
    assert [b.origin for b in bad] == [f"{tmp_path / 'run.csv'}:7"]
    assert bad[0].reason == "out_of_range"


def test_windows_line_endings_and_bom_in_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "run.jsonl"
    p.write_bytes(codecs.BOM_UTF8 + b'{"cpu_pct":1,"mem_pct":2,"disk_pct":3}\r\r\n\r\n{"cpu_pct":500,"mem_pct":2,'
                  b'"disk_pct":3}\r\n')
    items = list(read_jsonl(p))
    assert isinstance(items[0], Sample)
    assert isinstance(items[1], Rejected) and items[1].origin.endswith(":3")


def test_a_recording_ordered_by_host_is_replayed_in_time_order(tmp_path: Path) -> None:
    """Host h1's whole run, then host h2's: the replay must interleave them by time, each host in order."""
    rows = ["ts,cpu_pct,mem_pct,disk_pct,run_id,host"]
    rows += [f"2026-01-01T00:00:{s:02d}Z,{s},1,1,r,h1" for s in range(0, 10, 2)]
    rows += [f"2026-01-01T00:00:{s:02d}Z,{s},1,1,r,h2" for s in range(1, 10, 2)]
    rows += ["2026-01-01T00:00:04Z,99,1,1,r,h2"]  # same time as an h1 sample: stays after h2's earlier ones
    with Recording(read_source(str(_csv(tmp_path / "run.csv", "\n".join(rows) + "\n")))) as rec:
        items = list(rec)
    samples = [i for i in items if isinstance(i, Sample)]
    assert [s.ts for s in samples] == sorted(s.ts for s in samples)  # type: ignore[type-var]
    assert [(int(s.cpu_pct), s.host) for s in samples][:6] == [
        (0, "h1"), (1, "h2"), (2, "h1"), (3, "h2"), (4, "h1"), (99, "h2")]
    for host in ("h1", "h2"):
        mine = [s for s in samples if s.host == host]
        assert len(mine) == (5 if host == "h1" else 6)


def test_a_recording_larger_than_a_chunk_is_merged_in_time_order(tmp_path: Path) -> None:
    """Spilled, sorted chunks merged back: the same order as sorting everything in memory."""
    rows = ["ts,cpu_pct,mem_pct,disk_pct,run_id,host"]
    for host in range(7):  # each host's run, then the next; hosts start at different times
        rows += [f"2026-01-01T00:{(i * 7 + host * 3) // 60 % 60:02d}:{(i * 7 + host * 3) % 60:02d}Z,"
                 f"{i % 100},1,1,r,h{host}" for i in range(300)]
    rows.insert(50, "not,a,sample,row,at,all")
    path = _csv(tmp_path / "run.csv", "\n".join(rows) + "\n")
    expected = sorted((i for i in read_csv(path) if isinstance(i, Sample)), key=lambda s: s.ts)  # type: ignore[arg-type,return-value]
    with Recording(read_source(str(path)), chunk=97) as rec:
        got = list(rec.samples())
        assert (rec.n_samples, rec.n_rejected) == (2100, 1)
        assert list(tmp_path.iterdir()) == [path]  # spilled to the system's temp dir, not beside the file
    assert got == expected
