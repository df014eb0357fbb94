"""The manifest: which search query, job, country, language and rank each image came from.

Columns `file, query, job, country, language, rank, source_url`; any other column is kept
as metadata. A bad row is reported with its line number and reason and never stops the
others; a problem with the whole file (no `file` column, not CSV at all) raises CsvError.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from annotate.ingest.csvtext import MAX_CSV_BYTES, CsvError, csv_decode, csv_header
from annotate.ingest.paths import UnsafePath, path_keys, path_normalise

MANIFEST_COLUMNS: tuple[str, ...] = (
    "file",
    "query",
    "job",
    "country",
    "language",
    "rank",
    "source_url",
)
# The database's column widths (annotate.models.SourceImage); a test keeps them in step.
FIELD_MAX_LENGTHS: dict[str, int] = {
    "file": 500,
    "query": 300,
    "job": 100,
    "country": 50,
    "language": 20,
    "source_url": 2000,
}
MAX_METADATA_CHARS = 2000
MAX_ROWS = 500_000

MANIFEST_NO_FILE_COLUMN = "the manifest has no 'file' column (columns found: {columns})"
MANIFEST_TOO_MANY_ROWS = "the manifest has more than {limit} rows"
ROW_NO_FILE = "the 'file' value is empty"
ROW_BAD_PATH = "bad file name: {reason}"
ROW_TOO_LONG = "{column} is {length} characters; the limit is {limit}"
ROW_BAD_RANK = "rank {value!r} is not a whole number ≥ 0"
ROW_BAD_URL = "source_url {value!r} is not an http(s) URL"
ROW_EXTRA_FIELDS = "the row has {n} more field(s) than the header"
ROW_DUPLICATE = "duplicate row: line {line} already describes this file identically"
ROW_CONFLICT = "conflicting duplicate: line {line} already describes this file differently"
ROW_MISSING_FILE = "names a file that is not in the upload"


@dataclass(frozen=True)
class ManifestRow:
    line: int
    file: str
    query: str = ""
    job: str = ""
    country: str = ""
    language: str = ""
    rank: int | None = None
    source_url: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def values(self) -> tuple[object, ...]:
        return (
            self.query,
            self.job,
            self.country,
            self.language,
            self.rank,
            self.source_url,
            tuple(sorted(self.metadata.items())),
        )


@dataclass(frozen=True)
class RowProblem:
    line: int
    file: str
    reason: str

    def as_dict(self) -> dict[str, int | str]:
        return {"line": self.line, "file": self.file, "reason": self.reason}


@dataclass
class Manifest:
    rows: dict[str, ManifestRow]  # normalised file name -> row
    problems: list[RowProblem]
    columns: list[str]
    encoding: str
    notes: list[str]
    _basenames: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in self.rows:
            for key in path_keys(name)[1:]:
                # A basename names a file only when no other row shares it.
                self._basenames[key] = None if key in self._basenames else name

    def row_for(self, name: str) -> ManifestRow | None:
        """The row describing the upload's file `name`: by full path, else by unique basename.

        Also tries the path without a top-level folder, since zipping a folder adds one.
        """
        candidates = [name]
        if "/" in name:
            candidates.append(name.split("/", 1)[1])
        for candidate in candidates:
            if candidate in self.rows:
                return self.rows[candidate]
        for candidate in path_keys(name):
            target = self._basenames.get(candidate)
            if target is not None:
                return self.rows[target]
        return None

    def rows_without_files(self, used: Iterable[str]) -> list[RowProblem]:
        """Rows whose file was not in the upload (by row file name), in line order."""
        used = set(used)
        return [
            RowProblem(row.line, row.file, ROW_MISSING_FILE)
            for name, row in sorted(self.rows.items(), key=lambda item: item[1].line)
            if name not in used
        ]


def manifest_parse(
    data: bytes, *, max_bytes: int = MAX_CSV_BYTES, max_rows: int = MAX_ROWS
) -> Manifest:
    """Parse manifest bytes. Raises CsvError only for problems with the whole file."""
    decoded = csv_decode(data, max_bytes=max_bytes)
    columns, records = csv_header(decoded.text)
    if "file" not in columns:
        raise CsvError(MANIFEST_NO_FILE_COLUMN.format(columns=", ".join(columns)[:500]))
    rows: dict[str, ManifestRow] = {}
    problems: list[RowProblem] = []
    for count, record in enumerate(records, start=1):
        if count > max_rows:
            raise CsvError(MANIFEST_TOO_MANY_ROWS.format(limit=max_rows))
        row_or_problem = _row(record.line, record.values, record.extra_fields)
        if isinstance(row_or_problem, RowProblem):
            problems.append(row_or_problem)
            continue
        row = row_or_problem
        earlier = rows.get(row.file)
        if earlier is None:
            rows[row.file] = row
        elif earlier.values() == row.values():
            problems.append(RowProblem(row.line, row.file, ROW_DUPLICATE.format(line=earlier.line)))
        else:
            problems.append(RowProblem(row.line, row.file, ROW_CONFLICT.format(line=earlier.line)))
    return Manifest(rows, problems, columns, decoded.encoding, list(decoded.notes))


def _row(line: int, values: dict[str, str], extra_fields: int) -> ManifestRow | RowProblem:
    raw_file = values.get("file", "")
    shown = raw_file[:200]
    if extra_fields:
        return RowProblem(line, shown, ROW_EXTRA_FIELDS.format(n=extra_fields))
    if not raw_file:
        return RowProblem(line, "", ROW_NO_FILE)
    for column, limit in FIELD_MAX_LENGTHS.items():
        value = values.get(column, "")
        if len(value) > limit:
            return RowProblem(
                line, shown, ROW_TOO_LONG.format(column=column, length=len(value), limit=limit)
            )
    try:
        name = path_normalise(raw_file)
    except UnsafePath as exc:
        return RowProblem(line, shown, ROW_BAD_PATH.format(reason=exc))
    rank = None
    rank_text = values.get("rank", "")
    if rank_text:
        if not (rank_text.isascii() and rank_text.isdigit()) or len(rank_text) > 9:
            return RowProblem(line, shown, ROW_BAD_RANK.format(value=rank_text[:50]))
        rank = int(rank_text)
    url = values.get("source_url", "")
    if url and not _is_http_url(url):
        return RowProblem(line, shown, ROW_BAD_URL.format(value=url[:100]))
    metadata = {}
    for column, value in values.items():
        if column in MANIFEST_COLUMNS or not value:
            continue
        if len(value) > MAX_METADATA_CHARS:
            return RowProblem(
                line,
                shown,
                ROW_TOO_LONG.format(column=column, length=len(value), limit=MAX_METADATA_CHARS),
            )
        metadata[column] = value
    return ManifestRow(
        line=line,
        file=name,
        query=values.get("query", ""),
        job=values.get("job", ""),
        country=values.get("country", ""),
        language=values.get("language", ""),
        rank=rank,
        source_url=url,
        metadata=metadata,
    )


def _is_http_url(value: str) -> bool:
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
