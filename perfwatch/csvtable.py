"""CSV records with the line each starts on, for every reader of user CSV files (one place for the rules).

The stdlib reader is fed physical lines one at a time (streamed), so ``line_num`` counts lines as an
editor does even when a quoted field spans several; blank records are skipped; the caller drops a
UTF-8 byte-order mark from the first line. A physical line given as None (too long to hold) turns its
record into None, for the caller to reject.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

Row = dict[str | None, str | None]


def csv_records(lines: Iterable[str | None]) -> Iterator[tuple[int, list[str] | None]]:
    too_long: list[int] = []
    count = 0

    def feed() -> Iterator[str]:
        nonlocal count
        for line in lines:
            count += 1
            if line is None:
                too_long.append(count)
            yield (line or "") + "\n"

    reader = csv.reader(feed())
    start = 1
    for record in reader:
        n, start = start, reader.line_num + 1
        if too_long and too_long[-1] >= n:
            too_long.clear()
            yield n, None
        elif any(cell.strip() for cell in record):
            yield n, record


def csv_table(lines: Iterable[str | None]) -> tuple[list[str], Iterator[tuple[int, Row | None]]]:
    """The header (empty for an empty file) and the rows as dicts, by csv.DictReader's rules: extra
    cells joined under the key None, missing cells None."""
    records = csv_records(lines)
    first = next(records, None)
    header = [h.strip() for h in first[1]] if first and first[1] is not None else []

    def rows() -> Iterator[tuple[int, Row | None]]:
        for n, record in records:
            if record is None:
                yield n, None
                continue
            row: Row = dict(zip(header, record, strict=False))
            if len(record) > len(header):
                row[None] = ",".join(record[len(header):])
            for k in header[len(record):]:
                row[k] = None
            yield n, row

    return header, rows()
