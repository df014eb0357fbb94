"""The Markdown methods appendix shows names from the data literally: a study title or a job
name can neither format the text, inject HTML, nor add a column to a table."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeling.appendix import _md, appendix_markdown, methods_appendix
from modeling.services.validation import validation_results_compute, validation_round_create
from tests.factories import make_plain_faces, make_study
from tests.modeling.validation_factories import code_faces, make_version, plant

TITLE = "*bold* | pipe <script>alert(1)</script> _x_ [link](http://e.org) `code` &amp;"
JOB = "a|b"
CELL_SPLIT = re.compile(r"(?<!\\)\|")  # a GFM table cell ends at a pipe not escaped
ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark: any escaped ASCII punctuation


def _literal(markdown: str) -> str:
    """The text a CommonMark renderer shows for inline Markdown without markup."""
    return html.unescape(ESCAPED.sub(r"\1", markdown))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in CELL_SPLIT.split(line.strip())[1:-1]]


@given(st.text(max_size=60))
def test_any_text_reads_back_literally_on_one_line(text):
    escaped = _md(text)
    assert _literal(escaped) == " ".join(text.splitlines())
    assert "\n" not in escaped and "\r" not in escaped
    assert "<" not in escaped and ">" not in escaped
    assert not re.search(r"(?<!\\)[*_`\[\]|~#]", escaped.replace("\\\\", ""))


@pytest.mark.django_db
def test_a_hostile_title_and_job_stay_literal_in_the_markdown():
    study = make_study(title=TITLE + "\nsecond line")
    faces = make_plain_faces(study, 120, jobs=(JOB, "nurse <b>"), countries=("de",))
    version = make_version(study, active=True)
    truth = plant(faces, version, coded=False, seed=5)
    round = validation_round_create(version=version, size=60, seed=1, min_per_group=5)
    code_faces(round.items.values_list("face_id", flat=True), truth)
    validation_results_compute(round_id=round.pk)

    markdown = appendix_markdown(methods_appendix(study=study, version=version))
    heading = markdown.splitlines()[0]
    assert _literal(heading) == f"# Methods appendix: {TITLE} second line (model v1)"
    assert "<script" not in markdown and "<b>" not in markdown

    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table) > 2
    assert {len(_cells(line)) for line in table} == {8}  # header, rule and every row
    groups = {_literal(cells[1]) for cells in map(_cells, table[2:]) if _literal(cells[0]) == "job"}
    assert groups == {JOB, "nurse <b>"}
