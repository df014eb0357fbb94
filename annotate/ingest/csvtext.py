"""Decoding researcher-supplied CSV files: BOMs, encodings, size limits, line numbers.

Spreadsheets save CSV as UTF-8 (with or without a BOM), UTF-16, or a Windows code page.
`csv_decode` tries them in a fixed order and says in a note when it had to fall back, so a
researcher can check accented query words; `csv_records` yields each record with the line
number it starts on, so every problem in a report points at a line of the file.
"""

from __future__ import annotations

import _csv
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

MAX_CSV_BYTES = 50 * 1024 * 1024

CSV_EMPTY = "the CSV file is empty"
CSV_TOO_LARGE = "the CSV file is {size} bytes; the limit is {limit} bytes"
CSV_UNREADABLE = "the CSV file cannot be read as CSV: {detail} (line {line})"
CSV_NO_HEADER = "the CSV file has no header row"
CSV_DUPLICATE_COLUMN = "the header names column {name!r} twice"
CSV_EMPTY_COLUMN = "the header has an empty column name (column {index})"
NOTE_FALLBACK = (
    "the file is not valid UTF-8; it was read as {encoding}. Check that accented characters "
    "look right, or save the file as UTF-8."
)
NOTE_UTF16 = "the file is UTF-16; it was read as such."


class CsvError(ValueError):
    """The whole file cannot be used; the message says why."""


@dataclass(frozen=True)
class DecodedCsv:
    text: str
    encoding: str
    notes: tuple[str, ...]


def csv_decode(data: bytes, *, max_bytes: int = MAX_CSV_BYTES) -> DecodedCsv:
    """Decode CSV bytes: UTF-8 (BOM optional), UTF-16 with a BOM, else cp1252, else latin-1."""
    if len(data) > max_bytes:
        raise CsvError(CSV_TOO_LARGE.format(size=len(data), limit=max_bytes))
    if not data.strip():
        raise CsvError(CSV_EMPTY)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return DecodedCsv(data.decode("utf-16"), "utf-16", (NOTE_UTF16,))
        except UnicodeDecodeError:
            pass
    try:
        return DecodedCsv(data.decode("utf-8-sig"), "utf-8", ())
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
        encoding = "cp1252"
    except UnicodeDecodeError:
        # latin-1 maps every byte, so decoding never fails past this point.
        text = data.decode("latin-1")
        encoding = "latin-1"
    return DecodedCsv(text, encoding, (NOTE_FALLBACK.format(encoding=encoding),))


@dataclass(frozen=True)
class CsvRecord:
    line: int
    values: dict[str, str]
    extra_fields: int  # fields beyond the header (a row with too many fields)


def csv_header(text: str) -> tuple[list[str], Iterator[CsvRecord]]:
    """Parse the header (names stripped and lower-cased) and return it with the record iterator.

    Raises CsvError for whole-file problems: no header, duplicate or empty names, text that
    the csv module refuses (NUL bytes, an oversized field).
    """
    # NUL bytes make the csv module stop; they never belong in a manifest, so they become
    # visible replacement characters and the row is judged on its values.
    reader = csv.reader(io.StringIO(text.replace("\x00", "\ufffd"), newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvError(CSV_UNREADABLE.format(detail=exc, line=reader.line_num)) from None
    if not header or not any(cell.strip() for cell in header):
        raise CsvError(CSV_NO_HEADER)
    names = [cell.strip().lstrip("\ufeff").strip().lower() for cell in header]
    seen: set[str] = set()
    for index, name in enumerate(names, start=1):
        if not name:
            raise CsvError(CSV_EMPTY_COLUMN.format(index=index))
        if name in seen:
            raise CsvError(CSV_DUPLICATE_COLUMN.format(name=name))
        seen.add(name)
    return names, _records(reader, names)


def _records(reader: _csv.Reader, names: list[str]) -> Iterator[CsvRecord]:
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvError(CSV_UNREADABLE.format(detail=exc, line=reader.line_num)) from None
        if not any(cell.strip() for cell in row):
            continue
        values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(names)}
        yield CsvRecord(start, values, max(0, len(row) - len(names)))
