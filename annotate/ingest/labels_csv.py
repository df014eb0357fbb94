"""The labels file of an imported face set: `path, gender[, race, age, glasses, quality]`.

Values are mapped to Facet's label schema, whose allowed values the caller passes in as
plain strings (`LabelVocabulary`), so this module needs no Django. FairFace-style spellings
are understood: `Male`/`Female`, `East Asian`, `Latino_Hispanic`, age bands `0-2` … `70+`
(also `more than 70` and whole-number ages), and common race spellings that name exactly one
category (`Caucasian` → white; a note says how many rows were read so). A gender that cannot
be mapped rejects its row, since the face would have no training label. An optional attribute
that cannot be mapped, or that names several categories (`Asian` could be East Asian,
Southeast Asian or Indian; `Other` any of them), keeps the face with that attribute empty and
a warning naming the line and the accepted values. A problem with the whole file raises
CsvError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from annotate.ingest.csvtext import MAX_CSV_BYTES, CsvError, csv_decode, csv_header
from annotate.ingest.paths import UnsafePath, path_normalise

MAX_ROWS = 500_000
MAX_VALUE_CHARS = 500

LABELS_NO_COLUMN = "the labels file has no {column!r} column (columns found: {columns})"
LABELS_TOO_MANY_ROWS = "the labels file has more than {limit} rows"
ROW_NO_PATH = "the 'path' value is empty"
ROW_BAD_PATH = "bad path: {reason}"
ROW_BAD_VALUE = "{column} {value!r} is not one of: {allowed}"
ROW_MISSING_GENDER = "the 'gender' value is empty"
ROW_EXTRA_FIELDS = "the row has {n} more field(s) than the header"
ROW_TOO_LONG = "{column} is {length} characters; the limit is {limit}"
ROW_DUPLICATE = "duplicate: line {line} already labels this path"
ROW_UNKNOWN_KEPT = "{column} {value!r} is not one of: {allowed}; the face is kept with no {column}"
ROW_AMBIGUOUS_KEPT = (
    "{column} {value!r} could be any of: {candidates}; the face is kept with no {column} "
    "(accepted: {allowed})"
)
NOTE_READ_AS = "{column} {value!r} was read as {stored!r} ({n} row(s))"
OPTIONAL_ATTRIBUTES = ("race", "age_band", "glasses", "quality")

# Column name -> attribute it fills; the first name present wins.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("path", "file"),
    "gender": ("gender", "sex"),
    "race": ("race",),
    "age_band": ("age", "age_band"),
    "glasses": ("glasses",),
    "quality": ("quality",),
}

_GENDER_SYNONYMS = {"m": "male", "man": "male", "f": "female", "woman": "female"}
_GLASSES_SYNONYMS = {
    "no": "none",
    "false": "none",
    "0": "none",
    "no_glasses": "none",
    "yes": "glasses",
    "true": "glasses",
    "1": "glasses",
    "eyeglasses": "glasses",
}
_AGE_SYNONYMS = {"more_than_70": "70+", "70_": "70+", "70plus": "70+", "70_plus": "70+"}
# Spellings other data sets use for exactly one of FairFace's categories.
_RACE_SYNONYMS = {
    "caucasian": "white",
    "african_american": "black",
    "hispanic": "latino_hispanic",
    "latino": "latino_hispanic",
    "latina": "latino_hispanic",
    "south_asian": "indian",
}
# Spellings that name several categories (UTKFace's `Asian` and `Others`, for one): no single
# value is right, so the attribute stays empty rather than guessed. None means any value.
_RACE_AMBIGUOUS: dict[str, tuple[str, ...] | None] = {
    "asian": ("east_asian", "southeast_asian", "indian"),
    "other": None,
    "others": None,
}


@dataclass(frozen=True)
class LabelVocabulary:
    """Allowed stored values for each attribute (e.g. annotate.labels' choices' values)."""

    gender: tuple[str, ...]
    race: tuple[str, ...]
    age_band: tuple[str, ...]
    glasses: tuple[str, ...]
    quality: tuple[str, ...]


@dataclass(frozen=True)
class LabelRow:
    line: int
    path: str
    gender: str
    race: str = ""
    age_band: str = ""
    glasses: str = ""
    quality: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelProblem:
    line: int
    path: str
    reason: str

    def as_dict(self) -> dict[str, int | str]:
        return {"line": self.line, "file": self.path, "reason": self.reason}


@dataclass
class LabelsFile:
    rows: list[LabelRow]
    problems: list[LabelProblem]  # rows rejected
    columns: list[str]
    encoding: str
    notes: list[str]
    warnings: list[LabelProblem] = field(default_factory=list)  # rows kept, a value left empty


def _key(value: str) -> str:
    return re.sub(r"[^0-9a-z+]+", "_", value.strip().lower()).strip("_")


def _age_band(value: str, allowed: tuple[str, ...]) -> str | None:
    compact = value.strip().replace(" ", "").replace("–", "-")
    if compact in allowed:
        return compact
    mapped = _AGE_SYNONYMS.get(_key(value))
    if mapped in allowed:
        return mapped
    if compact.isascii() and compact.isdigit() and len(compact) <= 3:
        years = int(compact)
        for band in allowed:
            low, _, high = band.partition("-")
            if band.endswith("+") and years >= int(band[:-1]):
                return band
            if high and low.isdigit() and high.isdigit() and int(low) <= years <= int(high):
                return band
    return None


def label_value(attribute: str, value: str, allowed: tuple[str, ...]) -> str | None:
    """Map one spelling to its stored value, or None when it is not one of `allowed`."""
    if attribute == "age_band":
        return _age_band(value, allowed)
    key = _key(value)
    synonyms = {
        "gender": _GENDER_SYNONYMS,
        "glasses": _GLASSES_SYNONYMS,
        "race": _RACE_SYNONYMS,
    }.get(attribute, {})
    key = synonyms.get(key, key)
    by_key = {_key(item): item for item in allowed}
    return by_key.get(key)


def labels_parse(
    data: bytes,
    *,
    vocabulary: LabelVocabulary,
    max_bytes: int = MAX_CSV_BYTES,
    max_rows: int = MAX_ROWS,
) -> LabelsFile:
    """Parse a labels file. Raises CsvError only for problems with the whole file."""
    decoded = csv_decode(data, max_bytes=max_bytes)
    columns, records = csv_header(decoded.text)
    chosen: dict[str, str] = {}
    for attribute, aliases in COLUMN_ALIASES.items():
        found = next((alias for alias in aliases if alias in columns), None)
        if found is not None:
            chosen[attribute] = found
    for required in ("path", "gender"):
        if required not in chosen:
            raise CsvError(
                LABELS_NO_COLUMN.format(column=required, columns=", ".join(columns)[:500])
            )
    used_columns = set(chosen.values())
    rows: list[LabelRow] = []
    problems: list[LabelProblem] = []
    warnings: list[LabelProblem] = []
    read_as: dict[tuple[str, str, str], int] = {}
    seen: dict[str, int] = {}
    for count, record in enumerate(records, start=1):
        if count > max_rows:
            raise CsvError(LABELS_TOO_MANY_ROWS.format(limit=max_rows))
        result, row_warnings = _row(
            record.line, record.values, record.extra_fields, chosen, vocabulary
        )
        if isinstance(result, LabelProblem):
            problems.append(result)
            continue
        warnings.extend(row_warnings)
        race = record.values.get(chosen.get("race", ""), "")
        if result.race and _key(race) in _RACE_SYNONYMS:
            read_as[(chosen["race"], race, result.race)] = (
                read_as.get((chosen["race"], race, result.race), 0) + 1
            )
        if result.path in seen:
            problems.append(
                LabelProblem(result.line, result.path, ROW_DUPLICATE.format(line=seen[result.path]))
            )
            continue
        seen[result.path] = result.line
        extra = {k: v for k, v in record.values.items() if k not in used_columns and v}
        rows.append(_with_extra(result, extra))
    notes = list(decoded.notes) + [
        NOTE_READ_AS.format(column=column, value=value, stored=stored, n=n)
        for (column, value, stored), n in read_as.items()
    ]
    return LabelsFile(rows, problems, columns, decoded.encoding, notes, warnings)


def _with_extra(row: LabelRow, extra: dict[str, str]) -> LabelRow:
    if not extra:
        return row
    return LabelRow(
        row.line, row.path, row.gender, row.race, row.age_band, row.glasses, row.quality, extra
    )


def _row(
    line: int,
    values: dict[str, str],
    extra_fields: int,
    chosen: dict[str, str],
    vocabulary: LabelVocabulary,
) -> tuple[LabelRow | LabelProblem, list[LabelProblem]]:
    """One row, or why it is rejected; plus warnings about optional values left empty."""
    raw_path = values.get(chosen["path"], "")
    shown = raw_path[:200]
    if extra_fields:
        return LabelProblem(line, shown, ROW_EXTRA_FIELDS.format(n=extra_fields)), []
    if not raw_path:
        return LabelProblem(line, "", ROW_NO_PATH), []
    for column, value in values.items():
        if len(value) > MAX_VALUE_CHARS:
            return LabelProblem(
                line,
                shown,
                ROW_TOO_LONG.format(column=column, length=len(value), limit=MAX_VALUE_CHARS),
            ), []
    try:
        path = path_normalise(raw_path)
    except UnsafePath as exc:
        return LabelProblem(line, shown, ROW_BAD_PATH.format(reason=exc)), []
    mapped: dict[str, str] = {}
    warnings: list[LabelProblem] = []
    for attribute in ("gender", *OPTIONAL_ATTRIBUTES):
        column = chosen.get(attribute, "")
        value = values.get(column, "") if column else ""
        if not value:
            if attribute == "gender":
                return LabelProblem(line, path, ROW_MISSING_GENDER), []
            mapped[attribute] = ""
            continue
        allowed = getattr(vocabulary, attribute)
        stored = label_value(attribute, value, allowed)
        if stored is None and attribute == "gender":
            reason = ROW_BAD_VALUE.format(
                column=column, value=value[:50], allowed=", ".join(allowed)
            )
            return LabelProblem(line, path, reason), []
        if stored is None:
            warnings.append(LabelProblem(line, path, _unmapped(attribute, column, value, allowed)))
        mapped[attribute] = stored or ""
    return LabelRow(
        line=line,
        path=path,
        gender=mapped["gender"],
        race=mapped["race"],
        age_band=mapped["age_band"],
        glasses=mapped["glasses"],
        quality=mapped["quality"],
    ), warnings


def _unmapped(attribute: str, column: str, value: str, allowed: tuple[str, ...]) -> str:
    """Why an optional value was left empty, with the spellings that would have been read."""
    key = _key(value)
    if attribute == "race" and key in _RACE_AMBIGUOUS:
        candidates = _RACE_AMBIGUOUS[key] or allowed
        return ROW_AMBIGUOUS_KEPT.format(
            column=column,
            value=value[:50],
            candidates=", ".join(candidates),
            allowed=", ".join(allowed),
        )
    return ROW_UNKNOWN_KEPT.format(column=column, value=value[:50], allowed=", ".join(allowed))
