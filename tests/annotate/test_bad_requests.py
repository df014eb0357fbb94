"""Malformed requests are answered 400 with a message, never 500, and change nothing."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.models import Vote
from annotate.params import (
    ID_MAX,
    NOT_WHOLE_NUMBER,
    NUL_CHARACTER,
    BadParameter,
    param_choice,
    param_int,
    param_text,
)
from annotate.roles import Role
from annotate.views.coding import BAD_JSON, NESTED_JSON
from modeling.models import ValidationRound
from modeling.services.validation import SEED_MAX, ValidationError, validation_round_create
from tests.factories import bare_faces, make_plain_faces, make_study, make_user
from tests.modeling.validation_factories import make_version, plant

pytestmark = pytest.mark.django_db

HUGE = str(10**30)


@pytest.fixture
def planted():
    """A study with an active version that predicted (and humans coded) 40 faces."""
    study = make_study(attributes_asked=["glasses"])
    faces = make_plain_faces(study, 40)
    version = make_version(study, active=True)
    plant(faces, version, seed=2)
    return study, version


@pytest.fixture
def researcher(client, planted):
    client.raise_request_exception = False  # a crash must show as the 500 a user would get
    client.force_login(make_user(Role.RESEARCHER, study=planted[0]))
    return client


def _submit(client, study, body: bytes | str):
    return client.post(
        reverse("annotate:code_submit", args=[study.slug]),
        data=body,
        content_type="application/json",
    )


# --- the parameter readers -------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "1.5", "1e3", "²", "١٢", "0x10", "", " 7 "])
def test_param_int_takes_ascii_whole_numbers_only(value):
    params = {"n": value}
    if value.strip() in ("", "7"):
        assert param_int(params, "n") == (7 if value.strip() else None)
        return
    with pytest.raises(BadParameter, match="n must be a whole number"):
        param_int(params, "n")


def test_param_int_refuses_numbers_no_column_holds():
    assert param_int({"id": str(ID_MAX)}, "id") == ID_MAX
    for value in (str(ID_MAX + 1), HUGE, "9" * 5000, "0", "-1"):
        with pytest.raises(BadParameter) as refused:
            param_int({"id": value}, "id")
        assert str(refused.value).startswith("id must be a whole number, at least 1 and at most")
        assert len(str(refused.value)) < 200  # a 5000-digit value is not echoed whole


def test_param_text_refuses_nul_and_param_choice_lists_the_valid_ones():
    with pytest.raises(BadParameter, match="job must not contain a NUL"):
        param_text({"job": "nur\x00se"}, "job")
    with pytest.raises(BadParameter, match="per must be one of: face, image; got 'x'"):
        param_choice({"per": "x"}, "per", ("face", "image"), default="face")
    assert param_choice({}, "per", ("face", "image"), default="face") == "face"


# --- hole 5: the cases the probe found -------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 10_000 + "]" * 10_000,
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        '{"assignment": ' + "[" * 10_000 + "]" * 10_000 + "}",
    ],
)
def test_a_vote_body_nested_10000_deep_is_refused_with_a_message(client, body):
    study = make_study()
    bare_faces(study, 1)
    client.raise_request_exception = False
    client.force_login(make_user(Role.CODER, study=study))
    response = _submit(client, study, body)
    assert response.status_code == 400
    assert response.json()["error"] == NESTED_JSON
    assert not Vote.objects.exists()


def test_gallery_round_beyond_any_id_is_refused_with_a_message(researcher, planted):
    study, version = planted
    url = reverse("modeling:gallery", args=[version.pk])
    response = researcher.get(f"{url}?round={10**30}")
    assert response.status_code == 400
    message = NOT_WHOLE_NUMBER.format(name="round", minimum=1, maximum=ID_MAX, value=HUGE)
    assert message.replace("'", "&#x27;") in response.content.decode()


BAD_QUERIES = [
    # (url name, arguments from the fixture, query string, words the message must hold)
    ("modeling:gallery", "version", "round=%C2%B2", "round must be a whole number"),
    ("modeling:gallery", "version", "rank=0", "rank must be a whole number"),
    ("modeling:gallery", "version", "job=nur%00se", "job must not contain a NUL"),
    ("modeling:gallery", "version", "attribute=shoe&group=x", "Unknown attribute"),
    ("modeling:estimates", "study", "rank=%C2%B2", "rank must be a whole number"),
    ("modeling:estimates", "study", f"rank={HUGE}", "rank must be a whole number"),
    ("modeling:estimates", "study", "per=pixel", "per must be one of"),
    ("modeling:estimates", "study", "by=shoe", "shoe"),
    ("modeling:export", "study", f"what=predictions&version={HUGE}", "version must be"),
    ("modeling:export", "study", "what=validation&round=%C2%B2", "round must be"),
    ("modeling:export", "study", "what=votes&format=xls", "xls"),
    ("modeling:appendix", "study", "version=%C2%B2", "version must be"),
    ("modeling:appendix", "study", f"version={HUGE}", "version must be"),
    ("modeling:appendix", "study", "format=pdf", "format must be one of: html, md, json"),
    ("modeling:version_compare", "study", f"a={HUGE}", "a must be"),
    ("modeling:validation_rounds", "study", "version=abc", "version must be"),
    ("annotate:agreement", "study", "batch=abc", "batch must be"),
    ("annotate:agreement", "study", "question=nope", "question must be one of"),
]


@pytest.mark.parametrize(("name", "arg", "query", "words"), BAD_QUERIES)
def test_malformed_query_parameters_answer_400_with_a_message(
    researcher, planted, name, arg, query, words
):
    study, version = planted
    url = reverse(name, args=[study.slug if arg == "study" else version.pk])
    response = researcher.get(f"{url}?{query}")
    assert response.status_code == 400, response.content[:300]
    assert words in response.content.decode().replace("&#x27;", "'")


@pytest.mark.parametrize(
    "seed", ["-1", HUGE, str(SEED_MAX + 1), "abc", "1.5", "²"], ids=lambda s: s[:12]
)
def test_opening_a_round_with_a_bad_seed_is_refused_and_creates_nothing(researcher, planted, seed):
    study, version = planted
    url = reverse("modeling:validation_rounds", args=[study.slug])
    response = researcher.post(url, {"version": version.pk, "size": 5, "seed": seed})
    assert response.status_code == 400
    html = response.content.decode()
    assert "No round was opened" in html and "Seed:" in html
    assert not ValidationRound.objects.exists()


def test_opening_a_round_with_the_largest_seed_works(researcher, planted):
    study, version = planted
    url = reverse("modeling:validation_rounds", args=[study.slug])
    response = researcher.post(url, {"version": version.pk, "size": 5, "seed": SEED_MAX})
    assert response.status_code == 302
    assert ValidationRound.objects.get().seed == SEED_MAX


@pytest.mark.parametrize(
    "fields",
    [
        {"version": HUGE, "size": 5},
        {"version": "abc", "size": 5},
        {"size": 5},
        {"version": "VERSION", "size": "0"},
        {"version": "VERSION", "size": HUGE},
        {"version": "VERSION", "size": 5, "min_per_group": "-1"},
    ],
)
def test_opening_a_round_with_other_bad_fields_is_refused(researcher, planted, fields):
    study, version = planted
    fields = {k: version.pk if v == "VERSION" else v for k, v in fields.items()}
    url = reverse("modeling:validation_rounds", args=[study.slug])
    response = researcher.post(url, fields)
    assert response.status_code == 400 and "No round was opened" in response.content.decode()
    assert not ValidationRound.objects.exists()


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 10**30])
def test_the_service_refuses_a_seed_out_of_range_before_writing(planted, seed):
    study, version = planted
    with pytest.raises(ValidationError, match="The seed must be a whole number from 0"):
        validation_round_create(version=version, size=5, seed=seed)
    assert not ValidationRound.objects.exists()


def test_a_nul_in_a_triage_note_is_refused_as_a_message(researcher, planted):
    study, version = planted
    face_id = version.predictions.values_list("face_id", flat=True).first()
    url = reverse("modeling:triage", args=[version.pk, face_id])
    response = researcher.post(url, {"decision": "model_error", "note": "a\x00b"}, follow=True)
    assert response.status_code == 200
    assert NUL_CHARACTER.format(name="note") in response.content.decode()


# --- no input makes the vote or filter endpoints fail ----------------------------------

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["female", "male", "not_face", "none", "glasses", "\x00", "²"]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
VOTE_KEYS = st.sampled_from(["assignment", "gender", "glasses", "seconds", "race", "face"])


@st.composite
def vote_bodies(draw) -> bytes:
    """Raw request bodies: JSON objects shaped like a vote, any JSON, text that is almost
    JSON, deep nesting, and bytes that are not text at all."""
    kind = draw(st.sampled_from(["vote", "json", "nested", "text", "bytes"]))
    if kind == "vote":
        body = draw(st.dictionaries(VOTE_KEYS | st.text(max_size=6), JSON_VALUES, max_size=6))
        return json.dumps(body).encode()
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "nested":
        depth = draw(st.integers(min_value=1, max_value=50_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = draw(st.sampled_from(["", "1", '"x"']))
        if opener == "{" and not inner:
            inner = "1"
        return (opener * depth + inner + closer * depth).encode()
    if kind == "text":
        return draw(
            st.text(alphabet='{}[]":,0123456789.eE+-truefalsn \\u\x00', max_size=60)
        ).encode()
    return draw(st.binary(max_size=80))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=vote_bodies())
def test_no_vote_body_makes_the_submit_endpoint_fail(client, body):
    study = _vote_study()
    client.raise_request_exception = False
    client.force_login(study.members.get())
    votes_before = Vote.objects.count()
    response = _submit(client, study, body)
    assert response.status_code < 500, (body[:100], response.content[:200])
    if response.status_code >= 400:
        assert response.json()["error"]
        assert Vote.objects.count() == votes_before


def _vote_study():
    """One study with a coder and faces, made on the first example and kept after it."""
    from annotate.models import Study

    study = Study.objects.filter(slug="fuzz-votes").first()
    if study is None:
        study = make_study("fuzz-votes", attributes_asked=["glasses"])
        bare_faces(study, 30)
        make_user(Role.CODER, study=study)
    return study


PARAM_VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "0", "-1", "1", HUGE, "9" * 5000, "²", "١", "1e3", " 2 ", "\x00"]),
    st.sampled_from(["age_band", "3-9", "race", "country", "de", "nurse", "errors", "all"]),
    st.sampled_from(["female_to_male", "job,country", "image", "subgroup", "once", "all"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
FILTER_NAMES = st.sampled_from(
    ["attribute", "group", "direction", "show", "round", "job", "country", "query", "rank"]
    + ["page", "per", "duplicates", "rates", "by", "what", "format", "version"]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    params=st.lists(st.tuples(FILTER_NAMES | st.text(max_size=5), PARAM_VALUES), max_size=5),
    endpoint=st.sampled_from(["gallery", "estimates"]),
)
def test_no_query_string_makes_the_gallery_or_estimates_fail(researcher, planted, params, endpoint):
    study, version = planted
    url = (
        reverse("modeling:gallery", args=[version.pk])
        if endpoint == "gallery"
        else reverse("modeling:estimates", args=[study.slug])
    )
    response = researcher.get(f"{url}?{urlencode(params, quote_via=quote)}")
    assert response.status_code < 500, (params, response.content[:300])
    if response.status_code == 400:
        assert 'class="error"' in response.content.decode()


def test_a_body_that_is_not_json_keeps_its_own_message(client):
    study = make_study()
    client.force_login(make_user(Role.CODER, study=study))
    assert _submit(client, study, b"{").json()["error"] == BAD_JSON
