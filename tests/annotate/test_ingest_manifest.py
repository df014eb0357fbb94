"""The manifest parser: encodings, bad rows with reasons, duplicates, matching files to rows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotate.ingest.csvtext import CSV_EMPTY, NOTE_FALLBACK, CsvError
from annotate.ingest.manifest import (
    FIELD_MAX_LENGTHS,
    MANIFEST_COLUMNS,
    ROW_MISSING_FILE,
    manifest_parse,
)

HEADER = "file,query,job,country,language,rank,source_url"


def _parse(text: str, encoding: str = "utf-8"):
    return manifest_parse(text.encode(encoding))


def test_columns_are_read_and_extra_columns_kept_as_metadata():
    manifest = _parse(
        HEADER + ",engine,Downloaded\n"
        "nurse/01.jpg,nurse,nurse,US,en,1,https://example.org/a.jpg,google,2024-01-02\n"
    )
    row = manifest.rows["nurse/01.jpg"]
    assert (row.query, row.job, row.country, row.language, row.rank, row.source_url) == (
        "nurse",
        "nurse",
        "US",
        "en",
        1,
        "https://example.org/a.jpg",
    )
    assert row.metadata == {"engine": "google", "downloaded": "2024-01-02"}
    assert manifest.problems == []


def test_utf8_bom_does_not_hide_the_file_column():
    manifest = manifest_parse(("\ufeff" + HEADER + "\na.jpg,q,j,DE,de,1,\n").encode("utf-8"))
    assert list(manifest.rows) == ["a.jpg"]
    assert manifest.encoding == "utf-8" and manifest.notes == []


def test_windows_1252_manifest_is_read_with_a_note():
    manifest = _parse(HEADER + "\na.jpg,geschäftsführer,ceo,DE,de,1,\n", "cp1252")
    assert manifest.rows["a.jpg"].query == "geschäftsführer"
    assert manifest.notes == [NOTE_FALLBACK.format(encoding="cp1252")]


def test_bytes_no_code_page_maps_fall_back_to_latin1_with_a_note():
    data = (HEADER + "\na.jpg,q\x81\x8d,j,DE,de,1,\n").encode("latin-1")
    manifest = manifest_parse(data)
    assert manifest.encoding == "latin-1"
    assert "read as latin-1" in manifest.notes[0]


def test_utf16_manifest_is_read():
    manifest = _parse(HEADER + "\na.jpg,médico,doctor,BR,pt,2,\n", "utf-16")
    assert manifest.rows["a.jpg"].query == "médico"


def test_bad_rows_are_reported_with_line_and_reason_and_others_kept():
    manifest = _parse(
        HEADER + "\n"
        "good.jpg,q,j,US,en,1,https://x.org/1\n"
        "rank.jpg,q,j,US,en,first,\n"
        "url.jpg,q,j,US,en,2,javascript:alert(1)\n"
        ",q,j,US,en,3,\n"
        "../up.jpg,q,j,US,en,4,\n"
        "long.jpg,q,j," + "X" * 60 + ",en,5,\n"
        "extra.jpg,q,j,US,en,6,,surplus\n"
    )
    assert list(manifest.rows) == ["good.jpg"]
    reasons = {p.line: p.reason for p in manifest.problems}
    assert reasons[3] == "rank 'first' is not a whole number ≥ 0"
    assert reasons[4].startswith("source_url 'javascript:alert(1)' is not an http(s) URL")
    assert reasons[5] == "the 'file' value is empty"
    assert "climbs out of the folder" in reasons[6]
    assert reasons[7] == "country is 60 characters; the limit is 50"
    assert reasons[8] == "the row has 1 more field(s) than the header"


def test_duplicate_rows_identical_and_conflicting_are_reported_first_kept():
    manifest = _parse(HEADER + "\na.jpg,q,j,US,en,1,\na.jpg,q,j,US,en,1,\na.jpg,other,j,US,en,9,\n")
    assert manifest.rows["a.jpg"].line == 2
    assert [(p.line, p.reason) for p in manifest.problems] == [
        (3, "duplicate row: line 2 already describes this file identically"),
        (4, "conflicting duplicate: line 2 already describes this file differently"),
    ]


def test_rows_match_files_by_path_by_dropped_top_folder_or_by_unique_basename():
    manifest = _parse(
        HEADER + "\nnurse/01.jpg,n,,,,,\n02.jpg,m,,,,,\nx/03.jpg,a,,,,,\ny/03.jpg,b,,,,,\n"
    )
    assert manifest.row_for("nurse/01.jpg").query == "n"
    assert manifest.row_for("export/nurse/01.jpg").query == "n"
    assert manifest.row_for("deep/02.jpg").query == "m"
    assert manifest.row_for("03.jpg") is None  # two rows share the basename
    assert manifest.row_for("z/09.jpg") is None


def test_rows_naming_missing_files_are_listed():
    manifest = _parse(HEADER + "\na.jpg,,,,,,\nb.jpg,,,,,,\n")
    missing = manifest.rows_without_files({"a.jpg"})
    assert [(p.line, p.file, p.reason) for p in missing] == [(3, "b.jpg", ROW_MISSING_FILE)]


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", CSV_EMPTY),
        (b"   \n\n", CSV_EMPTY),
        (b"query,job\nq,j\n", "the manifest has no 'file' column (columns found: query, job)"),
        (b"file,file\na,b\n", "the header names column 'file' twice"),
        (b'file\n"' + b"x" * 200_000 + b'"\n', "cannot be read as CSV"),
    ],
    ids=["empty", "blank", "no-file-column", "duplicate-column", "huge-field"],
)
def test_whole_file_problems_raise_one_clear_error(data, message):
    with pytest.raises(CsvError) as caught:
        manifest_parse(data)
    assert message in str(caught.value)


def test_database_widths_match_the_model():
    from annotate.models import SourceImage

    for column, limit in FIELD_MAX_LENGTHS.items():
        model_field = "original_name" if column == "file" else column
        assert SourceImage._meta.get_field(model_field).max_length == limit, column


# --- property-based: arbitrary input never raises anything but CsvError --------------------

cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", "1", "-3", "x.jpg", "../a.jpg", "/abs.jpg", "https://a.b/c", '"', "\n", "\x00"]
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_csv_error(data):
    try:
        manifest = manifest_parse(data)
    except CsvError as exc:
        assert str(exc)
        return
    for name, row in manifest.rows.items():
        assert name == row.file and not name.startswith("/") and ".." not in name.split("/")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(MANIFEST_COLUMNS + ("extra", "Notes")), min_size=1, max_size=9, unique=True
    ),
    st.lists(st.lists(cell, max_size=9), max_size=12),
    st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
)
def test_every_data_row_is_either_kept_or_reported(columns, rows, encoding):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(row)
    data = buffer.getvalue().encode(encoding, errors="replace")
    try:
        manifest = manifest_parse(data)
    except CsvError as exc:
        assert str(exc)
        return
    lines = {row.line for row in manifest.rows.values()} | {p.line for p in manifest.problems}
    # No row is silently lost or counted twice.
    assert len(manifest.rows) + len(manifest.problems) == len(lines)
    for problem in manifest.problems:
        assert problem.reason
