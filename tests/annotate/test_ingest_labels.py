"""The labels CSV of an imported face set: FairFace spellings map onto Facet's label values."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotate.ingest.csvtext import CsvError
from annotate.ingest.labels_csv import (
    ROW_UNKNOWN_KEPT,
    LabelVocabulary,
    label_value,
    labels_parse,
)
from annotate.labels import CLASSES, AgeBand, Glasses, Quality, Race
from annotate.services.ingest_faces import LABEL_VOCABULARY

VOCABULARY = LabelVocabulary(
    gender=CLASSES,
    race=tuple(Race.values),
    age_band=tuple(AgeBand.values),
    glasses=tuple(Glasses.values),
    quality=tuple(Quality.values),
)


def _parse(text: str):
    return labels_parse(text.encode("utf-8"), vocabulary=VOCABULARY)


def test_the_service_passes_the_label_schema_as_plain_strings():
    assert LABEL_VOCABULARY == VOCABULARY
    assert all(isinstance(v, str) for v in LABEL_VOCABULARY.race)


@pytest.mark.parametrize(
    "attribute,spelling,stored",
    [
        ("gender", "Male", "male"),
        ("gender", "Female", "female"),
        ("gender", "F", "female"),
        ("race", "East Asian", "east_asian"),
        ("race", "Latino_Hispanic", "latino_hispanic"),
        ("race", "Latino/Hispanic", "latino_hispanic"),
        ("race", "Middle Eastern", "middle_eastern"),
        ("race", "Southeast Asian", "southeast_asian"),
        ("age_band", "0-2", "0-2"),
        ("age_band", "3-9", "3-9"),
        ("age_band", "70+", "70+"),
        ("age_band", "more than 70", "70+"),
        ("age_band", "34", "30-39"),
        ("age_band", "85", "70+"),
        ("glasses", "yes", "glasses"),
        ("glasses", "No", "none"),
        ("glasses", "Sunglasses", "sunglasses"),
        ("quality", "Low resolution", "low_resolution"),
    ],
)
def test_fairface_spellings_map_to_stored_values(attribute, spelling, stored):
    assert label_value(attribute, spelling, getattr(VOCABULARY, attribute)) == stored


def test_the_fairface540_labels_format_parses():
    parsed = _parse(
        "path,gender,race,age\n"
        "fairface/fairface_0001.jpg,male,,50-59\n"
        "fairface/fairface_0002.jpg,Female,East Asian,more than 70\n"
    )
    assert [(r.path, r.gender, r.race, r.age_band) for r in parsed.rows] == [
        ("fairface/fairface_0001.jpg", "male", "", "50-59"),
        ("fairface/fairface_0002.jpg", "female", "east_asian", "70+"),
    ]
    assert parsed.problems == []


def test_a_bad_gender_rejects_its_row_a_bad_optional_value_only_warns():
    parsed = _parse(
        "path,gender,race,age,glasses,quality,source\n"
        "a.jpg,male,,,,,lab\n"
        "b.jpg,unknown,,,,,\n"
        "c.jpg,female,Martian,,,,\n"
        "d.jpg,female,,old,,,\n"
        "e.jpg,,,,,,\n"
        "f.jpg,cant_tell,,,,,\n"
        "../g.jpg,male,,,,,\n"
        "a.jpg,female,,,,,\n"
        "h.jpg,male,white,30-39,monocle,grainy\n"
    )
    kept = {r.path: (r.race, r.age_band, r.glasses, r.quality) for r in parsed.rows}
    assert kept == {
        "a.jpg": ("", "", "", ""),
        "c.jpg": ("", "", "", ""),
        "d.jpg": ("", "", "", ""),
        "h.jpg": ("white", "30-39", "", ""),
    }
    assert parsed.rows[0].extra == {"source": "lab"}
    reasons = {p.line: p.reason for p in parsed.problems}
    assert reasons == {
        3: "gender 'unknown' is not one of: male, female",
        6: "the 'gender' value is empty",
        7: "gender 'cant_tell' is not one of: male, female",
        8: reasons[8],
        9: "duplicate: line 2 already labels this path",
    }
    assert "climbs out" in reasons[8]
    warnings = [(w.line, w.path, w.reason) for w in parsed.warnings]
    assert warnings == [
        (
            4,
            "c.jpg",
            "race 'Martian' is not one of: white, black, latino_hispanic, east_asian, "
            "southeast_asian, indian, middle_eastern; the face is kept with no race",
        ),
        (
            5,
            "d.jpg",
            "age 'old' is not one of: 0-2, 3-9, 10-19, 20-29, 30-39, 40-49, 50-59, 60-69, 70+; "
            "the face is kept with no age",
        ),
        (
            10,
            "h.jpg",
            ROW_UNKNOWN_KEPT.format(
                column="glasses", value="monocle", allowed="none, glasses, sunglasses"
            ),
        ),
        (
            10,
            "h.jpg",
            ROW_UNKNOWN_KEPT.format(
                column="quality",
                value="grainy",
                allowed="good, blurred, obstructed, low_resolution",
            ),
        ),
    ]


def test_race_spellings_naming_several_categories_keep_the_face_without_a_race():
    parsed = _parse(
        "path,gender,race\n"
        "a.jpg,female,Asian\n"
        "b.jpg,male,Others\n"
        "c.jpg,male,other\n"
        "d.jpg,female,Indian\n"
    )
    assert [(r.path, r.gender, r.race) for r in parsed.rows] == [
        ("a.jpg", "female", ""),
        ("b.jpg", "male", ""),
        ("c.jpg", "male", ""),
        ("d.jpg", "female", "indian"),
    ]
    assert parsed.problems == []
    reasons = {w.line: w.reason for w in parsed.warnings}
    assert reasons[2] == (
        "race 'Asian' could be any of: east_asian, southeast_asian, indian; the face is kept "
        "with no race (accepted: white, black, latino_hispanic, east_asian, southeast_asian, "
        "indian, middle_eastern)"
    )
    assert reasons[3].startswith(
        "race 'Others' could be any of: white, black, latino_hispanic, east_asian"
    )
    assert reasons[4].startswith("race 'other' could be any of:")
    assert set(reasons) == {2, 3, 4}


def test_race_spellings_naming_one_category_are_read_as_it_and_noted():
    parsed = _parse(
        "path,gender,race\n"
        "a.jpg,female,Caucasian\n"
        "b.jpg,male,caucasian\n"
        "c.jpg,male,African American\n"
        "d.jpg,female,Hispanic\n"
        "e.jpg,female,South Asian\n"
        "f.jpg,female,Caucasian\n"
    )
    assert [r.race for r in parsed.rows] == [
        "white",
        "white",
        "black",
        "latino_hispanic",
        "indian",
        "white",
    ]
    assert parsed.warnings == [] and parsed.problems == []
    assert "race 'Caucasian' was read as 'white' (2 row(s))" in parsed.notes
    assert "race 'caucasian' was read as 'white' (1 row(s))" in parsed.notes
    assert "race 'South Asian' was read as 'indian' (1 row(s))" in parsed.notes


def test_missing_required_columns_raise_one_clear_error():
    with pytest.raises(CsvError, match="no 'gender' column"):
        _parse("path,race\na.jpg,white\n")
    with pytest.raises(CsvError, match="no 'path' column"):
        _parse("gender\nmale\n")


# --- property-based ------------------------------------------------------------------------

value = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "Male",
            "Female",
            "male",
            "x",
            "East Asian",
            "Latino_Hispanic",
            "0-2",
            "70+",
            "more than 70",
            "34",
            "yes",
            "no",
            "blurred",
            "",
            "../a.jpg",
            "/a.jpg",
            "a.jpg",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_csv_error(data):
    try:
        labels_parse(data, vocabulary=VOCABULARY)
    except CsvError as exc:
        assert str(exc)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["path", "gender", "race", "age", "glasses", "quality", "note"]),
        min_size=1,
        max_size=7,
        unique=True,
    ),
    st.lists(st.lists(value, max_size=8), max_size=12),
)
def test_kept_rows_hold_only_allowed_values(columns, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    try:
        parsed = labels_parse(buffer.getvalue().encode("utf-8"), vocabulary=VOCABULARY)
    except CsvError as exc:
        assert str(exc)
        return
    for row in parsed.rows:
        assert row.gender in VOCABULARY.gender
        assert row.race in VOCABULARY.race + ("",)
        assert row.age_band in VOCABULARY.age_band + ("",)
        assert row.glasses in VOCABULARY.glasses + ("",)
        assert row.quality in VOCABULARY.quality + ("",)
        assert not row.path.startswith("/") and ".." not in row.path.split("/")
    lines = [row.line for row in parsed.rows] + [p.line for p in parsed.problems]
    assert len(lines) == len(set(lines))
    assert {w.line for w in parsed.warnings} <= {row.line for row in parsed.rows}
